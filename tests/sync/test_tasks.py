"""Celery wiring: tasks travel through real Redis to a real worker process, as JSON."""

from __future__ import annotations

import pytest
from django.db import connection
from kombu.exceptions import EncodeError

from config.celery import app
from sync.tasks import dispatch, ping
from tests.harness.celery_worker import celery_worker


@pytest.mark.django_db(transaction=True)
def test_a_task_completes_on_a_real_worker_through_redis():
    with celery_worker(queues="default") as worker:
        result = ping.delay().get(timeout=30)
    assert result["worker"] == worker.hostname
    assert "Task sync.tasks.ping" in worker.log()


@pytest.mark.django_db(transaction=True)
def test_a_worker_keeps_its_database_connection_from_task_to_task():
    """Celery's Django fix-up would close it around every task: a new PostgreSQL backend for
    every poll. The worker keeps it as Django does between requests (config/celery.py)."""
    with celery_worker(queues="default", env={"SERVERSYNC_TEST_WORKER_CONN_MAX_AGE": "60"}) as worker:
        backends = []
        for _ in range(4):
            dispatch.delay().get(timeout=30)
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [worker.app_name]
                )
                backends.append({pid for (pid,) in cursor.fetchall()})
    assert backends[0]
    assert all(seen == backends[0] for seen in backends)


def test_tasks_are_routed_to_their_queues():
    router = app.amqp.router
    assert router.route({}, "sync.tasks.incoming_mailbox")["queue"].name == "incoming"
    assert router.route({}, "sync.tasks.outgoing_mailbox")["queue"].name == "outgoing"
    assert router.route({}, "sync.tasks.act_mailbox")["queue"].name == "act"
    assert router.route({}, "sync.tasks.ping")["queue"].name == "default"


@pytest.mark.django_db
def test_task_arguments_must_be_json(world):
    with pytest.raises(EncodeError):
        app.send_task("sync.tasks.ping", args=[world.profile], retry=False)
