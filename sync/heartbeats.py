"""Worker heartbeats: each Celery worker keeps a row saying it is alive.

A worker registers when it is ready, refreshes ``last_seen`` from a daemon
thread every ``SYNC_HEARTBEAT_SECONDS`` (independent of Celery's own gossip
heartbeats, which a worker may run without), and removes its row on a clean
shutdown. A worker that is killed leaves its row behind to go stale:
``recent_workers`` only lists rows seen lately.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import datetime, timedelta
from typing import Any

from celery import signals
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection

from sync import clock
from sync.models import WorkerHeartbeat

logger = logging.getLogger(__name__)


def beat(
    *, hostname: str, queues: str = "", pid: int | None = None, started_on: datetime | None = None
) -> None:
    """Insert or refresh one worker's heartbeat."""
    now = clock.now()
    WorkerHeartbeat.objects.update_or_create(
        hostname=hostname,
        defaults={"last_seen": now, "queues": queues[:255], "pid": pid},
        create_defaults={
            "last_seen": now,
            "queues": queues[:255],
            "pid": pid,
            "started_on": started_on or now,
        },
    )


def forget(*, hostname: str) -> None:
    WorkerHeartbeat.objects.filter(hostname=hostname).delete()


def recent_workers(*, within: timedelta | None = None) -> list[WorkerHeartbeat]:
    """Workers seen within the window (three heartbeat intervals by default)."""
    window = within or timedelta(seconds=3 * settings.SYNC_HEARTBEAT_SECONDS)
    return list(WorkerHeartbeat.objects.filter(last_seen__gte=clock.now() - window).order_by("hostname"))


class _Pulse:
    """The daemon thread of one worker process."""

    def __init__(self, hostname: str, queues: str) -> None:
        self.hostname, self.queues = hostname, queues
        self.started_on = clock.now()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="serversync-heartbeat", daemon=True)

    def _beat(self) -> None:
        try:
            beat(hostname=self.hostname, queues=self.queues, pid=os.getpid(), started_on=self.started_on)
        except DatabaseError:
            # The database being away is what the dashboard will show; the worker carries on.
            logger.warning("heartbeat for %s not written", self.hostname, exc_info=True)
        finally:
            close_old_connections()

    def _run(self) -> None:
        try:
            while not self.stopped.wait(settings.SYNC_HEARTBEAT_SECONDS):
                self._beat()
        finally:
            connection.close()

    def start(self) -> None:
        self._beat()
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        try:
            forget(hostname=self.hostname)
        except DatabaseError:
            logger.warning("heartbeat for %s not removed", self.hostname, exc_info=True)


_pulse: _Pulse | None = None


@signals.worker_ready.connect
def _on_worker_ready(sender: Any, **_: Any) -> None:
    global _pulse
    queues = ",".join(sorted(sender.app.amqp.queues.consume_from))
    _pulse = _Pulse(sender.hostname, queues)
    _pulse.start()


@signals.worker_shutdown.connect
def _on_worker_shutdown(**_: Any) -> None:
    global _pulse
    if _pulse is not None:
        _pulse.stop()
        _pulse = None
