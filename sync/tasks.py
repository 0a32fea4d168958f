"""Celery tasks: thin wrappers that take ids and call plain functions.

An entry point, as views and management commands are: services never import
this module; they enqueue through ``sync.enqueue``, whose names these tasks bear.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from sync import (
    act,
    certificate_expiry,
    checks,
    clock,
    database_loss,
    enqueue,
    incoming,
    outgoing,
    profile_health,
    retention,
    rollout,
    rollups,
    scheduler,
)
from sync import heartbeats as _heartbeats  # noqa: F401  (connects the worker signals)
from sync.models import SyncKind


@shared_task(name="sync.tasks.ping", bind=True)
def ping(self: Any) -> dict[str, str]:
    """A no-op round trip through the broker, for smoke tests and health checks."""
    return {"worker": self.request.hostname or "eager", "at": clock.now().isoformat()}


@shared_task(name="sync.tasks.dispatch")
def dispatch() -> int:
    """Run by Celery beat: claim due mailboxes and enqueue one task per mailbox and kind."""
    outgoing.settle_expired_claims()
    outgoing.warn_stuck_pending()
    claims = scheduler.dispatch()
    for claim in claims:
        enqueue.mailbox_sync(mailbox_id=claim.mailbox_id, kind=claim.kind, lease_token=claim.token)
    return len(claims)


@shared_task(name=enqueue.INCOMING_MAILBOX)
def incoming_mailbox(mailbox_id: int, lease_token: str) -> str:
    claim = scheduler.Claim(mailbox_id, SyncKind.INCOMING, lease_token)
    run = database_loss.run_claimed(claim, lambda mailbox: incoming.sync_incoming(mailbox=mailbox))
    return run.outcome if run else "lease not held"


@shared_task(name=enqueue.OUTGOING_MAILBOX)
def outgoing_mailbox(mailbox_id: int, lease_token: str) -> str:
    claim = scheduler.Claim(mailbox_id, SyncKind.OUTGOING, lease_token)
    run = database_loss.run_claimed(claim, lambda mailbox: outgoing.send_pending(mailbox=mailbox))
    return run.outcome if run else "lease not held"


@shared_task(name=enqueue.ACT_MAILBOX)
def act_mailbox(mailbox_id: int, lease_token: str) -> str:
    claim = scheduler.Claim(mailbox_id, SyncKind.ACT, lease_token)
    run = database_loss.run_claimed(claim, lambda mailbox: act.sync_act(mailbox=mailbox))
    return run.outcome if run else "lease not held"


@shared_task(name=enqueue.TEST_AND_ENABLE_MAILBOX)
def test_and_enable_mailbox(test_id: int) -> str:
    report = checks.run_queued_test(test_id=test_id)
    return report.summary if report else "test gone or canceled"


@shared_task(name="sync.tasks.rollup_recent")
def rollup_recent() -> int:
    return rollups.rollup_recent()


@shared_task(name="sync.tasks.check_profile_health")
def check_profile_health() -> dict[str, int]:
    return profile_health.check_profiles() | certificate_expiry.check_certificates()


@shared_task(name="sync.tasks.cleanup")
def cleanup() -> dict[str, int | bool]:
    return retention.cleanup().__dict__


@shared_task(name="sync.tasks.rollout_tick")
def rollout_tick() -> dict[str, int]:
    """Run by Celery beat: start due rollout batches, requeue stalled ones, complete finished ones."""
    result = rollout.rollout_tick()
    return {"started": len(result.started), "requeued": result.requeued, "completed": len(result.completed)}
