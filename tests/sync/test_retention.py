"""Cleanup removes exactly what retention says: rows and stored files older
than their setting, nothing inside retention, never an unresolved alert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from django.core.files.base import ContentFile

from crm.models import EmailActivity
from sync import retention
from sync.models import (
    ActItemProblem,
    HourlyRollup,
    MailboxAlert,
    QuarantinedMessage,
    QuarantineState,
    Receipt,
    SyncRun,
)
from tests import factories

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 6, 1, 12, 30, tzinfo=UTC)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def aged(model, row, **fields):
    model.objects.filter(pk=row.pk).update(**fields)  # auto_now_add fields otherwise
    return row


def email_with_raw(created_on: datetime) -> EmailActivity:
    email = factories.email(direction="incoming")
    email.raw_message.save("message.eml", ContentFile(b"Subject: kept?\r\n\r\nbody\r\n"))
    return aged(EmailActivity, email, created_on=created_on)


def cleanup_now():
    with time_machine.travel(NOW, tick=False):
        return retention.cleanup()


def test_sync_runs_past_retention_go_after_they_are_rolled_up(world, settings):
    settings.SYNC_CLEANUP_BATCH = 2
    alice = world["alice"].mailbox
    old = [
        factories.sync_run(mailbox=alice, started_on=days_ago(31) + timedelta(minutes=m), received=2)
        for m in range(5)
    ]
    kept = factories.sync_run(mailbox=alice, started_on=days_ago(29), received=1)

    report = cleanup_now()

    assert report.sync_runs == 5
    assert report.finished
    assert not SyncRun.objects.filter(pk__in=[run.pk for run in old]).exists()
    assert SyncRun.objects.filter(pk=kept.pk).exists()
    rolled = HourlyRollup.objects.filter(mailbox=alice, hour__lt=days_ago(30))
    assert [(r.runs, r.received) for r in rolled] == [(5, 10)]


def test_an_hour_that_straddles_the_cutoff_is_kept_whole(world):
    alice = world["alice"].mailbox
    # The cutoff (30 days ago, 12:30) falls inside the 12:00 hour.
    before = factories.sync_run(mailbox=alice, started_on=days_ago(30) - timedelta(minutes=10))
    cleanup_now()
    assert SyncRun.objects.filter(pk=before.pk).exists()


def test_receipts_and_resolved_alerts_past_retention_go(world):
    alice = world["alice"].mailbox
    old_receipt = aged(Receipt, factories.receipt(mailbox=alice), created_on=days_ago(366))
    new_receipt = aged(Receipt, factories.receipt(mailbox=alice), created_on=days_ago(364))
    old_resolved = factories.alert(mailbox=alice, first_seen=days_ago(200), resolved_on=days_ago(91))
    new_resolved = factories.alert(mailbox=alice, first_seen=days_ago(200), resolved_on=days_ago(89))
    old_open = factories.alert(mailbox=alice, first_seen=days_ago(500))

    report = cleanup_now()

    assert (report.receipts, report.resolved_alerts) == (1, 1)
    assert not Receipt.objects.filter(pk=old_receipt.pk).exists()
    assert not MailboxAlert.objects.filter(pk=old_resolved.pk).exists()
    assert Receipt.objects.filter(pk=new_receipt.pk).exists()
    assert MailboxAlert.objects.filter(pk__in=[new_resolved.pk, old_open.pk]).count() == 2


def test_act_problems_past_retention_go(world):
    alice = world["alice"].mailbox

    def problem(days: int) -> ActItemProblem:
        made = ActItemProblem.objects.create(mailbox=alice, entity="task", kind="refused", message="No.")
        return aged(ActItemProblem, made, created_on=days_ago(days))

    old, new = problem(91), problem(89)

    report = cleanup_now()

    assert report.act_problems == 1
    assert not ActItemProblem.objects.filter(pk=old.pk).exists()
    assert ActItemProblem.objects.filter(pk=new.pk).exists()


def test_old_raw_messages_lose_their_file_and_keep_their_row(world):
    old_email, new_email = email_with_raw(days_ago(366)), email_with_raw(days_ago(300))
    old_path, new_path = old_email.raw_message.path, new_email.raw_message.path
    alice = world["alice"].mailbox
    raw = b"Subject: broken\r\n\r\n"
    done = aged(
        QuarantinedMessage,
        factories.quarantined_message(mailbox=alice, raw=raw, state=QuarantineState.REPROCESSED),
        created_on=days_ago(400),
    )
    discarded = aged(
        QuarantinedMessage,
        factories.quarantined_message(mailbox=alice, raw=raw, state=QuarantineState.DISCARDED),
        created_on=days_ago(400),
    )
    waiting = aged(
        QuarantinedMessage, factories.quarantined_message(mailbox=alice, raw=raw), created_on=days_ago(400)
    )
    done_path, waiting_path = done.raw.path, waiting.raw.path

    report = cleanup_now()

    assert (report.activity_raw_files, report.quarantine_raw_files) == (1, 2)
    old_email.refresh_from_db()
    new_email.refresh_from_db()
    assert (old_email.raw_message.name, bool(new_email.raw_message)) == ("", True)
    assert not Path(old_path).exists()
    assert Path(new_path).exists()
    assert [QuarantinedMessage.objects.get(pk=q.pk).raw.name for q in (done, discarded)] == ["", ""]
    assert not Path(done_path).exists()
    assert QuarantinedMessage.objects.get(pk=waiting.pk).raw.name
    assert Path(waiting_path).exists()


def test_retention_is_configurable(world, settings):
    settings.SYNC_RETAIN_RECEIPTS_DAYS = 10
    alice = world["alice"].mailbox
    receipt = aged(Receipt, factories.receipt(mailbox=alice), created_on=days_ago(11))
    cleanup_now()
    assert not Receipt.objects.filter(pk=receipt.pk).exists()
