"""A TCP proxy in front of a test server that breaks connections the way networks do.

Bytes pass through untouched (TLS stays end to end: the client checks the server's
certificate as before), until a fault says otherwise:

- ``cut_after(upstream=N)`` / ``cut_after(downstream=N)``: the next connection is closed
  (both ways, at once) once N bytes went client -> server (mid-DATA) or server -> client
  (mid-FETCH, mid-response);
- ``stall()``: the next connection stops forwarding (nothing moves; the client's timeout
  decides);
- ``slow(bytes_per_second)``: every connection forwards at most that fast.

A fault applies to one connection (the next one opened) unless said otherwise, so a test
can break a run and let the retry through.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass

HOST = "127.0.0.1"
CHUNK = 4096


@dataclass
class Fault:
    upstream: int | None = None  # cut after this many client -> server bytes
    downstream: int | None = None  # cut after this many server -> client bytes
    stall: bool = False


class FaultyProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server((HOST, 0))
        self.host, self.port = HOST, self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._rate: float | None = None
        self._closed = False
        self.connections = 0
        self.cuts = 0
        self.passed = {"upstream": 0, "downstream": 0}  # bytes forwarded each way, all connections
        self._open: set[socket.socket] = set()
        threading.Thread(target=self._accept, name="faulty-proxy", daemon=True).start()

    # -- faults ----------------------------------------------------------------------------

    def cut_after(self, *, upstream: int | None = None, downstream: int | None = None) -> None:
        with self._lock:
            self._faults.append(Fault(upstream=upstream, downstream=downstream))

    def stall(self) -> None:
        with self._lock:
            self._faults.append(Fault(stall=True))

    def slow(self, bytes_per_second: float | None) -> None:
        self._rate = bytes_per_second

    def heal(self) -> None:
        """No more faults for new connections (those cut stay cut)."""
        with self._lock:
            self._faults.clear()
        self._rate = None

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            for sock in list(self._open):
                _shut(sock)

    # -- forwarding ------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                fault = self._faults.pop(0) if self._faults else Fault()
                self.connections += 1
            threading.Thread(target=self._serve, args=(client, fault), daemon=True).start()

    def _serve(self, client: socket.socket, fault: Fault) -> None:
        try:
            server = socket.create_connection(self.target, timeout=10)
        except OSError:
            _shut(client)
            return
        with self._lock:
            self._open.update((client, server))
        broken = threading.Event()
        if fault.stall:
            # Hold both ends open, move nothing: the client's own timeout is what ends it.
            while not (broken.wait(0.2) or self._closed):
                pass
            return
        pipes = [
            threading.Thread(
                target=self._pipe, args=(client, server, fault.upstream, broken, "upstream"), daemon=True
            ),
            threading.Thread(
                target=self._pipe, args=(server, client, fault.downstream, broken, "downstream"), daemon=True
            ),
        ]
        for pipe in pipes:
            pipe.start()
        for pipe in pipes:
            pipe.join()
        with self._lock:
            self._open.difference_update((client, server))

    def _pipe(
        self,
        source: socket.socket,
        sink: socket.socket,
        limit: int | None,
        broken: threading.Event,
        way: str,
    ) -> None:
        passed = 0
        try:
            while not broken.is_set():
                data = source.recv(CHUNK)
                if not data:
                    break
                if limit is not None and passed + len(data) >= limit:
                    sink.sendall(data[: max(limit - passed, 0)])
                    with self._lock:
                        self.cuts += 1
                    break
                passed += len(data)
                self._throttle(len(data))
                sink.sendall(data)
                with self._lock:
                    self.passed[way] += len(data)
        except OSError:
            pass
        broken.set()
        _shut(source)
        _shut(sink)

    def _throttle(self, size: int) -> None:
        rate = self._rate
        if rate:
            time.sleep(size / rate)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
