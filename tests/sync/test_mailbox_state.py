"""What failures do to a mailbox: permanent disables at once, transient retries then disables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from mailboxes.models import Mailbox
from sync import outages
from sync.errors import PermanentError, ThrottledError, TransientError
from sync.mailbox_state import record_failure, record_success
from sync.models import MailboxAlert, SyncKind, SyncRun
from tests import factories

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


@pytest.fixture(params=["postgresql", "other"])
def database(request, monkeypatch):
    """record_success on PostgreSQL (one statement) and as on any other database
    (SQLite, for make run: two), against the same PostgreSQL."""
    if request.param != "postgresql":
        monkeypatch.setattr(connection, "vendor", "sqlite")
    return request.param


def open_codes(subject_key: str) -> set[tuple[str, str]]:
    alerts = MailboxAlert.objects.filter(subject_key=subject_key, resolved_on__isnull=True)
    return set(alerts.values_list("category", "code"))


def test_success_resolves_its_directions_alerts_but_not_an_interrupted_send_or_the_other_direction(
    world, database
):
    mailbox = world["alice"].mailbox
    key = f"mailbox:{mailbox.pk}"
    (standing,) = open_codes(key)  # the persona's own incoming alert
    factories.alert(mailbox=mailbox, category="incoming", code="outcome_unknown")
    factories.alert(mailbox=mailbox, category="outgoing", code="timeout")

    record_success(mailbox=mailbox, kind=SyncKind.INCOMING)

    assert standing not in open_codes(key)
    assert open_codes(key) == {("incoming", "outcome_unknown"), ("outgoing", "timeout")}


def test_success_of_one_mailbox_ends_its_profiles_outage(world, database):
    alice, bob = world["alice"].mailbox, world["bob"].mailbox
    held_until = T0 + timedelta(minutes=5)
    Mailbox.objects.filter(pk=bob.pk).update(
        last_sync_error_code=outages.OUTAGE_CODE, incoming_postponed_until=held_until
    )
    profile_key = f"profile:{alice.profile.pk}"
    factories.alert(profile=alice.profile, category="incoming", code=outages.OUTAGE_CODE)

    record_success(mailbox=alice, kind=SyncKind.INCOMING)

    bob.refresh_from_db()
    assert (bob.last_sync_error_code, bob.incoming_postponed_until) == ("", None)  # due at once
    assert ("incoming", outages.OUTAGE_CODE) not in open_codes(profile_key)


def test_an_outage_of_another_direction_or_profile_is_left_alone(world, database):
    alice, bob = world["alice"].mailbox, world["bob"].mailbox
    elsewhere = factories.profile("Elsewhere")
    other = factories.mailbox(is_forward_mailbox=True, profile=elsewhere, email_address="fwd@elsewhere.test")
    Mailbox.objects.filter(pk=other.pk).update(last_sync_error_code=outages.OUTAGE_CODE)
    factories.alert(profile=other.profile, category="incoming", code=outages.OUTAGE_CODE)
    factories.alert(profile=alice.profile, category="outgoing", code=outages.OUTAGE_CODE)

    record_success(mailbox=alice, kind=SyncKind.INCOMING)

    other.refresh_from_db()
    assert other.last_sync_error_code == outages.OUTAGE_CODE
    assert ("incoming", outages.OUTAGE_CODE) in open_codes(f"profile:{other.profile.pk}")
    assert ("outgoing", outages.OUTAGE_CODE) in open_codes(f"profile:{bob.profile.pk}")


def test_an_idle_success_writes_nothing(world, database):
    mailbox = world["alice"].mailbox
    with time_machine.travel(T0, tick=False):
        record_success(mailbox=mailbox, kind=SyncKind.INCOMING, processed=2)
    with time_machine.travel(T0 + timedelta(minutes=5), tick=False):
        record_success(mailbox=mailbox, kind=SyncKind.INCOMING, processed=0)
    with time_machine.travel(T0 + timedelta(minutes=10), tick=False):
        record_success(mailbox=mailbox, kind=SyncKind.INCOMING, processed=0)

    mailbox.refresh_from_db()
    assert (mailbox.items_processed_last_sync, mailbox.modified_on) == (0, T0 + timedelta(minutes=5))


def test_a_finished_run_is_saved_with_the_state(world, database):
    mailbox = world["alice"].mailbox
    before = SyncRun.objects.filter(mailbox=mailbox).count()
    run = SyncRun(mailbox=mailbox, kind=SyncKind.INCOMING, started_on=T0, finished_on=T0, outcome="success")

    record_success(mailbox=mailbox, kind=SyncKind.INCOMING, run=run)

    assert SyncRun.objects.get(pk=run.pk).outcome == "success"
    run.received = 3  # saved again (say, by a caller that counts on), it is an UPDATE, not a second row
    run.save()
    assert SyncRun.objects.filter(mailbox=mailbox).count() == before + 1
    assert SyncRun.objects.get(pk=run.pk).received == 3


def test_an_idle_poll_inside_a_transaction_leaves_its_commit_synchronous(world):
    """Only a statement that is its own transaction may skip waiting for the disk:
    inside a caller's transaction, what the caller writes keeps its durability."""
    mailbox = world["alice"].mailbox
    run = SyncRun(mailbox=mailbox, kind=SyncKind.INCOMING, started_on=T0, finished_on=T0, outcome="success")
    with transaction.atomic():
        record_success(mailbox=mailbox, kind=SyncKind.INCOMING, run=run)
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone()[0] == "on"


@pytest.mark.django_db(transaction=True)
def test_an_idle_poll_on_its_own_does_not_wait_for_the_disk():
    """In autocommit (as a worker runs), an idle poll's one statement commits
    asynchronously; its run is saved all the same."""
    mailbox = factories.mailbox(is_forward_mailbox=True, email_address="idle@example.test")
    run = SyncRun(mailbox=mailbox, kind=SyncKind.INCOMING, started_on=T0, finished_on=T0, outcome="success")

    with CaptureQueriesContext(connection) as context:
        record_success(mailbox=mailbox, kind=SyncKind.INCOMING, run=run)

    (statement,) = [q["sql"] for q in context.captured_queries]
    assert "synchronous_commit" in statement
    assert SyncRun.objects.get(pk=run.pk).mailbox == mailbox
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")  # for that statement's transaction only
        assert cursor.fetchone()[0] == "on"


def test_a_throttled_mailbox_waits_as_long_as_the_server_asked_without_spending_retries(world, settings):
    mailbox = enabled(world["alice"].mailbox)
    Mailbox.objects.filter(pk=mailbox.pk).update(incoming_transient_failures=3)
    error = ThrottledError("Microsoft Graph is throttling this mailbox (429).", retry_after=90)
    for attempt in range(settings.SYNC_TRANSIENT_RETRY_LIMIT + 2):  # more than the retry budget
        with time_machine.travel(T0 + timedelta(hours=attempt), tick=False):
            record_failure(mailbox=mailbox, kind=SyncKind.INCOMING, error=error)
    mailbox.refresh_from_db()
    last = T0 + timedelta(hours=settings.SYNC_TRANSIENT_RETRY_LIMIT + 1)
    assert mailbox.incoming_enabled
    assert mailbox.incoming_transient_failures == 3  # untouched, not reset either
    assert mailbox.incoming_postponed_until == last + timedelta(seconds=90)
    alert = MailboxAlert.objects.get(mailbox=mailbox, code="throttled", resolved_on__isnull=True)
    assert alert.level == "warning"
    assert "waits 90 s, as the server asked" in alert.message


@time_machine.travel(T0, tick=False)
def test_a_retry_after_of_days_is_capped(world, settings):
    settings.SYNC_THROTTLE_MAX_WAIT_SECONDS = 600
    mailbox = enabled(world["alice"].mailbox)
    error = ThrottledError("Server busy.", retry_after=3 * 86400, code="server_busy")
    record_failure(mailbox=mailbox, kind=SyncKind.INCOMING, error=error)
    mailbox.refresh_from_db()
    assert mailbox.incoming_postponed_until == T0 + timedelta(seconds=600)
