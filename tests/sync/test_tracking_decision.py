"""``tracking.decide_message`` called directly: the message, its mailbox and
lookups answered by hand, one test per verdict. No test here may touch the
database (none is marked ``django_db``, so a query would fail): the function
decides from what it is given and writes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from crm.choices import TrackIncomingEmail
from crm.models import CrmUser, EmailActivity, OrganizationSettings, Queue
from mailboxes.models import Mailbox
from sync import parsing, tracking
from sync.models import ReceiptOutcome
from tests import messages
from tests.sync import auto_mail

ALICE_ID, BOB_ID = 1, 2
FROM_BOB = ("user", BOB_ID)
FROM_CONTACT = ("contact", 30)
CRM_EMAIL = EmailActivity(id=70, message_identity="mid:sent-1@crm.example.test")
REPLY = tracking.Correlation(CRM_EMAIL, "in_reply_to")
NOTHING = tracking.Correlation(None)


@dataclass
class Lookups:
    """``tracking.Lookups`` with fixed answers, noting what was asked, in order."""

    two_activities: bool = False
    sender_is: tracking.Party | None = None
    stored_is: EmailActivity | tracking.Unknown | None = None
    correlation_is: tracking.Correlation | tracking.Unknown = NOTHING
    stored_for_anyone_is: bool | tracking.Unknown = False
    asked: list[str] = field(default_factory=list)

    @property
    def organization(self) -> OrganizationSettings:
        self.asked.append("organization")
        return OrganizationSettings(track_email_between_users_as_two_activities=self.two_activities)

    def sender(self, parsed: parsing.ParsedMessage) -> tracking.Party | None:
        self.asked.append("sender")
        return self.sender_is

    def stored(
        self, parsed: parsing.ParsedMessage, copy_owner: CrmUser | None
    ) -> EmailActivity | tracking.Unknown | None:
        self.asked.append(f"stored for {copy_owner.full_name if copy_owner else 'everyone'}")
        return self.stored_is

    def correlation(self, parsed: parsing.ParsedMessage) -> tracking.Correlation | tracking.Unknown:
        self.asked.append("correlation")
        return self.correlation_is

    def stored_for_anyone(self, parsed: parsing.ParsedMessage) -> bool | tracking.Unknown:
        self.asked.append("stored for anyone")
        return self.stored_for_anyone_is


def alices_mailbox(option: str = TrackIncomingEmail.ALL, *, auto_create_contacts: bool = False) -> Mailbox:
    alice = CrmUser(
        id=ALICE_ID, full_name="Alice", track_incoming_email=option, auto_create_contacts=auto_create_contacts
    )
    return Mailbox(user=alice, email_address="alice@example.test")


def queue_mailbox(option: str = TrackIncomingEmail.ALL) -> Mailbox:
    return Mailbox(queue=Queue(id=5, convert_incoming_email=option), email_address="sales@example.test")


def message(**options: Any) -> parsing.ParsedMessage:
    return parsing.parse(messages.simple(**options))


def decide(
    lookups: Lookups, mailbox: Mailbox | None = None, parsed: parsing.ParsedMessage | None = None
) -> tracking.Verdict:
    parsed = parsed or message()
    raw = b""  # only a delivery report is read from the raw message
    return tracking.decide_message(parsed, raw, mailbox or alices_mailbox(), lookups)


def test_serversync_test_message_is_not_tracked_and_nothing_is_asked():
    lookups = Lookups(sender_is=FROM_CONTACT)
    verdict = decide(lookups, parsed=message(headers={"X-Serversync-Test": "1"}))
    assert verdict == tracking.NotTracked(ReceiptOutcome.TEST_MESSAGE)
    assert lookups.asked == []


def test_an_auto_reply_is_never_tracked_and_nothing_is_asked():
    lookups = Lookups(correlation_is=REPLY)
    raw = auto_mail.out_of_office(
        sender="carl@example.org", to="alice@example.test", in_reply_to="sent-1@crm.example.test"
    )
    verdict = tracking.decide_message(parsing.parse(raw), raw, alices_mailbox(), lookups)
    assert verdict == tracking.Automatic(None)
    assert lookups.asked == []


def test_a_bounce_carries_its_delivery_report():
    raw = auto_mail.delivery_status_notification(
        to="alice@example.test",
        original_message_id="sent-1@crm.example.test",
        failed_recipient="gone@example.org",
    )
    lookups = Lookups()
    verdict = tracking.decide_message(parsing.parse(raw), raw, alices_mailbox(), lookups)
    assert isinstance(verdict, tracking.Automatic)
    assert verdict.report is not None
    assert verdict.report.original_message_id == "sent-1@crm.example.test"
    assert [f.address for f in verdict.report.failed] == ["gone@example.org"]
    assert lookups.asked == []


def test_a_message_already_stored_links_without_asking_for_correlation():
    lookups = Lookups(stored_is=CRM_EMAIL, sender_is=FROM_CONTACT)
    assert decide(lookups, alices_mailbox(TrackIncomingEmail.NONE)) == tracking.Link(CRM_EMAIL)
    assert lookups.asked == ["organization", "sender", "stored for everyone"]


@pytest.mark.parametrize(
    ("option", "correlation", "sender", "outcome"),
    [
        (TrackIncomingEmail.NONE, REPLY, FROM_CONTACT, ReceiptOutcome.NOT_TRACKED_OPTION),
        (TrackIncomingEmail.ALL, NOTHING, None, ReceiptOutcome.TRACKED),
        (TrackIncomingEmail.RESPONSES_TO_CRM, NOTHING, FROM_CONTACT, ReceiptOutcome.NO_CORRELATION),
        (TrackIncomingEmail.RESPONSES_TO_CRM, REPLY, None, ReceiptOutcome.TRACKED),
        (TrackIncomingEmail.FROM_CRM_RECORDS, NOTHING, FROM_CONTACT, ReceiptOutcome.TRACKED),
        (TrackIncomingEmail.FROM_CRM_RECORDS, NOTHING, ("lead", 40), ReceiptOutcome.TRACKED),
        (TrackIncomingEmail.FROM_CRM_RECORDS, NOTHING, FROM_BOB, ReceiptOutcome.SENDER_NOT_CRM),
        (TrackIncomingEmail.FROM_CRM_RECORDS, NOTHING, None, ReceiptOutcome.SENDER_NOT_CRM),
        (TrackIncomingEmail.FROM_CRM_RECORDS, REPLY, None, ReceiptOutcome.TRACKED),
        (TrackIncomingEmail.FROM_EMAIL_ENABLED, NOTHING, FROM_BOB, ReceiptOutcome.TRACKED),
        (TrackIncomingEmail.FROM_EMAIL_ENABLED, NOTHING, None, ReceiptOutcome.SENDER_NOT_CRM),
    ],
)
@pytest.mark.parametrize("mailbox", [alices_mailbox, queue_mailbox])
def test_the_owners_option_decides(mailbox, option, correlation, sender, outcome):
    lookups = Lookups(sender_is=sender, correlation_is=correlation)
    verdict = decide(lookups, mailbox(option))
    if outcome == ReceiptOutcome.TRACKED:
        assert verdict == tracking.Track(correlation, copy_owner=None, may_create_contact=False)
    else:
        assert verdict == tracking.NotTracked(outcome)
    assert lookups.asked == ["organization", "sender", "stored for everyone", "correlation"]


def test_mail_from_one_user_to_another_is_the_recipients_own_copy():
    mailbox = alices_mailbox()
    lookups = Lookups(two_activities=True, sender_is=FROM_BOB)
    verdict = decide(lookups, mailbox, message(sender="bob@example.test"))
    assert verdict == tracking.Track(NOTHING, copy_owner=mailbox.user, may_create_contact=False)
    # The activity looked for is Alice's own copy.
    assert lookups.asked == [
        "organization",
        "sender",
        "stored for Alice",
        "correlation",
        "stored for anyone",
    ]


@pytest.mark.parametrize(("senders_email_stored", "tracked"), [(True, True), (False, False)])
def test_the_recipients_copy_is_tracked_beside_the_senders_whatever_her_option(senders_email_stored, tracked):
    mailbox = alices_mailbox(TrackIncomingEmail.NONE)
    lookups = Lookups(two_activities=True, sender_is=FROM_BOB, stored_for_anyone_is=senders_email_stored)
    verdict = decide(lookups, mailbox)
    if tracked:
        assert verdict == tracking.Track(NOTHING, copy_owner=mailbox.user, may_create_contact=False)
    else:
        assert verdict == tracking.NotTracked(ReceiptOutcome.NOT_TRACKED_OPTION)


@pytest.mark.parametrize(
    ("two_activities", "sender", "mailbox"),
    [
        (False, FROM_BOB, alices_mailbox),  # the organization keeps one activity
        (True, FROM_CONTACT, alices_mailbox),  # not from a user
        (True, ("user", ALICE_ID), alices_mailbox),  # from herself
        (True, FROM_BOB, queue_mailbox),  # a queue has no copy of its own
    ],
)
def test_otherwise_there_is_no_copy_owner(two_activities, sender, mailbox):
    lookups = Lookups(two_activities=two_activities, sender_is=sender)
    verdict = decide(lookups, mailbox())
    assert isinstance(verdict, tracking.Track)
    assert verdict.copy_owner is None
    assert "stored for anyone" not in lookups.asked


@pytest.mark.parametrize(
    ("mailbox", "may"),
    [
        (lambda: alices_mailbox(auto_create_contacts=True), True),
        (lambda: alices_mailbox(auto_create_contacts=False), False),
        (queue_mailbox, False),  # queues have no such option
    ],
)
def test_the_owners_option_may_make_a_contact_of_the_sender(mailbox, may):
    verdict = decide(Lookups(), mailbox(), message(sender="New Person <new@example.org>"))
    assert verdict == tracking.Track(NOTHING, copy_owner=None, may_create_contact=may)


def test_what_the_lookups_cannot_tell_needs_the_database():
    copy = Lookups(two_activities=True, sender_is=FROM_BOB, stored_is=tracking.UNKNOWN)
    assert decide(copy) == tracking.NeedsDatabase()
    assert copy.asked == ["organization", "sender", "stored for Alice"]

    smart_matching = Lookups(correlation_is=tracking.UNKNOWN)
    assert decide(smart_matching) == tracking.NeedsDatabase()

    senders_email = Lookups(two_activities=True, sender_is=FROM_BOB, stored_for_anyone_is=tracking.UNKNOWN)
    assert decide(senders_email) == tracking.NeedsDatabase()
