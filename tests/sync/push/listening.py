"""A push listener (``sync.listener.Listener``) run on a thread of the test process,
and waiting helpers for the push tests."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sync.listener import Listener
from sync.models import PushLease, PushState
from tests.harness.celery_worker import ROOT, CeleryWorkerProcess

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


class ListenerProcess(CeleryWorkerProcess):
    """``manage.py listen`` as its own process, on the test database (the Celery
    worker harness's environment), to be SIGKILLed."""

    def start(self, timeout: float = 60) -> ListenerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "listen"],
                cwd=ROOT,
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(
            lambda: self.owner or self.process.poll() is not None, timeout=timeout, what="the listener"
        )
        if not self.owner:
            raise RuntimeError(f"the listener exited:\n{self.log()}")
        return self

    @property
    def owner(self) -> str:
        found = re.search(r"Listening as (\S+)", self.log())
        return found[1] if found else ""


def owners(mailbox_ids: list[int]) -> set[str]:
    return set(PushLease.objects.filter(mailbox_id__in=mailbox_ids).values_list("owner", flat=True))


def all_live_with(owner: str, mailbox_ids: list[int]) -> bool:
    leases = PushLease.objects.filter(mailbox_id__in=mailbox_ids)
    return len(leases) == len(mailbox_ids) and all(
        lease.owner == owner and lease.state == PushState.LIVE for lease in leases
    )
