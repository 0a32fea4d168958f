"""The calendar, contacts and To Do side of the Graph test server, driven with plain HTTP
as a client would. Every answer here is also checked against the metadata (the autouse
fixture fails a test whose bodies did not fit)."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.fakes.graph.client import Graph
from tests.fakes.graph.fixtures import GraphMailbox, new_mailbox

ACT = ("Calendars.ReadWrite", "Contacts.ReadWrite", "Tasks.ReadWrite.All")
UID = "String {00020329-0000-0000-C000-000000000046} Name test.uid"
WINDOW = {"startDateTime": "2030-01-01T00:00:00Z", "endDateTime": "2031-01-01T00:00:00Z"}
UTC = {"Prefer": 'outlook.timezone="UTC"'}


@pytest.fixture
def box(graph_server) -> GraphMailbox:
    return new_mailbox(graph_server, "items", permissions=ACT)


@pytest.fixture
def graph(box: GraphMailbox) -> Graph:
    return Graph(box.server, box.app, box.address)


def error(answer: requests.Response) -> tuple[int, str]:
    return answer.status_code, answer.json()["error"]["code"]


def weekly(count: int = 4) -> dict[str, Any]:
    """Mondays 09:00 in Berlin from 18 March 2030 (summer time from the 31st)."""
    return {
        "subject": "Standup",
        "start": {"dateTime": "2030-03-18T09:00:00", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": "2030-03-18T09:15:00", "timeZone": "W. Europe Standard Time"},
        "recurrence": {
            "pattern": {
                "type": "weekly",
                "interval": 1,
                "daysOfWeek": ["monday"],
                "firstDayOfWeek": "monday",
            },
            "range": {"type": "numbered", "startDate": "2030-03-18", "numberOfOccurrences": count},
        },
        "singleValueExtendedProperties": [{"id": UID, "value": "standup@test"}],
    }


def delta_round(graph: Graph, url: str, **options: Any) -> tuple[list[dict[str, Any]], str]:
    found: list[dict[str, Any]] = []
    while True:
        answer = graph.get(url, headers={"Prefer": "odata.maxpagesize=2"}, **options)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        found += body["value"]
        options = {}
        if "@odata.deltaLink" in body:
            return found, body["@odata.deltaLink"]
        url = body["@odata.nextLink"]


def test_a_series_has_instances_in_its_zones_wall_clock(graph):
    master = graph.post("events", json=weekly()).json()
    assert master["type"] == "seriesMaster"
    assert master["originalStartTimeZone"] == "W. Europe Standard Time"

    instances = graph.get(f"events/{master['id']}/instances", params=WINDOW, headers=UTC).json()["value"]

    assert [i["start"]["dateTime"][:16] for i in instances] == [
        "2030-03-18T08:00",
        "2030-03-25T08:00",
        "2030-04-01T07:00",
        "2030-04-08T07:00",
    ]
    assert {i["type"] for i in instances} == {"occurrence"}
    assert {i["seriesMasterId"] for i in instances} == {master["id"]}
    assert graph.get(f"events/{instances[0]['id']}").json()["id"] == instances[0]["id"]


def test_a_changed_occurrence_is_an_exception_and_a_deleted_one_is_gone(graph):
    master = graph.post("events", json=weekly()).json()
    first, second, *_ = graph.get(f"events/{master['id']}/instances", params=WINDOW).json()["value"]

    moved = graph.patch(f"events/{first['id']}", json={"subject": "Moved standup"})
    assert moved.status_code == 200
    assert graph.delete(f"events/{second['id']}").status_code == 204

    instances = graph.get(f"events/{master['id']}/instances", params=WINDOW).json()["value"]
    assert [(i["type"], i["subject"]) for i in instances] == [
        ("exception", "Moved standup"),
        ("occurrence", "Standup"),
        ("occurrence", "Standup"),
    ]
    assert graph.get(f"events/{master['id']}").json()["changeKey"] != master["changeKey"]
    assert error(graph.get(f"events/{second['id']}")) == (404, "ErrorItemNotFound")


def test_a_stale_if_match_is_refused_with_412(graph):
    created = graph.post("contacts", json={"givenName": "Ada"}).json()
    changed = graph.patch(
        f"contacts/{created['id']}",
        json={"surname": "Lovelace"},
        headers={"If-Match": created["@odata.etag"]},
    )
    assert changed.status_code == 200

    stale = graph.patch(
        f"contacts/{created['id']}", json={"surname": "Byron"}, headers={"If-Match": created["@odata.etag"]}
    )
    assert error(stale) == (412, "ErrorIrresolvableConflict")
    assert error(graph.delete(f"contacts/{created['id']}", headers={"If-Match": created["@odata.etag"]})) == (
        412,
        "ErrorIrresolvableConflict",
    )
    assert graph.get(f"contacts/{created['id']}").json()["surname"] == "Lovelace"


def test_extended_properties_are_filtered_on_and_expanded(graph):
    graph.post("events", json=weekly())
    graph.post(
        "contacts", json={"givenName": "Ada", "singleValueExtendedProperties": [{"id": UID, "value": "ada"}]}
    )
    graph.post("contacts", json={"givenName": "Bob"})
    wanted = f"singleValueExtendedProperties/Any(ep: ep/id eq '{UID}' and ep/value eq 'ada')"

    found = graph.get(
        "contacts",
        params={"$filter": wanted, "$expand": f"singleValueExtendedProperties($filter=id eq '{UID}')"},
    )

    [ada] = found.json()["value"]
    assert ada["givenName"] == "Ada"
    assert ada["singleValueExtendedProperties"] == [{"id": UID, "value": "ada"}]
    series = graph.get("events", params={"$filter": "type eq 'seriesMaster'"}).json()["value"]
    assert [s["subject"] for s in series] == ["Standup"]


def test_calendar_view_delta_reports_instances_then_changes_and_removals(graph):
    single = graph.post(
        "events",
        json={
            "subject": "Lunch",
            "start": {"dateTime": "2030-06-01T12:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2030-06-01T13:00:00", "timeZone": "UTC"},
        },
    ).json()
    master = graph.post("events", json=weekly(3)).json()

    first, link = delta_round(graph, "calendarView/delta", params=WINDOW)
    assert sorted(i["type"] for i in first) == ["occurrence", "occurrence", "occurrence", "singleInstance"]

    graph.delete(f"events/{single['id']}")
    graph.patch(f"events/{master['id']}", json={"subject": "Daily standup"})
    second, _ = delta_round(graph, link)

    assert {"id": single["id"], "@removed": {"reason": "deleted"}} in second
    assert [i["subject"] for i in second if "@removed" not in i] == ["Daily standup"] * 3


def test_contacts_and_tasks_delta_and_an_expired_token(graph, graph_server):
    lists = graph.get("todo/lists").json()["value"]
    tasks = f"todo/lists/{lists[0]['id']}/tasks"
    for title in ("One", "Two", "Three"):
        assert graph.post(tasks, json={"title": title}).status_code == 201
    found, link = delta_round(graph, f"{tasks}/delta")
    assert [t["title"] for t in found] == ["One", "Two", "Three"]

    graph.delete(f"{tasks}/{found[0]['id']}")
    removed, _ = delta_round(graph, link)
    assert removed == [{"id": found[0]["id"], "@removed": {"reason": "deleted"}}]

    graph.post("contacts", json={"givenName": "Ada"})
    _, contacts_link = delta_round(graph, "contacts/delta")
    graph_server.expire_delta_tokens()
    assert error(graph.get(contacts_link)) == (410, "SyncStateNotFound")


def test_a_task_keeps_its_linked_resources(graph):
    lists = graph.get("todo/lists").json()["value"]
    tasks = f"todo/lists/{lists[0]['id']}/tasks"
    linked = {"applicationName": "CRM", "externalId": "task-1", "displayName": "Task 1"}
    created = graph.post(tasks, json={"title": "Call", "linkedResources": [linked]}).json()

    read = graph.get(f"{tasks}/{created['id']}", params={"$expand": "linkedResources"}).json()
    assert [{k: r[k] for k in linked} for r in read["linkedResources"]] == [linked]
    assert "linkedResources" not in graph.get(f"{tasks}/{created['id']}").json()


def test_bodies_and_options_graph_would_refuse(graph, graph_server, box):
    answer = graph.post("contacts", json={"givenName": "Ada", "faxNumber": "+1"})
    assert error(answer) == (400, "RequestBodyRead")
    answer = graph.get("contacts", params={"$filter": "givenName eq 'Ada'"})
    assert error(answer) == (501, "NotImplemented")
    answer = graph.get("events", params={"$orderby": "start/dateTime"})
    assert error(answer) == (501, "NotImplemented")
    where = f"/v1.0/users/{box.address}"
    assert graph_server.take_violations() == [
        f"POST {where}/contacts request: contact: Property 'faxNumber' does not exist on type "
        "'microsoft.graph.contact'",
        f"GET {where}/contacts?%24filter=givenName+eq+%27Ada%27: the test server does not implement "
        "$filter=givenName eq 'Ada'",
        f"GET {where}/events?%24orderby=start%2FdateTime: the test server does not implement "
        "$orderby on GET events",
    ]


def test_writing_needs_the_readwrite_permission(graph_server):
    reader = new_mailbox(
        graph_server, "reader", permissions=("Calendars.Read", "Contacts.Read", "Tasks.Read.All")
    )
    graph = Graph(reader.server, reader.app, reader.address)
    assert graph.get("events").status_code == 200
    assert error(graph.post("events", json=weekly())) == (403, "ErrorAccessDenied")
    assert error(graph.post("contacts", json={"givenName": "Ada"})) == (403, "ErrorAccessDenied")
    lists = graph.get("todo/lists").json()["value"]
    assert error(graph.post(f"todo/lists/{lists[0]['id']}/tasks", json={"title": "x"})) == (
        403,
        "ErrorAccessDenied",
    )
