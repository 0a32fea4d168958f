"""A real ``celery worker`` subprocess against the test database and the test
worker's own Redis database: for end-to-end and crash tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from django.conf import settings
from django.db import connection

from config.celery import app

ROOT = Path(__file__).resolve().parents[2]
# Read by tests/harness/crashing_worker.py, in the worker it starts (never by product code).
CRASH_AT = "SERVERSYNC_TEST_CRASH_AT"


def flush_broker() -> None:
    """Drop messages a previous test of this checkout left in Redis (other
    checkouts' keys, under their own prefix, stay)."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    keys = list(client.scan_iter(match=f"{settings.REDIS_KEY_PREFIX}*", count=500))
    if keys:
        client.delete(*keys)


class CeleryWorkerProcess:
    def __init__(
        self,
        *,
        queues: str = "default,incoming,outgoing,act",
        name: str = "test",
        env: dict[str, str] | None = None,
        crash_at: str | None = None,
    ) -> None:
        self.queues = queues
        self.extra_env = dict(env or {})
        # A worker that SIGKILLs itself at this point of sync.checkpoints (tests/harness/crashing_worker.py).
        self.crash_at = crash_at
        if crash_at:
            self.extra_env[CRASH_AT] = crash_at
        self.hostname = f"{name}-{os.getpid()}-{time.monotonic_ns()}@serversync-test"
        self.process: subprocess.Popen[bytes] | None = None
        self.app_name = f"celery-{self.hostname.split('@')[0]}"[:63]
        self.log_path = ROOT / "var" / "test-logs" / f"{self.hostname.split('@')[0]}.log"

    def environment(self) -> dict[str, str]:
        db = connection.settings_dict
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings_test",
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "CELERY_RESULT_BACKEND": settings.CELERY_RESULT_BACKEND,
            # The test database pytest-django created for this test worker.
            "DATABASE_URL": (
                f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}?application_name={self.app_name}"
            ),
            "SERVERSYNC_DATA_DIR": str(settings.DATA_DIR),
            # Stored files and trusted CAs as the test process has them.
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "SYNC_CA_FILE": settings.SYNC_CA_FILE or "",
            "SERVERSYNC_TEST_REDIS_PREFIX": settings.REDIS_KEY_PREFIX,
            **self.extra_env,
        }
        env.pop("PYTEST_XDIST_WORKER", None)
        return env

    @property
    def app_module(self) -> str:
        return "tests.harness.crashing_worker" if self.crash_at else "config"

    def start(self, timeout: float = 60) -> CeleryWorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "celery", "-A", self.app_module, "worker",
            "--pool", "solo", "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-Q", self.queues, "-n", self.hostname, "-l", "INFO",
        ]  # fmt: skip
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"celery worker exited with {self.process.returncode}:\n{self.log()}")
            if app.control.ping(destination=[self.hostname], timeout=0.5):
                return
        raise TimeoutError(f"celery worker not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=30)
        self._wait_for_its_sessions_to_end()

    def _wait_for_its_sessions_to_end(self, timeout: float = 10) -> None:
        """A killed worker's database sessions linger a moment; the test database
        can only be dropped once they are gone."""
        deadline = time.monotonic() + timeout
        with connection.cursor() as cursor:
            while time.monotonic() < deadline:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [self.app_name]
                )
                if cursor.fetchone()[0] == 0:
                    return
                time.sleep(0.05)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


@contextmanager
def celery_worker(**kwargs: Any) -> Iterator[CeleryWorkerProcess]:
    flush_broker()
    worker = CeleryWorkerProcess(**kwargs).start()
    try:
        yield worker
    finally:
        worker.kill()
