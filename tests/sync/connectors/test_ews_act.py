"""The EWS connector for appointments, tasks and contacts (sync/connectors/ews_items.py) against
the EWS test server (tests/fakes/ews), which checks every request and answer against Microsoft's
EWS schema: the scenarios of test_dav.py (an entity's life, cursors, a series with a moved and a
deleted occurrence, DST, a full contact, a completed task, sign-in failures), and what Exchange
adds: items made by Outlook, Windows time zones, rules EWS cannot hold, throttling."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email import message_from_bytes, policy
from typing import TypeVar
from zoneinfo import ZoneInfo

import pytest
from exchangelib import Account, CalendarItem, Contact, EWSDateTime, EWSTimeZone, HTMLBody, Task
from exchangelib.items import SEND_TO_NONE

from sync.connectors import ews_account, ews_items, ews_tasks
from sync.connectors.base import ServerSettings
from sync.connectors.ews_items import EwsItems
from sync.connectors.interfaces import ActItems, Item, ItemChange
from sync.connectors.items import Address, Attendee, Card, Event, EventStatus, Party, ShowAs, Todo, TodoStatus
from sync.errors import MessageError, PermanentError, ThrottledError
from tests.fakes.ews import client
from tests.fakes.ews.fixtures import EwsMailbox, new_mailbox
from tests.fakes.ews.server import EwsServer
from tests.fakes.ews.xsd import T as TYPES
from tests.sync.connectors.test_act_items import (
    BERLIN,
    all_day_event,
    completed_task,
    full_card,
    occurrences,
    two_zone_meeting,
    weekly_series,
)

pytestmark = pytest.mark.slow
T = TypeVar("T")

START = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)


def event(uid: str, subject: str = "Quarterly review") -> Event:
    return Event(uid=uid, start=START, end=START + timedelta(hours=1), subject=subject)


def todo(uid: str, subject: str = "Send the quote") -> Todo:
    return Todo(uid=uid, subject=subject, due=START + timedelta(days=2))


def card(uid: str, subject: str = "Lovelace") -> Card:
    return Card(uid=uid, first_name="Ada", last_name=subject, emails=("ada@contoso.test",))


ENTITIES: dict[str, Callable[[str, str], Item]] = {"appointment": event, "task": todo, "contact": card}


def read(connector: ActItems, entity: str, cursor: str) -> tuple[list[ItemChange], str]:
    """Everything since ``cursor``, and the cursor to keep (the last change's, or caught_up's)."""
    found = list(connector.changes(entity, cursor))
    caught_up = connector.caught_up(entity)
    assert caught_up is not None
    if found:
        assert found[-1].cursor == caught_up
    return found, caught_up


@dataclasses.dataclass
class Outlook:
    """Another client of the same mailbox: exchangelib as Outlook's stand-in, no serversync code.
    (Its requests trust the test server's CA as the connector's do: exchangelib has one HTTP
    adapter class per process, serversync's.)"""

    account: Account
    settings: ServerSettings

    def __call__(self, work: Callable[[Account], T]) -> T:
        with ews_account.trusting(self.settings):
            return work(self.account)


@pytest.fixture
def outlook(ews_server: EwsServer, ews_mailbox: EwsMailbox) -> Iterator[Outlook]:
    account = client.account(ews_server, ews_mailbox.address, ews_mailbox.address, ews_mailbox.password)
    yield Outlook(account, ews_mailbox.settings)
    client.forget(account)


def outlook_change(outlook: Outlook, entity: str, item_id: str, subject: str) -> None:
    """What a user does in Outlook: change the subject (a contact's surname)."""

    def change(account: Account) -> None:
        [found] = list(account.fetch(ids=[(item_id, None)]))
        if entity == "contact":
            found.surname = subject
            found.display_name = f"Ada {subject}"
            found.save(update_fields=["surname", "display_name"])
        else:
            found.subject = subject
            found.save(update_fields=["subject"])

    outlook(change)


@pytest.mark.parametrize("entity", list(ENTITIES))
def test_an_entitys_life_on_the_server(ews_server, ews_mailbox, outlook, entity):
    make = ENTITIES[entity]
    uid = f"{entity}-{secrets.token_hex(4)}@serversync.test"
    with EwsItems(ews_mailbox.settings) as connector:
        _, start = read(connector, entity, "")

        ref = connector.create(entity, make(uid, "First"))
        [created], cursor = read(connector, entity, start)
        assert (created.item_id, created.version) == (ref.item_id, ref.version)
        assert created.item == kept(make(uid, "First"), ews_mailbox)
        nothing, same = read(connector, entity, cursor)
        assert nothing == []

        newer = connector.update(entity, ref, make(uid, "Second"))
        assert newer.version != ref.version
        with pytest.raises(MessageError) as stale:
            connector.update(entity, ref, make(uid, "Third"))
        assert stale.value.code == "item_changed"
        with pytest.raises(MessageError) as twice:
            connector.create(entity, make(uid, "Again"))
        assert twice.value.code == "item_exists"
        assert ref.item_id in twice.value.message
        [updated], cursor = read(connector, entity, same)
        assert (updated.version, updated.item) == (newer.version, kept(make(uid, "Second"), ews_mailbox))

        outlook_change(outlook, entity, ref.item_id, "From Outlook")
        [theirs], cursor = read(connector, entity, cursor)
        assert theirs.version != newer.version
        assert theirs.item == kept(make(uid, "From Outlook"), ews_mailbox)

        with pytest.raises(MessageError) as stale_delete:
            connector.delete(entity, newer)
        assert stale_delete.value.code == "item_changed"
        connector.delete(entity, theirs.ref)
        connector.delete(entity, theirs.ref)  # already gone: fine
        [gone], cursor = read(connector, entity, cursor)
        assert (gone.item_id, gone.item, gone.deleted) == (ref.item_id, None, True)

        again = connector.create(entity, make(uid, "Back"))
        ews_server.invalidate_sync_states()
        everything, _ = read(connector, entity, cursor)
    assert [(c.item_id, c.item) for c in everything] == [
        (again.item_id, kept(make(uid, "Back"), ews_mailbox))
    ]


def kept(item: Item, mailbox: EwsMailbox) -> Item:
    """What EWS gives back of ``item`` (ews_events' docstring): an appointment is organized by
    the mailbox, confirmed (IsCancelled is the server's to set), its required attendees before
    its optional ones."""
    if not isinstance(item, Event):
        return item
    return dataclasses.replace(
        item,
        organizer=Party(mailbox.address),
        status=EventStatus.CONFIRMED,
        attendees=tuple(a for a in item.attendees if not a.optional)
        + tuple(a for a in item.attendees if a.optional),
        changed_occurrences=tuple(kept(o, mailbox) for o in item.changed_occurrences),  # type: ignore[misc]
    )


def test_a_weekly_series_with_a_moved_and_a_deleted_occurrence_round_trips(ews_mailbox):
    series = weekly_series(f"series-{secrets.token_hex(4)}@serversync.test")
    with EwsItems(ews_mailbox.settings) as connector:
        ref = connector.create("appointment", series)
        [change], _ = read(connector, "appointment", "")

    assert change.ref == ref
    assert change.item == kept(series, ews_mailbox)
    assert isinstance(change.item, Event)
    assert [o.original_start for o in change.item.changed_occurrences] == [
        o.original_start for o in series.changed_occurrences
    ]
    assert change.item.deleted_occurrences == series.deleted_occurrences


def test_a_series_across_a_dst_change_keeps_its_local_time(ews_mailbox):
    with EwsItems(ews_mailbox.settings) as connector:
        connector.create("appointment", weekly_series())
        [change], _ = read(connector, "appointment", "")

    assert isinstance(change.item, Event)
    starts = occurrences(change.item)
    assert [s.astimezone(BERLIN).hour for s in starts] == [9] * 5
    assert [s.astimezone(UTC).hour for s in starts] == [8, 8, 7, 7, 7]  # summer time from 31 March


def test_a_series_updated_gets_its_occurrences_again(ews_mailbox):
    series = weekly_series()
    with EwsItems(ews_mailbox.settings) as connector:
        ref = connector.create("appointment", series)
        # The moved occurrence moves back (no longer changed); another one is cancelled.
        changed = dataclasses.replace(
            series,
            subject="Pipeline review, new format",
            changed_occurrences=(),
            deleted_occurrences=(datetime(2030, 3, 25, 9, tzinfo=BERLIN),),
        )
        newer = connector.update("appointment", ref, changed)
        [change], _ = read(connector, "appointment", "")

    assert change.ref == newer
    assert change.item == kept(changed, ews_mailbox)


def test_a_full_contact_round_trips(ews_mailbox):
    with EwsItems(ews_mailbox.settings) as connector:
        connector.create("contact", full_card())
        [change], _ = read(connector, "contact", "")
    assert change.item == full_card()


def test_a_completed_task_round_trips(ews_mailbox):
    with EwsItems(ews_mailbox.settings) as connector:
        connector.create("task", completed_task())
        [change], _ = read(connector, "task", "")
    assert change.item == completed_task()


@pytest.mark.parametrize("status", list(TodoStatus))
def test_every_task_status_round_trips_canceled_as_deferred_in_outlook(ews_mailbox, outlook, status):
    task = Todo(uid=f"t-{status}@serversync.test", subject="s", status=status, percent_complete=40)
    with EwsItems(ews_mailbox.settings) as connector:
        ref = connector.create("task", task)
        [change], _ = read(connector, "task", "")
    [seen] = outlook(lambda account: list(account.fetch(ids=[(ref.item_id, None)])))

    # Exchange's rule (exchangelib applies it before sending): not started is 0 %, completed 100 %.
    percent = {TodoStatus.NOT_STARTED: 0, TodoStatus.COMPLETED: 100}.get(status, 40)
    assert isinstance(change.item, Todo)
    assert change.item == dataclasses.replace(
        task, percent_complete=percent, completed_on=change.item.completed_on
    )
    assert (change.item.completed_on is not None) == (
        status == TodoStatus.COMPLETED
    )  # Exchange's CompleteDate
    assert seen.status == ews_tasks.STATUSES[status]
    assert seen.status != "Canceled"


def test_a_task_whose_due_date_moved_in_outlook_reads_the_new_date(ews_mailbox, outlook):
    task = completed_task()
    with EwsItems(ews_mailbox.settings) as connector:
        ref = connector.create("task", task)

        def move(account: Account) -> None:
            [found] = list(account.fetch(ids=[(ref.item_id, None)]))
            found.due_date = date(2030, 3, 11)
            found.save(update_fields=["due_date"])

        outlook(move)
        [change], _ = read(connector, "task", "")

    assert isinstance(change.item, Todo)
    assert change.item.due == datetime(2030, 3, 11, tzinfo=UTC)  # a date in EWS: its midnight
    assert change.item.start == task.start  # untouched: still the exact time written


def test_an_all_day_event_and_a_meeting_in_two_zones_round_trip(ews_mailbox):
    holiday = all_day_event()
    flight = two_zone_meeting()
    with EwsItems(ews_mailbox.settings) as connector:
        connector.create("appointment", holiday)
        connector.create("appointment", flight)
        changes, _ = read(connector, "appointment", "")

    assert [c.item for c in changes] == [kept(holiday, ews_mailbox), kept(flight, ews_mailbox)]


def test_a_cursor_saved_part_way_reads_the_rest_again(ews_mailbox):
    with EwsItems(ews_mailbox.settings) as connector:
        refs = [connector.create("task", todo(f"task-{n}@serversync.test")) for n in range(3)]
        first, *_ = connector.changes("task", "")
        rest = list(connector.changes("task", first.cursor))

    assert {c.ref for c in rest} >= set(refs) - {first.ref}
    assert {c.item_id for c in rest} <= {r.item_id for r in refs}


def test_a_cursor_saved_part_way_through_pages_resumes_at_its_page(ews_mailbox, monkeypatch):
    monkeypatch.setattr(ews_items, "PAGE_SIZE", 2)
    with EwsItems(ews_mailbox.settings) as connector:
        refs = [connector.create("contact", card(f"c-{n}@serversync.test", f"N{n}")) for n in range(5)]
        everything = list(connector.changes("contact", ""))
        third = everything[2]
        rest = list(connector.changes("contact", third.cursor))

    assert [c.ref for c in everything] == refs
    assert [c.ref for c in rest] == refs[2:]  # the third's page again, then the rest


def test_caught_up_after_a_quiet_read_and_none_before_the_end(ews_mailbox, monkeypatch):
    monkeypatch.setattr(ews_items, "PAGE_SIZE", 1)
    with EwsItems(ews_mailbox.settings) as connector:
        connector.create("contact", card("a@serversync.test"))
        connector.create("contact", card("b@serversync.test"))
        _, cursor = read(connector, "contact", "")
        quiet = list(connector.changes("contact", cursor))
        again = connector.caught_up("contact")

        unfinished = connector.changes("contact", "")
        next(unfinished)
        cut_short = connector.caught_up("contact")

        # Only another kind changed: the tasks' cursor moves on all the same (a new sync state).
        _, task_cursor = read(connector, "task", "")
        connector.create("appointment", event("meeting@serversync.test"))
        nothing, moved = read(connector, "task", task_cursor)
        after_move = list(connector.changes("task", moved))

    assert quiet == []
    assert again is not None
    assert contacts_since(ews_mailbox, again) == []
    assert cut_short is None
    assert nothing == []
    assert after_move == []
    assert moved != task_cursor


def contacts_since(mailbox: EwsMailbox, cursor: str) -> list[ItemChange]:
    with EwsItems(mailbox.settings) as connector:
        return list(connector.changes("contact", cursor))


def test_an_appointment_made_in_outlook_in_a_windows_zone_reads_as_iana(ews_mailbox, outlook):
    london = EWSTimeZone.from_ms_id("GMT Standard Time")

    def make(account: Account) -> CalendarItem:
        item = CalendarItem(
            account=account,
            folder=account.calendar,
            subject="Board meeting",
            body=HTMLBody("<html><body><p>Budget &amp; plans</p><p>Q3</p></body></html>"),
            start=EWSDateTime(2030, 7, 1, 10, 0, tzinfo=london),
            end=EWSDateTime(2030, 7, 1, 11, 30, tzinfo=london),
            legacy_free_busy_status="Tentative",
            reminder_is_set=True,
            reminder_minutes_before_start=10,
        )
        item.save(send_meeting_invitations=SEND_TO_NONE)
        return item

    made = outlook(make)
    with EwsItems(ews_mailbox.settings) as connector:
        [change], _ = read(connector, "appointment", "")

    assert change.ref.item_id == made.id
    assert isinstance(change.item, Event)
    assert (change.item.start_zone, change.item.end_zone) == ("Europe/London", "Europe/London")
    # Summer time in London: 10:00 local is 09:00 UTC (not 10:00, as "GMT" read as UTC would say).
    assert change.item.start == datetime(2030, 7, 1, 9, 0, tzinfo=UTC)
    assert change.item.start.astimezone(ZoneInfo("Europe/London")).hour == 10
    [stored] = outlook(lambda account: list(account.fetch(ids=[(made.id, None)])))
    assert change.item.uid == stored.uid  # Exchange's own UID, made when Outlook saved it
    assert change.item.body == "Budget & plans\nQ3"
    assert (change.item.show_as, change.item.reminder_minutes) == (ShowAs.TENTATIVE, 10)


def test_a_contact_and_a_task_made_in_outlook_are_read(ews_mailbox, outlook):
    def make(account: Account) -> tuple[Contact, Task]:
        person = Contact(
            account=account,
            folder=account.contacts,
            display_name="Grace Hopper",
            given_name="Grace",
            surname="Hopper",
            company_name="Navy",
        )
        person.save()
        chore = Task(
            account=account,
            folder=account.tasks,
            subject="Call Grace",
            status="InProgress",
            percent_complete=Decimal(50),
            due_date=date(2030, 5, 2),
        )
        chore.save()
        return person, chore

    person, chore = outlook(make)
    with EwsItems(ews_mailbox.settings) as connector:
        [contact], _ = read(connector, "contact", "")
        [task], _ = read(connector, "task", "")

    # Without serversync's UID property, an item's EWS id is its UID.
    assert contact.item == Card(uid=person.id, first_name="Grace", last_name="Hopper", company="Navy")
    assert task.item == Todo(
        uid=chore.id,
        subject="Call Grace",
        status=TodoStatus.IN_PROGRESS,
        percent_complete=50,
        due=datetime(2030, 5, 2, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("rule", "named"),
    [
        ("FREQ=HOURLY;COUNT=3", "HOURLY"),
        ("FREQ=WEEKLY;BYDAY=MO;BYHOUR=9,15", "BYHOUR"),
        ("FREQ=MONTHLY;BYMONTHDAY=1,15", "one day of the month"),
        ("FREQ=MONTHLY;BYMONTHDAY=-1", "one day of the month"),
        ("FREQ=YEARLY;INTERVAL=2", "every year"),
    ],
)
def test_a_recurrence_ews_cannot_hold_is_refused_clearly(ews_server, ews_mailbox, rule, named):
    series = dataclasses.replace(event("odd@serversync.test"), recurrence=rule)
    with EwsItems(ews_mailbox.settings) as connector:
        with pytest.raises(MessageError) as refused:
            connector.create("appointment", series)
        listed, _ = read(connector, "appointment", "")

    assert refused.value.code == "item_refused"
    assert "Exchange cannot hold the recurrence" in refused.value.message
    assert named in refused.value.message
    assert listed == []  # nothing half-written


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=DAILY;INTERVAL=2;COUNT=10",
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE,FR;WKST=SU",
        "FREQ=MONTHLY;BYMONTHDAY=4",
        "FREQ=MONTHLY;INTERVAL=3;BYDAY=-1MO;UNTIL=20301230T090000Z",
        "FREQ=YEARLY;BYMONTH=3;BYDAY=1MO",
        "FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=4;COUNT=5",
    ],
)
def test_every_pattern_ews_has_round_trips(ews_mailbox, rule):
    series = dataclasses.replace(event(f"r-{secrets.token_hex(3)}@serversync.test"), recurrence=rule)
    with EwsItems(ews_mailbox.settings) as connector:
        connector.create("appointment", series)
        [change], _ = read(connector, "appointment", "")
    assert change.item == kept(series, ews_mailbox)


def test_server_busy_is_a_throttled_error_with_the_servers_back_off(ews_server, ews_mailbox):
    with EwsItems(ews_mailbox.settings) as connector:
        ews_server.busy(1, back_off_ms=2500)
        with pytest.raises(ThrottledError) as raised:
            connector.create("task", todo("busy@serversync.test"))
        ref = connector.create("task", todo("busy@serversync.test"))  # the server is back

    assert raised.value.retry_after == 2.5
    assert "ErrorServerBusy" in raised.value.message
    assert ref.item_id


def test_wrong_password_is_a_permanent_error_that_says_what_to_fix(ews_mailbox):
    wrong = dataclasses.replace(ews_mailbox.settings, password="wrong-password")
    with pytest.raises(PermanentError) as error, EwsItems(wrong) as connector:
        list(connector.changes("appointment", ""))

    assert error.value.code == "authentication_failed"
    assert ews_mailbox.address in error.value.message
    assert "wrong-password" not in error.value.message


def test_impersonation_refused_and_another_users_mailbox_are_permanent_errors(ews_server, ews_mailbox):
    other = new_mailbox(ews_server, "other")
    acting = dataclasses.replace(ews_mailbox.settings, act_as=other.address)
    with pytest.raises(PermanentError) as impersonation, EwsItems(acting) as connector:
        connector.create("contact", card("c@serversync.test"))

    delegate = dataclasses.replace(ews_mailbox.settings, mailbox=other.address)
    with pytest.raises(PermanentError) as delegated, EwsItems(delegate) as connector:
        list(connector.changes("task", ""))

    assert impersonation.value.code == "impersonation_denied"
    assert "ApplicationImpersonation" in impersonation.value.message
    assert delegated.value.code == "permission_denied"
    assert other.address in delegated.value.message


def test_a_read_only_mailbox_refuses_writes_as_a_permission_error(ews_server, ews_mailbox):
    with EwsItems(ews_mailbox.settings) as connector:
        ref = connector.create("task", todo("t@serversync.test"))
        ews_server.make_read_only(ews_mailbox.address)
        with pytest.raises(PermanentError) as update:
            connector.update("task", ref, todo("t@serversync.test", "Mine now"))

    assert update.value.code == "permission_denied"


def test_caught_up_asked_after_writes_moves_past_them_so_their_deletion_is_read(ews_mailbox, outlook):
    """EWS reports the deletion of an item only to a sync state that had reported the item."""
    with EwsItems(ews_mailbox.settings) as connector:
        _, before = read(connector, "task", "")
        ref = connector.create("task", todo("mine@serversync.test"))
        after = connector.caught_up("task")
    outlook(lambda account: account.bulk_delete(ids=[(ref.item_id, None)]))
    with EwsItems(ews_mailbox.settings) as connector:
        from_before = list(connector.changes("task", before))
        from_after = list(connector.changes("task", after or ""))

    assert after is not None
    assert after != before
    assert from_before == []  # created and deleted since: EWS says nothing
    assert [(c.item_id, c.deleted) for c in from_after] == [(ref.item_id, True)]


def test_caught_up_after_writes_stays_when_another_client_changed_something(ews_mailbox, outlook):
    with EwsItems(ews_mailbox.settings) as connector:
        _, before = read(connector, "task", "")

        def theirs(account: Account) -> None:
            Task(account=account, folder=account.tasks, subject="Theirs").save()

        outlook(theirs)
        connector.create("task", todo("mine@serversync.test"))
        after = connector.caught_up("task")
        unread = list(connector.changes("task", after or ""))

    assert after == before
    assert sorted(c.item.subject for c in unread if isinstance(c.item, Todo)) == ["Send the quote", "Theirs"]


def test_a_rule_reads_back_as_written_until_outlook_changes_the_pattern(ews_mailbox, outlook):
    """EWS spells "the third Monday" one way (BYDAY=3MO): a rule written another way reads back
    as written while the pattern is untouched."""
    series = dataclasses.replace(
        weekly_series(),
        recurrence="FREQ=MONTHLY;BYDAY=MO;BYSETPOS=3;COUNT=6",
        changed_occurrences=(),
        deleted_occurrences=(),
    )
    with EwsItems(ews_mailbox.settings) as connector:
        ref = connector.create("appointment", series)
        [written], cursor = read(connector, "appointment", "")

        def every_other_month(account: Account) -> None:
            [found] = list(account.fetch(ids=[(ref.item_id, None)]))
            found.recurrence.pattern.interval = 2
            found.save(update_fields=["recurrence"])

        outlook(every_other_month)
        [changed], _ = read(connector, "appointment", cursor)

    assert isinstance(written.item, Event)
    assert isinstance(changed.item, Event)
    assert written.item.recurrence == series.recurrence
    assert (
        changed.item.recurrence
        == dataclasses.replace(series, recurrence="FREQ=MONTHLY;INTERVAL=2;BYDAY=3MO;COUNT=6").recurrence
    )


def test_a_series_updated_into_a_single_appointment(ews_mailbox):
    series = weekly_series()
    single = dataclasses.replace(series, recurrence="", deleted_occurrences=(), changed_occurrences=())
    with EwsItems(ews_mailbox.settings) as connector:
        ref = connector.create("appointment", series)
        connector.update("appointment", ref, single)
        [change], _ = read(connector, "appointment", "")
    assert change.item == kept(single, ews_mailbox)


def test_an_item_the_connector_cannot_read_is_reported_not_dropped(ews_server, ews_mailbox):
    """A series Outlook saved as "every weekday of the month, the second": EWS has the pattern,
    an Event's RRULE names one weekday per position (ews_recurrence)."""
    odd = ews_server.put_item(
        ews_mailbox.address,
        f"""<t:CalendarItem xmlns:t="{TYPES}"><t:Subject>Odd</t:Subject><t:UID>odd@outlook.test</t:UID>
        <t:Start>2030-03-11T08:00:00Z</t:Start><t:End>2030-03-11T09:00:00Z</t:End>
        <t:Recurrence><t:RelativeMonthlyRecurrence><t:Interval>1</t:Interval><t:DaysOfWeek>Weekday</t:DaysOfWeek>
        <t:DayOfWeekIndex>Second</t:DayOfWeekIndex></t:RelativeMonthlyRecurrence>
        <t:NoEndRecurrence><t:StartDate>2030-03-11</t:StartDate></t:NoEndRecurrence></t:Recurrence>
        <t:StartTimeZone Id="W. Europe Standard Time"/><t:EndTimeZone Id="W. Europe Standard Time"/>
        </t:CalendarItem>""",
    )
    with EwsItems(ews_mailbox.settings) as connector:
        [change], _ = read(connector, "appointment", "")

    assert (change.item_id, change.item, change.deleted) == (odd, None, False)
    assert change.version
    assert change.unreadable is not None
    assert change.unreadable.code == "item_invalid"
    assert "Weekday" in change.unreadable.message


def test_a_contact_updated_to_less_keeps_only_what_is_left(ews_mailbox):
    fewer = dataclasses.replace(
        full_card(),
        emails=("ada@home.test",),
        mobile_phone="",
        home_address=None,
        other_address=None,
        business_address=Address(city="London"),
        birthday=None,
        notes="",
    )
    with EwsItems(ews_mailbox.settings) as connector:
        ref = connector.create("contact", full_card())
        connector.update("contact", ref, fewer)
        [change], _ = read(connector, "contact", "")
    assert change.item == fewer


def test_a_task_reopened_loses_its_completion(ews_mailbox):
    reopened = dataclasses.replace(
        completed_task(), status=TodoStatus.IN_PROGRESS, percent_complete=60, completed_on=None
    )
    with EwsItems(ews_mailbox.settings) as connector:
        ref = connector.create("task", completed_task())
        connector.update("task", ref, reopened)
        [change], _ = read(connector, "task", "")
    assert change.item == reopened


def test_a_service_account_with_impersonation_syncs_the_mailbox(ews_server, ews_mailbox):
    address, password = f"svc-{secrets.token_hex(4)}@exchange.test", secrets.token_urlsafe(12)
    ews_server.add_user(address, password)
    ews_server.grant_impersonation(address, [ews_mailbox.address])
    acting = dataclasses.replace(
        ews_mailbox.settings, username=address, password=password, act_as=ews_mailbox.address
    )
    with EwsItems(acting) as connector:
        ref = connector.create("appointment", event("imp@serversync.test"))
    with EwsItems(ews_mailbox.settings) as connector:
        [change], _ = read(connector, "appointment", "")

    assert change.ref == ref
    assert change.item == kept(event("imp@serversync.test"), ews_mailbox)
    seen = [r for r in ews_server.requests if r.user == address]
    assert seen
    assert {r.mailbox for r in seen} == {ews_mailbox.address}


def test_a_meeting_with_attendees_invites_them_and_its_delete_cancels_one_without_sends_nothing(
    ews_server, ews_mailbox
):
    """The engine sends a meeting with its attendees only when they are to be invited; the
    connector then asks Exchange to send the requests (and cancellations), as Outlook does."""
    meeting = dataclasses.replace(
        event(f"meeting-{secrets.token_hex(4)}@serversync.test", "Kick-off"),
        organizer=Party(ews_mailbox.address),
        attendees=(Attendee("guest@partner.test", "Guest"),),
    )
    alone = event(f"alone-{secrets.token_hex(4)}@serversync.test", "Focus time")
    ews_server.outbound.clear()
    with EwsItems(ews_mailbox.settings) as connector:
        ref = connector.create("appointment", meeting)
        connector.create("appointment", alone)
        moved = connector.update("appointment", ref, dataclasses.replace(meeting, subject="Kick-off (moved)"))
        connector.delete("appointment", moved)

    sent = [(s.recipients, message_from_bytes(s.raw, policy=policy.default)) for s in ews_server.outbound]
    assert [(recipients, str(message["Subject"])) for recipients, message in sent] == [
        (("guest@partner.test",), "Kick-off"),
        (("guest@partner.test",), "Kick-off (moved)"),
        (("guest@partner.test",), "Canceled: Kick-off (moved)"),
    ]
    methods = [message.get_body(("calendar",)).get_param("method") for _, message in sent]  # type: ignore[union-attr]
    assert methods == ["REQUEST", "REQUEST", "CANCEL"]
