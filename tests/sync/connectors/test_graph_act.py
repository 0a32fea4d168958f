"""The Microsoft Graph connector for appointments, contacts and tasks (sync/connectors/
graph_items.py) against the Graph test server (tests/fakes/graph/), through the real
clients (msal, httpx): the scenarios of test_dav.py for each entity — a first read, a
write guarded by the version read, another client's change, a deletion, a cursor the
server no longer knows — and what is Graph's own: items Outlook made (Windows zones),
recurrences Graph cannot hold, throttling, missing permissions."""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sync.connectors import graph_contacts, graph_events, graph_todo
from sync.connectors.graph_items import GraphItems
from sync.connectors.interfaces import ActItems, Item, ItemChange
from sync.connectors.items import Card, Event, EventStatus, Todo, TodoStatus
from sync.errors import MessageError, PermanentError, ThrottledError
from tests.fakes.graph.client import Graph
from tests.fakes.graph.fixtures import GraphMailbox, new_mailbox
from tests.sync.connectors.test_act_items import (
    all_day_event,
    completed_task,
    full_card,
    occurrences,
    two_zone_meeting,
    weekly_series,
)

pytestmark = pytest.mark.slow

ACT = ("Calendars.ReadWrite", "Contacts.ReadWrite", "Tasks.ReadWrite.All")
START = datetime(2027, 3, 4, 9, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def box(graph_server) -> GraphMailbox:
    return new_mailbox(graph_server, "act", permissions=ACT)


def event(uid: str, subject: str = "Quarterly review") -> Event:
    return Event(uid=uid, start=START, end=START + timedelta(hours=1), subject=subject)


def todo(uid: str, subject: str = "Send the quote") -> Todo:
    # A due date at midnight UTC: what To Do keeps of one (its date).
    return Todo(uid=uid, subject=subject, due=datetime(2027, 3, 6, tzinfo=UTC))


def card(uid: str, subject: str = "Lovelace") -> Card:
    return Card(uid=uid, first_name="Ada", last_name=subject, emails=("ada@contoso.test",))


# entity -> (an item with a uid and a "subject", its JSON as another client writes it, its path)
ENTITIES: dict[str, tuple[Callable[[str, str], Item], Callable[[Any], dict[str, Any]]]] = {
    "appointment": (event, graph_events.to_graph),
    "task": (todo, lambda item: graph_todo.to_graph(item, created=False)),
    "contact": (card, graph_contacts.to_graph),
}


def read(connector: ActItems, entity: str, cursor: str) -> tuple[list[ItemChange], str]:
    """Everything since ``cursor``, and the cursor to keep (the last change's, or caught_up's)."""
    found = list(connector.changes(entity, cursor))
    caught_up = connector.caught_up(entity)
    assert caught_up is not None
    if found:
        assert found[-1].cursor == caught_up
    return found, caught_up


def other_client(box: GraphMailbox) -> Graph:
    """Another app of the tenant on the same mailbox (Outlook on the web, a phone)."""
    return Graph(box.server, box.server.register_app(permissions=ACT), box.address)


def item_path(box: GraphMailbox, entity: str, item_id: str) -> str:
    if entity == "appointment":
        return f"events/{item_id}"
    if entity == "contact":
        return f"contacts/{item_id}"
    lists = other_client(box).get("todo/lists").json()["value"]
    return f"todo/lists/{lists[0]['id']}/tasks/{item_id}"


@pytest.mark.parametrize("entity", list(ENTITIES))
def test_an_entitys_life_on_the_server(box, entity):
    make, body_of = ENTITIES[entity]
    uid = f"{entity}-{secrets.token_hex(4)}@serversync.test"
    with GraphItems(box.settings) as connector:
        _, start = read(connector, entity, "")

        ref = connector.create(entity, make(uid, "First"))
        [created], cursor = read(connector, entity, start)
        assert (created.item_id, created.version) == (ref.item_id, ref.version)
        assert created.item == make(uid, "First")
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
        assert (updated.version, updated.item) == (newer.version, make(uid, "Second"))

        # Someone else (another client, straight over Graph) changes it.
        patched = other_client(box).patch(
            item_path(box, entity, ref.item_id),
            json=body_of(make(uid, "From the phone")),
            headers={"If-Match": newer.version},
        )
        assert patched.status_code == 200, patched.text
        [theirs], cursor = read(connector, entity, cursor)
        assert (theirs.version, theirs.item) == (patched.json()["@odata.etag"], make(uid, "From the phone"))

        with pytest.raises(MessageError) as stale_delete:
            connector.delete(entity, newer)
        assert stale_delete.value.code == "item_changed"
        connector.delete(entity, theirs.ref)
        connector.delete(entity, theirs.ref)  # already gone: fine
        [gone], cursor = read(connector, entity, cursor)
        assert (gone.item_id, gone.item, gone.deleted) == (ref.item_id, None, True)

        again = connector.create(entity, make(uid, "Back"))
        box.server.expire_delta_tokens()  # the server forgot every round: read from the start
        everything, _ = read(connector, entity, cursor)
    assert [(c.item_id, c.item) for c in everything] == [(again.item_id, make(uid, "Back"))]


def test_a_weekly_series_with_a_moved_and_a_deleted_occurrence_round_trips(box):
    series = weekly_series(f"series-{secrets.token_hex(4)}@serversync.test")
    with GraphItems(box.settings) as connector:
        ref = connector.create("appointment", series)
        [change], _ = read(connector, "appointment", "")

    assert change.ref == ref
    # Graph has no tentative status (only cancelled or not); BYDAY=MO is the start's weekday.
    assert change.item == dataclasses.replace(
        series, status=EventStatus.CONFIRMED, recurrence="FREQ=WEEKLY;COUNT=6"
    )
    assert isinstance(change.item, Event)
    assert change.item.deleted_occurrences == series.deleted_occurrences
    assert [o.original_start for o in change.item.changed_occurrences] == [
        o.original_start for o in series.changed_occurrences
    ]


def test_a_series_across_a_dst_change_keeps_its_local_time(box):
    series = weekly_series(f"dst-{secrets.token_hex(4)}@serversync.test")
    with GraphItems(box.settings) as connector:
        ref = connector.create("appointment", series)
        [change], _ = read(connector, "appointment", "")
    instances = other_client(box).get(
        f"events/{ref.item_id}/instances",
        params={"startDateTime": "2030-03-01T00:00:00Z", "endDateTime": "2030-05-01T00:00:00Z"},
    )

    assert isinstance(change.item, Event)
    starts = occurrences(change.item)
    assert [s.astimezone(BERLIN).hour for s in starts] == [9] * 5
    assert [s.astimezone(UTC).hour for s in starts] == [8, 8, 7, 7, 7]  # summer time from 31 March
    # As Exchange stores it: 9:00 in Berlin before and after the change, in UTC.
    plain = [i for i in instances.json()["value"] if i["type"] == "occurrence"]
    assert [i["start"]["dateTime"][11:16] for i in plain] == ["08:00", "07:00", "07:00", "07:00"]


def test_a_full_contact_round_trips_with_its_fax_in_mapis_property(box):
    with GraphItems(box.settings) as connector:
        ref = connector.create("contact", full_card())
        [change], _ = read(connector, "contact", "")
    stored = (
        other_client(box)
        .get(
            f"contacts/{ref.item_id}",
            params={"$expand": "singleValueExtendedProperties($filter=id eq 'String 0x3A24')"},
        )
        .json()
    )

    assert change.item == full_card()
    assert stored["singleValueExtendedProperties"] == [{"id": "String 0x3A24", "value": "+44 20 7946 0099"}]
    assert stored["businessPhones"] == ["+44 20 7946 0018"]


def test_a_completed_task_round_trips_with_its_start_and_due_as_dates(box):
    """To Do keeps a start and a due date, not their time: midnight UTC of the day."""
    task = completed_task()  # from 4 March 09:00 Berlin, due 8 March 17:00 Berlin
    with GraphItems(box.settings) as connector:
        connector.create("task", task)
        [change], _ = read(connector, "task", "")
    assert change.item == dataclasses.replace(
        task, start=datetime(2030, 3, 4, tzinfo=UTC), due=datetime(2030, 3, 8, tzinfo=UTC)
    )


def test_what_to_do_cannot_hold_of_a_task(box):
    """No percent complete (0, or 100 when completed) and no canceled (deferred)."""
    task = Todo(
        uid="half@serversync.test", subject="Half done", status=TodoStatus.CANCELED, percent_complete=50
    )
    with GraphItems(box.settings) as connector:
        connector.create("task", task)
        [change], _ = read(connector, "task", "")
    assert change.item == dataclasses.replace(task, status=TodoStatus.DEFERRED, percent_complete=0)


def test_a_cursor_saved_part_way_reads_the_rest_again(box, monkeypatch):
    from sync.connectors import graph_item_delta

    monkeypatch.setattr(graph_item_delta, "PAGE_SIZE", 2)
    with GraphItems(box.settings) as connector:
        refs = [connector.create("task", todo(f"task-{n}@serversync.test")) for n in range(5)]
        first, *_ = connector.changes("task", "")
        rest = list(connector.changes("task", first.cursor))

    assert {c.ref for c in rest} >= set(refs) - {first.ref}
    assert {c.item_id for c in rest} <= {r.item_id for r in refs}


def test_caught_up_after_a_quiet_read_and_none_before_the_end(box):
    with GraphItems(box.settings) as connector:
        connector.create("contact", card("a@serversync.test"))
        connector.create("contact", card("b@serversync.test"))
        _, cursor = read(connector, "contact", "")
        quiet = list(connector.changes("contact", cursor))
        again = connector.caught_up("contact")

        unfinished = connector.changes("contact", "")
        next(unfinished)
        cut_short = connector.caught_up("contact")

        # Only another entity changed: the contacts' cursor moves on and reads nothing.
        connector.create("appointment", event("meeting@serversync.test"))
        assert again is not None
        nothing = list(connector.changes("contact", again))

    assert quiet == []
    assert again is not None
    assert again != cursor  # a new round's delta link
    assert cut_short is None
    assert nothing == []


def test_a_deleted_series_is_read_as_deleted(box):
    series = weekly_series(f"gone-{secrets.token_hex(4)}@serversync.test")
    with GraphItems(box.settings) as connector:
        ref = connector.create("appointment", series)
        _, cursor = read(connector, "appointment", "")
        connector.delete("appointment", ref)
        changes, _ = read(connector, "appointment", cursor)

    assert ref.item_id in {c.item_id for c in changes if c.deleted}
    assert all(c.deleted for c in changes)


def test_an_event_outlook_made_in_windows_zones_reads_as_iana(box):
    """Outlook writes Windows zone names and no UID of ours: the zones read as IANA
    ("GMT Standard Time" is London, with its summer time), the iCalUId is the UID."""
    outlook = other_client(box)
    made = outlook.post(
        "events",
        json={
            "subject": "Flight to London",
            "body": {"contentType": "text", "content": "Seat 12A"},
            "start": {"dateTime": "2027-06-14T09:30:00", "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": "2027-06-14T10:45:00", "timeZone": "GMT Standard Time"},
            "location": {"displayName": "FRA"},
            "showAs": "oof",
            "isReminderOn": True,
            "reminderMinutesBeforeStart": 60,
            "categories": ["Travel"],
        },
    )
    assert made.status_code == 201, made.text
    with GraphItems(box.settings) as connector:
        [change], _ = read(connector, "appointment", "")

    assert isinstance(change.item, Event)
    assert change.item.uid == made.json()["iCalUId"]
    assert (change.item.start_zone, change.item.end_zone) == ("Europe/Berlin", "Europe/London")
    assert change.item.start == datetime(2027, 6, 14, 9, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    assert change.item.end == datetime(2027, 6, 14, 10, 45, tzinfo=ZoneInfo("Europe/London"))
    assert change.item.end.astimezone(UTC).hour == 9  # London in summer time: UTC+1
    assert (change.item.subject, change.item.body, change.item.location) == (
        "Flight to London",
        "Seat 12A",
        "FRA",
    )
    assert (change.item.reminder_minutes, change.item.categories) == (60, ("Travel",))


def test_a_contact_and_a_task_outlook_made_are_read(box):
    outlook = other_client(box)
    made = outlook.post(
        "contacts",
        json={
            "givenName": "Grace",
            "surname": "Hopper",
            "birthday": "1906-12-09T11:59:00Z",
            "businessPhones": ["+1 555 0100"],
        },
    )
    assert made.status_code == 201, made.text
    lists = outlook.get("todo/lists").json()["value"]
    task = outlook.post(
        f"todo/lists/{lists[0]['id']}/tasks", json={"title": "Call Grace", "importance": "high"}
    )
    assert task.status_code == 201, task.text
    with GraphItems(box.settings) as connector:
        [contact], _ = read(connector, "contact", "")
        [chore], _ = read(connector, "task", "")

    assert contact.item == Card(
        uid=made.json()["id"],
        first_name="Grace",
        last_name="Hopper",
        business_phone="+1 555 0100",
        birthday=date(1906, 12, 9),
    )
    assert isinstance(chore.item, Todo)
    assert (chore.item.uid, chore.item.subject, chore.item.priority.value) == (
        task.json()["id"],
        "Call Grace",
        "high",
    )


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=HOURLY;COUNT=5",
        "FREQ=DAILY;BYHOUR=9,15",
        "FREQ=MONTHLY;BYMONTHDAY=1,15",
        "FREQ=MONTHLY;BYDAY=5MO",
    ],
)
def test_a_recurrence_graph_cannot_express_is_refused_clearly(box, rule):
    series = dataclasses.replace(event("odd@serversync.test"), recurrence=rule)
    with GraphItems(box.settings) as connector, pytest.raises(MessageError) as refused:
        connector.create("appointment", series)
    assert refused.value.code == "item_refused"
    assert "recurrence the other side cannot express" in refused.value.message
    assert box.server.mailbox(box.address).outlook.items == {}


@pytest.mark.parametrize(
    ("rule", "back"),
    [
        ("FREQ=DAILY;INTERVAL=2;COUNT=10", "FREQ=DAILY;COUNT=10;INTERVAL=2"),
        (
            "FREQ=WEEKLY;BYDAY=MO,WE,FR;UNTIL=20270331T090000Z",
            "FREQ=WEEKLY;UNTIL=20270331T090000Z;BYDAY=MO,WE,FR",
        ),
        ("FREQ=WEEKLY;INTERVAL=2;WKST=SU", "FREQ=WEEKLY;INTERVAL=2;WKST=SU"),
        # What the start (Thursday 4 March) implies is left out, as RFC 5545 allows.
        ("FREQ=WEEKLY;BYDAY=TH;COUNT=3", "FREQ=WEEKLY;COUNT=3"),
        ("FREQ=MONTHLY;BYMONTHDAY=4", "FREQ=MONTHLY"),
        ("FREQ=MONTHLY;BYMONTHDAY=20", "FREQ=MONTHLY;BYMONTHDAY=20"),
        ("FREQ=MONTHLY;BYDAY=-1TH;COUNT=12", "FREQ=MONTHLY;COUNT=12;BYDAY=-1TH"),
        ("FREQ=MONTHLY;BYDAY=TU;BYSETPOS=2", "FREQ=MONTHLY;BYDAY=2TU"),
        ("FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=4", "FREQ=YEARLY"),
        ("FREQ=YEARLY;BYDAY=1TH;BYMONTH=3", "FREQ=YEARLY;BYDAY=1TH;BYMONTH=3"),
    ],
)
def test_recurrences_graph_can_express_round_trip(box, rule, back):
    series = dataclasses.replace(event(f"rule-{secrets.token_hex(3)}@serversync.test"), recurrence=rule)
    with GraphItems(box.settings) as connector:
        connector.create("appointment", series)
        [change], _ = read(connector, "appointment", "")
    assert isinstance(change.item, Event)
    assert change.item == dataclasses.replace(series, recurrence=back)
    assert occurrences(change.item) == occurrences(series)  # the same series, however spelt


def test_throttling_on_an_event_call_is_a_throttled_error(box):
    with GraphItems(box.settings) as connector:
        connector.create("appointment", event("busy@serversync.test"))
        box.server.throttle(1, retry_after=7)
        with pytest.raises(ThrottledError) as throttled:
            list(connector.changes("appointment", ""))
    assert throttled.value.retry_after == 7


def test_wrong_credentials_are_a_permanent_error_that_says_what_to_fix(box):
    wrong = dataclasses.replace(
        box.settings, oauth=dataclasses.replace(box.settings.oauth, client_secret="nope")
    )
    with GraphItems(wrong) as connector, pytest.raises(PermanentError) as error:
        list(connector.changes("appointment", ""))
    assert error.value.code == "authentication_failed"
    assert "nope" not in error.value.message


@pytest.mark.parametrize(
    ("entity", "missing"),
    [
        ("appointment", "Calendars.ReadWrite"),
        ("contact", "Contacts.ReadWrite"),
        ("task", "Tasks.ReadWrite.All"),
    ],
)
def test_a_missing_permission_is_named(graph_server, entity, missing):
    box = new_mailbox(graph_server, "act", permissions=("Mail.ReadWrite",))
    with GraphItems(box.settings) as connector, pytest.raises(PermanentError) as error:
        list(connector.changes(entity, ""))
    assert error.value.code == "consent_missing"
    assert missing in error.value.message
    assert "grant admin consent" in error.value.message


@pytest.mark.parametrize(
    ("entity", "granted", "missing"),
    [
        ("appointment", "Calendars.Read", "Calendars.ReadWrite"),
        ("contact", "Contacts.Read", "Contacts.ReadWrite"),
        ("task", "Tasks.Read.All", "Tasks.ReadWrite.All"),
    ],
)
def test_reading_with_a_read_permission_and_writing_without_the_write_one(
    graph_server, entity, granted, missing
):
    box = new_mailbox(graph_server, "act", permissions=(granted,))
    make, _ = ENTITIES[entity]
    with GraphItems(box.settings) as connector:
        assert list(connector.changes(entity, "")) == []
        with pytest.raises(PermanentError) as error:
            connector.create(entity, make("x@serversync.test", "X"))
    assert error.value.code == "consent_missing"
    assert missing in error.value.message


def test_updating_a_series_rewrites_its_occurrences(box):
    """The moved occurrence moves back (no longer changed), two others are deleted."""
    series = weekly_series(f"update-{secrets.token_hex(4)}@serversync.test")
    fewer = dataclasses.replace(
        series,
        subject="Pipeline review, shorter",
        status=EventStatus.CONFIRMED,
        recurrence="FREQ=WEEKLY;COUNT=6",  # BYDAY=MO is the start's weekday
        changed_occurrences=(),
        deleted_occurrences=(*series.deleted_occurrences, datetime(2030, 4, 8, 9, tzinfo=BERLIN)),
    )
    with GraphItems(box.settings) as connector:
        ref = connector.create("appointment", series)
        newer = connector.update("appointment", ref, fewer)
        [change], _ = read(connector, "appointment", "")

    assert newer.version != ref.version
    assert change.ref == newer
    assert change.item == fewer


def test_an_all_day_series_and_a_meeting_in_two_zones_round_trip(box):
    holiday, flight = all_day_event(), two_zone_meeting()
    with GraphItems(box.settings) as connector:
        connector.create("appointment", holiday)
        connector.create("appointment", flight)
        changes, _ = read(connector, "appointment", "")

    by_uid = {c.item.uid: c.item for c in changes if c.item is not None}
    assert by_uid[holiday.uid] == holiday
    assert by_uid[holiday.uid].start_date == date(2030, 7, 4)
    assert by_uid[flight.uid] == flight


def test_an_item_the_connector_cannot_read_is_reported_not_dropped(box):
    """An event that ends before it starts, put straight into the store (as a broken client
    might leave one): reported unreadable, with its version, and the others still read."""
    good = {
        "subject": "Fine",
        "start": {"dateTime": "2027-05-03T10:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2027-05-03T11:00:00", "timeZone": "UTC"},
    }
    broken = {**good, "subject": "Backwards", "end": {"dateTime": "2027-05-03T09:00:00", "timeZone": "UTC"}}
    with box.server.lock:
        store = box.server.mailbox(box.address).outlook
        odd = store.add("events", broken)
        store.add("events", good)

    with GraphItems(box.settings) as connector:
        changes, _ = read(connector, "appointment", "")

    by_id = {c.item_id: c for c in changes}
    assert by_id[odd.id].item is None
    assert not by_id[odd.id].deleted
    assert by_id[odd.id].version == odd.etag
    assert by_id[odd.id].unreadable is not None
    assert "ends before it starts" in by_id[odd.id].unreadable.message
    assert [c.item.subject for c in changes if c.item is not None] == ["Fine"]


def test_the_calendar_window_moves_forward_with_a_new_round_a_month_on(box):
    with GraphItems(box.settings) as connector:
        connector.create("appointment", event("review@serversync.test"))
        [created], cursor = read(connector, "appointment", "")
        assert json.loads(cursor.split(":", 1)[1])["b"] == datetime.now(UTC).date().isoformat()
        assert read(connector, "appointment", cursor)[0] == []

        # The same round, begun 31 days ago: read anew from now, its item again with its version.
        state = json.loads(cursor.split(":", 1)[1])
        state["b"] = (datetime.now(UTC) - timedelta(days=31)).date().isoformat()
        old = cursor.split(":", 1)[0] + ":" + json.dumps(state)
        [again], renewed = read(connector, "appointment", old)
        # 29 days: the same window still.
        state["b"] = (datetime.now(UTC) - timedelta(days=29)).date().isoformat()
        recent = cursor.split(":", 1)[0] + ":" + json.dumps(state)
        quiet, _ = read(connector, "appointment", recent)

    assert (again.item_id, again.version, again.item) == (created.item_id, created.version, created.item)
    assert json.loads(renewed.split(":", 1)[1])["b"] == datetime.now(UTC).date().isoformat()
    assert quiet == []
