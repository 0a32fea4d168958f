"""What failures do to a mailbox: permanent disables at once, transient retries then disables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from mailboxes.models import Mailbox
from sync.errors import PermanentError, TransientError
from sync.mailbox_state import record_failure, record_success
from sync.models import MailboxAlert, SyncKind

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def enabled(mailbox: Mailbox) -> Mailbox:
    Mailbox.objects.filter(pk=mailbox.pk).update(incoming_enabled=True)
    mailbox.refresh_from_db()
    return mailbox


@time_machine.travel(T0, tick=False)
def test_a_permanent_error_disables_with_the_reason_and_an_error_alert(world):
    mailbox = enabled(world["alice"].mailbox)
    error = PermanentError("The server rejected the password for alice.", code="authentication_failed")
    record_failure(mailbox=mailbox, kind=SyncKind.INCOMING, error=error)
    mailbox.refresh_from_db()
    assert (mailbox.incoming_status, mailbox.incoming_enabled) == ("failure", False)
    assert mailbox.disabled_reason == error.message
    assert (mailbox.last_sync_error_code, mailbox.last_sync_error_on) == ("authentication_failed", T0)
    alert = MailboxAlert.objects.get(mailbox=mailbox, code="authentication_failed")
    assert (alert.level, alert.category, alert.subject_key) == ("error", "incoming", f"mailbox:{mailbox.pk}")


def test_transient_errors_retry_five_minutes_apart_then_disable_after_the_limit(world):
    mailbox = enabled(world["alice"].mailbox)
    error = TransientError("Connection refused by imap.example.test:993.", code="connection_refused")
    for attempt in range(1, 10):
        with time_machine.travel(T0 + timedelta(minutes=5 * attempt), tick=False):
            record_failure(mailbox=mailbox, kind=SyncKind.INCOMING, error=error)
            mailbox.refresh_from_db()
            assert mailbox.incoming_enabled
            assert mailbox.incoming_transient_failures == attempt
            assert mailbox.incoming_postponed_until == T0 + timedelta(minutes=5 * attempt + 5)
    alert = MailboxAlert.objects.get(mailbox=mailbox, code="connection_refused", resolved_on__isnull=True)
    assert (alert.level, alert.count) == ("warning", 9)
    record_failure(mailbox=mailbox, kind=SyncKind.INCOMING, error=error)
    mailbox.refresh_from_db()
    assert (mailbox.incoming_enabled, mailbox.incoming_status) == (False, "failure")
    assert "retries exhausted" in mailbox.disabled_reason
    assert MailboxAlert.objects.get(mailbox=mailbox, code="connection_refused").level == "error"


def test_success_resets_the_count_and_resolves_the_directions_alerts(world):
    mailbox = enabled(world["alice"].mailbox)
    record_failure(mailbox=mailbox, kind=SyncKind.INCOMING, error=TransientError("timeout", code="timeout"))
    record_success(mailbox=mailbox, kind=SyncKind.INCOMING, processed=4)
    mailbox.refresh_from_db()
    assert (mailbox.incoming_status, mailbox.incoming_transient_failures) == ("success", 0)
    assert mailbox.items_processed_last_sync == 4
    assert not MailboxAlert.objects.filter(mailbox=mailbox, code="timeout", resolved_on__isnull=True).exists()
