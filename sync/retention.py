"""Retention: what serversync keeps, and for how long.

Each rule removes rows (or stored files) older than its setting, in batches of
``SYNC_CLEANUP_BATCH`` rows per statement, until nothing is left or the time
budget ``SYNC_CLEANUP_MAX_SECONDS`` is spent; the next run carries on. Cutoffs
come from ``sync.clock``, never the database clock. Sync runs are rolled up
before they are deleted, so the dashboard's history outlives them. Email Router
migrations left pending are abandoned, which deletes their uploaded files.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models, transaction

from crm.models import EmailActivity
from mailboxes.models import RouterMigration, RouterMigrationState
from mailboxes.router_import.service import router_migration_abandon
from sync import clock, rollups
from sync.models import ActItemProblem, MailboxAlert, QuarantinedMessage, QuarantineState, Receipt, SyncRun


@dataclass
class CleanupReport:
    sync_runs: int = 0
    receipts: int = 0
    resolved_alerts: int = 0
    activity_raw_files: int = 0
    quarantine_raw_files: int = 0
    abandoned_migrations: int = 0
    act_problems: int = 0
    finished: bool = True


def _cutoff(days: int) -> datetime:
    return clock.now() - timedelta(days=days)


def cleanup() -> CleanupReport:
    """Apply every retention rule within one time budget."""
    deadline = time.monotonic() + settings.SYNC_CLEANUP_MAX_SECONDS
    report = CleanupReport()
    # The cutoff is whole hours, so an hour's runs go together, never half rolled up.
    runs_cutoff = rollups.hour_of(_cutoff(settings.SYNC_RETAIN_SYNC_RUNS_DAYS))
    steps: list[tuple[str, Callable[[], int]]] = [
        ("sync_runs", lambda: _delete_sync_runs(runs_cutoff)),
        ("receipts", lambda: _delete_batch(_old_receipts())),
        ("resolved_alerts", lambda: _delete_batch(_old_resolved_alerts())),
        ("activity_raw_files", _forget_activity_raw),
        ("quarantine_raw_files", _forget_quarantine_raw),
        ("abandoned_migrations", _abandon_forgotten_migrations),
        ("act_problems", lambda: _delete_batch(_old_act_problems())),
    ]
    for name, step in steps:
        while (done := step()) > 0:
            setattr(report, name, getattr(report, name) + done)
            if time.monotonic() >= deadline:
                report.finished = False
                return report
    return report


def _abandon_forgotten_migrations() -> int:
    """An Email Router migration left pending this long is abandoned, so the
    routers' files (encrypted, with their credentials) are not kept for good."""
    forgotten = RouterMigration.objects.filter(
        state=RouterMigrationState.PENDING,
        modified_on__lt=_cutoff(settings.SYNC_RETAIN_PENDING_MIGRATIONS_DAYS),
    )
    batch = list(forgotten.order_by("pk")[: settings.SYNC_CLEANUP_BATCH])
    for migration in batch:
        router_migration_abandon(migration=migration, by=None)
    return len(batch)


def _batch_ids(queryset: models.QuerySet[models.Model]) -> list[int]:
    return list(queryset.order_by().values_list("pk", flat=True)[: settings.SYNC_CLEANUP_BATCH])


def _delete_batch(queryset: models.QuerySet[models.Model]) -> int:
    ids = _batch_ids(queryset)
    if ids:
        queryset.model._default_manager.filter(pk__in=ids).delete()
    return len(ids)


def _delete_sync_runs(cutoff: datetime) -> int:
    batch = list(
        SyncRun.objects.filter(started_on__lt=cutoff)
        .order_by()
        .values_list("pk", "mailbox_id", "started_on")[: settings.SYNC_CLEANUP_BATCH]
    )
    if not batch:
        return 0
    rollups.ensure_rolled_up(runs=[(mailbox_id, started_on) for _, mailbox_id, started_on in batch])
    SyncRun.objects.filter(pk__in=[pk for pk, _, _ in batch]).delete()
    return len(batch)


def _old_receipts() -> models.QuerySet[Receipt]:
    return Receipt.objects.filter(created_on__lt=_cutoff(settings.SYNC_RETAIN_RECEIPTS_DAYS))


def _old_act_problems() -> models.QuerySet[ActItemProblem]:
    return ActItemProblem.objects.filter(created_on__lt=_cutoff(settings.SYNC_RETAIN_ACT_PROBLEMS_DAYS))


def _old_resolved_alerts() -> models.QuerySet[MailboxAlert]:
    cutoff = _cutoff(settings.SYNC_RETAIN_RESOLVED_ALERTS_DAYS)
    return MailboxAlert.objects.filter(resolved_on__isnull=False, resolved_on__lt=cutoff)


def _forget_activity_raw() -> int:
    """Delete stored .eml files of old activities; the activities stay."""
    old = EmailActivity.objects.filter(created_on__lt=_cutoff(settings.SYNC_RETAIN_RAW_MESSAGES_DAYS))
    return _forget_files(old.exclude(raw_message=""), "raw_message")


def _forget_quarantine_raw() -> int:
    """Delete stored .eml files of old quarantine rows already reprocessed or
    discarded; what is still quarantined keeps its file for a retry."""
    old = QuarantinedMessage.objects.filter(
        created_on__lt=_cutoff(settings.SYNC_RETAIN_RAW_MESSAGES_DAYS),
        state__in=[QuarantineState.REPROCESSED, QuarantineState.DISCARDED],
    )
    return _forget_files(old.exclude(raw=""), "raw")


def _forget_files(queryset: models.QuerySet[models.Model], field_name: str) -> int:
    batch = list(queryset.order_by().values_list("pk", field_name)[: settings.SYNC_CLEANUP_BATCH])
    if not batch:
        return 0
    storage = queryset.model._meta.get_field(field_name).storage  # type: ignore[union-attr]
    # The column is cleared first: a crash in between leaves an orphan file, never a dangling name.
    with transaction.atomic():
        queryset.model._default_manager.filter(pk__in=[pk for pk, _ in batch]).update(**{field_name: ""})
    for _, name in batch:
        storage.delete(name)
    return len(batch)
