"""Is serversync able to work? The checks behind /health/ (load balancers) and
the numbers behind /health/status/ (monitoring systems).

Three checks: the database answers a trivial query, the Celery broker accepts
a connection, and some worker wrote its heartbeat recently (sync.heartbeats).
They run side by side in a small thread pool and each gets ``TIMEOUT_SECONDS``:
a hung database or broker makes its check fail in time instead of holding the
load balancer's probe. The pool is bounded, so probes against a hung service
do not pile up threads; a check still queued when its time is up fails too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import Count, Q, QuerySet, Sum
from kombu import Connection, Queue

from console.dashboard import open_alerts_by_level
from crm.choices import SyncStatus
from mailboxes.models import DIRECTION_FIELDS, SYNC_DIRECTIONS, ApprovalStatus, Mailbox
from sync import clock, heartbeats
from sync.models import HourlyTotal, MailboxAlert, WorkerHeartbeat
from sync.rollups import HOUR, hour_of

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 2
CHECK_NAMES = ("database", "broker", "workers")
ROLLUP_FIELDS = ("runs", "failed_runs", "received", "tracked", "sent", "failed")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


@dataclass
class Health:
    """The checks' results; ``workers`` and ``queue_depths`` are filled when their check passed."""

    checks: dict[str, bool]
    workers: list[WorkerHeartbeat] = field(default_factory=list)
    queue_depths: dict[str, int] | None = None

    @property
    def healthy(self) -> bool:
        return all(self.checks.values())

    @property
    def failing(self) -> list[str]:
        return [name for name in CHECK_NAMES if not self.checks[name]]


def check_health() -> Health:
    """Run the three checks at once; each that errs or outlasts ``TIMEOUT_SECONDS`` fails."""
    pool = _executor()
    futures: dict[str, Future[Any]] = {
        "database": pool.submit(_in_thread, _check_database),
        "broker": pool.submit(_in_thread, _check_broker),
        "workers": pool.submit(_in_thread, heartbeats.recent_workers),
    }
    results = {name: _outcome(name, future) for name, future in futures.items()}
    workers: list[WorkerHeartbeat] = results["workers"] or []
    return Health(
        checks={
            "database": results["database"] is not None,
            "broker": results["broker"] is not None,
            "workers": bool(workers),
        },
        workers=workers,
        queue_depths=results["broker"],
    )


def queue_depths() -> dict[str, int] | None:
    """The messages waiting in each queue, or None when the broker does not answer
    within ``TIMEOUT_SECONDS`` (the dashboard: the broker alone, no other check)."""
    depths: dict[str, int] | None = _outcome("broker", _executor().submit(_in_thread, _check_broker))
    return depths


def _executor() -> ThreadPoolExecutor:
    # Made on first use, so a forking server (gunicorn) never inherits one.
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=6, thread_name_prefix="serversync-health")
        return _pool


def _in_thread(check: Callable[[], Any]) -> Any:
    # Pool threads live on between probes, each with its own database connection:
    # kept within CONN_MAX_AGE and dropped when broken, as Django does around a request.
    close_old_connections()
    try:
        return check()
    finally:
        close_old_connections()


def _outcome(name: str, future: Future[Any]) -> Any:
    """The check's result, or None when it failed; never raises."""
    try:
        return future.result(timeout=TIMEOUT_SECONDS)
    except FutureTimeout:
        future.cancel()
        logger.warning("health check %s did not answer within %ss", name, TIMEOUT_SECONDS)
    # A health check answers "failing" whatever went wrong; only the class is logged,
    # since a driver's message may name hosts and users.
    except Exception as error:
        logger.warning("health check %s failed: %s", name, type(error).__name__)
    return None


def _check_database() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return True


def _check_broker() -> dict[str, int]:
    """Connect to the broker the workers use and count what waits in each queue:
    Redis answers a PING and the lengths; the filesystem transport lists its folder."""
    with _broker_connection() as broker:
        broker.ensure_connection(max_retries=0, timeout=TIMEOUT_SECONDS)
        return _queue_depths(broker)


def _broker_connection() -> Connection:
    # The settings, not the Celery app's cached configuration, so a changed setting counts.
    timeouts = {"socket_timeout": TIMEOUT_SECONDS, "socket_connect_timeout": TIMEOUT_SECONDS}
    return Connection(
        settings.CELERY_BROKER_URL,
        transport_options={**settings.CELERY_BROKER_TRANSPORT_OPTIONS, **timeouts},
        connect_timeout=TIMEOUT_SECONDS,
    )


def _queue_depths(broker: Connection) -> dict[str, int]:
    channel = broker.default_channel
    return {queue.name: _depth(queue, channel) for queue in settings.CELERY_TASK_QUEUES}


def _depth(queue: Queue, channel: Any) -> int:
    # Declared as the worker declares it (idempotent): a passive declare would miss
    # Redis queues, which have no key while empty (and, under a key prefix, ever).
    declared: Any = queue.bind(channel).queue_declare()
    return int(declared.message_count)


# -- the numbers for monitoring --------------------------------------------------------


def status_report(health: Health) -> dict[str, Any]:
    """The checks and the numbers a monitoring system wants, as plain JSON data.
    The numbers are left out (None) when the database check failed."""
    database_up = health.checks["database"]
    now = clock.now()
    return {
        "healthy": health.healthy,
        "checks": health.checks,
        "generated_on": now.isoformat(),
        "mailboxes": mailbox_counts(Mailbox.objects.all(), now=now) if database_up else None,
        "alerts": open_alerts_by_level(MailboxAlert.objects.all()) if database_up else None,
        "workers": [_worker(heartbeat) for heartbeat in health.workers],
        "queues": health.queue_depths,
        "last_hour": last_hour_totals(now=now) if database_up else None,
    }


def mailbox_counts(mailboxes: QuerySet[Mailbox], *, now: datetime) -> dict[str, Any]:
    """Mailboxes by each direction's status, disabled, in backoff and pending approval: one query."""
    aggregates: dict[str, Any] = {"total": Count("pk")}
    for direction in SYNC_DIRECTIONS:
        for status in SyncStatus:
            aggregates[f"{direction}:{status.value}"] = Count(
                "pk", filter=Q(**{DIRECTION_FIELDS[direction].status: status})
            )
    in_backoff = Q()
    for fields in DIRECTION_FIELDS.values():
        in_backoff |= Q(**{f"{fields.postponed_until}__gt": now})
    aggregates["disabled"] = Count("pk", filter=~Q(disabled_reason=""))
    aggregates["in_backoff"] = Count("pk", filter=in_backoff)
    aggregates["pending_approval"] = Count("pk", filter=Q(approval_status=ApprovalStatus.PENDING_APPROVAL))
    row = mailboxes.aggregate(**aggregates)
    counts: dict[str, Any] = {
        name: row[name] for name in ("total", "disabled", "in_backoff", "pending_approval")
    }
    for direction in SYNC_DIRECTIONS:
        counts[direction] = {status.value: row[f"{direction}:{status.value}"] for status in SyncStatus}
    return counts


def last_hour_totals(*, now: datetime) -> dict[str, Any]:
    """The roll-ups of the last complete hour, summed over every mailbox (from the
    per-profile totals: a few rows however many mailboxes there are)."""
    start = hour_of(now) - HOUR
    sums = HourlyTotal.objects.filter(hour=start).aggregate(**{name: Sum(name) for name in ROLLUP_FIELDS})
    return {"hour": start.isoformat(), **{name: sums[name] or 0 for name in ROLLUP_FIELDS}}


def _worker(heartbeat: WorkerHeartbeat) -> dict[str, Any]:
    return {
        "hostname": heartbeat.hostname,
        "queues": [name for name in heartbeat.queues.split(",") if name],
        "started_on": heartbeat.started_on.isoformat(),
        "last_seen": heartbeat.last_seen.isoformat(),
    }
