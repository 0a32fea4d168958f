"""A batch of messages stored together (sync.batch_store) ends exactly as the same
messages stored one at a time (sync.incoming.store_message): the same receipts,
activities, correlations, parties, attachments, fingerprints and queue items.
Each scenario runs both ways over the same CRM and compares what a user would see."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from crm.choices import TrackIncomingEmail
from crm.models import EmailActivity, OrganizationSettings, QueueItem
from sync import batch_store, incoming, one_message, parsing
from sync.incoming import Source, store_message
from sync.models import EmailHash, Receipt, ReceiptOutcome
from tests import factories, messages
from tests.sync import auto_mail, real_world_mail

pytestmark = pytest.mark.django_db
RECEIVED = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
THREAD_INDEX = base64.b64encode(bytes(range(22)) + b"\x01\x02\x03\x04\x05").decode()


def thread_and_friends() -> list[bytes]:
    """Messages that lean on each other inside one batch."""
    return [
        messages.simple(sender="Carl <carl@example.org>", message_id="<root@example.org>", subject="Quote"),
        # A reply to the first, in the same batch, and a reply to that by References only.
        messages.simple(message_id="<r1@example.org>", in_reply_to="<root@example.org>", subject="RE: Quote"),
        messages.simple(
            message_id="<r2@example.org>",
            references="<root@example.org> <r1@example.org>",
            subject="RE: RE: Quote",
        ),
        # Outlook's conversation header twice: the second joins the first's conversation.
        messages.simple(message_id="<t1@example.org>", headers={"Thread-Index": THREAD_INDEX}),
        messages.simple(message_id="<t2@example.org>", headers={"Thread-Index": THREAD_INDEX}),
        # A tracking token the CRM sent (below), and the same token again.
        messages.simple(subject="RE: Offer CRM:0004711"),
        messages.simple(subject="RE: RE: Offer CRM:0004711"),
        # A Message-ID reused with other content, twice in the batch, and a genuine copy.
        real_world_mail.reusing_message_id(sender="a@lists.example.org", subject="One", body="first"),
        real_world_mail.reusing_message_id(sender="b@lists.example.org", subject="Two", body="second"),
        real_world_mail.reusing_message_id(sender="a@lists.example.org", subject="One", body="first"),
        # An auto-reply, a bounce of CRM email and serversync's own test message between the others.
        messages.simple(headers={"Auto-Submitted": "auto-replied"}, subject="Out of office"),
        auto_mail.delivery_status_notification(
            to="alice@example.test",
            original_message_id="sent-1@crm.example.test",
            failed_recipient="gone@example.org",
        ),
        messages.simple(headers={"X-Serversync-Test": "1"}),
        # A reply to CRM email, attachments, Cc parties the CRM knows.
        messages.simple(in_reply_to="<sent-1@crm.example.test>", subject="RE: Sent"),
        messages.simple(
            to="alice@example.test",
            headers={"Cc": "Bob <bob@example.test>, Carl <carl@example.org>"},
            attachments=[("report.pdf", b"%PDF-1.4 report"), ("big.bin", b"x" * 4096)],
        ),
        # Without Message-ID: known by its content.
        messages.without_message_id(body="no id"),
        # A message from a user to another.
        messages.simple(sender="Bob <bob@example.test>", subject="Between users"),
    ]


def crm_records(world) -> None:
    factories.contact(last_name="Carl", email="carl@example.org")
    factories.email(
        owner=world["alice"].crm_user,
        status="sent",
        message_id="sent-1@crm.example.test",
        message_identity="mid:sent-1@crm.example.test",
        regarding_account=world["alice"].account,
    )
    factories.email(
        owner=world["alice"].crm_user, tracking_token="CRM:0004711", regarding_lead=world["alice"].lead
    )


def sources(mailbox, raws: list[bytes]) -> list[Source]:
    return [Source(mailbox, "INBOX", f"7:{uid}", RECEIVED) for uid in range(1, len(raws) + 1)]


def one_at_a_time(mailbox, raws: list[bytes]) -> list[Receipt]:
    return [
        store_message(source=source, raw=raw, advance=lambda: None)
        for source, raw in zip(sources(mailbox, raws), raws, strict=True)
    ]


class OneByOne:
    """The one-message pipeline, counting the messages a batch hands to it."""

    def __init__(self) -> None:
        self.subjects: list[str] = []

    def __call__(self, item: batch_store.Pending) -> Receipt:
        self.subjects.append(item.parsed.subject)
        return incoming._one_by_one(item)


def as_a_batch(mailbox, raws: list[bytes], one_by_one: OneByOne | None = None) -> list[Receipt]:
    pending = [
        batch_store.Pending(source, raw, parsing.parse(raw))
        for source, raw in zip(sources(mailbox, raws), raws, strict=True)
    ]
    with transaction.atomic():
        return batch_store.store_batch(
            pending, parties=one_message.current_scope().parties, one_by_one=one_by_one or OneByOne()
        )


def what_a_user_sees(receipts: list[Receipt]) -> dict[str, object]:
    """Everything stored, by identities rather than keys (the two runs' keys differ)."""

    def identity(email: EmailActivity | None) -> str | None:
        return email.message_identity if email else None

    emails = EmailActivity.objects.filter(direction="incoming").order_by("message_identity")
    return {
        "receipts": [
            (r.folder, r.server_id, r.outcome, r.message_identity, r.content_fingerprint, identity(r.email))
            for r in receipts
        ],
        "stored receipts": sorted(
            (r.server_id, r.outcome, r.message_identity, identity(r.email)) for r in Receipt.objects.all()
        ),
        "activities": [
            (
                e.message_identity,
                e.subject,
                e.owner_id,
                e.correlation_method,
                identity(e.correlated_email),
                e.conversation_id,
                e.tracking_token,
                (e.regarding_account_id, e.regarding_contact_id, e.regarding_lead_id),
                e.received_on,
                e.raw_message.read() if e.raw_message else b"",
                # Records by kind and address: a contact made for a new sender gets another key each run.
                sorted(
                    (
                        p.role,
                        p.address,
                        p.display_name,
                        type(p.record).__name__,
                        getattr(p.record, "email", ""),
                    )
                    for p in e.parties.all()
                ),
                sorted(
                    (a.filename, a.size, a.content.read() if a.content else b"") for a in e.attachments.all()
                ),
                sorted((h.kind, h.value) for h in EmailHash.objects.filter(email=e)),
                sorted(QueueItem.objects.filter(email=e).values_list("queue_id", flat=True)),
            )
            for e in emails
        ],
    }


def both_ways(
    world, mailbox, raws: list[bytes], one_by_one: OneByOne | None = None
) -> tuple[dict[str, object], dict[str, object]]:
    """Store ``raws`` one at a time, look, undo; then as a batch, and look again."""
    with transaction.atomic():
        expected = what_a_user_sees(one_at_a_time(mailbox, raws))
        transaction.set_rollback(True)
    return expected, what_a_user_sees(as_a_batch(mailbox, raws, one_by_one))


@pytest.mark.parametrize("option", [TrackIncomingEmail.ALL, TrackIncomingEmail.RESPONSES_TO_CRM])
def test_a_batch_stores_what_one_message_at_a_time_stores(world, option):
    crm_records(world)
    alice = world["alice"]
    alice.crm_user.track_incoming_email = option
    alice.crm_user.save()

    one_by_one = OneByOne()
    expected, batched = both_ways(world, alice.mailbox, thread_and_friends(), one_by_one)

    assert batched == expected
    # Only the rare cases went one by one (not the whole batch, after a failed write):
    # the genuine copy, seen before, and the bounce.
    assert len(one_by_one.subjects) == 2, one_by_one.subjects
    outcomes = [receipt[2] for receipt in batched["receipts"]]  # type: ignore[index]
    assert ReceiptOutcome.AUTO_REPLY in outcomes
    assert ReceiptOutcome.BOUNCE in outcomes
    assert ReceiptOutcome.TEST_MESSAGE in outcomes
    if option == TrackIncomingEmail.ALL:
        methods = {activity[3] for activity in batched["activities"]}  # type: ignore[union-attr]
        assert {"in_reply_to", "tracking_token", "conversation_index", "none"} <= methods


def test_a_queues_batch_links_and_tracks_as_one_at_a_time(world):
    crm_records(world)
    # The first message is in the CRM already (another mailbox tracked it): the queue links to it.
    raws = thread_and_friends()
    world["alice"].crm_user.track_incoming_email = TrackIncomingEmail.ALL
    world["alice"].crm_user.save()
    store_message(
        source=Source(world["alice"].mailbox, "INBOX", "9:1", RECEIVED), raw=raws[0], advance=lambda: None
    )

    expected, batched = both_ways(world, world.queue_mailbox, raws)

    assert batched == expected
    assert batched["receipts"][0][2] == ReceiptOutcome.LINKED  # type: ignore[index]


def test_with_two_activities_between_users_and_new_contacts_as_one_at_a_time(world):
    """The cases a batch hands to the one-message pipeline, in their place."""
    crm_records(world)
    OrganizationSettings.objects.filter(pk=1).update(
        track_email_between_users_as_two_activities=True, smart_matching_enabled=True
    )
    alice = world["alice"]
    alice.crm_user.track_incoming_email = TrackIncomingEmail.ALL
    alice.crm_user.auto_create_contacts = True
    alice.crm_user.save()

    expected, batched = both_ways(world, alice.mailbox, thread_and_friends())

    assert batched == expected


def test_a_batch_the_database_refuses_is_stored_one_by_one(world):
    """A second mailbox stored one of the batch's messages after the batch read
    what was known: its INSERT fails, and each message goes one by one (linking)."""
    for persona in ("alice", "bob"):
        world[persona].crm_user.track_incoming_email = TrackIncomingEmail.ALL
        world[persona].crm_user.save()
    alice = world["alice"]
    raws = [messages.simple(message_id=f"<m{n}@example.org>") for n in range(3)]
    pending = [
        batch_store.Pending(source, raw, parsing.parse(raw))
        for source, raw in zip(sources(alice.mailbox, raws), raws, strict=True)
    ]
    parties = one_message.current_scope().parties
    known = batch_store._Known.read(pending, parties)
    store_message(
        source=Source(world["bob"].mailbox, "INBOX", "1:1", RECEIVED), raw=raws[1], advance=lambda: None
    )
    batch = batch_store._Batch(known, parties)
    assert batch.take_while(pending) == 3

    with transaction.atomic():
        receipts = batch.write(incoming._one_by_one)

    assert [r.outcome for r in receipts] == ["tracked", "linked", "tracked"]
    assert EmailActivity.objects.filter(direction="incoming").count() == 3


def test_a_batch_costs_a_few_statements_whatever_its_size(world):
    alice = world["alice"]
    alice.crm_user.track_incoming_email = TrackIncomingEmail.ALL
    alice.crm_user.save()
    raws = [
        messages.simple(sender=f"Customer {n} <c{n}@example.org>", headers={"Cc": "bob@example.test"})
        for n in range(20)
    ]

    with CaptureQueriesContext(connection) as context:
        receipts = as_a_batch(alice.mailbox, raws)

    assert [r.outcome for r in receipts] == ["tracked"] * 20
    # The organization, the parties, receipts and activities known, the savepoint, the
    # activities' keys, then one INSERT each for activities, parties, fingerprints and
    # receipts, and the savepoints around the batch and the write.
    assert len(context.captured_queries) <= 14, [q["sql"][:60] for q in context.captured_queries]
