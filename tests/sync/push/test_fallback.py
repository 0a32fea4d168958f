"""Where push cannot work the mailbox polls and its page says so; where it is live
the safety-net poll comes seldom."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta

import pytest
import time_machine

from crm.choices import TrackIncomingEmail
from crm.models import EmailActivity
from mailboxes.models import FolderScope, Mailbox
from profiles.models import EmailServerProfile
from sync import clock, listener_shares, push, scheduler
from sync.incoming import sync_incoming
from sync.models import MailboxSchedule, PushLease, PushMethod, PushState, SyncKind
from tests import factories, messages
from tests.harness.celery_worker import celery_worker
from tests.harness.dovecot import Dovecot
from tests.sync.push.listening import listening, state_of, wait_until
from tests.sync.received_mail import signed_in
from tests.sync.stack import Stack

NO_IDLE = "protocol imap {\n  imap_capability = IMAP4rev1 SASL-IR LITERAL+ ID ENABLE UIDPLUS\n}\n"


@pytest.fixture(scope="module")
def dovecot_without_idle() -> Iterator[Dovecot]:
    server = Dovecot(extra_config=NO_IDLE).start()
    yield server
    server.close()


def mailbox_on(stack: Stack, profile: EmailServerProfile, server: Dovecot | None = None) -> Mailbox:
    password = secrets.token_hex(8)
    address = (server or stack.dovecot).add_user(f"carol-{secrets.token_hex(4)}", password)
    crm_user = factories.crm_user("Carol", email=address, track_incoming_email=TrackIncomingEmail.ALL)
    mailbox = stack._mailbox(stack.make_mail_user("unused"), profile=profile, user=crm_user)
    Mailbox.objects.filter(pk=mailbox.pk).update(email_address=address, username=address, password=password)
    mailbox.refresh_from_db()
    return mailbox


def push_row(page: str) -> str:
    start = page.index('<tr id="push">')
    return page[start : page.index("</tr>", start)]


@pytest.mark.django_db(transaction=True)
def test_a_server_without_idle_is_asked_with_noop_and_the_page_says_so(stack, settings, dovecot_without_idle):
    settings.PUSH_HEARTBEAT_SECONDS = 1
    settings.PUSH_NOOP_SECONDS = 1
    profile = factories.profile(
        "No IDLE",
        incoming_server_location=dovecot_without_idle.host,
        incoming_port=dovecot_without_idle.imaps_port,
        connection_timeout_seconds=10,
    )
    settings.SYNC_CA_FILE = str(dovecot_without_idle.ca_pem_path)
    carol = mailbox_on(stack, profile, dovecot_without_idle)
    with celery_worker(queues="incoming"), listening():
        wait_until(lambda: state_of(carol.pk) == PushState.FALLBACK, what="the NOOP fallback")
        dovecot_without_idle.deliver(
            carol.email_address, messages.simple(to=carol.email_address, subject="By NOOP")
        )
        wait_until(lambda: EmailActivity.objects.filter(subject="By NOOP").exists(), what="the activity")
        lease = PushLease.objects.get(mailbox=carol)
        row = push_row(signed_in("carol", mailbox=carol).get(f"/mailboxes/{carol.pk}/").content.decode())
    assert lease.method == PushMethod.IMAP_NOOP
    assert "Not available: polling" in row
    assert "The server does not offer IDLE" in row
    # Not live push: the usual poll stays.
    assert scheduler.next_due(carol, run=None, idle_runs=0) <= clock.now() + timedelta(minutes=5)


@pytest.mark.django_db
def test_no_room_under_the_connection_cap_leaves_the_mailbox_polling(stack: Stack):
    stack.profile.max_concurrent_connections = 1
    stack.profile.save()
    alice = stack.user_mailbox("alice")
    assert listener_shares.beat("listener-a", capacity=10) == []
    lease = PushLease.objects.get(mailbox=alice)
    assert (lease.owner, lease.state) == ("", PushState.FALLBACK)
    row = push_row(signed_in("alice", mailbox=alice).get(f"/mailboxes/{alice.pk}/").content.decode())
    assert "allows 1 connection(s) at once per mailbox" in row


@pytest.mark.django_db
def test_the_profile_cap_counts_the_idle_connections_with_the_runs(stack: Stack):
    master = stack.master_profile()
    master.max_concurrent_connections = 3
    master.save()
    boxes = [stack.user_mailbox(f"user{n}", profile=master) for n in range(4)]
    held = listener_shares.beat("listener-a", capacity=10)
    # Two IDLE connections, and one left for a sync run.
    assert len(held) == 2
    claims = scheduler.dispatch(kinds=("incoming",))
    assert len(claims) == 1
    assert {lease.mailbox_id for lease in held} < {box.pk for box in boxes}


@pytest.mark.django_db
def test_live_push_makes_the_poll_a_safety_net(stack: Stack, settings):
    settings.PUSH_SAFETY_POLL_MINUTES = 30
    settings.SYNC_IDLE_BACKOFF_MAX_MINUTES = 5  # shorter than the safety net's interval
    alice = stack.user_mailbox("alice")
    listener_shares.beat("listener-a", capacity=10)
    usual = scheduler.next_due(alice, run=None, idle_runs=0)
    PushLease.objects.filter(mailbox=alice).update(state=PushState.LIVE)
    start = clock.now()
    safety_net = scheduler.next_due(alice, run=None, idle_runs=0)
    assert safety_net >= start + timedelta(minutes=30)
    assert usual < start + timedelta(minutes=30)
    # The dispatcher waits for it: a due time that far ahead is not taken for a clock set back.
    MailboxSchedule.objects.create(
        mailbox=alice, kind=SyncKind.INCOMING, profile=alice.profile, next_due_on=safety_net
    )
    assert alice.pk not in {claim.mailbox_id for claim in scheduler.dispatch(kinds=(SyncKind.INCOMING,))}
    # Push watches the inbox: a mailbox that reads its sub-folders too keeps the usual poll.
    Mailbox.objects.filter(pk=alice.pk).update(folders=FolderScope.INBOX_AND_SUBFOLDERS)
    alice.refresh_from_db()
    assert scheduler.next_due(alice, run=None, idle_runs=0) < start + timedelta(minutes=30)
    Mailbox.objects.filter(pk=alice.pk).update(folders=FolderScope.ROOT_INBOX)
    alice.refresh_from_db()
    # A lease whose listener died is not live push: the usual poll again.
    PushLease.objects.filter(mailbox=alice).update(expires_on=clock.now() - timedelta(seconds=1))
    assert scheduler.next_due(alice, run=None, idle_runs=0) == pytest.approx(usual, abs=timedelta(seconds=5))


@pytest.mark.django_db
def test_mail_announced_for_a_mailbox_that_cannot_run_is_left_to_the_safety_net(stack: Stack):
    alice = stack.user_mailbox("alice")
    listener_shares.beat("listener-a", capacity=10)
    Mailbox.objects.filter(pk=alice.pk).update(incoming_enabled=False)
    assert push.notify([alice.pk]) == 0
    assert push.has_pending()  # waits for a run, woken each second while it does
    with time_machine.travel(clock.now() + timedelta(minutes=31), tick=False):
        assert push.wake() == 0
    assert not push.has_pending()


@pytest.mark.django_db
def test_a_run_ending_under_live_push_is_next_due_after_the_safety_net(stack: Stack, settings):
    """The lease check reads whether push is live (no statement of its own in an idle poll),
    and the release sets the safety-net interval from it."""
    settings.PUSH_SAFETY_POLL_MINUTES = 30
    settings.SYNC_IDLE_BACKOFF_MAX_MINUTES = 5
    alice = stack.user_mailbox("alice")
    listener_shares.beat("listener-a", capacity=10)
    PushLease.objects.filter(mailbox=alice).update(state=PushState.LIVE)
    claim = scheduler.claim_now(mailbox=alice, kind=SyncKind.INCOMING)
    assert claim is not None
    start = clock.now()

    scheduler.run_claimed(claim, lambda mailbox: sync_incoming(mailbox=mailbox))

    schedule = MailboxSchedule.objects.get(mailbox=alice, kind=SyncKind.INCOMING)
    assert schedule.next_due_on >= start + timedelta(minutes=30)
