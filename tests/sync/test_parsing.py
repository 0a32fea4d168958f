from __future__ import annotations

import pytest

from sync import parsing
from sync.errors import MessageError
from tests import messages


def test_identity_is_the_normalized_message_id():
    raw = messages.simple(message_id="<Part.One@EXAMPLE.Org>")
    parsed = parsing.parse(raw)
    assert parsed.message_id == "Part.One@example.org"
    assert parsed.identity == "mid:Part.One@example.org"


def test_without_message_id_the_whole_message_is_hashed_less_delivery_headers():
    first = messages.without_message_id(body="first body")
    second = messages.without_message_id(body="second body")
    assert parsing.parse(first).identity != parsing.parse(second).identity
    delivered = b"Received: from mx.example.org by imap\r\nDelivered-To: alice@example.test\r\n" + first
    assert parsing.parse(delivered).identity == parsing.parse(first).identity
    assert parsing.parse(first).identity.startswith("sha256:")


def test_long_message_ids_are_hashed_to_fit():
    parsed = parsing.parse(messages.simple(message_id=f"<{'x' * 700}@example.org>"))
    assert parsed.identity.startswith("midhash:")
    assert len(parsed.identity) < 100


def test_reply_headers_and_parties():
    raw = messages.simple(
        sender='"Carl Customer" <carl@example.org>',
        to="alice@example.test, Bob <bob@example.test>",
        in_reply_to="<a@crm.example.test>",
        references="<root@crm.example.test> <a@crm.example.test>",
    )
    parsed = parsing.parse(raw)
    assert parsed.sender == parsing.Address("carl@example.org", "Carl Customer")
    assert [a.address for a in parsed.to] == ["alice@example.test", "bob@example.test"]
    assert parsed.in_reply_to == ["a@crm.example.test"]
    assert parsed.references == ["root@crm.example.test", "a@crm.example.test"]


def test_iso_2022_jp_is_decoded():
    parsed = parsing.parse(messages.ISO_2022_JP)
    assert parsed.subject == "こんにちは"
    assert parsed.body_text.strip() == "こんにちは"


def test_missing_charset_keeps_the_text():
    parsed = parsing.parse(messages.MISSING_CHARSET)
    assert "Caf" in parsed.body_text


def test_eight_bit_headers_keep_sender_and_subject():
    parsed = parsing.parse(messages.EIGHT_BIT_HEADERS)
    assert parsed.sender is not None
    assert parsed.sender.address == "juergen@example.de"
    assert "K" in parsed.subject


def test_broken_boundary_still_gives_a_message():
    parsed = parsing.parse(messages.BROKEN_BOUNDARY)
    assert parsed.message_id == "broken-boundary@example.org"


@pytest.mark.parametrize("raw", [messages.NOT_A_MESSAGE, messages.EMPTY], ids=["binary", "empty"])
def test_what_is_not_a_message_is_a_message_error(raw):
    with pytest.raises(MessageError):
        parsing.parse(raw)


def test_attachments_are_extracted():
    raw = messages.simple(attachments=[("report.pdf", b"%PDF-1.4 data")])
    parsed = parsing.parse(raw)
    assert [(a.filename, a.data) for a in parsed.attachments] == [("report.pdf", b"%PDF-1.4 data")]


# --- the facts are those policy.default reads ------------------------------------------------------

TRICKY_ADDRESSES = [
    '"Doe, John" <j@x.example>',
    "a@x.example, (comment) b@y.example",
    "Group: a@x.example, b@y.example;",
    "=?utf-8?q?M=C3=BCller=2C_J=C3=BCrgen?= <j@x.example>",
    "=?utf-8?b?5bGx55Sw?= =?utf-8?b?IOWkqumDjg==?= <t@x.example>",
    "=?iso-8859-1?q?J=FCrgen?= <j@x.example>",
    "j@x.example (Jürgen)",
    "broken <a@x.example",
    "x=?utf-8?q?a?= <a@b.example>",
    "=?utf-8?q?a?=b <a@b.example>",
    "=?bogus?q?a?= <a@b.example>",
    "=?utf-8?q?=E2=82?= <a@b.example>",
    "  <a@x.example>  ,  Bob <b@y.example>",
    "O'Brien <o@x.example>, a.b@c.example,,",
]


def _as_policy_default_reads(raw: bytes) -> tuple[object, ...]:
    """What the standard library's modern API reads of a message, for comparison."""
    from email import policy
    from email.parser import BytesParser
    from email.utils import getaddresses

    message = BytesParser(policy=policy.default).parsebytes(raw)

    def addresses(name: str) -> list[tuple[str, str]]:
        # The decoded header's text split into its addresses, as the engine has always read them.
        found = getaddresses([str(value) for value in message.get_all(name, [])])
        return [(address.strip(), display.strip()) for display, address in found if "@" in address]

    def body(subtype: str) -> str:
        part = message.get_body(preferencelist=(subtype,))
        return "" if part is None else part.get_content()

    files = [
        (part.get_filename() or "", part.get_payload(decode=True)) for part in message.iter_attachments()
    ]
    # Every header as the engine reads one (its first value, decoded).
    headers = {name.lower(): str(message[name]) for name in message}
    return (str(message["subject"]), addresses("from")[:1], addresses("to"), addresses("cc"),
            body("plain"), body("html"), files, headers)  # fmt: skip


def _as_parsed(raw: bytes) -> tuple[object, ...]:
    parsed = parsing.parse(raw)
    return (
        parsed.subject,
        [(parsed.sender.address, parsed.sender.name)] if parsed.sender else [],
        [(a.address, a.name) for a in parsed.to],
        [(a.address, a.name) for a in parsed.cc],
        parsed.body_text,
        parsed.body_html,
        [(a.filename, a.data) for a in parsed.attachments],
        {name: parsed.header(name) for name in parsed.headers},
    )


def _samples() -> list[bytes]:
    from bench.mail_corpus import IncomingCorpus

    html = messages.simple(subject="Grüße, 日本語", body="Hallo Jürgen")
    # A text file attached before the text: the body is the text, not the file.
    text_file_first = (
        b"From: a@x.example\r\nTo: b@y.example\r\nSubject: notes\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\n'
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b'Content-Disposition: attachment; filename="notes.txt"\r\n\r\n'
        b"file\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nthe text\r\n--b1--\r\n"
    )
    corpus = list(IncomingCorpus(messages=40, owner="owner@crm.example", seed=11).messages())
    return [
        messages.simple(sender='"Carl Customer" <carl@example.org>', to="a@x.example, Bob <b@y.example>"),
        messages.simple(attachments=[("Übersicht März.pdf", b"%PDF"), ("a.bin", b"\x00\x01")]),
        messages.ISO_2022_JP,
        messages.EIGHT_BIT_HEADERS,
        html,
        text_file_first,
        *corpus,
    ]


SAMPLES = _samples()


@pytest.mark.parametrize("number", range(len(SAMPLES)))
def test_the_facts_are_those_policy_default_reads(number):
    raw = SAMPLES[number]
    assert _as_parsed(raw) == _as_policy_default_reads(raw)


@pytest.mark.parametrize("value", TRICKY_ADDRESSES)
@pytest.mark.parametrize("field", ["From", "To", "Cc"])
def test_address_headers_read_as_policy_default_reads_them(field, value):
    raw = f"{field}: {value}\r\nSubject: x\r\nMessage-ID: <q@x.example>\r\n\r\nbody\r\n".encode()
    ours, theirs = _as_parsed(raw), _as_policy_default_reads(raw)
    assert ours[1:4] == theirs[1:4]
