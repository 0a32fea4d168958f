"""The EWS connector for appointments, tasks and contacts (sync/connectors/ews_items.py) against
the EWS test server (tests/fakes/ews), which checks every request and answer against Microsoft's
EWS schema: the scenarios of test_dav.py (an entity's life, cursors, a series with a moved and a
deleted occurrence, DST, a full contact, a completed task, sign-in failures), and what Exchange
adds: items made by Outlook, Windows time zones, rules EWS cannot hold, throttling."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from exchangelib import Account

from sync.connectors import ews_account
from sync.connectors.base import ServerSettings
from sync.connectors.ews_items import EwsItems
from sync.connectors.interfaces import ActItems, Item, ItemChange
from sync.connectors.items import Card, Event, EventStatus, Party, Todo
from sync.errors import MessageError
from tests.fakes.ews import client
from tests.fakes.ews.fixtures import EwsMailbox
from tests.fakes.ews.server import EwsServer

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
    the mailbox, confirmed, its required attendees before its optional ones."""
    if not isinstance(item, Event):
        return item
    return dataclasses.replace(
        item,
        organizer=Party(mailbox.address),
        status=EventStatus.CANCELLED if item.status == EventStatus.CANCELLED else EventStatus.CONFIRMED,
        attendees=tuple(a for a in item.attendees if not a.optional)
        + tuple(a for a in item.attendees if a.optional),
        changed_occurrences=tuple(kept(o, mailbox) for o in item.changed_occurrences),  # type: ignore[misc]
    )
