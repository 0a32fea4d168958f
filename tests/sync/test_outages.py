"""A mail server that stops answering many mailboxes of one profile is one
profile outage: one Error alert, no mailbox disabled or spending its retries,
one probe per interval, and every mailbox back when the server answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from crm.models import EmailActivity
from mailboxes.models import Mailbox
from sync import scheduler
from sync.incoming import sync_incoming
from sync.models import MailboxAlert, SyncKind
from tests import messages
from tests.sync.stack import Stack

pytestmark = pytest.mark.django_db

STEP = timedelta(minutes=6)  # one retry interval (5 minutes) and a little


def sync_due(at: datetime) -> list[int]:
    """One dispatch at ``at`` and its runs, in process as a worker would run them."""
    with time_machine.travel(at, tick=False):
        claims = scheduler.dispatch(kinds=(SyncKind.INCOMING,))
        for claim in claims:
            scheduler.run_claimed(claim, lambda mailbox: sync_incoming(mailbox=mailbox))
    return [claim.mailbox_id for claim in claims]


def profile_alerts(stack: Stack, **filters) -> list[MailboxAlert]:
    return list(MailboxAlert.objects.filter(subject_key=f"profile:{stack.profile.pk}", **filters))


def ten_mailboxes_with_mail(stack: Stack) -> list[Mailbox]:
    mailboxes = [stack.user_mailbox(f"user{number}") for number in range(10)]
    for mailbox in mailboxes:
        stack.deliver(mailbox, messages.simple(to=mailbox.email_address, subject=f"For {mailbox.pk}"))
    return mailboxes


def test_stopped_dovecot_is_one_profile_alert_then_every_mailbox_recovers(stack, settings):
    mailboxes = ten_mailboxes_with_mail(stack)
    ids = {mailbox.pk for mailbox in mailboxes}
    start = datetime.now(UTC)

    with stack.dovecot.stopped():
        assert set(sync_due(start)) == ids
        probes = [
            sync_due(start + STEP * window) for window in range(1, 3 * settings.SYNC_TRANSIENT_RETRY_LIMIT)
        ]

    assert all(len(probe) == 1 for probe in probes), probes  # one mailbox tries per interval, not ten
    (alert,) = profile_alerts(stack, resolved_on=None)
    assert (alert.level, alert.category, alert.code) == ("error", "incoming", "server_unreachable")
    assert f"{stack.dovecot.host}:{stack.dovecot.imaps_port}" in alert.message
    assert not MailboxAlert.objects.filter(mailbox__in=mailboxes, resolved_on=None).exists()
    states = Mailbox.objects.filter(pk__in=ids).values_list("incoming_enabled", "incoming_transient_failures")
    assert set(states) == {(True, 0)}  # nothing disabled, no retry spent

    back = start + STEP * 3 * settings.SYNC_TRANSIENT_RETRY_LIMIT
    assert len(sync_due(back)) == 1  # the probe finds the server answering
    assert not profile_alerts(stack, resolved_on=None)
    assert len(sync_due(back + timedelta(seconds=30))) == 9  # the held mailboxes are due at once
    assert set(Mailbox.objects.filter(pk__in=ids).values_list("incoming_status", flat=True)) == {"success"}
    assert EmailActivity.objects.filter(direction="incoming").count() == 10


def test_two_mailboxes_failing_are_not_an_outage(stack):
    mailboxes = ten_mailboxes_with_mail(stack)[:2]
    Mailbox.objects.exclude(pk__in=[m.pk for m in mailboxes]).update(incoming_enabled=False)
    with stack.dovecot.stopped():
        sync_due(datetime.now(UTC))
    assert not profile_alerts(stack)
    states = Mailbox.objects.filter(pk__in=[m.pk for m in mailboxes]).values_list(
        "incoming_transient_failures", flat=True
    )
    assert list(states) == [1, 1]
    assert MailboxAlert.objects.filter(mailbox__in=mailboxes, code="connection_refused").count() == 2


def test_an_authentication_failure_during_an_outage_disables_only_that_mailbox(stack):
    mailboxes = ten_mailboxes_with_mail(stack)
    wrong = mailboxes[0]
    start = datetime.now(UTC)
    with stack.dovecot.stopped():
        sync_due(start)
    assert len(profile_alerts(stack, resolved_on=None)) == 1
    wrong.password = "not-the-password"
    wrong.save(update_fields=["password"])

    with time_machine.travel(start + timedelta(minutes=1), tick=False):
        sync_incoming(mailbox=wrong)  # as `manage.py sync_mailbox` would, before the next probe

    wrong.refresh_from_db()
    assert (wrong.incoming_enabled, wrong.incoming_status) == (False, "failure")
    assert MailboxAlert.objects.get(mailbox=wrong, resolved_on=None).code == "authentication_failed"
    assert not profile_alerts(stack, resolved_on=None)  # the server answered, if only to refuse
    assert len(sync_due(start + timedelta(minutes=2))) == 9
    others = Mailbox.objects.filter(pk__in=[m.pk for m in mailboxes[1:]])
    assert set(others.values_list("incoming_enabled", "incoming_status")) == {(True, "success")}
