"""A push listener (``sync.listener.Listener``) run on a thread of the test process,
and waiting helpers for the push tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sync.listener import Listener
from sync.models import PushLease, PushState

POLL_SECONDS = 0.05


def wait_until(condition: Callable[[], object], *, timeout: float = 30, what: str = "") -> float:
    """Poll every 50 ms; returns the seconds it took."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"gave up waiting for {what} after {timeout} s")
        time.sleep(POLL_SECONDS)
    return time.monotonic() - start


@contextmanager
def listening(**options: object) -> Iterator[Listener]:
    listener = Listener(**options)  # type: ignore[arg-type]
    thread = threading.Thread(target=listener.run, name="test-listener", daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        listener.stop()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the listener did not stop"


def state_of(mailbox_id: int) -> str | None:
    return PushLease.objects.filter(mailbox_id=mailbox_id).values_list("state", flat=True).first()


def is_live(mailbox_id: int) -> bool:
    return state_of(mailbox_id) == PushState.LIVE
