"""A profile whose mailboxes mostly fail raises one Error alert and emails its
owner once, through the system SMTP settings — real sync runs against the test
Dovecot, the notification sent through the test relay and read back over IMAP."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from imapclient import IMAPClient

from mailboxes.models import Mailbox
from sync import clock, profile_health
from sync.incoming import sync_incoming
from sync.models import AlertLevel, MailboxAlert, SyncOutcome, SyncRun
from tests import factories
from tests.sync.stack import Stack

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def owner_account(stack: Stack, settings, monkeypatch):
    """The profile's owner has a real mailbox; system email goes through the relay as them."""
    account = stack.make_mail_user("owner")
    owner = factories.crm_user("Olivia Owner", email=account.address)
    stack.profile.owner = owner
    stack.profile.send_alert_email_to_owner = True
    stack.profile.save()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = stack.relay.host, stack.relay.port
    settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = account.address, account.password
    settings.EMAIL_USE_TLS, settings.EMAIL_USE_SSL = True, False
    settings.DEFAULT_FROM_EMAIL = account.address
    # Django's SMTP backend verifies the relay's certificate against the default CAs.
    monkeypatch.setenv("SSL_CERT_FILE", str(stack.dovecot.ca_pem_path))
    return account


def owner_inbox_subjects(stack: Stack, account) -> list[str]:
    client = IMAPClient(
        stack.dovecot.host, port=stack.dovecot.imaps_port, ssl_context=stack.dovecot.ssl_context()
    )
    with client:
        client.login(account.address, account.password)
        client.select_folder("INBOX", readonly=True)
        fetched = client.fetch(client.search(), ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
        return [
            data[b"BODY[HEADER.FIELDS (SUBJECT)]"].decode().split(":", 1)[1].strip()
            for data in fetched.values()
        ]


def break_password(mailbox: Mailbox) -> None:
    mailbox.password = "not-the-password"
    mailbox.save()


def failing_and_ran(profile_id: int) -> tuple[int, int]:
    """The test's own count: mailboxes whose latest run in the last hour failed, of those that ran."""
    runs = SyncRun.objects.filter(
        mailbox__profile_id=profile_id, started_on__gte=clock.now() - timedelta(hours=1)
    )
    latest = {}
    for run in runs.order_by("started_on", "pk"):
        latest[run.mailbox_id] = run.outcome
    return sum(outcome == SyncOutcome.FAILED for outcome in latest.values()), len(latest)


def test_most_mailboxes_failing_raises_one_alert_and_emails_the_owner_once(stack: Stack, owner_account):
    mailboxes = [stack.user_mailbox(name) for name in ("amy", "ben", "cat")]
    for mailbox in mailboxes[:2]:
        break_password(mailbox)
    for mailbox in mailboxes:
        sync_incoming(mailbox=Mailbox.objects.get(pk=mailbox.pk))
    assert failing_and_ran(stack.profile.pk) == (2, 3)

    profile_health.check_profiles()
    profile_health.check_profiles()  # a second check counts, and does not email again

    alert = MailboxAlert.objects.get(profile=stack.profile, mailbox=None, resolved_on=None)
    assert (alert.level, alert.count) == (AlertLevel.ERROR, 2)
    assert "2 of 3 mailboxes" in alert.message
    assert alert.owner_notified_on is not None
    subjects = owner_inbox_subjects(stack, owner_account)
    assert subjects == [f"serversync: mailboxes of the profile {stack.profile.name} are failing"]


def test_the_alert_resolves_once_the_mailboxes_work_again(stack: Stack, owner_account):
    mailboxes = [stack.user_mailbox(name) for name in ("amy", "ben")]
    passwords = {mailbox.pk: mailbox.password.reveal() for mailbox in mailboxes}
    for mailbox in mailboxes:
        break_password(mailbox)
        sync_incoming(mailbox=Mailbox.objects.get(pk=mailbox.pk))
    profile_health.check_profiles()
    assert MailboxAlert.objects.filter(profile=stack.profile, mailbox=None, resolved_on=None).exists()

    with time_machine.travel(clock.now() + timedelta(minutes=5)):
        for mailbox in mailboxes:
            fixed = Mailbox.objects.get(pk=mailbox.pk)
            fixed.password = passwords[mailbox.pk]
            fixed.save()
            assert sync_incoming(mailbox=fixed).outcome == SyncOutcome.SUCCESS
        assert failing_and_ran(stack.profile.pk) == (0, 2)
        profile_health.check_profiles()

    assert not MailboxAlert.objects.filter(profile=stack.profile, mailbox=None, resolved_on=None).exists()


def test_half_failing_is_not_more_than_half(stack: Stack, owner_account):
    good, bad = stack.user_mailbox("good"), stack.user_mailbox("bad")
    break_password(bad)
    for mailbox in (good, bad):
        sync_incoming(mailbox=Mailbox.objects.get(pk=mailbox.pk))
    assert failing_and_ran(stack.profile.pk) == (1, 2)

    profile_health.check_profiles()

    assert not MailboxAlert.objects.filter(profile=stack.profile, mailbox=None).exists()
    assert owner_inbox_subjects(stack, owner_account) == []


def test_an_unreachable_system_smtp_server_is_tried_again_on_the_next_check(stack: Stack, owner_account):
    mailboxes = [stack.user_mailbox(name) for name in ("amy", "ben")]
    for mailbox in mailboxes:
        break_password(mailbox)
        sync_incoming(mailbox=Mailbox.objects.get(pk=mailbox.pk))

    stack.relay.stop()
    try:
        profile_health.check_profiles()
        alert = MailboxAlert.objects.get(profile=stack.profile, mailbox=None, resolved_on=None)
        assert alert.owner_notified_on is None
    finally:
        stack.relay.start()

    profile_health.check_profiles()
    alert.refresh_from_db()
    assert alert.owner_notified_on is not None
    assert len(owner_inbox_subjects(stack, owner_account)) == 1


def test_no_email_when_the_profile_does_not_ask_for_it(stack: Stack, owner_account):
    stack.profile.send_alert_email_to_owner = False
    stack.profile.save()
    for name in ("amy", "ben"):
        mailbox = stack.user_mailbox(name)
        break_password(mailbox)
        sync_incoming(mailbox=Mailbox.objects.get(pk=mailbox.pk))

    profile_health.check_profiles()

    assert MailboxAlert.objects.filter(profile=stack.profile, mailbox=None, resolved_on=None).exists()
    assert owner_inbox_subjects(stack, owner_account) == []
