"""A throwaway ``redis-server`` for fault tests that restart the broker.

The machine's own Redis carries every test worker's broker, so a test that restarts
Redis gets one of its own, on a free loopback port, keeping nothing on disk
(``--save '' --appendonly no``): a restart loses every queued message, as a broker
without persistence (or one that lost its disk) does.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from tests.harness import processes
from tests.harness.dovecot import HOST, free_port


class ScratchRedis:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="serversync-scratch-redis-", dir="/tmp"))
        self.log_path = self.dir / "redis.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self, timeout: float = 30) -> ScratchRedis:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        command = [
            binary, "--bind", HOST, "--port", str(self.port), "--save", "", "--appendonly", "no",
            "--dir", str(self.dir), "--logfile", str(self.log_path),
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        client = redis.Redis(host=HOST, port=self.port, socket_connect_timeout=1)
        try:
            while True:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {self.process.returncode}:\n{self.log()}")
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
        finally:
            client.close()

    def restart(self) -> None:
        """Stop (SIGTERM, as a service manager does) and start again on the same port:
        every queued message and result is gone."""
        self.stop()
        self.start()
        self.restarts += 1

    def stop(self) -> None:
        if self.process is not None:
            processes.stop(self.process)
            self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
