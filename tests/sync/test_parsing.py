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
