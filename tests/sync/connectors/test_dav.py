"""The CalDAV / CardDAV connector (sync/connectors/dav.py) against the real Radicale of the
test harness: for each entity, what the engine does with it — a first read, a write guarded
by the version read, a change made by another client, a deletion, a cursor the server does
not know — and the failures an administrator sees."""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from sync.connectors import dav
from sync.connectors.base import ServerSettings
from sync.connectors.dav import DavItems
from sync.connectors.interfaces import ActItems, Item, ItemChange
from sync.connectors.items import Card, Event, Todo, card_to_vcard, event_to_ical, todo_to_ical
from sync.connectors.registry import kind_of
from sync.errors import MessageError, PermanentError, TransientError
from tests.harness.dovecot import HOST, free_port
from tests.harness.fixtures import DavUser
from tests.harness.radicale import Radicale
from tests.sync.connectors.test_act_items import full_card, weekly_series

pytestmark = pytest.mark.slow

START = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)


def settings(radicale: Radicale, user: DavUser, *, password: str | None = None) -> ServerSettings:
    return ServerSettings(
        host=radicale.host,
        port=radicale.port,
        url=radicale.url,
        username=user.name,
        password=password or user.password,
        mailbox=f"{user.name}@serversync.test",
        ca_file=str(radicale.ca_pem_path),
        timeout=10,
    )


def items(radicale: Radicale, user: DavUser) -> DavItems:
    return DavItems(settings(radicale, user))


def event(uid: str, subject: str = "Quarterly review") -> Event:
    return Event(uid=uid, start=START, end=START + timedelta(hours=1), subject=subject)


def todo(uid: str, subject: str = "Send the quote") -> Todo:
    return Todo(uid=uid, subject=subject, due=START + timedelta(days=2))


def card(uid: str, subject: str = "Lovelace") -> Card:
    return Card(uid=uid, first_name="Ada", last_name=subject, emails=("ada@contoso.test",))


# entity -> (make an item with a uid and a "subject", its body as another client writes it, extension)
ENTITIES: dict[str, tuple[Callable[[str, str], Item], Callable[..., bytes], str]] = {
    "appointment": (event, event_to_ical, "ics"),
    "task": (todo, todo_to_ical, "ics"),
    "contact": (card, card_to_vcard, "vcf"),
}


def read(connector: ActItems, entity: str, cursor: str) -> tuple[list[ItemChange], str]:
    """Everything since ``cursor``, and the cursor to keep (the last change's, or caught_up's)."""
    found = list(connector.changes(entity, cursor))
    caught_up = connector.caught_up(entity)
    assert caught_up is not None
    if found:
        assert found[-1].cursor == caught_up
    return found, caught_up


def collection_url(user: DavUser, entity: str) -> str:
    return user.address_book_url if entity == "contact" else user.calendar_url


@pytest.fixture(params=["sync-collection", "ctag and ETags"])
def mode(request, monkeypatch) -> str:
    """Radicale offers sync-collection; the second run reads it as a server that does not
    (discovery reports no sync-collection REPORT), through its ctag and ETag listing."""
    if request.param == "ctag and ETags":
        found = dav.find_collection
        monkeypatch.setattr(
            dav,
            "find_collection",
            lambda http, entity: dataclasses.replace(found(http, entity), sync_reports=False),
        )
    return str(request.param)


@pytest.mark.parametrize("entity", list(ENTITIES))
def test_an_entitys_life_on_the_server(radicale, dav_user, entity, mode):
    make, body_of, extension = ENTITIES[entity]
    uid = f"{entity}-{secrets.token_hex(4)}@serversync.test"
    with items(radicale, dav_user) as connector:
        _, start = read(connector, entity, "")

        ref = connector.create(entity, make(uid, "First"))
        [created], cursor = read(connector, entity, start)
        assert (created.item_id, created.version) == (ref.item_id, ref.version)
        assert created.item == make(uid, "First")
        assert created.item_id.endswith(f"/{uid}.{extension}")
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
        [updated], cursor = read(connector, entity, same)
        assert (updated.version, updated.item) == (newer.version, make(uid, "Second"))

        # Someone else (another client, straight over WebDAV) changes it.
        with http(radicale, dav_user) as other:
            put = other.put(
                f"{radicale.url.rstrip('/')}{ref.item_id}",
                content=body_of(make(uid, "From the phone")),
                headers={"If-Match": newer.version},
            )
        assert put.status_code == httpx.codes.NO_CONTENT
        [theirs], cursor = read(connector, entity, cursor)
        assert (theirs.version, theirs.item) == (put.headers["ETag"], make(uid, "From the phone"))

        with pytest.raises(MessageError) as stale_delete:
            connector.delete(entity, newer)
        assert stale_delete.value.code == "item_changed"
        connector.delete(entity, theirs.ref)
        connector.delete(entity, theirs.ref)  # already gone: fine
        [gone], cursor = read(connector, entity, cursor)
        assert (gone.item_id, gone.item, gone.deleted) == (ref.item_id, None, True)

        connector.create(entity, make(uid, "Back"))
        everything, _ = read(connector, entity, forgotten(cursor, mode))
    assert [(c.item_id, c.item) for c in everything] == [(ref.item_id, make(uid, "Back"))]


def forgotten(cursor: str, mode: str) -> str:
    """A cursor that no longer holds: a sync-token Radicale never issued; without sync tokens
    (the cursor is the ETags themselves, nothing a server forgets), one kept for another
    collection (the user's default calendar or address book changed since)."""
    state = json.loads(cursor)
    if mode == "sync-collection":
        assert set(state) == {"c", "t"}
        state["t"] = "http://radicale.org/ns/sync/" + "0" * 64
    else:
        assert set(state) == {"c", "g", "e"}
        state["c"] = f"{state['c']}../old/"
        state["e"] = {f"{state['c']}elsewhere.ics": '"nothing"'}
    return json.dumps(state)


def http(radicale: Radicale, user: DavUser) -> httpx.Client:
    return httpx.Client(verify=radicale.ssl_context(), auth=(user.name, user.password), timeout=10)


def test_a_weekly_series_with_a_moved_and_a_deleted_occurrence_round_trips(radicale, dav_user):
    series = weekly_series(f"series-{secrets.token_hex(4)}@serversync.test")
    with items(radicale, dav_user) as connector:
        ref = connector.create("appointment", series)
        [change], _ = read(connector, "appointment", "")

    assert change.ref == ref
    assert change.item == series
    assert isinstance(change.item, Event)
    assert [o.original_start for o in change.item.changed_occurrences] == [
        o.original_start for o in series.changed_occurrences
    ]
    assert change.item.deleted_occurrences == series.deleted_occurrences


def test_a_full_contact_round_trips(radicale, dav_user):
    with items(radicale, dav_user) as connector:
        connector.create("contact", full_card())
        [change], _ = read(connector, "contact", "")
    assert change.item == full_card()


def test_events_and_tasks_of_one_calendar_are_read_apart(radicale, dav_user, mode, monkeypatch):
    monkeypatch.setattr(dav, "BATCH", 1)  # each body its own multiget: the batches' seams too
    with items(radicale, dav_user) as connector:
        meeting = connector.create("appointment", event("meeting@serversync.test"))
        chore = connector.create("task", todo("chore@serversync.test"))
        appointments, _ = read(connector, "appointment", "")
        tasks, _ = read(connector, "task", "")

    assert meeting.item_id == f"{httpx.URL(dav_user.calendar_url).path}meeting@serversync.test.ics"
    assert chore.item_id == f"{httpx.URL(dav_user.calendar_url).path}chore@serversync.test.ics"
    assert [c.ref for c in appointments] == [meeting]
    assert [c.ref for c in tasks] == [chore]


def test_separate_calendars_for_events_and_tasks_are_found_by_kind_and_name(radicale):
    password = secrets.token_hex(8)
    name = radicale.add_user(f"user-{secrets.token_hex(5)}", password)
    radicale.make_calendar(name, "birthdays", ("VEVENT",))
    work = radicale.make_calendar(name, "work", ("VEVENT",))
    radicale.make_calendar(name, "chores", ("VTODO",))
    tasks = radicale.make_calendar(name, "tasks", ("VTODO",))
    radicale.make_address_book(name, "contacts")
    radicale.make_address_book(name, "collected")
    # The first calendar by href is "birthdays": "work" is the default by its display name.
    user = DavUser(name, password, radicale.home_url(name), work, "")
    with http(radicale, user) as client:
        client.request(
            "PROPPATCH",
            work,
            content='<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>Calendar</D:displayname>'
            "</D:prop></D:set></D:propertyupdate>",
        )

    with items(radicale, user) as connector:
        meeting = connector.create("appointment", event("meeting@serversync.test"))
        chore = connector.create("task", todo("chore@serversync.test"))
        person = connector.create("contact", card("ada@serversync.test"))

    assert meeting.item_id == f"{httpx.URL(work).path}meeting@serversync.test.ics"
    assert chore.item_id == f"{httpx.URL(tasks).path}chore@serversync.test.ics"
    assert person.item_id == f"/{name}/contacts/ada@serversync.test.vcf"


def test_a_cursor_saved_part_way_reads_the_rest_again(radicale, dav_user, mode):
    with items(radicale, dav_user) as connector:
        refs = [connector.create("task", todo(f"task-{n}@serversync.test")) for n in range(3)]
        first, *_ = connector.changes("task", "")
        rest = list(connector.changes("task", first.cursor))

    assert {c.ref for c in rest} >= set(refs) - {first.ref}
    assert {c.item_id for c in rest} <= {r.item_id for r in refs}


def test_caught_up_after_a_quiet_read_and_none_before_the_end(radicale, dav_user, mode):
    with items(radicale, dav_user) as connector:
        connector.create("contact", card("a@serversync.test"))
        connector.create("contact", card("b@serversync.test"))
        _, cursor = read(connector, "contact", "")
        quiet = list(connector.changes("contact", cursor))
        again = connector.caught_up("contact")

        unfinished = connector.changes("contact", "")
        next(unfinished)
        cut_short = connector.caught_up("contact")

        # Only the other kind changed: a task's cursor moves on all the same.
        _, task_cursor = read(connector, "task", "")
        connector.create("appointment", event("meeting@serversync.test"))
        nothing, moved = read(connector, "task", task_cursor)
        after_move = list(connector.changes("task", moved))

    assert quiet == []
    assert again == cursor
    assert cut_short is None
    assert nothing == []
    assert after_move == []
    if mode == "sync-collection":
        assert moved != task_cursor


def test_wrong_password_is_a_permanent_error_that_says_what_to_fix(radicale, dav_user):
    wrong = settings(radicale, dav_user, password="wrong-password")
    with DavItems(wrong) as connector, pytest.raises(PermanentError) as error:
        list(connector.changes("appointment", ""))

    assert error.value.code == "authentication_failed"
    assert dav_user.name in error.value.message
    assert "Correct the credentials" in error.value.message
    assert "wrong-password" not in error.value.message


def test_a_server_that_is_gone_is_a_transient_error(dav_user):
    gone = ServerSettings(host=HOST, port=free_port(), url=f"https://{HOST}:{free_port()}/", timeout=5)
    with DavItems(gone) as connector, pytest.raises(TransientError) as error:
        connector.create("task", todo("t@serversync.test"))
    assert error.value.code == "connection_refused"


def test_an_untrusted_certificate_is_refused(radicale, dav_user):
    untrusted = dataclasses.replace(settings(radicale, dav_user), ca_file=None)
    with DavItems(untrusted) as connector, pytest.raises(PermanentError) as error:
        list(connector.changes("contact", ""))
    assert error.value.code == "tls_certificate_invalid"


def test_check_act_finds_all_three_or_says_what_is_missing(radicale, dav_user):
    dav.check_act(settings(radicale, dav_user))

    password = secrets.token_hex(8)
    name = radicale.add_user(f"user-{secrets.token_hex(5)}", password)
    radicale.make_address_book(name, "contacts")
    bare = DavUser(name, password, radicale.home_url(name), "", "")
    with pytest.raises(PermanentError) as error:
        dav.check_act(settings(radicale, bare))
    assert error.value.code == "collection_missing"
    assert "a calendar for events" in error.value.message


def test_a_user_without_an_address_book_is_told_to_make_one(radicale):
    password = secrets.token_hex(8)
    name = radicale.add_user(f"user-{secrets.token_hex(5)}", password)
    calendar = radicale.make_calendar(name, "calendar")
    user = DavUser(name, password, radicale.home_url(name), calendar, "")

    with items(radicale, user) as connector:
        connector.create("appointment", event("e@serversync.test"))
        with pytest.raises(PermanentError) as error:
            connector.create("contact", card("c@serversync.test"))
    assert error.value.code == "collection_missing"
    assert "address book" in error.value.message


def test_imap_profiles_sync_act_through_dav_and_pop3_profiles_do_not():
    imap, pop3 = kind_of("imap_smtp"), kind_of("pop3_smtp")
    assert imap is not None
    assert pop3 is not None
    assert imap.act_items is DavItems
    assert pop3.act_items is None


def test_an_item_the_connector_cannot_read_is_reported_not_dropped(radicale, dav_user):
    """Another client's task 150 % complete: Radicale keeps it, a task cannot be."""
    vtodo = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//other client//EN\r\nBEGIN:VTODO\r\n"
        "UID:odd@serversync.test\r\nDTSTAMP:20300101T000000Z\r\nSUMMARY:Odd\r\n"
        "PERCENT-COMPLETE:150\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    )
    with http(radicale, dav_user) as other:
        put = other.put(
            f"{dav_user.calendar_url}odd.ics", content=vtodo, headers={"Content-Type": "text/calendar"}
        )
    assert put.status_code == httpx.codes.CREATED

    with items(radicale, dav_user) as connector:
        [change], _ = read(connector, "task", "")

    assert (change.item, change.deleted, change.version) == (None, False, put.headers["ETag"])
    assert change.unreadable is not None
    assert change.unreadable.code == "ical_invalid"
    assert "150" in change.unreadable.message


def test_another_users_item_is_a_permission_error(radicale, dav_user):
    password = secrets.token_hex(8)
    name = radicale.add_user(f"user-{secrets.token_hex(5)}", password)
    other = DavUser(name, password, radicale.home_url(name), radicale.make_calendar(name, "calendar"), "")
    with items(radicale, other) as theirs:
        ref = theirs.create("task", todo("private@serversync.test"))

    with items(radicale, dav_user) as connector:
        with pytest.raises(PermanentError) as update:
            connector.update("task", ref, todo("private@serversync.test", "Mine now"))
        with pytest.raises(PermanentError) as delete:
            connector.delete("task", ref)

    assert update.value.code == delete.value.code == "permission_denied"
    assert dav_user.name in update.value.message
