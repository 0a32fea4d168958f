"""The cursor of an entity's delta over Graph (``calendarView/delta``, ``contacts/delta``,
a To Do list's ``tasks/delta``) and the reading of a round's pages.

A cursor is the link that fetched a page (``@odata.nextLink`` of the page before, or a
round's ``@odata.deltaLink``), plus, for appointments, the ids of the series masters
read so far: calendarView's delta reports instances, so when a series is deleted
Graph names its occurrences removed, never its master, and the connector looks up
which of the series it knows are gone. The cursor saved after a page's last change is
the link to the next page: a run that stops mid-page reads that page again (the engine
knows those changes by their versions), one that stops between pages reads nothing twice.

A cursor comes back from the database, so it is followed only when it is ours, for this
mailbox and entity, and a link to this profile's Graph URL of the expected kind (the
bearer token is never sent to a host a stored string names); anything else, and a round
Graph no longer knows (410 SyncStateNotFound), reads the entity from the start.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sync.connectors.graph_delta import is_graph_link
from sync.connectors.graph_errors import GRAPH
from sync.connectors.graph_http import GraphClient, GraphRefused
from sync.errors import TransientError

PREFIX = "graphitems1:"
PAGE_SIZE = 50


@dataclass(frozen=True)
class ItemCursor:
    mailbox: str
    entity: str
    link: str
    series: frozenset[str] = field(default_factory=frozenset)
    # The day the round began (ISO): a calendar's window is fixed then, and moves on with a new round.
    began: str = ""

    def encode(self) -> str:
        state = {
            "m": self.mailbox,
            "e": self.entity,
            "l": self.link,
            "s": sorted(self.series),
            "b": self.began,
        }
        return PREFIX + json.dumps(state, separators=(",", ":"))

    @property
    def complete(self) -> bool:
        """At a round's delta link (not part way through its pages)."""
        return "deltatoken=" in self.link.lower()


def decode(cursor: str, *, mailbox: str, entity: str, service_url: str, suffix: str) -> ItemCursor | None:
    """The cursor when it is one of ours for this mailbox, entity and kind of link; else None."""
    if not cursor.startswith(PREFIX):
        return None
    try:
        state = json.loads(cursor[len(PREFIX) :])
        found = ItemCursor(
            str(state["m"]),
            str(state["e"]),
            str(state["l"]),
            frozenset(str(s) for s in state.get("s", [])),
            str(state.get("b", "")),
        )
    except (ValueError, KeyError, TypeError):
        return None
    if found.mailbox.lower() != mailbox.lower() or found.entity != entity:
        return None
    return found if is_graph_link(found.link, service_url, suffix) else None


@dataclass
class Page:
    """One page of a round: what it names changed or removed, and the link after it."""

    link: str
    changed: list[dict[str, Any]]
    removed: list[str]
    next_link: str | None
    delta_link: str | None


def pages(client: GraphClient, start: str, position: str, *, suffix: str, what: str) -> Iterator[Page]:
    """The round's pages from ``position``; from ``start`` when Graph no longer knows it."""
    link: str | None = position
    restarted = position == start
    while link:
        try:
            page = client.json(
                "GET",
                link,
                what=what,
                headers={"Prefer": f'odata.maxpagesize={PAGE_SIZE}, outlook.timezone="UTC"'},
                expect=frozenset({400, 404, 410}),
            )
        except GraphRefused as refused:
            if not restarted and (refused.found.needs_resync or refused.found.status in (400, 404)):
                restarted, link = True, start
                continue
            raise TransientError(
                f"{GRAPH} refused {what} for {client.settings.mailbox} (HTTP {refused.found.status}: "
                f"{refused.found.code} {refused.found.message}). serversync tries again later.",
                code="server_error",
            ) from refused
        following = page.get("@odata.nextLink") or page.get("@odata.deltaLink")
        if not following or not is_graph_link(str(following), client.root, suffix):
            raise TransientError(
                f"{GRAPH} answered {what} with a link serversync does not follow ({str(following)[:80]}). "
                "serversync tries again later.",
                code="server_error",
            )
        values = [v for v in page.get("value") or [] if isinstance(v, dict)]
        next_link = str(page["@odata.nextLink"]) if page.get("@odata.nextLink") else None
        yield Page(
            link,
            [v for v in values if "@removed" not in v],
            [str(v["id"]) for v in values if "@removed" in v],
            next_link,
            None if next_link else str(following),
        )
        link = next_link
