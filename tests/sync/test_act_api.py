"""The API of appointments, contacts and tasks (sync/api.py): item problems and links,
each user only their own mailboxes' and a mailbox filter that does not tell which
mailboxes exist (as the engine's other records' filters); the field directions, read by
everyone and set by administrators with setting_errors' reasons; every answer documented in the schema."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator

from sync import act_fields
from sync.models import ActFieldSetting, ActItemProblem, ActLink, ActProblemKind
from tests.personas import World

pytestmark = pytest.mark.django_db


def ids(response) -> set[int]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def test_a_conflict_reads_with_its_field_sides_and_values(world: World, api_as):
    conflict = world["alice"].sync.act_problem

    row = api_as("alice").get(f"/api/v1/act-problems/{conflict.pk}/").json()

    assert row == {
        "id": conflict.pk,
        "mailbox": world["alice"].mailbox.pk,
        "entity": "contact",
        "kind": "conflict",
        "link": world["alice"].sync.act_link.pk,
        "item_id": world["alice"].sync.act_link.item_id,
        "record_id": world["alice"].contact.pk,
        "title": str(world["alice"].contact),
        "field": "job_title",
        "dropped_side": "server",
        "dropped_value": f"server title {world['alice'].mailbox.pk}",
        "kept_value": f"CRM title {world['alice'].mailbox.pk}",
        "message": conflict.message,
        "created_on": row["created_on"],
    }


def test_problems_filter_by_mailbox_entity_and_kind(world: World, api_as):
    alice = world["alice"].mailbox
    refused = ActItemProblem.objects.create(
        mailbox=alice, entity="task", kind=ActProblemKind.REFUSED, title="Call back", message="Refused."
    )
    client = api_as("admin")

    assert ids(client.get(f"/api/v1/act-problems/?mailbox={alice.pk}")) == {
        refused.pk,
        world["alice"].sync.act_problem.pk,
    }
    assert ids(client.get(f"/api/v1/act-problems/?mailbox={alice.pk}&entity=task")) == {refused.pk}
    conflicts = ids(client.get("/api/v1/act-problems/?kind=conflict"))
    assert refused.pk not in conflicts
    assert len(conflicts) == ActItemProblem.objects.filter(kind="conflict").count() == 5


@pytest.mark.parametrize(
    "route", ["act-problems", "act-links", "alerts", "receipts", "quarantined-messages", "sync-runs"]
)
def test_another_user_s_mailbox_answers_as_one_that_does_not_exist(world: World, api_as, route):
    client = api_as("alice")

    someone_elses = client.get(f"/api/v1/{route}/?mailbox={world['bob'].mailbox.pk}")
    missing = client.get(f"/api/v1/{route}/?mailbox=987654")

    assert someone_elses.status_code == missing.status_code == 400
    assert someone_elses.json() == missing.json()
    assert ids(client.get(f"/api/v1/{route}/?mailbox={world['alice'].mailbox.pk}"))
    # The queue's mailbox is quinn's to see, as a queue owner.
    queue_rows = ids(api_as("quinn").get(f"/api/v1/{route}/?mailbox={world.queue_mailbox.pk}"))
    assert len(queue_rows) == 1


@pytest.mark.parametrize("query", ["entity=email", "kind=lost", "mailbox=abc"])
def test_bad_filter_values_are_a_400(world: World, api_as, query):
    assert api_as("admin").get(f"/api/v1/act-problems/?{query}").status_code == 400


def test_links_leave_out_each_side_s_copy_unless_asked(world: World, api_as):
    link = world["alice"].sync.act_link
    ActLink.objects.filter(pk=link.pk).update(
        crm_synced={"job_title": "CRM"}, server_synced={"job_title": "S"}
    )
    client = api_as("alice")

    plain = client.get(f"/api/v1/act-links/?mailbox={link.mailbox_id}&entity=contact").json()["results"]
    full = client.get(f"/api/v1/act-links/{link.pk}/?synced=true").json()

    assert plain == [
        {
            "id": link.pk,
            "mailbox": link.mailbox_id,
            "entity": "contact",
            "record_id": world["alice"].contact.pk,
            "item_id": link.item_id,
            "uid": link.uid,
            "tracked_on_server": False,
            "created_on": plain[0]["created_on"],
            "synced_on": None,
        }
    ]
    assert (full["crm_synced"], full["server_synced"]) == ({"job_title": "CRM"}, {"job_title": "S"})
    assert client.get(f"/api/v1/act-links/?entity=appointment&mailbox={link.mailbox_id}").json()["count"] == 0
    assert client.get("/api/v1/act-links/?synced=perhaps").status_code == 400


def test_every_field_of_every_entity_is_listed_with_its_direction(world: World, api_as):
    ActFieldSetting.objects.create(entity="task", field="priority", direction="to_crm")

    listed = api_as("bob").get("/api/v1/act-field-settings/").json()

    assert [row["key"] for row in listed] == [
        f"{entity}.{synced.name}" for entity, fields in act_fields.FIELDS.items() for synced in fields
    ]
    by_key = {row["key"]: row for row in listed}
    assert by_key["task.priority"] == {
        "key": "task.priority",
        "entity": "task",
        "field": "priority",
        "label": "Priority",
        "direction": "to_crm",
        "default": "both",
        "fixed": False,
    }
    assert by_key["appointment.schedule"]["fixed"] is True


def test_an_administrator_sets_a_direction_and_back_to_the_default(world: World, api_as):
    client = api_as("admin")

    changed = client.patch("/api/v1/act-field-settings/appointment.location/", {"direction": "to_server"})
    assert changed.status_code == 200
    assert changed.json()["direction"] == "to_server"
    assert act_fields.directions("appointment")["location"] == "to_server"

    back = client.put("/api/v1/act-field-settings/appointment.location/", {"direction": "both"})
    assert back.json()["direction"] == "both"
    # The default keeps no row: it follows the default.
    assert not ActFieldSetting.objects.exists()


@pytest.mark.parametrize(
    ("key", "direction", "reason"),
    [
        ("appointment.schedule", "none", "always sync both ways; it cannot be changed."),
        ("contact.name", "to_crm", "always sync both ways; it cannot be changed."),
        ("task.due", "sideways", "'sideways' is not a direction; one of both, to_server, to_crm, none."),
    ],
)
def test_fixed_fields_and_bad_values_are_a_400_with_the_reason(world: World, api_as, key, direction, reason):
    response = api_as("admin").patch(f"/api/v1/act-field-settings/{key}/", {"direction": direction})

    assert response.status_code == 400
    (message,) = response.json()["direction"]
    assert message.endswith(reason)
    assert not ActFieldSetting.objects.exists()


def test_an_unknown_field_is_a_404_and_deleting_is_not_served(world: World, api_as):
    client = api_as("admin")

    assert client.get("/api/v1/act-field-settings/task.colour/").status_code == 404
    assert client.patch("/api/v1/act-field-settings/task.colour/", {"direction": "none"}).status_code == 404
    assert client.delete("/api/v1/act-field-settings/task.due/").status_code == 405
    assert client.post("/api/v1/act-field-settings/", {}).status_code == 405


@pytest.mark.parametrize(
    ("persona", "status"), [("alice", 403), ("quinn", 403), ("oscar", 403), ("anonymous", 401)]
)
def test_only_administrators_set_directions(world: World, api_as, persona, status):
    response = api_as(persona).patch("/api/v1/act-field-settings/task.due/", {"direction": "none"})

    assert response.status_code == status
    assert not ActFieldSetting.objects.exists()


def test_the_routes_and_their_answers_are_documented():
    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]

    documented = {
        (path, method): set(operation["responses"])
        for path, operations in paths.items()
        if path.startswith("/api/v1/act-")
        for method, operation in operations.items()
    }
    assert documented == {
        # 404 on a list: a page beyond the last; 400 on a link: ?synced=maybe; 413 and 415: a body
        # too large or not JSON; 429: throttled.
        ("/api/v1/act-problems/", "get"): {"200", "400", "401", "403", "404", "429"},
        ("/api/v1/act-problems/{id}/", "get"): {"200", "401", "403", "404", "429"},
        ("/api/v1/act-links/", "get"): {"200", "400", "401", "403", "404", "429"},
        ("/api/v1/act-links/{id}/", "get"): {"200", "400", "401", "403", "404", "429"},
        ("/api/v1/act-field-settings/", "get"): {"200", "401", "403", "429"},
        ("/api/v1/act-field-settings/{key}/", "get"): {"200", "401", "403", "404", "429"},
        ("/api/v1/act-field-settings/{key}/", "put"): {
            "200",
            "400",
            "401",
            "403",
            "404",
            "413",
            "415",
            "429",
        },
        ("/api/v1/act-field-settings/{key}/", "patch"): {
            "200",
            "400",
            "401",
            "403",
            "404",
            "413",
            "415",
            "429",
        },
    }
    filters = {p["name"] for p in paths["/api/v1/act-problems/"]["get"]["parameters"]}
    assert {"mailbox", "entity", "kind"} <= filters
    assert "synced" in {p["name"] for p in paths["/api/v1/act-links/"]["get"]["parameters"]}
