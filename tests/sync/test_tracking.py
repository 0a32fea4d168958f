"""Tracking rules called directly: conversation correlation (Thread-Index, the
References root), smart matching and its thresholds, the two-activities rule
and when an unknown sender becomes a contact."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from crm.models import EmailActivity, OrganizationSettings
from sync import parsing, tracking
from tests import factories, messages

pytestmark = pytest.mark.django_db
THREAD = bytes(range(1, 23))  # 22 bytes: reserved byte, FILETIME, conversation GUID
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def organization(**options) -> OrganizationSettings:
    settings = OrganizationSettings.load()
    for name, value in options.items():
        setattr(settings, name, value)
    settings.save()
    return settings


def thread_index(*children: int) -> str:
    return base64.b64encode(THREAD + b"".join(bytes([c]) * 5 for c in children)).decode()


def stored(raw: bytes, settings: OrganizationSettings, **extra) -> EmailActivity:
    """An email already in the CRM, with what the pipeline keeps for correlation."""
    parsed = parsing.parse(raw)
    email = factories.email(
        message_identity=parsed.identity,
        subject=parsed.subject,
        conversation_id=tracking.conversation_of(parsed, None),
        **extra,
    )
    tracking.remember_hashes(email=email, parsed=parsed, organization=settings)
    return email


def test_a_reply_in_an_outlook_conversation_correlates_by_thread_index():
    settings = organization()
    account = factories.account()
    first = stored(
        messages.simple(headers={"Thread-Index": thread_index()}), settings, regarding_account=account
    )
    reply = parsing.parse(
        messages.simple(subject="Something else", headers={"Thread-Index": thread_index(7)})
    )
    assert tracking.correlate(reply, settings) == tracking.Correlation(first, "conversation_index")


def test_a_reply_sharing_the_references_root_correlates_with_the_conversation():
    settings = organization()
    first = stored(messages.simple(references="<root@example.org>"), settings)
    reply = parsing.parse(messages.simple(references="<root@example.org> <untracked@example.org>"))
    assert tracking.correlate(reply, settings) == tracking.Correlation(first, "conversation_index")


def test_a_message_that_starts_a_conversation_correlates_with_nothing():
    settings = organization()
    stored(messages.simple(subject="Quarterly pricing"), settings)
    assert (
        tracking.correlate(parsing.parse(messages.simple(subject="Quarterly pricing")), settings).email
        is None
    )


def test_correlation_off_ignores_the_conversation_but_not_the_tracking_token():
    settings = organization(correlation_enabled=False)
    stored(messages.simple(headers={"Thread-Index": thread_index()}), settings)
    tokened = stored(messages.simple(), settings, tracking_token="CRM:0001001")
    in_thread = parsing.parse(messages.simple(headers={"Thread-Index": thread_index(1)}))
    with_token = parsing.parse(messages.simple(subject="RE: Quote CRM:0001001"))
    assert tracking.correlate(in_thread, settings).email is None
    assert tracking.correlate(with_token, settings) == tracking.Correlation(tokened, "tracking_token")


def conversation(subject: str, *, sender: str = "carl@example.org", to: str = "alice@example.test") -> bytes:
    return messages.simple(sender=sender, to=to, subject=subject)


def test_smart_matching_on_correlates_a_reply_with_the_same_subject_and_recipients():
    settings = organization(smart_matching_enabled=True)
    sent = stored(
        conversation(
            "Quarterly pricing review CRM:0001001", sender="alice@example.test", to="carl@example.org"
        ),
        settings,
    )
    reply = parsing.parse(conversation("RE: Quarterly pricing review!"))
    assert tracking.correlate(reply, settings) == tracking.Correlation(sent, "smart_matching")


def test_smart_matching_off_correlates_nothing():
    settings = organization(smart_matching_enabled=False)
    stored(
        conversation("Quarterly pricing review", sender="alice@example.test", to="carl@example.org"), settings
    )
    assert (
        tracking.correlate(parsing.parse(conversation("RE: Quarterly pricing review")), settings).email
        is None
    )


@pytest.mark.parametrize(("delta", "matches"), [(0, False), (1, True)])
def test_smart_matching_allows_the_subject_delta(delta, matches):
    settings = organization(smart_matching_enabled=True, smart_matching_subject_delta=delta)
    sent = stored(conversation("Quarterly pricing review"), settings)
    reply = parsing.parse(conversation("RE: Quarterly pricing review draft"))
    assert tracking.correlate(reply, settings).email == (sent if matches else None)


def test_smart_matching_needs_the_minimum_of_common_recipients():
    settings = organization(smart_matching_enabled=True, smart_matching_min_recipient_matches=2)
    stored(conversation("Quarterly pricing review", to="dave@example.org"), settings)
    reply = parsing.parse(conversation("RE: Quarterly pricing review"))
    assert tracking.correlate(reply, settings).email is None


def test_smart_matching_looks_back_ninety_days_only():
    settings = organization(smart_matching_enabled=True)
    with time_machine.travel(NOW - timedelta(days=91)):
        stored(conversation("Quarterly pricing review"), settings)
    with time_machine.travel(NOW):
        reply = parsing.parse(conversation("RE: Quarterly pricing review"))
        assert tracking.correlate(reply, settings).email is None


def test_subject_keywords_leave_out_filter_words_punctuation_and_the_token():
    settings = organization(smart_matching_max_hash_count=3)
    assert tracking.subject_keywords("RE: FW: Pricing, review & next-steps CRM:0001001", settings) == [
        "pricing",
        "review",
        "next",
    ]


def test_two_activities_only_between_two_users_when_the_organization_says_so(world):
    alice, bob = world["alice"], world["bob"]
    from_bob = ("user", bob.crm_user)
    from_contact = ("contact", bob.contact)
    on = organization(track_email_between_users_as_two_activities=True)
    assert tracking.copy_owner_for(alice.mailbox, from_bob, on) == alice.crm_user
    assert tracking.copy_owner_for(alice.mailbox, from_contact, on) is None
    assert tracking.copy_owner_for(alice.mailbox, ("user", alice.crm_user), on) is None
    assert tracking.copy_owner_for(world.queue_mailbox, from_bob, on) is None
    off = organization(track_email_between_users_as_two_activities=False)
    assert tracking.copy_owner_for(alice.mailbox, from_bob, off) is None


def test_only_an_unknown_sender_of_a_user_who_wants_it_becomes_a_contact(world):
    alice = world["alice"]
    unknown = parsing.parse(messages.simple(sender="New Person <new@example.org>"))
    known = parsing.parse(messages.simple(sender=world["bob"].contact.email))
    assert not tracking.creates_contact(alice.mailbox, unknown)
    alice.crm_user.auto_create_contacts = True
    alice.crm_user.save()
    alice.mailbox.refresh_from_db()
    assert tracking.creates_contact(alice.mailbox, unknown)
    assert not tracking.creates_contact(alice.mailbox, known)
