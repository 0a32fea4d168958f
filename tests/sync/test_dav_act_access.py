"""Test & enable on an IMAP/SMTP profile opens the mailbox's calendar, tasks and address book
on the profile's CalDAV / CardDAV server (a real Radicale), with the mail's credentials."""

from __future__ import annotations

import pytest

from crm.choices import ActMethod
from mailboxes.models import Mailbox
from profiles.models import EmailServerProfile
from sync import checks

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def act_of(mailbox: Mailbox) -> checks.DirectionResult:
    Mailbox.objects.filter(pk=mailbox.pk).update(act_method=ActMethod.SERVER_SIDE_SYNC)
    mailbox.refresh_from_db()
    report = checks.mailbox_test_and_enable(mailbox=mailbox)
    return next(r for r in report.results if r.direction == "act")


def with_dav(stack, radicale, settings, tmp_path, *, calendars: bool = True) -> Mailbox:
    """Alice's mailbox on the test Dovecot, her DAV account on Radicale under the same name and password."""
    alice = stack.user_mailbox("alice")
    # One bundle trusts both test servers: Dovecot for the mail, Radicale for the calendars.
    bundle = tmp_path / "test-cas.pem"
    bundle.write_text(stack.dovecot.ca_pem_path.read_text() + radicale.ca_pem_path.read_text())
    settings.SYNC_CA_FILE = str(bundle)
    radicale.add_user(alice.username, alice.password.reveal())
    if calendars:
        radicale.make_calendar(alice.username, "calendar")
        radicale.make_address_book(alice.username, "contacts")
    EmailServerProfile.objects.filter(pk=stack.profile.pk).update(dav_server_url=radicale.url)
    alice.refresh_from_db()
    return alice


def test_the_calendar_tasks_and_contacts_open_on_the_profiles_dav_server(stack, radicale, settings, tmp_path):
    mailbox = with_dav(stack, radicale, settings, tmp_path)
    act = act_of(mailbox)
    assert (act.outcome, act.message) == ("success", "Appointments, contacts and tasks open and will sync.")
    mailbox.refresh_from_db()
    assert mailbox.act_enabled


def test_an_account_without_calendars_is_told_what_to_create(stack, radicale, settings, tmp_path):
    act = act_of(with_dav(stack, radicale, settings, tmp_path, calendars=False))
    assert (act.outcome, act.code) == ("failure", "collection_missing")


def test_a_profile_without_a_dav_server_fails_and_says_what_to_enter(stack):
    act = act_of(stack.user_mailbox("alice"))
    assert (act.outcome, act.code) == ("failure", "act_not_configured")
    assert "names no CalDAV / CardDAV server" in act.message
