"""Reading and writing an appointment over Graph, a series whole: the master, its changed
occurrences (Graph's exceptions) and its deleted ones.

Graph keeps a series as a master with a ``patternedRecurrence``; its occurrences are
instances (``/events/{id}/instances`` between two times), an exception is an instance
written differently, a deleted occurrence an instance that is not there any more.
So a series is read as its master plus its instances over the series' span (to the
window's end for a series without end), and the deleted occurrences are the rule's
starts that no instance has as its ``originalStart``. Writing one writes the master,
then each changed occurrence's instance (PATCH) and each deleted one's (DELETE); an
exception the engine no longer has is written back to the series' own values.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any
from urllib.parse import quote

from sync.connectors import graph_events, graph_recurrence
from sync.connectors.graph_http import GraphClient
from sync.connectors.items.data import Event
from sync.errors import MessageError

# Graph's answers in UTC and bodies as text, whatever the mailbox's settings.
READ = {"Prefer": 'outlook.timezone="UTC", outlook.body-content-type="text"'}
EXPAND = f"singleValueExtendedProperties($filter=id eq '{graph_events.UID_PROPERTY}')"


def event_url(client: GraphClient, event_id: str) -> str:
    return client.url(f"events/{quote(event_id, safe='')}")


def get_event(client: GraphClient, event_id: str) -> dict[str, Any]:
    """A master's or single event's document; GraphRefused when it is gone."""
    return client.json(
        "GET",
        event_url(client, event_id),
        what="reading an appointment",
        params={"$expand": EXPAND},
        headers=READ,
        expect=frozenset({404}),  # gone meanwhile: GraphRefused, for the caller to pass over
    )


def read_event(client: GraphClient, document: dict[str, Any], window_end: dt.datetime) -> Event:
    """The Event of a master's or single event's document (a series with its occurrences)."""
    event_id = str(document["id"])
    uid = graph_events.uid_of(document)
    if not document.get("recurrence"):
        return graph_events.from_graph(document, uid)
    plain = graph_events.from_graph(document, uid)
    found = instances(client, event_id, plain, window_end)
    present = {graph_events.original_start(i) for i in found}
    expected = graph_recurrence.original_starts(
        plain.recurrence, plain.start, plain.start_zone, _end(plain, window_end)
    )
    exceptions = [
        graph_events.from_graph(i, uid, original_start=graph_events.original_start(i))
        for i in found
        if i.get("type") == "exception"
    ]
    changed = tuple(
        sorted(
            (e for e in exceptions if not _as_planned(plain, e)), key=lambda e: e.original_start or e.start
        )
    )
    deleted = tuple(sorted(s for s in expected if s not in present))
    return dataclasses.replace(plain, deleted_occurrences=deleted, changed_occurrences=changed)


def _as_planned(series: Event, exception: Event) -> bool:
    """Whether an exception holds the series' own values at its original time: one written
    back when the engine no longer had it changed (Graph cannot make it plain again)."""
    assert exception.original_start is not None  # noqa: S101 - exceptions are read with one
    return exception == planned(series, exception.original_start)


def planned(series: Event, start: dt.datetime) -> Event:
    """The occurrence of ``series`` at ``start`` as its pattern makes it."""
    return dataclasses.replace(
        series,
        start=start,
        end=start + (series.end - series.start),
        recurrence="",
        deleted_occurrences=(),
        changed_occurrences=(),
        original_start=start,
    )


def _end(series: Event, window_end: dt.datetime) -> dt.datetime:
    """The last start the series may have: its rule's end, or the window's."""
    starts = graph_recurrence.original_starts(series.recurrence, series.start, series.start_zone, window_end)
    return starts[-1] if starts else series.start


def instances(
    client: GraphClient, series_id: str, series: Event, window_end: dt.datetime
) -> list[dict[str, Any]]:
    """The series' instances (occurrences and exceptions) from its start to its last start."""
    params: dict[str, str] | None = {
        "startDateTime": _stamp(series.start - dt.timedelta(days=1)),
        "endDateTime": _stamp(_end(series, window_end) + dt.timedelta(days=1)),
    }
    url: str | None = f"{event_url(client, series_id)}/instances"
    found: list[dict[str, Any]] = []
    while url:
        page = client.json("GET", url, what="reading a series' occurrences", params=params, headers=READ)
        found += [i for i in page.get("value") or [] if isinstance(i, dict)]
        following = page.get("@odata.nextLink")
        url, params = (
            (str(following) if following and str(following).startswith(client.root + "/") else None),
            None,
        )
    return found


def _stamp(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_occurrences(client: GraphClient, series_id: str, event: Event, window_end: dt.datetime) -> None:
    """Make the series' instances what ``event`` says: changed ones written, deleted ones deleted."""
    if not event.recurrence:
        return
    found = {graph_events.original_start(i): i for i in instances(client, series_id, event, window_end)}
    wanted = {o.original_start: o for o in event.changed_occurrences if o.original_start is not None}
    for start, instance in found.items():
        if start in event.deleted_occurrences:
            client.call("DELETE", event_url(client, str(instance["id"])), what="deleting an occurrence")
        elif start in wanted:
            _patch(client, str(instance["id"]), wanted[start])
        elif instance.get("type") == "exception":  # no longer changed: the series' own values again
            _patch(client, str(instance["id"]), planned(event, start))
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise MessageError(
            f"The series {event.uid!r} has no occurrence at {missing[0].isoformat()} to change: Exchange "
            "Online keeps changed occurrences only where the pattern has one.",
            code="item_refused",
        )


def _patch(client: GraphClient, instance_id: str, occurrence: Event) -> None:
    client.call(
        "PATCH",
        event_url(client, instance_id),
        what="writing a changed occurrence",
        headers={"Content-Type": "application/json"},
        content=json.dumps(graph_events.to_graph(occurrence, with_recurrence=False)).encode(),
    )
