"""The per-message pipeline: dedupe, tracking decision, correlation, parties,
receipts, all in one transaction with the cursor. Called directly, as the
workers call it (the fetch side has its own tests against Dovecot)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crm.choices import TrackIncomingEmail
from crm.models import EmailActivity, OrganizationSettings, QueueItem
from sync.errors import MessageError
from sync.incoming import Source, reprocess_quarantined, store_message
from sync.models import QuarantinedMessage, Receipt, ReceiptOutcome
from tests import factories, messages

pytestmark = pytest.mark.django_db
RECEIVED = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


class Cursor:
    """Stands for the folder cursor: counts how often the pipeline moved it."""

    def __init__(self) -> None:
        self.moves = 0

    def advance(self) -> None:
        self.moves += 1


def store(mailbox, raw: bytes, uid: int = 1, cursor: Cursor | None = None) -> Receipt:
    cursor = cursor or Cursor()
    return store_message(
        source=Source(mailbox, "INBOX", f"7:{uid}", RECEIVED), raw=raw, advance=cursor.advance
    )


def set_option(world, persona: str, option: str) -> None:
    crm_user = world[persona].crm_user
    crm_user.track_incoming_email = option
    crm_user.save()


def test_tracked_message_becomes_an_activity_with_parties_and_receipt(world):
    set_option(world, "alice", TrackIncomingEmail.ALL)
    contact = factories.contact(last_name="Customer", email="carl@example.org")
    cursor = Cursor()
    receipt = store(world["alice"].mailbox, messages.simple(sender="carl@example.org"), cursor=cursor)
    assert receipt.outcome == ReceiptOutcome.TRACKED
    email = receipt.email
    assert (email.direction, email.status, email.owner) == ("incoming", "received", world["alice"].crm_user)
    assert email.received_on == RECEIVED
    parties = {(p.role, p.address): p.record for p in email.parties.all()}
    assert parties[("from", "carl@example.org")] == contact
    assert parties[("to", "alice@example.test")] == world["alice"].crm_user
    assert email.raw_message.read().startswith(b"From: carl@example.org")
    assert cursor.moves == 1


@pytest.mark.parametrize(
    ("option", "sender", "outcome"),
    [
        (TrackIncomingEmail.NONE, "known@example.org", ReceiptOutcome.NOT_TRACKED_OPTION),
        (TrackIncomingEmail.RESPONSES_TO_CRM, "known@example.org", ReceiptOutcome.NO_CORRELATION),
        (TrackIncomingEmail.FROM_CRM_RECORDS, "stranger@example.org", ReceiptOutcome.SENDER_NOT_CRM),
        (TrackIncomingEmail.FROM_CRM_RECORDS, "known@example.org", ReceiptOutcome.TRACKED),
        (TrackIncomingEmail.FROM_EMAIL_ENABLED, "bob@example.test", ReceiptOutcome.TRACKED),
        (TrackIncomingEmail.FROM_CRM_RECORDS, "bob@example.test", ReceiptOutcome.SENDER_NOT_CRM),
        (TrackIncomingEmail.ALL, "stranger@example.org", ReceiptOutcome.TRACKED),
    ],
)
def test_tracking_follows_the_owners_option(world, option, sender, outcome):
    set_option(world, "alice", option)
    factories.lead(last_name="Known", email="known@example.org")
    receipt = store(world["alice"].mailbox, messages.simple(sender=sender))
    assert receipt.outcome == outcome
    assert (receipt.email is not None) == (outcome == ReceiptOutcome.TRACKED)
    assert EmailActivity.objects.filter(direction="incoming").count() == (1 if receipt.email else 0)


def test_second_run_creates_nothing_and_other_mailbox_links(world):
    set_option(world, "alice", TrackIncomingEmail.ALL)
    raw = messages.simple(to="alice@example.test, bob@example.test")
    first = store(world["alice"].mailbox, raw)
    again = store(world["alice"].mailbox, raw, uid=99)
    bobs = store(world["bob"].mailbox, raw)
    assert again.pk == first.pk
    assert Receipt.objects.get(pk=first.pk).server_id == "7:99"  # relinked to the new UID
    assert (bobs.outcome, bobs.email_id) == (ReceiptOutcome.LINKED, first.email_id)
    assert EmailActivity.objects.filter(direction="incoming").count() == 1


def test_messages_without_message_id_sharing_headers_stay_two(world):
    set_option(world, "alice", TrackIncomingEmail.ALL)
    one = store(world["alice"].mailbox, messages.without_message_id(body="one"), uid=1)
    two = store(world["alice"].mailbox, messages.without_message_id(body="two"), uid=2)
    assert one.email_id != two.email_id
    assert EmailActivity.objects.filter(direction="incoming").count() == 2


def test_queue_mailbox_tracks_into_a_queue_item(world):
    receipt = store(world.queue_mailbox, messages.simple(to="support@example.test"))
    assert receipt.outcome == ReceiptOutcome.TRACKED
    assert QueueItem.objects.filter(queue=world.queue, email=receipt.email).exists()


def test_reply_correlates_by_in_reply_to_and_copies_regarding(world):
    set_option(world, "alice", TrackIncomingEmail.RESPONSES_TO_CRM)
    account = world["alice"].account
    sent = factories.email(
        owner=world["alice"].crm_user,
        status="sent",
        message_id="quote-1@crm.example.test",
        message_identity="mid:quote-1@crm.example.test",
        regarding_account=account,
    )
    reply = messages.simple(in_reply_to="<quote-1@crm.example.test>")
    receipt = store(world["alice"].mailbox, reply)
    assert receipt.outcome == ReceiptOutcome.TRACKED
    assert (receipt.email.correlation_method, receipt.email.correlated_email) == ("in_reply_to", sent)
    assert receipt.email.regarding == account


def test_reply_correlates_by_tracking_token(world):
    set_option(world, "alice", TrackIncomingEmail.RESPONSES_TO_CRM)
    lead = world["alice"].lead
    sent = factories.email(owner=world["alice"].crm_user, tracking_token="CRM:0001007", regarding_lead=lead)
    receipt = store(world["alice"].mailbox, messages.simple(subject="RE: Your quote CRM:0001007"))
    assert (receipt.email.correlation_method, receipt.email.correlated_email) == ("tracking_token", sent)
    assert receipt.email.regarding == lead
    OrganizationSettings.objects.filter(pk=1).update(tracking_token_enabled=False)
    other = store(world["alice"].mailbox, messages.simple(subject="RE: again CRM:0001007"), uid=2)
    assert other.outcome == ReceiptOutcome.NO_CORRELATION


def test_unparsable_message_is_quarantined_and_the_cursor_moves(world):
    cursor = Cursor()
    receipt = store(world["alice"].mailbox, messages.NOT_A_MESSAGE, cursor=cursor)
    assert receipt.outcome == ReceiptOutcome.QUARANTINED
    held = QuarantinedMessage.objects.get(pk=receipt.quarantined_id)
    assert held.raw.read() == messages.NOT_A_MESSAGE
    assert cursor.moves == 1
    with pytest.raises(MessageError, match=r"parsed|headers"):
        reprocess_quarantined(quarantined_id=held.pk)
    assert QuarantinedMessage.objects.get(pk=held.pk).attempts == 2


def test_serversync_test_messages_are_never_tracked(world):
    set_option(world, "alice", TrackIncomingEmail.ALL)
    receipt = store(world["alice"].mailbox, messages.simple(headers={"X-Serversync-Test": "round-trip"}))
    assert (receipt.outcome, receipt.email) == (ReceiptOutcome.TEST_MESSAGE, None)


def test_attachment_over_the_organization_limit_is_recorded_not_stored(world):
    set_option(world, "alice", TrackIncomingEmail.ALL)
    OrganizationSettings.objects.filter(pk=1).update(max_attachment_size_kb=1)
    raw = messages.simple(attachments=[("small.txt", b"x" * 100), ("big.bin", b"y" * 5000)])
    email = store(world["alice"].mailbox, raw).email
    stored = {a.filename: (bool(a.content), a.size, a.skipped_reason != "") for a in email.attachments.all()}
    assert stored == {"small.txt": (True, 100, False), "big.bin": (False, 5000, True)}


def test_a_failure_while_storing_rolls_back_everything(world):
    set_option(world, "alice", TrackIncomingEmail.ALL)

    def advance_then_crash() -> None:
        raise RuntimeError("worker died")

    receipts_before = Receipt.objects.count()
    with pytest.raises(RuntimeError):
        store_message(
            source=Source(world["alice"].mailbox, "INBOX", "7:1"),
            raw=messages.simple(),
            advance=advance_then_crash,
        )
    assert Receipt.objects.count() == receipts_before
    assert not EmailActivity.objects.filter(direction="incoming").exists()
