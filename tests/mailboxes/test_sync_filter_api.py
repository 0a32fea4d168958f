"""Sync filters over /api/v1/: who edits which, the live counts, and 400s that say what is wrong."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator

from mailboxes.models import SyncFilter, SyncFilterTemplate
from tests import factories
from tests.personas import World

pytestmark = pytest.mark.django_db

URL = "/api/v1/sync-filters/"


def contacts_filter(world: World, name: str) -> SyncFilter:
    return SyncFilter.objects.get(mailbox=world[name].mailbox, entity="contact")


def test_a_user_edits_their_own_filter_and_sees_the_count_change(world, api_as):
    alice = world["alice"]
    factories.contact(owner=alice.crm_user, company_name="Acme")  # alice-contact is the other
    mine = contacts_filter(world, "alice")
    client = api_as("alice")

    assert client.get(f"{URL}{mine.pk}/").json()["matching_count"] == 2
    narrowed = {"owner": "mine", "conditions": [{"field": "company_name", "op": "contains", "value": "acm"}]}
    response = client.patch(f"{URL}{mine.pk}/", {"criteria": narrowed}, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["matching_count"] == 1
    assert SyncFilter.objects.get(pk=mine.pk).criteria == narrowed
    count = client.get(f"{URL}count/", {"mailbox": alice.mailbox.pk, "entity": "contact"})
    assert count.json() == {"mailbox": alice.mailbox.pk, "entity": "contact", "count": 1}


def test_a_user_neither_sees_nor_edits_another_users_filters(world, api_as):
    bobs = contacts_filter(world, "bob")
    client = api_as("alice")

    assert client.get(f"{URL}{bobs.pk}/").status_code == 404
    assert client.patch(f"{URL}{bobs.pk}/", {"name": "Mine now"}, format="json").status_code == 404
    assert (
        client.get(f"{URL}count/", {"mailbox": world["bob"].mailbox.pk, "entity": "task"}).status_code == 404
    )
    listed = {row["id"] for row in client.get(URL).json()["results"]}
    assert listed == set(
        SyncFilter.objects.filter(mailbox=world["alice"].mailbox).values_list("pk", flat=True)
    )
    made = client.post(
        URL, {"mailbox": world["bob"].mailbox.pk, "entity": "task", "name": "Sneaky"}, format="json"
    )
    assert made.status_code == 400
    assert "mailbox" in made.json()
    assert not SyncFilter.objects.filter(name="Sneaky").exists()


def test_an_administrator_edits_any_mailboxs_filters(world, api_as):
    bobs = contacts_filter(world, "bob")

    response = api_as("admin").patch(f"{URL}{bobs.pk}/", {"name": "Bob's contacts"}, format="json")

    assert response.status_code == 200
    assert SyncFilter.objects.get(pk=bobs.pk).name == "Bob's contacts"


def test_a_queue_mailbox_takes_no_filter(world, api_as):
    response = api_as("quinn").post(
        URL,
        {"mailbox": world.queue_mailbox.pk, "entity": "contact", "name": "Support's", "criteria": {}},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["mailbox"] == [
        "Only a user's mailbox synchronizes appointments, contacts and tasks."
    ]


def test_bad_criteria_answer_400_naming_the_field(world, api_as):
    response = api_as("alice").post(
        URL,
        {
            "mailbox": world["alice"].mailbox.pk,
            "entity": "appointment",
            "name": "Red ones",
            "criteria": {"conditions": [{"field": "colour", "op": "equals", "value": "red"}]},
        },
        format="json",
    )

    assert response.status_code == 400
    [message] = response.json()["criteria"]
    assert message.startswith("Condition 1: appointments have no field 'colour'; use one of ")
    assert "subject" in message


def test_only_administrators_edit_the_organizations_defaults(world, api_as):
    template = SyncFilterTemplate.objects.get(name="My tasks")
    url = f"/api/v1/sync-filter-defaults/{template.pk}/"

    assert api_as("alice").get("/api/v1/sync-filter-defaults/").status_code == 403
    assert api_as("alice").patch(url, {"name": "Ours"}, format="json").status_code == 403
    response = api_as("admin").patch(url, {"criteria": {"owner": "all", "states": ["done"]}}, format="json")
    assert response.status_code == 400
    assert response.json()["criteria"][0].startswith("States: 'done' is not a state of tasks")
    response = api_as("admin").patch(url, {"criteria": {"owner": "all"}}, format="json")
    assert response.status_code == 200
    new_mailbox = factories.mailbox(user=factories.crm_user("Carol"))
    assert new_mailbox.sync_filters.get(entity="task").criteria == {"owner": "all"}


def test_the_routes_are_documented():
    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]

    assert {"/api/v1/sync-filters/", "/api/v1/sync-filters/count/", "/api/v1/sync-filter-defaults/"} <= set(
        paths
    )
    count = paths["/api/v1/sync-filters/count/"]["get"]
    assert {p["name"] for p in count["parameters"]} >= {"mailbox", "entity"}
