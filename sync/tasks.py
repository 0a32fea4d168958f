"""Celery tasks: thin wrappers that take ids and call plain functions."""

from __future__ import annotations

from functools import partial
from typing import Any

from celery import shared_task
from django.db import transaction

from sync import clock, incoming, profile_health, retention, rollups, scheduler
from sync import heartbeats as _heartbeats  # noqa: F401  (connects the worker signals)
from sync.models import SyncKind


@shared_task(name="sync.tasks.ping", bind=True)
def ping(self: Any) -> dict[str, str]:
    """A no-op round trip through the broker, for smoke tests and health checks."""
    return {"worker": self.request.hostname or "eager", "at": clock.now().isoformat()}


@shared_task(name="sync.tasks.dispatch")
def dispatch() -> int:
    """Run by Celery beat: claim due mailboxes and enqueue one task per mailbox and kind."""
    from sync import outgoing

    outgoing.settle_expired_claims()
    outgoing.warn_stuck_pending()
    claims = scheduler.dispatch()
    for claim in claims:
        transaction.on_commit(partial(_enqueue, claim))
    return len(claims)


def _enqueue(claim: scheduler.Claim) -> None:
    task = incoming_mailbox if claim.kind == SyncKind.INCOMING else outgoing_mailbox
    task.delay(claim.mailbox_id, claim.token)


@shared_task(name="sync.tasks.incoming_mailbox")
def incoming_mailbox(mailbox_id: int, lease_token: str) -> str:
    claim = scheduler.Claim(mailbox_id, SyncKind.INCOMING, lease_token)
    run = scheduler.run_claimed(claim, lambda mailbox: incoming.sync_incoming(mailbox=mailbox))
    return run.outcome if run else "lease not held"


@shared_task(name="sync.tasks.outgoing_mailbox")
def outgoing_mailbox(mailbox_id: int, lease_token: str) -> str:
    from sync import outgoing

    claim = scheduler.Claim(mailbox_id, SyncKind.OUTGOING, lease_token)
    run = scheduler.run_claimed(claim, lambda mailbox: outgoing.send_pending(mailbox=mailbox))
    return run.outcome if run else "lease not held"


@shared_task(name="sync.tasks.test_and_enable_mailbox")
def test_and_enable_mailbox(test_id: int) -> str:
    from sync import checks

    report = checks.run_queued_test(test_id=test_id)
    return report.summary if report else "test gone or canceled"


@shared_task(name="sync.tasks.rollup_recent")
def rollup_recent() -> int:
    return rollups.rollup_recent()


@shared_task(name="sync.tasks.check_profile_health")
def check_profile_health() -> dict[str, int]:
    return profile_health.check_profiles()


@shared_task(name="sync.tasks.cleanup")
def cleanup() -> dict[str, int | bool]:
    return retention.cleanup().__dict__


@shared_task(name="sync.tasks.rollout_tick")
def rollout_tick() -> dict[str, int]:
    """Run by Celery beat: start due rollout batches, requeue stalled ones, complete finished ones."""
    from sync import rollout

    result = rollout.rollout_tick()
    return {"started": len(result.started), "requeued": result.requeued, "completed": len(result.completed)}
