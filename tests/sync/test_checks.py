# ruff: noqa: F811  (the connector fixtures imported below are used as arguments)
"""Test & enable against the real test mail stack: every failure comes from a real
misconfiguration (a .invalid host, a closed port, a bad certificate, a wrong
password, a denied master user), never from patched sockets."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from config.celery import app as celery_app
from crm.choices import ActMethod, OutgoingMethod, ProcessEmailUsing, SyncStatus
from crm.models import EmailActivity, OrganizationSettings
from mailboxes.models import ApprovalStatus, Mailbox
from profiles.models import CredentialsSource, ServerType
from sync import checks
from sync.incoming import sync_incoming
from sync.models import MailboxAlert, MailboxTest, Receipt, TestState
from tests import factories
from tests.sync.connectors.conftest import (  # noqa: F401  (fixtures)
    dovecot_with_bad_certificate,
    silent_port,
)
from tests.sync.stack import Stack

pytestmark = pytest.mark.django_db


def untested(stack: Stack, name: str = "alice", **extra) -> Mailbox:
    """A mailbox as an administrator sets it up: approved, not yet enabled."""
    mailbox = stack.user_mailbox(name, **extra)
    Mailbox.objects.filter(pk=mailbox.pk).update(incoming_enabled=False, outgoing_enabled=False)
    mailbox.refresh_from_db()
    return mailbox


def on_profile(mailbox: Mailbox, **changes) -> Mailbox:
    for field, value in changes.items():
        setattr(mailbox.profile, field, value)
    mailbox.profile.full_clean()
    mailbox.profile.save()
    mailbox.refresh_from_db()
    return mailbox


def result(report: checks.TestReport, direction: str) -> checks.DirectionResult:
    return next(r for r in report.results if r.direction == direction)


def assert_failed(
    mailbox: Mailbox, direction: str, code: str, *cause: str, fix: str
) -> checks.DirectionResult:
    report = checks.mailbox_test_and_enable(mailbox=mailbox)
    found = result(report, direction)
    assert (found.outcome, found.code) == ("failure", code), found
    for words in cause:
        assert words in found.message, found.message
    assert fix in found.fix, found.fix
    mailbox.refresh_from_db()
    assert getattr(mailbox, f"{direction}_status") == SyncStatus.FAILURE
    assert not getattr(mailbox, f"{direction}_enabled")
    assert found.message in mailbox.disabled_reason
    assert not report.passed
    return found


def test_success_enables_both_directions_and_tells_the_owner(stack):
    mailbox = untested(stack)

    report = checks.mailbox_test_and_enable(mailbox=mailbox)

    assert report.passed, report.summary
    assert report.summary == "Incoming email passed; outgoing email passed."
    mailbox.refresh_from_db()
    assert (mailbox.incoming_status, mailbox.outgoing_status) == (SyncStatus.SUCCESS, SyncStatus.SUCCESS)
    assert mailbox.incoming_enabled
    assert mailbox.outgoing_enabled
    assert mailbox.test_completed_on is not None
    assert mailbox.disabled_reason == ""
    alert = MailboxAlert.objects.get(mailbox=mailbox, category="test")
    assert alert.code == "test_passed"


def test_a_migrated_mailbox_waiting_for_credentials_stops_waiting_once_a_test_passes(stack):
    """The Email Router import could not bring the password: the profile's own credentials
    (entered since) sign in, so the mailbox no longer says it needs credentials."""
    mailbox = untested(stack)
    Mailbox.objects.filter(pk=mailbox.pk).update(needs_credentials=True)
    mailbox.refresh_from_db()
    assert not mailbox.awaits_credentials  # a password is there, so the badge is off already

    assert checks.mailbox_test_and_enable(mailbox=mailbox).passed
    mailbox.refresh_from_db()
    assert not mailbox.needs_credentials


def test_dns_name_not_found(stack):
    mailbox = on_profile(untested(stack), incoming_server_location="imap.serversync.invalid")

    assert_failed(
        mailbox, "incoming", "dns_not_found", "imap.serversync.invalid", "does not exist", fix="server name"
    )


def test_connection_refused_names_host_and_port(stack, closed_port):
    mailbox = on_profile(untested(stack), outgoing_port=closed_port)

    assert_failed(
        mailbox, "outgoing", "connection_refused", f"127.0.0.1:{closed_port}", "refused", fix="port"
    )


def test_timeout_names_host_and_port(stack, silent_port):
    mailbox = on_profile(untested(stack), incoming_port=silent_port, connection_timeout_seconds=1)

    assert_failed(mailbox, "incoming", "timeout", f":{silent_port}", "did not answer", fix="firewall")


@pytest.mark.parametrize(
    ("kind", "says"),
    [("wrong name", "wrong.example"), ("expired", "expired"), ("untrusted issuer", "issuer")],
)
def test_bad_certificate_shows_its_subject_and_dates(stack, dovecot_with_bad_certificate, kind, says):
    bad = dovecot_with_bad_certificate(kind)
    mailbox = untested(stack)
    bad.add_user(mailbox.email_address.split("@")[0], mailbox.password.reveal())
    on_profile(mailbox, incoming_port=bad.imaps_port)

    found = assert_failed(
        mailbox, "incoming", "tls_certificate_invalid", "certificate", "valid from", fix="certificate"
    )
    assert says in found.message.lower() or says in found.message


def test_wrong_password(stack):
    mailbox = untested(stack)
    Mailbox.objects.filter(pk=mailbox.pk).update(password="not-the-password")
    mailbox.refresh_from_db()

    assert_failed(mailbox, "incoming", "authentication_failed", "rejected the sign-in", fix="password")
    assert result(checks.mailbox_test_and_enable(mailbox=mailbox), "outgoing").code == "authentication_failed"


def test_denied_master_user_is_impersonation_denied(stack):
    mailbox = untested(stack, profile=stack.master_profile())
    stack.dovecot.deny_impersonation(mailbox.email_address)

    assert_failed(
        mailbox,
        "incoming",
        "impersonation_denied",
        stack.dovecot.master_user,
        mailbox.email_address,
        fix="right to act for this mailbox",
    )


def test_an_inbox_the_server_hides_is_folder_not_found_and_nothing_is_enabled(stack):
    # A mailbox that only receives: its incoming test is the only one, so nothing can pass.
    mailbox = untested(stack, outgoing_method=OutgoingMethod.NONE)
    stack.dovecot.hide_folder(mailbox.email_address, "INBOX")

    found = assert_failed(
        mailbox,
        "incoming",
        "folder_not_found",
        "The folder 'INBOX' does not exist",
        mailbox.email_address,
        fix="Check that the folder exists on the mail server and that the account may open it",
    )
    assert found.fix in mailbox.disabled_reason
    assert (mailbox.incoming_enabled, mailbox.outgoing_enabled) == (False, False)
    alert = MailboxAlert.objects.get(mailbox=mailbox, category="test", resolved_on=None)
    assert alert.code == "folder_not_found"
    assert "'INBOX'" in alert.message


def test_approval_missing_fails_without_connecting(stack):
    mailbox = on_profile(untested(stack), incoming_server_location="never-contacted.invalid")
    Mailbox.objects.filter(pk=mailbox.pk).update(approval_status=ApprovalStatus.PENDING_APPROVAL)
    mailbox.refresh_from_db()

    found = assert_failed(mailbox, "incoming", "approval_missing", "not approved", fix="Approve")
    assert "never-contacted" not in found.message
    assert result(checks.mailbox_test_and_enable(mailbox=mailbox), "outgoing").code == "approval_missing"


def test_inactive_profile_and_missing_credentials(stack):
    mailbox = untested(stack)
    Mailbox.objects.filter(pk=mailbox.pk).update(allow_credentials_for_email_processing=False)
    mailbox.refresh_from_db()
    assert_failed(mailbox, "incoming", "credentials_missing", "no credentials", fix="user name and password")

    on_profile(mailbox, is_active=False)
    assert_failed(mailbox, "outgoing", "profile_inactive", "inactive", fix="Activate")


def test_an_exchange_online_profile_without_its_app_registration_says_what_to_enter(stack):
    # As an Email Router import leaves it: Microsoft Graph, no app registration yet.
    exchange = factories.profile(
        "Exchange Online",
        server_type=ServerType.EXCHANGE_ONLINE,
        incoming_server_location="",
        outgoing_server_location="",
    )
    mailbox = untested(stack, profile=exchange)

    report = checks.mailbox_test_and_enable(mailbox=mailbox)

    tested = [r for r in report.results if r.outcome != "skipped"]
    assert {(r.outcome, r.code) for r in tested} == {("failure", "credentials_missing")}
    assert "has no complete app registration" in tested[0].message
    assert "tenant id, client id and client secret or certificate" in tested[0].fix
    mailbox.refresh_from_db()
    assert not (mailbox.incoming_enabled)
    assert not (mailbox.outgoing_enabled)


def test_act_on_a_profile_without_a_dav_server_fails_and_leaves_the_mail_on(stack):
    mailbox = untested(stack, act_method=ActMethod.SERVER_SIDE_SYNC)

    report = checks.mailbox_test_and_enable(mailbox=mailbox)

    act = result(report, "act")
    assert (act.outcome, act.code) == ("failure", "act_not_configured")
    assert "names no CalDAV / CardDAV server" in act.message
    assert not report.passed
    mailbox.refresh_from_db()
    assert (mailbox.incoming_enabled, mailbox.outgoing_enabled, mailbox.act_enabled) == (True, True, False)


def test_email_router_mode_tests_and_says_when_processing_starts(stack):
    organization = OrganizationSettings.load()
    organization.process_email_using = ProcessEmailUsing.EMAIL_ROUTER
    organization.save()
    mailbox = untested(stack)

    report = checks.mailbox_test_and_enable(mailbox=mailbox)

    assert report.passed
    assert "processing starts once it switches to server-side synchronization" in report.summary


def test_round_trip_arrives_is_deleted_and_leaves_no_activity(stack):
    mailbox = untested(stack)
    emails_before = EmailActivity.objects.count()

    report = checks.mailbox_test_and_enable(mailbox=mailbox, round_trip=True)

    assert report.passed, report.summary
    assert "reached the mailbox and was deleted" in result(report, "outgoing").message
    with stack.imap(mailbox) as client:
        client.select_folder("INBOX", readonly=True)
        assert client.search("ALL") == []
    sync_incoming(mailbox=mailbox)
    assert EmailActivity.objects.count() == emails_before
    assert not Receipt.objects.filter(mailbox=mailbox).exclude(outcome="test_message").exists()


def test_round_trip_over_pop3(stack):
    mailbox = untested(stack, profile=stack.pop3_profile(connection_timeout_seconds=10))

    report = checks.mailbox_test_and_enable(mailbox=mailbox, round_trip=True)

    assert report.passed, report.summary
    with stack.imap(mailbox) as client:
        client.select_folder("INBOX", readonly=True)
        assert client.search("ALL") == []


def test_a_queued_test_runs_in_the_task_and_records_its_results(stack, django_capture_on_commit_callbacks):
    mailbox = untested(stack)
    Mailbox.objects.filter(pk=mailbox.pk).update(password="wrong")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        (test,) = checks.queue_test_and_enable(mailbox_ids=[mailbox.pk], requested_by=None)
    assert test.state == TestState.QUEUED
    assert len(callbacks) == 1
    from sync.tasks import test_and_enable_mailbox

    test_and_enable_mailbox(test.pk)

    test.refresh_from_db()
    assert test.state == TestState.FAILED
    assert test.finished_on is not None
    assert test.results["incoming"]["code"] == "authentication_failed"
    assert "incoming email failed (authentication failed)" in test.summary.lower()
    assert MailboxTest.objects.get(pk=test.pk).started_on is not None


def test_with_eager_tasks_a_queued_test_runs_in_this_process_at_commit(
    stack, django_capture_on_commit_callbacks, monkeypatch
):
    """CELERY_TASK_ALWAYS_EAGER (debugging) still runs what sync.enqueue sends by name."""
    mailbox = untested(stack)
    Mailbox.objects.filter(pk=mailbox.pk).update(password="wrong")
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)

    with django_capture_on_commit_callbacks(execute=True):
        (test,) = checks.queue_test_and_enable(mailbox_ids=[mailbox.pk], requested_by=None)

    test.refresh_from_db()
    assert test.state == TestState.FAILED
    assert test.results["incoming"]["code"] == "authentication_failed"


def test_profile_test_connection_uses_the_profile_credentials(stack, mail_user):
    account = mail_user("profile")
    profile = factories.profile(
        "Shared",
        incoming_server_location=stack.dovecot.host,
        incoming_port=stack.dovecot.imaps_port,
        outgoing_server_location=stack.relay.host,
        outgoing_port=stack.relay.port,
        credentials_source=CredentialsSource.PROFILE,
        username=account.address,
        password=account.password,
    )

    results = checks.profile_test_connection(profile=profile)

    assert [r.outcome for r in results] == ["success", "success"]
    profile.refresh_from_db()
    assert profile.last_test_result == SyncStatus.SUCCESS
    assert profile.last_test_started_on is not None

    profile.password = "wrong"
    profile.save()
    results = checks.profile_test_connection(profile=profile)
    assert [r.code for r in results] == ["authentication_failed", "authentication_failed"]
    profile.refresh_from_db()
    assert profile.last_test_result == SyncStatus.FAILURE
    assert "rejected the sign-in" in profile.last_test_message


def test_command_tests_by_address_with_a_progress_bar(stack, capsys):
    good, bad = untested(stack, "good"), untested(stack, "bad")
    Mailbox.objects.filter(pk=bad.pk).update(password="wrong")

    with pytest.raises(CommandError, match="1 of 2 mailboxes failed"):
        call_command("test_and_enable", good.email_address, bad.email_address, "--progress")

    out = capsys.readouterr().out
    assert "[" + "#" * 30 + "] 2/2 (passed 1, failed 1)" in out
    assert f"{good.email_address}: passed" in out
    assert f"{bad.email_address}: FAILED" in out


def test_command_by_profile_and_refuses_unknown_addresses(stack, capsys):
    mailbox = untested(stack)

    call_command("test_and_enable", "--profile", stack.profile.name)
    assert f"{mailbox.email_address}: passed" in capsys.readouterr().out

    with pytest.raises(CommandError, match=r"nobody@example\.test"):
        call_command("test_and_enable", "nobody@example.test")


# -- each failure says its fix once ---------------------------------------------------


def said_once(text: str, fix: str, *words: str) -> None:
    """The fix is in ``text`` exactly once, and so is each key phrase of it (a
    connector's own wording of the same advice would be a second time)."""
    assert text.count(fix) == 1, text
    for phrase in words:
        assert text.lower().count(phrase.lower()) == 1, (phrase, text)


def progress_panel(mailbox: Mailbox) -> str:
    """The mailboxes page's test & enable panel for one test of ``mailbox``, as an administrator sees it."""
    from django.test import Client
    from django.utils import timezone

    test = MailboxTest.objects.create(mailbox=mailbox, queued_on=timezone.now())
    checks.mailbox_test_and_enable(mailbox=mailbox, test=test)
    client = Client()
    client.force_login(factories.login_user(f"root{test.pk}", administrator=True))
    page = client.get(f"/mailboxes/progress/?test={test.pk}").content.decode()
    return page.split("</section>")[0]  # the panel, not the table rows it refreshes


@pytest.mark.parametrize(
    ("case", "code", "cause", "phrase"),
    [
        ("unknown host", "dns_not_found", "does not exist in DNS", "Correct the server name"),
        (
            "wrong password",
            "authentication_failed",
            "rejected the sign-in",
            "Correct the user name and password",
        ),
        ("no credentials", "credentials_missing", "has no credentials", "user name and password"),
        ("hidden inbox", "folder_not_found", "The folder 'INBOX' does not exist", "folder settings"),
        ("not approved", "approval_missing", "is not approved", "Approve the mailbox's email address"),
    ],
)
def test_each_failure_names_its_cause_and_its_fix_once(stack, case, code, cause, phrase):
    mailbox = untested(stack)
    if case == "unknown host":
        on_profile(mailbox, incoming_server_location="imap.serversync.invalid")
    elif case == "wrong password":
        Mailbox.objects.filter(pk=mailbox.pk).update(password="not-the-password")
    elif case == "no credentials":
        Mailbox.objects.filter(pk=mailbox.pk).update(allow_credentials_for_email_processing=False)
    elif case == "hidden inbox":
        stack.dovecot.hide_folder(mailbox.email_address, "INBOX")
    else:
        Mailbox.objects.filter(pk=mailbox.pk).update(approval_status=ApprovalStatus.PENDING_APPROVAL)
    mailbox.refresh_from_db()

    report = checks.mailbox_test_and_enable(mailbox=mailbox)

    found = result(report, "incoming")
    assert (found.outcome, found.code) == ("failure", code)
    assert cause in found.message
    assert phrase.lower() in found.fix.lower()
    mailbox.refresh_from_db()
    failures = [r for r in report.results if r.outcome == "failure"]
    # The mailbox's reason: each cause, then its fix once; directions that failed alike (no
    # approval) named together, causes with one fix (a wrong password, both servers) before it.
    for failure in failures:
        assert mailbox.disabled_reason.count(failure.message) == 1
    if len({r.fix for r in failures}) == 1:
        said_once(mailbox.disabled_reason, found.fix, phrase)
    alert = MailboxAlert.objects.get(mailbox=mailbox, category="test", resolved_on=None)
    said_once(alert.message, found.fix, phrase)
    assert cause in alert.message
    # The mailboxes page shows each failed direction's cause and fix, the fix once per direction.
    panel = progress_panel(mailbox)
    shown = panel.count(found.fix.replace("'", "&#x27;").replace('"', "&quot;"))
    assert shown == len([r for r in failures if r.fix == found.fix]), panel


def test_test_connection_says_each_fix_once(stack, mail_user):
    account = mail_user("profile")
    profile = factories.profile(
        "Shared",
        incoming_server_location="imap.serversync.invalid",
        outgoing_server_location=stack.relay.host,
        outgoing_port=stack.relay.port,
        credentials_source=CredentialsSource.PROFILE,
        username=account.address,
        password="not-the-password",
    )

    results = checks.profile_test_connection(profile=profile)

    incoming = next(r for r in results if r.direction == "incoming")
    assert incoming.code == "dns_not_found"
    said_once(profile.last_test_message, incoming.fix, "Correct the server name")
