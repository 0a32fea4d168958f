"""The engine on Exchange, through the real clients against the Graph and EWS test servers
(every body checked against Microsoft's published schemas): one pipeline, one set of rules."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from crm.models import EmailActivity
from mailboxes.models import FolderScope, Mailbox
from sync import clock, outgoing
from sync.checks import mailbox_test_and_enable
from sync.incoming import sync_incoming
from sync.models import FolderCursor, MailboxAlert, Receipt
from tests import factories, messages
from tests.sync.exchange_stack import EwsStack, ExchangeStack, GraphStack
from tests.sync.test_engine_outgoing import api_client_for, compose

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def subjects(mailbox: Mailbox) -> list[str]:
    return sorted(
        EmailActivity.objects.filter(receipts__mailbox=mailbox).distinct().values_list("subject", flat=True)
    )


def test_mail_in_the_inbox_and_a_child_folder_becomes_activities_once(exchange: ExchangeStack):
    alice = exchange.user_mailbox("alice")
    Mailbox.objects.filter(pk=alice.pk).update(folders=FolderScope.INBOX_AND_SUBFOLDERS)
    alice.refresh_from_db()
    exchange.create_folder(alice, "Inbox/Projects")
    exchange.deliver(alice, messages.simple(to=alice.email_address, subject="In the inbox"))
    exchange.deliver(
        alice, messages.simple(to=alice.email_address, subject="Grüße in a project"), "Inbox/Projects"
    )

    run = sync_incoming(mailbox=alice)

    assert (run.outcome, run.tracked) == ("success", 2), run.error_text
    assert subjects(alice) == ["Grüße in a project", "In the inbox"]
    folders = set(Receipt.objects.filter(mailbox=alice).values_list("folder", flat=True))
    assert folders == {"INBOX", "INBOX/Projects"}

    again = sync_incoming(mailbox=alice)
    assert (again.outcome, again.tracked, again.linked) == ("success", 0, 0)
    assert EmailActivity.objects.filter(direction="incoming").count() == 2


def test_a_cursor_the_server_forgot_reads_the_folder_again_without_a_duplicate(exchange: ExchangeStack):
    alice = exchange.user_mailbox("alice")
    exchange.deliver(alice, messages.simple(to=alice.email_address, subject="Before"))
    sync_incoming(mailbox=alice)
    exchange.invalidate_cursors()  # Graph: delta tokens expired (410); EWS: sync states invalid
    exchange.deliver(alice, messages.simple(to=alice.email_address, subject="After"))

    run = sync_incoming(mailbox=alice)

    assert run.outcome == "success", run.error_text
    assert subjects(alice) == ["After", "Before"]
    assert EmailActivity.objects.filter(direction="incoming").count() == 2
    assert Receipt.objects.filter(mailbox=alice).count() == 2


def token(mailbox: Mailbox) -> str:
    return FolderCursor.objects.get(mailbox=mailbox, folder="INBOX").token


def downloads(exchange: ExchangeStack, mailbox: Mailbox) -> int:
    """Message bodies the server handed out for the mailbox so far: Graph's $value
    requests, the items EWS's GetItem requests asked for."""
    address = mailbox.email_address.lower()
    if isinstance(exchange, GraphStack):
        logged = list(exchange.server.requests)
        return sum(1 for r in logged if r.mailbox.lower() == address and r.path.endswith("/$value"))
    assert isinstance(exchange, EwsStack)
    records = list(exchange.server.requests)
    return sum(
        int(r.notes.get("items", 0)) for r in records if r.mailbox == address and r.operation == "GetItem"
    )


def forget_old_cursors(exchange: ExchangeStack) -> None:
    """A long quiet period: the server honours only each folder's newest delta token / sync state."""
    if isinstance(exchange, GraphStack):
        exchange.server.expire_old_delta_tokens()
    else:
        assert isinstance(exchange, EwsStack)
        exchange.server.forget_old_sync_states()


def test_a_quiet_folder_moves_on_to_the_newest_cursor_and_is_not_downloaded_again(exchange: ExchangeStack):
    alice = exchange.user_mailbox("alice")
    for n in range(3):
        exchange.deliver(alice, messages.simple(to=alice.email_address, subject=f"Order {n}"))
    first = sync_incoming(mailbox=alice)
    after_mail = token(alice)

    quiet = sync_incoming(mailbox=alice)  # nothing new: no message carries the newer cursor

    assert (first.received, quiet.outcome, quiet.received) == (3, "success", 0), quiet.error_text
    assert token(alice) != after_mail  # the server's newer delta link / sync state, saved all the same
    forget_old_cursors(exchange)
    exchange.deliver(alice, messages.simple(to=alice.email_address, subject="Order 3"))
    before = downloads(exchange, alice)

    run = sync_incoming(mailbox=alice)

    assert (run.outcome, run.received, run.linked) == ("success", 1, 0), run.error_text
    assert downloads(exchange, alice) - before == 1  # the new message only, not the folder again
    assert subjects(alice) == [f"Order {n}" for n in range(4)]
    assert Receipt.objects.filter(mailbox=alice).count() == 4


def test_a_run_cut_off_by_its_budget_keeps_its_place_and_the_next_takes_the_rest(
    exchange: ExchangeStack, settings
):
    settings.SYNC_RUN_MAX_MESSAGES = 2
    alice = exchange.user_mailbox("alice")
    for n in range(3):
        exchange.deliver(alice, messages.simple(to=alice.email_address, subject=f"Order {n}"))

    cut = sync_incoming(mailbox=alice)
    rest = sync_incoming(mailbox=alice)

    assert (cut.outcome, cut.received) == ("partial", 2), cut.error_text
    # Not moved past the third message: the round was not read to its end.
    assert (rest.outcome, rest.received, rest.linked) == ("success", 1, 0), rest.error_text
    assert subjects(alice) == [f"Order {n}" for n in range(3)]
    assert Receipt.objects.filter(mailbox=alice).count() == 3


def test_crm_email_reaches_the_recipient_and_sent_items_once_and_the_reply_correlates(
    exchange: ExchangeStack,
):
    alice, bob = exchange.user_mailbox("alice"), exchange.user_mailbox("bob")
    account = factories.account(name="Contoso", owner=alice.user)
    sent_email = compose(
        api_client_for(alice),
        subject="Your quote",
        body_text="Please find the quote. Grüße.",
        to=[bob.email_address],
        regarding_account=account.pk,
    )

    run = outgoing.send_pending(mailbox=alice)

    assert (run.outcome, run.sent) == ("success", 1), run.error_text
    sent_email.refresh_from_db()
    assert sent_email.status == "sent"
    (received,) = exchange.inbox(bob)
    assert f"<{sent_email.message_id}>".encode() in received
    # Sending kept its own copy in Sent Items; the engine saved none beside it.
    (copy,) = exchange.sent_items(alice)
    assert f"<{sent_email.message_id}>".encode() in copy
    assert outgoing.send_pending(mailbox=alice).sent == 0
    assert len(exchange.inbox(bob)) == 1

    reply = messages.simple(
        sender=bob.email_address,
        to=alice.email_address,
        subject="RE: Your quote",
        message_id="<reply-1@example.org>",
        in_reply_to=f"<{sent_email.message_id}>",
    )
    exchange.deliver(alice, reply)
    sync_incoming(mailbox=alice)
    tracked = EmailActivity.objects.get(message_id="reply-1@example.org")
    assert (tracked.correlated_email, tracked.correlation_method) == (sent_email, "in_reply_to")
    assert tracked.regarding == account


def test_an_interrupted_send_found_in_sent_items_is_settled_as_sent(exchange: ExchangeStack):
    alice, bob = exchange.user_mailbox("alice"), exchange.user_mailbox("bob")
    client = api_client_for(alice)
    delivered = compose(client, subject="Went out", to=[bob.email_address])
    lost = compose(client, subject="Never went out", to=[bob.email_address])
    outgoing.send_pending(mailbox=alice)
    # As a worker killed after the server took the first, before the engine recorded it: both
    # "outcome unknown", though only the first is in Sent Items.
    EmailActivity.objects.filter(pk=delivered.pk).update(status=EmailActivity.Status.OUTCOME_UNKNOWN)
    lost.refresh_from_db()
    lost.message_id = "never-sent@contoso.test"
    lost.status = EmailActivity.Status.OUTCOME_UNKNOWN
    lost.save(update_fields=["message_id", "status"])

    outgoing.send_pending(mailbox=alice)

    delivered.refresh_from_db()
    lost.refresh_from_db()
    assert delivered.status == "sent"
    assert lost.status == "outcome_unknown"  # never resent on a guess
    assert len(exchange.inbox(bob)) == 2  # the two sends of the first run, nothing more


def test_throttling_makes_the_mailbox_wait_as_long_as_the_server_asked(exchange: ExchangeStack):
    alice = exchange.user_mailbox("alice")
    exchange.throttle(seconds=42)

    run = sync_incoming(mailbox=alice)

    alice.refresh_from_db()
    assert run.outcome == "failed"
    assert alice.incoming_enabled
    assert alice.incoming_transient_failures == 0
    waited = alice.incoming_postponed_until - clock.now()
    assert timedelta(seconds=40) < waited <= timedelta(seconds=42)
    alert = MailboxAlert.objects.get(mailbox=alice, resolved_on__isnull=True)
    assert "waits 42 s, as the server asked" in alert.message
    with time_machine.travel(clock.now() + timedelta(seconds=43)):
        assert sync_incoming(mailbox=alice).outcome == "success"


def test_a_rejected_sign_in_disables_the_mailbox_with_the_fix(exchange: ExchangeStack):
    alice = exchange.user_mailbox("alice")
    exchange.spoil_credentials()
    alice.refresh_from_db()

    sync_incoming(mailbox=alice)

    alice.refresh_from_db()
    assert (alice.incoming_enabled, alice.last_sync_error_code) == (False, "authentication_failed")
    fix = "secret" if isinstance(exchange, GraphStack) else "password"
    assert fix in alice.disabled_reason


def test_test_and_enable_with_a_round_trip_enables_the_mailbox_and_leaves_nothing_behind(
    exchange: ExchangeStack,
):
    alice = exchange.user_mailbox("alice")
    Mailbox.objects.filter(pk=alice.pk).update(incoming_enabled=False, outgoing_enabled=False)
    alice.refresh_from_db()

    report = mailbox_test_and_enable(mailbox=alice, round_trip=True)

    outcomes = {result.direction: (result.outcome, result.message) for result in report.results}
    assert outcomes["incoming"][0] == "success", outcomes
    assert outcomes["outgoing"] == (
        "success",
        "Outgoing email works: a test message reached the mailbox and was deleted.",
    )
    alice.refresh_from_db()
    assert (alice.incoming_enabled, alice.outgoing_enabled) == (True, True)
    assert exchange.inbox(alice) == []  # the marked message was deleted on arrival
    assert not EmailActivity.objects.exists()


def test_test_and_enable_names_cause_and_fix_of_a_rejected_sign_in(exchange: ExchangeStack):
    alice = exchange.user_mailbox("alice")
    exchange.spoil_credentials()
    alice.refresh_from_db()

    report = mailbox_test_and_enable(mailbox=alice)

    incoming = next(result for result in report.results if result.direction == "incoming")
    assert (incoming.outcome, incoming.code) == ("failure", "authentication_failed")
    assert incoming.fix  # what to do about it, in the administrator's words
    alice.refresh_from_db()
    assert not alice.incoming_enabled
