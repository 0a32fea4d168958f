"""manage.py sync_mailbox and reprocess_failed, as an administrator runs them."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from sync.models import MailboxSchedule, QuarantinedMessage, SyncKind
from tests import messages

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_sync_mailbox_runs_one_mailbox_now(stack):
    alice = stack.user_mailbox("alice")
    stack.deliver(alice, messages.simple(to=alice.email_address))
    output = run("sync_mailbox", alice.email_address.upper(), "--kind", "incoming")
    assert "incoming: Success — received 1, tracked 1" in output
    schedule = MailboxSchedule.objects.get(mailbox=alice, kind=SyncKind.INCOMING)
    assert schedule.lease_token is None  # released for the workers


def test_sync_mailbox_refuses_while_a_worker_holds_the_mailbox(stack):
    from sync import scheduler

    alice = stack.user_mailbox("alice")
    assert scheduler.claim_now(mailbox=alice, kind=SyncKind.INCOMING) is not None
    with pytest.raises(CommandError, match="right now"):
        run("sync_mailbox", alice.email_address, "--kind", "incoming")


def test_sync_mailbox_names_an_unknown_address():
    with pytest.raises(CommandError, match=r"nobody@example\.test"):
        run("sync_mailbox", "nobody@example.test")


def test_reprocess_failed_reports_each_message(stack):
    alice = stack.user_mailbox("alice")
    with stack.imap(alice) as client:
        client.append("INBOX", messages.NOT_A_MESSAGE)
    run("sync_mailbox", alice.email_address, "--kind", "incoming")
    held = QuarantinedMessage.objects.get(mailbox=alice)
    output = run("reprocess_failed", "--mailbox", alice.email_address)
    assert f"#{held.pk}: still failing" in output
    assert "Reprocessed 0, still quarantined 1." in output


def test_sync_mailbox_shows_progress_when_asked(stack, settings):
    settings.SYNC_RUN_MAX_MESSAGES = 10
    alice = stack.user_mailbox("alice")
    for number in range(3):
        stack.deliver(alice, messages.simple(to=alice.email_address, subject=f"Progress {number}"))
    output = run("sync_mailbox", alice.email_address, "--kind", "incoming", "--progress")
    frames = output.split("\r")[1:]
    assert [frame.split("]")[1].split(" (")[0] for frame in frames] == [" 1/10", " 2/10", " 3/10"]
    assert frames[-1].startswith("[#########....")
    assert "incoming: Success — received 3" in output


def test_sync_mailbox_shows_no_progress_when_output_is_not_a_terminal(stack):
    alice = stack.user_mailbox("alice")
    stack.deliver(alice, messages.simple(to=alice.email_address))
    assert "\r" not in run("sync_mailbox", alice.email_address, "--kind", "incoming")
