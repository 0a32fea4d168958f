"""Telling machine-written mail from people's: auto-reply headers, the empty
envelope sender, RFC 3464 delivery reports and what a report says failed."""

from __future__ import annotations

import pytest

from sync import auto_replies, parsing
from tests import messages
from tests.sync import auto_mail


def parsed(raw: bytes) -> parsing.ParsedMessage:
    return parsing.parse(raw)


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto-Submitted": "auto-replied"},
        {"Auto-Submitted": "auto-generated"},
        {"X-Autoreply": "yes"},
        {"X-Autorespond": "Out of office"},
        {"Precedence": "auto_reply"},
        {"Precedence": "junk"},
        {"X-Auto-Response-Suppress": "All"},
        {"Return-Path": "<>"},
    ],
)
def test_auto_reply_headers_mark_a_message_automatic(headers):
    assert auto_replies.is_automatic(parsed(messages.simple(headers=headers)))


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Auto-Submitted": "no"},
        {"Precedence": "list"},
        # Mailing lists mark people's posts bulk (issue 11): they are not auto-replies.
        {"Precedence": "bulk"},
        {"Return-Path": "<carl@example.org>"},
    ],
)
def test_mail_people_write_is_not_automatic(headers):
    assert not auto_replies.is_automatic(parsed(messages.simple(headers=headers)))


def test_a_bounce_subject_alone_is_not_a_bounce():
    raw = messages.simple(subject="Undeliverable: our meeting notes")
    assert not auto_replies.is_automatic(parsed(raw))
    assert auto_replies.delivery_report(parsed(raw), raw) is None


def test_a_delivery_report_names_the_original_and_the_failed_recipient_only():
    raw = auto_mail.delivery_status_notification(
        to="alice@example.test",
        original_message_id="quote-1@example.test",
        failed_recipient="Gone@Example.org",
        delivered_recipient="bob@example.org",
    )
    message = parsed(raw)
    report = auto_replies.delivery_report(message, raw)
    assert auto_replies.is_automatic(message)
    assert report == auto_replies.DeliveryReport(
        "quote-1@example.test",
        [
            auto_replies.FailedRecipient(
                "gone@example.org", "550 5.1.1 The email account that you tried to reach does not exist"
            )
        ],
    )


def test_a_delivery_report_with_only_the_original_headers_names_the_original():
    raw = auto_mail.delivery_status_notification(
        to="alice@example.test",
        original_message_id="quote-2@example.test",
        failed_recipient="gone@example.org",
        headers_only=True,
    )
    report = auto_replies.delivery_report(parsed(raw), raw)
    assert report is not None
    assert report.original_message_id == "quote-2@example.test"
    assert [f.address for f in report.failed] == ["gone@example.org"]


def test_an_out_of_office_reply_is_automatic_but_no_delivery_report():
    raw = auto_mail.out_of_office(sender="carl@example.org", to="alice@example.test", in_reply_to="q@x.test")
    assert auto_replies.is_automatic(parsed(raw))
    assert auto_replies.delivery_report(parsed(raw), raw) is None
