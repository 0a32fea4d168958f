"""Worker heartbeats, written by a real ``celery worker`` subprocess."""

from __future__ import annotations

import signal
import time
from datetime import timedelta

import pytest

from sync import heartbeats
from sync.models import WorkerHeartbeat
from tests.harness.celery_worker import celery_worker

pytestmark = pytest.mark.django_db(transaction=True)


def wait_for(condition, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.2)
    raise TimeoutError


def test_a_running_worker_keeps_its_heartbeat_fresh_and_removes_it_on_shutdown():
    with celery_worker(queues="default,incoming", env={"SYNC_HEARTBEAT_SECONDS": "1"}) as worker:
        first = wait_for(lambda: WorkerHeartbeat.objects.filter(hostname=worker.hostname).first())
        assert (first.queues, first.pid) == ("default,incoming", worker.process.pid)
        wait_for(lambda: WorkerHeartbeat.objects.get(pk=first.pk).last_seen > first.last_seen)
        assert worker.hostname in [w.hostname for w in heartbeats.recent_workers(within=timedelta(seconds=5))]

        worker.stop()

        assert not WorkerHeartbeat.objects.filter(hostname=worker.hostname).exists(), worker.log()


def test_a_killed_worker_goes_stale():
    with celery_worker(queues="default", env={"SYNC_HEARTBEAT_SECONDS": "1"}) as worker:
        wait_for(lambda: WorkerHeartbeat.objects.filter(hostname=worker.hostname).exists())
        worker.kill(signal.SIGKILL)
        time.sleep(2.5)
        assert WorkerHeartbeat.objects.filter(hostname=worker.hostname).exists()
        assert worker.hostname not in [
            w.hostname for w in heartbeats.recent_workers(within=timedelta(seconds=2))
        ]
