"""Outgoing mail on the wire: realistic CRM email through ``send_pending``, the
strict test relay (bare CR / LF and lines over 1000 octets refused, as Postfix
with ``smtpd_forbid_bare_newline``) and LMTP into the recipient's Dovecot, read
back over IMAP. What arrives is, byte for byte, the ``raw_message`` stored,
below the trace headers delivery puts on top."""

from __future__ import annotations

import hashlib
import random
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from crm.models import EmailActivity, EmailAttachment, OrganizationSettings
from crm.services import email_create
from mailboxes.models import Mailbox
from sync import clock, outgoing, parsing, tracking
from sync.connectors.smtp import SmtpConnection
from sync.errors import MessageError
from sync.incoming import sync_incoming
from sync.models import EmailHash, TrackingTokenSequence
from tests.sync.stack import Stack

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

# What Dovecot's LMTP delivery writes above the message (tests/harness/dovecot.py).
TRACE_HEADERS = (b"return-path", b"delivered-to", b"received")
SUBJECT = "Angebot für Ihr Büro \N{EN DASH} Größe XL, Lieferung März"


def crm_email(
    sender: Mailbox,
    *,
    subject: str = SUBJECT,
    text: str = "Guten Tag,\n\nanbei unser Angebot.\n",
    html: str = "",
    to: tuple[tuple[str, Mailbox], ...] = (),
    cc: tuple[tuple[str, Mailbox], ...] = (),
    bcc: tuple[Mailbox, ...] = (),
    attachments: tuple[tuple[str, str, bytes], ...] = (),
    reply_to: EmailActivity | None = None,
) -> EmailActivity:
    """A pending CRM email as the CRM writes one: recipients with display names
    ((name, mailbox) pairs) and stored attachments (filename, type, data)."""
    email = email_create(
        owner=sender.user,
        subject=subject,
        body_text=text,
        body_html=html,
        status=EmailActivity.Status.PENDING_SEND,
        to=[m.email_address for _, m in to],
        cc=[m.email_address for _, m in cc],
        bcc=[m.email_address for m in bcc],
        reply_to=reply_to,
    )
    for name, mailbox in (*to, *cc):
        email.parties.filter(address=mailbox.email_address).update(display_name=name)
    for filename, content_type, data in attachments:
        attachment = EmailAttachment(
            email=email, filename=filename, content_type=content_type, size=len(data)
        )
        attachment.content.save("attachment", ContentFile(data))
    return email


def named(stack: Stack, name: str, full_name: str) -> Mailbox:
    """A user's mailbox whose CRM user has a name with non-ASCII letters."""
    mailbox = stack.user_mailbox(name)
    assert mailbox.user is not None
    mailbox.user.full_name = full_name
    mailbox.user.save()
    return mailbox


def delivered(stack: Stack, mailbox: Mailbox) -> list[bytes]:
    """Every message in the mailbox's INBOX, as IMAP returns it (BODY[])."""
    with stack.imap(mailbox) as client:
        client.select_folder("INBOX", readonly=True)
        fetched = client.fetch(client.search("ALL"), ["BODY.PEEK[]"])
    return [data[b"BODY[]"] for _, data in sorted(fetched.items())]


def without_trace_headers(message: bytes) -> bytes:
    """The message less the Return-Path, Delivered-To and Received fields (with
    their continuation lines) that delivery put on top of it."""
    offset = 0
    while message[offset:].split(b":", 1)[0].strip().lower() in TRACE_HEADERS:
        offset = message.index(b"\r\n", offset) + 2
        while message[offset : offset + 1] in (b" ", b"\t"):
            offset = message.index(b"\r\n", offset) + 2
    return message[offset:]


def stored(email: EmailActivity) -> bytes:
    email.refresh_from_db()
    with email.raw_message.open("rb") as raw:
        return raw.read()


def send_and_read_back(stack: Stack, sender: Mailbox, email: EmailActivity, recipient: Mailbox) -> bytes:
    """Send the sender's pending mail; the stored raw message, once it is proven
    to be exactly what reached the recipient's INBOX."""
    run = outgoing.send_pending(mailbox=sender)
    email.refresh_from_db()
    assert (run.sent, email.status, email.failure_reason) == (1, "sent", ""), run.error_text
    assert stack.relay.accepted_count(email.message_id) == 1
    raw = stored(email)
    (received,) = delivered(stack, recipient)
    assert without_trace_headers(received) == raw
    return raw


def lines_of(raw: bytes) -> list[bytes]:
    assert raw.endswith(b"\r\n")
    return raw[:-2].split(b"\r\n")


def parsed(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_and_html(message: EmailMessage) -> tuple[str, str]:
    """The text and HTML bodies decoded, line ends as LF (base64 text keeps the
    CRLF of MIME's canonical form, quoted-printable does not)."""

    def decoded(subtype: str) -> str:
        part = message.get_body((subtype,))
        return str(part.get_content()).replace("\r\n", "\n") if part is not None else ""

    return decoded("plain"), decoded("html")


def attachments_of(message: EmailMessage) -> list[tuple[str, str, bytes]]:
    """(filename, Content-Type with its parameters, decoded bytes) of each attachment."""
    return [
        (a.get_filename() or "", str(a["Content-Type"]), a.get_payload(decode=True))
        for a in message.iter_attachments()
    ]


def never_parsed(raw: bytes) -> parsing.ParsedMessage:
    """Stands in for parsing.parse while sending: the engine knows what it wrote."""
    raise AssertionError("the message just sent was parsed again")


# --- realistic CRM email ----------------------------------------------------------------------------


def quote_text(rng: random.Random, paragraphs: int) -> str:
    words = ["Angebot", "Lieferung", "Preis", "Rabatt", "Büro", "Stühle", "Größe", "Qualität", "Ihr"]
    lines = ["Sehr geehrte Frau Ångström,", "", "vielen Dank für Ihre Anfrage."]
    for number in range(paragraphs):
        lines += ["", " ".join(rng.choice(words) for _ in range(60))]  # one line per paragraph
        lines += [f". Position {number}: {rng.randint(1, 99)} Stück", "...und so weiter."]
    return "\n".join([*lines, "", "Mit freundlichen Grüßen", "Jürgen Müller-Lüdenscheidt", ""])


def quote_html(text: str) -> str:
    rows = "".join(
        f"<tr><td>{n}</td><td>{line}</td><td>€ {n * 17},00</td></tr>"
        for n, line in enumerate(text.split("\n"))
    )
    return f'<html><body><p style="font-family:Arial">Angebot</p><table>{rows}</table></body></html>\n'


def test_a_50_kb_crm_email_with_html_and_an_attachment_arrives_byte_for_byte(stack):
    juergen = named(stack, "juergen", "Jürgen Müller-Lüdenscheidt")
    zoe, bjoern, carla = stack.user_mailbox("zoe"), stack.user_mailbox("bjoern"), stack.user_mailbox("carla")
    rng = random.Random(11)
    text = quote_text(rng, 40)
    pdf = b"%PDF-1.7\r\n" + rng.randbytes(12_000) + b"\r\n%%EOF\r\n"
    email = crm_email(
        juergen,
        text=text,
        html=quote_html(text),
        to=(("Zoë Ångström", zoe),),
        cc=(('Bjørn "BJ" Øster, Einkauf', bjoern),),
        bcc=(carla,),
        attachments=(("Angebot_2026-117_Übersicht.pdf", "application/pdf", pdf),),
    )

    raw = send_and_read_back(stack, juergen, email, zoe)

    assert len(raw) > 50_000
    assert max(map(len, lines_of(raw))) <= 998  # RFC 5322 2.1.1
    received = parsed(raw)
    assert received["Subject"] == f"{SUBJECT} {email.tracking_token}"
    assert received["From"].addresses[0].display_name == "Jürgen Müller-Lüdenscheidt"
    assert received["To"].addresses[0].display_name == "Zoë Ångström"
    assert received["Cc"].addresses[0].display_name == 'Bjørn "BJ" Øster, Einkauf'
    assert "Bcc" not in received
    assert text_and_html(received) == (text, quote_html(text))
    assert attachments_of(received) == [("Angebot_2026-117_Übersicht.pdf", "application/pdf", pdf)]
    # The Bcc recipient got the very same bytes, with no trace of the other envelope.
    assert [without_trace_headers(m) for m in delivered(stack, carla)] == [raw]


def test_a_line_longer_than_1000_characters_arrives_whole(stack):
    alice, bob = stack.user_mailbox("alice"), stack.user_mailbox("bob")
    long_line = " ".join(f"Position-{n}" for n in range(150))  # 1,600 characters
    text = f"Die Liste:\n{long_line}\nEnde.\n"
    html = f"<html><body><p>{'<b>lang</b> ' * 600}</p></body></html>\n"  # 7,200 characters on one line
    email = crm_email(alice, text=text, html=html, to=(("Bob", bob),))

    raw = send_and_read_back(stack, alice, email, bob)

    assert max(map(len, lines_of(raw))) <= 998
    assert text_and_html(parsed(raw)) == (text, html)


def test_lines_starting_with_a_dot_arrive_as_written(stack):
    alice, bob = stack.user_mailbox("alice"), stack.user_mailbox("bob")
    text = "Agenda:\n.\n..\n.hidden\n..double\n. spaced\nnormal\n.\n"
    html = "<p>Agenda</p>\n.\n.<i>x</i>\n"
    email = crm_email(alice, subject="Agenda", text=text, html=html, to=(("Bob", bob),))

    raw = send_and_read_back(stack, alice, email, bob)

    # A line holding only a dot would end the data early without dot-stuffing.
    assert b"\r\n.\r\n" in raw
    assert text_and_html(parsed(raw)) == (text, html)


def test_binary_attachments_arrive_bit_for_bit(stack):
    alice, bob = stack.user_mailbox("alice"), stack.user_mailbox("bob")
    rng = random.Random(5)
    binary = bytes(range(256)) * 32 + b"\r\n.\r\n\n.\n\r\r\n\x00\x00" + rng.randbytes(20_000)
    # LF line ends inside the attachments themselves are their content, not the message's.
    forwarded = b"From: someone@example.org\nSubject: Fwd\n\nan attached message\n.\n"
    csv = "Menge;Preis\n3;€ 12,50\n".encode()
    email = crm_email(
        alice,
        subject="Unterlagen",
        to=(("Bob", bob),),
        attachments=(
            ("daten.bin", "application/octet-stream", binary),
            ("weitergeleitet.eml", "message/rfc822", forwarded),
            ("preise.csv", "text/csv; charset=utf-8", csv),
            ("ohne-typ", "", b"\x89PNG\r\n\x1a\n"),
        ),
    )

    raw = send_and_read_back(stack, alice, email, bob)

    assert attachments_of(parsed(raw)) == [
        ("daten.bin", "application/octet-stream", binary),
        # The email package writes a message/* payload as it is (bare LF): sent as opaque bytes.
        ("weitergeleitet.eml", "application/octet-stream", forwarded),
        ("preise.csv", 'text/csv; charset="utf-8"', csv),
        ("ohne-typ", "application/octet-stream", b"\x89PNG\r\n\x1a\n"),
    ]


def test_a_reply_keeps_its_conversation_and_fingerprints_without_parsing_what_was_sent(stack, monkeypatch):
    alice, carl = stack.user_mailbox("alice"), stack.user_mailbox("carl")
    question = (
        f"From: Carl <{carl.email_address}>\r\nTo: {alice.email_address}\r\nSubject: Frage zum Büro\r\n"
        "Message-ID: <q-7@example.org>\r\nReferences: <root-7@example.org>\r\n"
        "Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\nWie teuer?\r\n"
    ).encode()
    stack.deliver(alice, question)
    sync_incoming(mailbox=alice)
    parent = EmailActivity.objects.get(message_id="q-7@example.org")
    email = crm_email(
        alice,
        subject="AW: Frage zum Büro",
        to=(("Carl Groß", carl),),
        cc=(("Alice", alice),),
        reply_to=parent,
    )

    with monkeypatch.context() as patch:
        patch.setattr(parsing, "parse", never_parsed)
        raw = send_and_read_back(stack, alice, email, carl)

    # What correlation stored equals what parsing the sent bytes gives.
    facts, organization = parsing.parse(raw), OrganizationSettings.load()
    email.refresh_from_db()
    assert email.conversation_id == tracking.conversation_of(facts, parent) == "root:root-7@example.org"
    expected = {(EmailHash.Kind.SUBJECT, w) for w in tracking.subject_keywords(facts.subject, organization)}
    expected |= {(EmailHash.Kind.RECIPIENT, a) for a in tracking.recipient_addresses(facts, organization)}
    digests = {(kind, hashlib.sha256(value.encode()).hexdigest()) for kind, value in expected}
    assert set(EmailHash.objects.filter(email=email).values_list("kind", "value")) == digests
    assert (facts.in_reply_to, facts.references) == (
        ["q-7@example.org"],
        ["root-7@example.org", "q-7@example.org"],
    )


# --- what the engine and the connector refuse --------------------------------------------------------


def test_an_address_that_needs_utf8_is_written_in_utf8_headers(stack):
    alice = stack.user_mailbox("alice")
    email = crm_email(alice, subject="Grüße", to=(("Jörg", stack.user_mailbox("bob")),))
    email.parties.filter(role="to").update(address="jörg@bücher.example")
    EmailActivity.objects.filter(pk=email.pk).update(message_id="utf8-1@example.test")

    message = outgoing.build_message(email=EmailActivity.objects.get(pk=email.pk), mailbox=alice)

    assert message.recipients == ["jörg@bücher.example"]
    assert "To: Jörg <jörg@bücher.example>\r\n".encode() in message.raw  # RFC 6532, not encoded words
    assert b"\n" not in message.raw.replace(b"\r\n", b"")


def test_an_email_whose_attachment_is_gone_fails_and_the_next_one_is_sent(stack):
    alice, bob = stack.user_mailbox("alice"), stack.user_mailbox("bob")
    broken = crm_email(
        alice, subject="Broken", to=(("Bob", bob),), attachments=(("a.pdf", "application/pdf", b"%PDF"),)
    )
    attachment = broken.attachments.get()
    attachment.content.storage.delete(attachment.content.name)
    fine = crm_email(alice, subject="Fine", to=(("Bob", bob),))

    run = outgoing.send_pending(mailbox=alice)

    broken.refresh_from_db()
    assert (run.sent, run.failed, broken.status) == (1, 1, "failed")
    assert "'a.pdf' is missing" in broken.failure_reason
    fine.refresh_from_db()
    assert fine.status == "sent"
    assert [
        parsed(without_trace_headers(m))["Subject"].startswith("Fine") for m in delivered(stack, bob)
    ] == [True]


def test_the_connector_refuses_bare_line_ends_and_long_lines_before_mail_from(smtp_relay, mail_user):
    sender, recipient = mail_user("sender"), mail_user("rcpt")
    settings = smtp_relay.server_settings(username=sender.address, password=sender.password)
    head = f"From: {sender.address}\r\nTo: {recipient.address}\r\nSubject: x\r\n\r\n".encode()
    before = len(smtp_relay.transactions())

    with SmtpConnection(settings) as smtp:
        for body, code in (
            (b"line\nline\r\n", "bare_line_ending"),
            (b"line\rline\r\n", "bare_line_ending"),
            (b"x" * 999 + b"\r\n", "line_too_long"),
        ):
            with pytest.raises(MessageError) as refused:
                smtp.send(head + body, mail_from=sender.address, rcpt_to=[recipient.address])
            assert refused.value.code == code
        assert len(smtp_relay.transactions()) == before  # nothing reached the server
        # 998 characters and CRLF is the longest line there may be; the connection still works.
        smtp.send(head + b"x" * 998 + b"\r\n", mail_from=sender.address, rcpt_to=[recipient.address])

    assert [t.reply for t in smtp_relay.transactions()[before:]] == ["250 OK"]


# --- queries ---------------------------------------------------------------------------------------------


# One email to three recipients (To, Cc, Bcc), the user's second. The run takes
# 10: its record, the batch of emails (with their claims and the emails they
# answer), their parties, their attachments, the organization settings, and at
# the end the run, the mailbox, its alerts and the profile's outage (2). Each
# email 11: its tracking number (1, an upsert), the claim (email and claim row),
# the sent state, fingerprints and dropping the claim (3) with the commit that
# need not wait for the disk (1), in two transactions (whose savepoints are 4
# statements here, inside the test's transaction). Before: 31, and 24 for each
# further email (16 statements and 8 savepoint ones), and a parse of every
# message just sent; then 22 and 12 (the tracking number in two statements).
QUERIES_FOR_ONE_EMAIL = 21
QUERIES_PER_FURTHER_EMAIL = 11


def loaded(mailbox: Mailbox) -> Mailbox:
    """The mailbox as the outgoing task gets it (sync.scheduler.run_claimed)."""
    return Mailbox.objects.select_related("profile", "user", "queue").get(pk=mailbox.pk)


def test_sending_one_email_to_three_recipients_takes_a_fixed_number_of_queries(stack, monkeypatch):
    alice = stack.user_mailbox("alice")
    bob, carl, dora = stack.user_mailbox("bob"), stack.user_mailbox("carl"), stack.user_mailbox("dora")

    def three(subject: str) -> EmailActivity:
        return crm_email(alice, subject=subject, to=(("Bob", bob),), cc=(("Carl", carl),), bcc=(dora,))

    three("First")
    outgoing.send_pending(mailbox=alice)  # the user's tracking counter exists from here on
    three("Second")
    monkeypatch.setattr(parsing, "parse", never_parsed)

    mailbox = loaded(alice)
    with CaptureQueriesContext(connection) as one:
        assert outgoing.send_pending(mailbox=mailbox).sent == 1
    three("Third")
    three("Fourth")
    mailbox = loaded(alice)
    with CaptureQueriesContext(connection) as two:
        assert outgoing.send_pending(mailbox=mailbox).sent == 2

    assert len(one) <= QUERIES_FOR_ONE_EMAIL, "\n".join(q["sql"][:120] for q in one.captured_queries)
    assert len(two) - len(one) <= QUERIES_PER_FURTHER_EMAIL, "\n".join(
        q["sql"][:120] for q in two.captured_queries
    )
    assert [len(delivered(stack, m)) for m in (bob, carl, dora)] == [4, 4, 4]


def test_an_email_changed_after_it_was_listed_is_not_claimed_and_takes_no_tracking_number(stack):
    alice, bob = stack.user_mailbox("alice"), stack.user_mailbox("bob")
    email = crm_email(alice, subject="Listed", to=(("Bob", bob),))
    (listed,) = outgoing.pending_for(alice)
    EmailActivity.objects.filter(pk=email.pk).update(subject="Edited", modified_on=clock.now())
    organization = OrganizationSettings.load()

    assert outgoing.claim_email(email=listed, mailbox=alice, organization=organization) is None

    email.refresh_from_db()
    assert (email.status, email.message_id, email.tracking_token) == ("pending_send", "", "")
    assert not TrackingTokenSequence.objects.exists()  # the number it took was given back
    run = outgoing.send_pending(mailbox=alice)  # the next run sends what the email says now
    email.refresh_from_db()
    assert (run.sent, email.subject) == (1, "Edited")
    assert email.tracking_token.startswith("CRM:0")
    assert TrackingTokenSequence.objects.get().next_value == 2  # one number taken in all
