"""Real-world mail through the incoming pipeline (issue 11, section 2): every
message a mailbox processes leaves a record a user can find, nothing is
silently merged, nothing stalls the mailbox, and the run's counters say what
happened in that run."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from django.db import connection

from crm.choices import TrackIncomingEmail
from crm.models import EmailActivity
from mailboxes.models import FolderScope
from sync import parsing, scheduler
from sync.incoming import Source, store_message, sync_incoming
from sync.models import QuarantinedMessage, Receipt, ReceiptOutcome
from sync.one_message import quarantine
from tests import messages
from tests.sync import real_world_mail

pytestmark = pytest.mark.django_db
RECEIVED = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


@pytest.fixture
def world(world):
    """The shared world, with Alice and Bob tracking all their email."""
    for persona in ("alice", "bob"):
        world[persona].crm_user.track_incoming_email = TrackIncomingEmail.ALL
        world[persona].crm_user.save()
    world["alice"].mailbox.user.refresh_from_db()
    world["bob"].mailbox.user.refresh_from_db()
    return world


def store(mailbox, raw: bytes, uid: int = 1, folder: str = "INBOX") -> Receipt:
    return store_message(source=Source(mailbox, folder, f"7:{uid}", RECEIVED), raw=raw, advance=lambda: None)


def incoming() -> list[EmailActivity]:
    """The activities incoming mail created (the shared world holds none)."""
    return list(
        EmailActivity.objects.filter(direction="incoming", receipts__isnull=False).distinct().order_by("pk")
    )


# --- different messages sharing one Message-ID ----------------------------------------------------


def test_different_messages_sharing_a_message_id_are_two_activities_with_their_own_receipts(world):
    mailbox = world["alice"].mailbox
    first = store(
        mailbox, real_world_mail.reusing_message_id(sender="a@example.org", subject="Q1", body="one"), uid=1
    )
    second = store(
        mailbox, real_world_mail.reusing_message_id(sender="b@example.org", subject="Q2", body="two"), uid=2
    )

    assert first.pk != second.pk
    assert first.email_id != second.email_id
    assert [(e.subject, e.body_text.strip()) for e in incoming()] == [("Q1", "one"), ("Q2", "two")]
    # The first receipt still says where the first message is; it was not moved.
    assert (Receipt.objects.get(pk=first.pk).server_id, Receipt.objects.get(pk=first.pk).subject) == (
        "7:1",
        "Q1",
    )
    shared = Receipt.objects.filter(mailbox=mailbox, message_id=real_world_mail.SHARED_MESSAGE_ID.strip("<>"))
    assert {(r.server_id, r.subject) for r in shared} == {("7:1", "Q1"), ("7:2", "Q2")}


@pytest.mark.parametrize(
    "changed",
    [
        {"sender": "other@example.org"},
        {"subject": "Another subject"},
        {"body": "Another body"},
        {"date": "Wed, 25 Nov 2026 10:00:00 +0000"},
    ],
)
def test_any_material_difference_makes_another_message(world, changed):
    base = {"sender": "a@example.org", "subject": "Same", "body": "same body"}
    store(world["alice"].mailbox, real_world_mail.reusing_message_id(**base), uid=1)
    store(world["alice"].mailbox, real_world_mail.reusing_message_id(**(base | changed)), uid=2)
    assert len(incoming()) == 2


def test_the_second_message_is_the_same_activity_in_every_mailbox_that_receives_it(world):
    one = real_world_mail.reusing_message_id(sender="a@example.org", subject="Q1", body="one")
    two = real_world_mail.reusing_message_id(sender="b@example.org", subject="Q2", body="two")
    store(world["alice"].mailbox, one, uid=1)
    alices = store(world["alice"].mailbox, two, uid=2)
    bobs_two = store(world["bob"].mailbox, two, uid=1)
    bobs_one = store(world["bob"].mailbox, one, uid=2)
    assert (bobs_two.outcome, bobs_two.email_id) == (ReceiptOutcome.LINKED, alices.email_id)
    assert bobs_one.outcome == ReceiptOutcome.LINKED
    assert len(incoming()) == 2


def test_genuine_copies_still_link_to_one_activity(world):
    raw = messages.simple(subject="Filed twice")
    transported = raw.replace(b"\n", b"\r\n")  # another copy, as IMAP serves it
    first = store(world["alice"].mailbox, raw, uid=1, folder="INBOX")
    copy = store(world["alice"].mailbox, transported, uid=5, folder="INBOX/Customers")
    assert len(incoming()) == 1
    assert copy.pk == first.pk
    assert (copy.folder, copy.server_id) == ("INBOX/Customers", "7:5")


# --- the fallback identity ---------------------------------------------------------------------------


def test_the_fallback_identity_ignores_line_endings_and_trailing_line_ends():
    raw = messages.without_message_id(body="no id").rstrip(b"\n")
    variants = [raw, raw + b"\n", raw.replace(b"\n", b"\r\n") + b"\r\n", raw.replace(b"\n", b"\r\n")]
    assert len({parsing.identity_for("", variant) for variant in variants}) == 1
    assert parsing.identity_for("", raw) != parsing.identity_for("", raw + b"\nmore")


def test_one_message_without_message_id_delivered_and_appended_is_one_activity(stack):
    alice = stack.user_mailbox("alice", folders=FolderScope.INBOX_AND_SUBFOLDERS)
    raw = messages.without_message_id(body="Delivered and uploaded").rstrip(b"\n")
    stack.deliver(alice, raw)  # LMTP: CRLF line ends and a final CRLF
    stack.dovecot.create_folder(alice.email_address, "INBOX/Archive")
    with stack.imap(alice) as client:
        client.append("INBOX/Archive", raw)  # as uploaded: LF, no final line end
    run = sync_incoming(mailbox=alice)
    assert (run.outcome, run.received, run.tracked, run.linked) == ("success", 2, 1, 1), run.error_text
    assert len(incoming()) == 1


# --- mailing lists and robots ------------------------------------------------------------------------


@pytest.mark.parametrize("precedence", ["bulk", "list"])
def test_a_mailing_list_post_follows_the_tracking_option(world, precedence):
    receipt = store(world["alice"].mailbox, real_world_mail.list_post(precedence=precedence))
    assert receipt.outcome == ReceiptOutcome.TRACKED
    world["alice"].crm_user.track_incoming_email = TrackIncomingEmail.FROM_CRM_RECORDS
    world["alice"].crm_user.save()
    other = store(world["alice"].mailbox, real_world_mail.list_post(subject="Another post"), uid=2)
    assert other.outcome == ReceiptOutcome.SENDER_NOT_CRM


def test_a_read_receipt_is_automatic(world):
    receipt = store(world["alice"].mailbox, real_world_mail.read_receipt())
    assert (receipt.outcome, receipt.email) == (ReceiptOutcome.AUTO_REPLY, None)


# --- thousands of headers ---------------------------------------------------------------------------


def test_parsing_time_grows_linearly_with_the_header_count(settings):
    settings.SYNC_MAX_HEADER_COUNT = 100_000

    def seconds(count: int) -> float:
        raw = real_world_mail.many_headers(count)
        started = time.process_time()
        parsing.parse(raw)
        return time.process_time() - started

    seconds(100)  # warm up the email package
    # Quadratic parsing took about 2 s for 2,000 headers and 8 s for 4,000; linear, well under one.
    assert seconds(4000) < 1.0


def test_a_message_with_thousands_of_headers_is_quarantined_at_once(world, settings):
    settings.SYNC_MAX_HEADER_COUNT = 1000
    raw = real_world_mail.many_headers(8000)
    receipt = store(world["alice"].mailbox, raw)
    held = receipt.quarantined
    assert (receipt.outcome, held.error_code) == (ReceiptOutcome.QUARANTINED, "too_many_headers")
    assert "8,005 header fields" in held.error_text
    assert held.raw.read() == raw
    assert store(world["alice"].mailbox, real_world_mail.many_headers(900), uid=2).outcome == "tracked"


def test_a_header_block_over_the_size_limit_is_quarantined(world, settings):
    settings.SYNC_MAX_HEADER_BYTES = 16 * 1024
    raw = messages.simple(headers={"X-Long": "x" * 20_000})
    assert store(world["alice"].mailbox, raw).quarantined.error_code == "headers_too_large"


# --- bytes PostgreSQL refuses -----------------------------------------------------------------------


def test_nul_bytes_are_replaced_in_stored_fields_and_kept_in_the_raw_message(world):
    raw = real_world_mail.with_nul_bytes()
    receipt = store(world["alice"].mailbox, raw)
    email = receipt.email
    assert receipt.outcome == ReceiptOutcome.TRACKED
    assert email.subject == "Invoice\ufffd 7"
    assert email.body_text.strip() == "Amount\ufffd due: 100 EUR"
    assert email.parties.get(role="from").display_name == "Nul\ufffdName"
    assert email.raw_message.read() == raw


# --- the time limit per message -----------------------------------------------------------------------


def test_a_message_over_the_time_limit_is_quarantined_and_the_next_one_stored(world, settings):
    settings.SYNC_MESSAGE_MAX_SECONDS = 1e-6
    before = EmailActivity.objects.count()
    slow = store(world["alice"].mailbox, messages.simple(subject="Too slow"), uid=1)
    held = slow.quarantined
    assert (slow.outcome, held.error_code) == (ReceiptOutcome.QUARANTINED, "too_slow")
    assert "SYNC_MESSAGE_MAX_SECONDS" in held.error_text
    assert EmailActivity.objects.count() == before  # nothing half-stored
    settings.SYNC_MESSAGE_MAX_SECONDS = 60
    assert store(world["alice"].mailbox, messages.simple(subject="Fine"), uid=2).outcome == "tracked"


def test_a_run_never_outlives_its_lease(settings):
    settings.SYNC_LEASE_SECONDS, settings.SYNC_RUN_MAX_SECONDS, settings.SYNC_MESSAGE_MAX_SECONDS = (
        60,
        300,
        90,
    )
    assert scheduler._lease_length().total_seconds() >= 300 + 90


# --- one mailbox holding every case --------------------------------------------------------------------


def test_a_mailbox_holding_every_case_syncs_with_every_message_accounted_for(stack, settings):
    settings.SYNC_MAX_HEADER_COUNT = 1000
    alice = stack.user_mailbox("alice", folders=FolderScope.INBOX_AND_SUBFOLDERS)
    shared_a = real_world_mail.reusing_message_id(sender="a@example.org", subject="Q1", body="one")
    shared_b = real_world_mail.reusing_message_id(sender="b@example.org", subject="Q2", body="two")
    copy = messages.simple(to=alice.email_address, subject="Filed in two folders")
    no_id = messages.without_message_id(body="Delivered and uploaded").rstrip(b"\n")
    for raw in (
        shared_a,
        shared_b,
        copy,
        copy,  # delivered twice
        no_id,
        real_world_mail.list_post(),
        real_world_mail.read_receipt(),
        real_world_mail.many_headers(8000),
        real_world_mail.with_nul_bytes(),
    ):
        stack.deliver(alice, raw)
    stack.dovecot.create_folder(alice.email_address, "INBOX/Customers")
    with stack.imap(alice) as client:
        client.append("INBOX/Customers", copy)
        client.append("INBOX/Customers", no_id)

    run = sync_incoming(mailbox=alice)

    created = EmailActivity.objects.filter(direction="incoming").count()
    # Q1, Q2, the copied message, the one without an id, the list post and the NUL message.
    assert created == 6
    assert (run.outcome, run.received) == ("success", 11), run.error_text
    assert (run.tracked, run.linked, run.not_tracked, run.quarantined) == (created, 3, 1, 1)
    receipts = Receipt.objects.filter(mailbox=alice)
    # Every distinct message has a receipt naming its folder and server id.
    assert receipts.count() == 8
    assert all(r.folder and r.server_id for r in receipts)
    assert {r.outcome for r in receipts} == {"tracked", "auto_reply", "quarantined"}
    alice.refresh_from_db()
    assert (alice.incoming_status, alice.items_processed_last_sync) == ("success", 11)

    again = sync_incoming(mailbox=alice)
    assert (again.received, EmailActivity.objects.filter(direction="incoming").count()) == (0, created)


@pytest.mark.django_db(transaction=True)
def test_a_statement_running_past_the_time_limit_quarantines_its_message_only(stack, settings):
    """A real slow statement (a PostgreSQL trigger sleeping on one message's receipt)
    is cancelled by statement_timeout; that message is quarantined, the rest stored."""
    settings.SYNC_MESSAGE_MAX_SECONDS = 1
    alice = stack.user_mailbox("alice")
    for subject in ("Before", "Slow", "After"):
        stack.deliver(alice, messages.simple(to=alice.email_address, subject=subject))
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION test_slow_receipt() RETURNS trigger AS $$ BEGIN "
            "IF NEW.subject = 'Slow' THEN PERFORM pg_sleep(5); END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
        )
        cursor.execute(
            "CREATE TRIGGER test_slow_receipt BEFORE INSERT ON sync_receipt "
            "FOR EACH ROW EXECUTE FUNCTION test_slow_receipt()"
        )
    try:
        started = time.monotonic()
        run = sync_incoming(mailbox=alice)
        elapsed = time.monotonic() - started
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER test_slow_receipt ON sync_receipt")
            cursor.execute("DROP FUNCTION test_slow_receipt()")

    assert (run.outcome, run.received, run.tracked, run.quarantined) == ("success", 3, 2, 1), run.error_text
    assert sorted(e.subject for e in incoming()) == ["After", "Before"]
    (held,) = QuarantinedMessage.objects.filter(mailbox=alice)
    assert held.error_code == "too_slow"
    assert elapsed < 5  # cancelled at the limit, not waited out


def test_a_very_long_message_id_reused_with_other_content_still_fits(world):
    long_id = "<" + "x" * 475 + "@lists.example.org>"  # "mid:" and 493 characters: 497
    first = real_world_mail.reusing_message_id(sender="a@example.org", subject="Q1", body="one")
    second = real_world_mail.reusing_message_id(sender="b@example.org", subject="Q2", body="two")
    shared = real_world_mail.SHARED_MESSAGE_ID.encode()
    store(world["alice"].mailbox, first.replace(shared, long_id.encode()), uid=1)
    receipt = store(world["alice"].mailbox, second.replace(shared, long_id.encode()), uid=2)
    assert len(receipt.message_identity) <= 512
    assert len(incoming()) == 2


def test_a_message_too_large_to_download_in_a_deep_folder_is_quarantined(world):
    folder = "INBOX/" + "/".join(["Kunden und Interessenten"] * 19)  # 480 characters
    uidl = "u" * 70  # the longest UIDL RFC 1939 allows
    source = Source(world["alice"].mailbox, folder, uidl, RECEIVED)
    error = parsing.MessageError("The message is 60,000,000 bytes, over the limit.", code="too_large")
    receipt = quarantine(source=source, raw=None, error=error, advance=lambda: None)
    assert (receipt.outcome, receipt.folder) == ("quarantined", folder)
    assert receipt.quarantined.error_code == "too_large"
