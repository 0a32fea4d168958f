"""Reading ahead: a generator run in a thread of its own, a bounded queue ahead
of its consumer, so the next messages download while the last ones are parsed
and stored. The server prepares its answer and the socket waits for it (a
wait that releases the GIL) while this process is busy with the batch before.

The generator owns its connection while it runs: the consumer must not use
that connection until ``close`` returns (it waits for a download under way to
finish, which leaves the connection between two commands). An exception the
generator raises reaches the consumer in its place in the sequence.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
# How often a blocked producer looks whether the consumer has stopped listening.
_POLL_SECONDS = 0.05


class _End:
    """The generator ran out."""


class ReadAhead(Generic[T]):
    def __init__(self, source: Iterator[T], *, depth: int) -> None:
        self._source = source
        self._queue: queue.Queue[T | _End | BaseException] = queue.Queue(maxsize=depth)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="serversync-read-ahead", daemon=True)
        self._thread.start()

    def __enter__(self) -> ReadAhead[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[T]:
        while True:
            entry = self._queue.get()
            if isinstance(entry, _End):
                return
            if isinstance(entry, BaseException):
                raise entry
            yield entry

    def close(self) -> None:
        """Stop reading ahead and wait until the connection is free again."""
        self._stopped.set()
        self._thread.join()
        if isinstance(self._source, Generator):
            self._source.close()  # suspended where it stopped, its cleanup runs here

    def _produce(self) -> None:
        try:
            for item in self._source:
                if not self._put(item):
                    return
        except BaseException as error:  # the consumer raises it in its place
            self._put(error)
        else:
            self._put(_End())

    def _put(self, entry: T | _End | BaseException) -> bool:
        while not self._stopped.is_set():
            try:
                self._queue.put(entry, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False
