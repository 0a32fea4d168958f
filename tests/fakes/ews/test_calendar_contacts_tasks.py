"""exchangelib against the EWS test server's calendar items, contacts and tasks: what Exchange
computes, change keys, series with changed and deleted occurrences, indexed contact fields,
extended-property restrictions, SyncFolderItems, and what the server does not implement."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from email import message_from_bytes, policy

import icalendar
import pytest
from exchangelib import (
    Account,
    CalendarItem,
    Contact,
    EWSDate,
    EWSDateTime,
    EWSTimeZone,
    ExtendedProperty,
    Task,
)
from exchangelib.errors import (
    ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange,
    ErrorIrresolvableConflict,
)
from exchangelib.indexed_properties import EmailAddress, PhysicalAddress
from exchangelib.items import AUTO_RESOLVE, NEVER_OVERWRITE, SEND_TO_ALL_AND_SAVE_COPY, SEND_TO_NONE
from exchangelib.recurrence import Recurrence, WeeklyPattern

from tests.fakes.ews import client
from tests.fakes.ews.fixtures import EwsMailbox
from tests.fakes.ews.server import EwsServer

pytestmark = pytest.mark.slow

BERLIN = EWSTimeZone("Europe/Berlin")


class Tag(ExtendedProperty):  # type: ignore[misc]  # exchangelib is untyped
    distinguished_property_set_id = "PublicStrings"
    property_name = "test-server-tag"
    property_type = "String"


@pytest.fixture(scope="module", autouse=True)
def _tag_registered() -> Iterator[None]:
    for model in (Contact, Task):
        model.register("test_tag", Tag)
    yield
    for model in (Contact, Task):
        model.deregister("test_tag")


@pytest.fixture
def account(ews_server: EwsServer, ews_mailbox: EwsMailbox) -> Iterator[Account]:
    found = client.account(ews_server, ews_mailbox.address, ews_mailbox.address, ews_mailbox.password)
    yield found
    client.forget(found)


def weekly(account: Account, **values: object) -> CalendarItem:
    """Mondays 09:00 Berlin, six times from 2030-03-18 (DST begins on the 31st)."""
    values = {"subject": "Stand-up", **values}
    item = CalendarItem(
        account=account,
        folder=account.calendar,
        start=EWSDateTime(2030, 3, 18, 9, 0, tzinfo=BERLIN),
        end=EWSDateTime(2030, 3, 18, 9, 15, tzinfo=BERLIN),
        recurrence=Recurrence(
            pattern=WeeklyPattern(interval=1, weekdays=["Monday"]), start=EWSDate(2030, 3, 18), number=6
        ),
        **values,
    )
    item.save(send_meeting_invitations=SEND_TO_NONE)
    return item


def fetch(account: Account, item_id: str) -> CalendarItem:
    [found] = list(account.fetch(ids=[(item_id, None)]))
    return found


def test_a_calendar_item_reads_with_what_exchange_computes(account: Account, ews_mailbox: EwsMailbox) -> None:
    item = CalendarItem(
        account=account,
        folder=account.calendar,
        subject="Review",
        start=EWSDateTime(2030, 7, 1, 10, 0, tzinfo=EWSTimeZone("Europe/London")),
        end=EWSDateTime(2030, 7, 1, 11, 0, tzinfo=EWSTimeZone("Europe/London")),
        reminder_is_set=True,
        reminder_minutes_before_start=5,
    )
    item.save(send_meeting_invitations=SEND_TO_NONE)

    read = fetch(account, item.id)

    assert (read.subject, read.type, read.item_class) == ("Review", "Single", "IPM.Appointment")
    assert read.organizer.email_address == ews_mailbox.address
    assert read.uid  # made by the server, as Exchange makes one
    assert read._start_timezone.ms_id == "GMT Standard Time"
    assert read.start == EWSDateTime(2030, 7, 1, 9, 0, tzinfo=EWSTimeZone("UTC"))
    assert (read.reminder_is_set, read.reminder_minutes_before_start) == (True, 5)


def test_a_stale_change_key_is_a_conflict_only_with_never_overwrite(account: Account) -> None:
    item = weekly(account)
    stale = fetch(account, item.id)
    item.subject = "Stand-up (moved)"
    item.save(update_fields=["subject"])

    stale.subject = "Mine"
    with pytest.raises(ErrorIrresolvableConflict):
        stale.save(update_fields=["subject"], conflict_resolution=NEVER_OVERWRITE)
    stale.save(update_fields=["subject"], conflict_resolution=AUTO_RESOLVE)

    assert fetch(account, item.id).subject == "Mine"


def test_occurrences_become_exceptions_or_deleted_and_a_new_pattern_drops_them(account: Account) -> None:
    master = weekly(account)
    moved = master.occurrence(2)
    moved.subject = "Stand-up (Tuesday)"
    moved.start = EWSDateTime(2030, 3, 26, 10, 0, tzinfo=BERLIN)
    moved.end = EWSDateTime(2030, 3, 26, 10, 15, tzinfo=BERLIN)
    moved.save(update_fields=["subject", "start", "end"])
    master.occurrence(3).delete(send_meeting_cancellations=SEND_TO_NONE)
    with pytest.raises(ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange):
        master.occurrence(7).delete(send_meeting_cancellations=SEND_TO_NONE)

    read = fetch(account, master.id)
    [changed] = read.modified_occurrences
    [deleted] = read.deleted_occurrences
    exception = fetch(account, changed.id)

    assert read.type == "RecurringMaster"
    assert read.changekey != master.changekey  # the series changed with its occurrences
    # Summer time from the 31st: the third Monday's 09:00 Berlin is 07:00 UTC.
    assert deleted.start == EWSDateTime(2030, 4, 1, 7, 0, tzinfo=EWSTimeZone("UTC"))
    assert changed.original_start == EWSDateTime(2030, 3, 25, 8, 0, tzinfo=EWSTimeZone("UTC"))
    assert (exception.type, exception.subject) == ("Exception", "Stand-up (Tuesday)")
    assert exception.original_start == changed.original_start
    assert exception.recurrence is None

    # Deleting the exception by its own id deletes that occurrence.
    account.bulk_delete(ids=[(changed.id, None)], send_meeting_cancellations=SEND_TO_NONE)
    after = fetch(account, master.id)
    assert after.modified_occurrences is None
    assert [d.start for d in after.deleted_occurrences] == [changed.original_start, deleted.start]

    after.recurrence = Recurrence(
        pattern=WeeklyPattern(interval=2, weekdays=["Monday"]), start=EWSDate(2030, 3, 18), number=3
    )
    after.save(update_fields=["recurrence"])
    fresh = fetch(account, master.id)
    assert (fresh.modified_occurrences, fresh.deleted_occurrences) == (None, None)
    assert fresh.recurrence.pattern.interval == 2


def test_indexed_contact_fields_are_set_and_deleted_one_by_one(account: Account) -> None:
    person = Contact(
        account=account,
        folder=account.contacts,
        display_name="Ada Lovelace",
        given_name="Ada",
        email_addresses=[
            EmailAddress(label="EmailAddress1", email="a@x.test"),
            EmailAddress(label="EmailAddress2", email="b@x.test"),
        ],
        physical_addresses=[
            PhysicalAddress(label="Home", street="Ockham Park", city="Ockham", zipcode="GU23")
        ],
        birthday=date(1815, 12, 10),
    )
    person.save()
    person.email_addresses = [EmailAddress(label="EmailAddress2", email="c@x.test")]
    person.physical_addresses = [PhysicalAddress(label="Home", city="London")]
    person.save(update_fields=["email_addresses", "physical_addresses"])

    read = fetch(account, person.id)

    assert [(e.label, e.email) for e in read.email_addresses] == [("EmailAddress2", "c@x.test")]
    [home] = read.physical_addresses
    assert (home.label, home.street, home.city, home.zipcode) == ("Home", None, "London", None)
    assert read.birthday == date(1815, 12, 10)


def test_find_item_restricts_on_an_extended_property(account: Account) -> None:
    for tag in ("one", "two"):
        Task(account=account, folder=account.tasks, subject=f"Task {tag}", test_tag=tag).save()

    found = list(account.tasks.filter(test_tag="two"))

    assert [(t.subject, t.test_tag) for t in found] == [("Task two", "two")]


def test_a_completed_task_gets_its_complete_date(account: Account) -> None:
    chore = Task(
        account=account,
        folder=account.tasks,
        subject="Done",
        status="Completed",
        percent_complete=Decimal(100),
    )
    chore.save()
    open_one = Task(
        account=account,
        folder=account.tasks,
        subject="Open",
        status="InProgress",
        percent_complete=Decimal(20),
    )
    open_one.save()

    assert fetch(account, chore.id).complete_date is not None
    assert fetch(account, open_one.id).complete_date is None


def test_sync_folder_items_lists_series_not_their_exceptions(account: Account) -> None:
    first = weekly(account)
    calendar = account.calendar
    created = list(calendar.sync_items(sync_state=None))
    state = calendar.item_sync_state
    moved = first.occurrence(2)
    moved.subject = "Moved"
    moved.save(update_fields=["subject"])
    second = weekly(account, subject="Retro")
    fetch(account, second.id).delete(send_meeting_cancellations=SEND_TO_NONE)
    changed = list(calendar.sync_items(sync_state=state))

    assert [(kind, item.id) for kind, item in created] == [("create", first.id)]
    # The exception shows as an update of its master; the series made and deleted since is not there.
    assert [(kind, item.id) for kind, item in changed] == [("update", first.id)]


def calendar_parts(raw: bytes) -> list[icalendar.Calendar]:
    message = message_from_bytes(raw, policy=policy.default)
    return [
        icalendar.Calendar.from_ical(part.get_content())
        for part in message.walk()
        if part.get_content_type() == "text/calendar"
    ]


def test_a_meeting_sends_requests_and_cancellations_to_its_attendees_when_asked(
    ews_server: EwsServer, account: Account, ews_mailbox: EwsMailbox
) -> None:
    colleague = f"colleague-{id(account)}@{ews_mailbox.address.split('@')[1]}"
    ews_server.add_user(colleague, "pw")
    item = CalendarItem(
        account=account,
        folder=account.calendar,
        subject="Invite",
        start=EWSDateTime(2030, 7, 1, 10, 0, tzinfo=BERLIN),
        end=EWSDateTime(2030, 7, 1, 11, 0, tzinfo=BERLIN),
        required_attendees=[colleague],
        optional_attendees=["guest@partner.test"],
    )
    ews_server.outbound.clear()
    item.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    item.subject = "Invite (moved)"
    item.save(update_fields=["subject"], send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    item.move_to_trash(send_meeting_cancellations=SEND_TO_ALL_AND_SAVE_COPY)

    # The colleague's inbox (a user of this server) and the outside guest (outbound) got each.
    inbox = [calendar_parts(raw)[0] for raw in ews_server.messages(colleague)]
    outside = [calendar_parts(sent.raw)[0] for sent in ews_server.outbound]
    assert [sent.recipients for sent in ews_server.outbound] == [("guest@partner.test",)] * 3
    for received in (inbox, outside):
        assert [str(c["method"]) for c in received] == ["REQUEST", "REQUEST", "CANCEL"]
        events = [c.walk("VEVENT")[0] for c in received]
        assert [str(e["summary"]) for e in events] == ["Invite", "Invite (moved)", "Invite (moved)"]
        assert {str(e["organizer"]) for e in events} == {f"mailto:{ews_mailbox.address}"}
        assert events[0].decoded("dtstart") == datetime(2030, 7, 1, 8, 0, tzinfo=UTC)


def test_a_meeting_saved_with_send_to_none_sends_nothing(ews_server: EwsServer, account: Account) -> None:
    ews_server.outbound.clear()
    item = CalendarItem(
        account=account,
        folder=account.calendar,
        subject="Quiet",
        start=EWSDateTime(2030, 7, 2, 10, 0, tzinfo=BERLIN),
        end=EWSDateTime(2030, 7, 2, 11, 0, tzinfo=BERLIN),
        required_attendees=["guest@partner.test"],
    )
    item.save(send_meeting_invitations=SEND_TO_NONE)
    item.move_to_trash(send_meeting_cancellations=SEND_TO_NONE)
    assert ews_server.outbound == []
