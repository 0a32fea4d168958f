"""The console's sync filters page (console/views/sync_filters.py), through Django's test client
as htmx sends its requests: live counts, conditions added and removed, saving, refusing."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from mailboxes.models import SyncFilter, SyncFilterTemplate
from tests import factories
from tests.personas import World

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def signed_in(world: World, name: str) -> Client:
    client = Client()
    client.force_login(world[name].login)
    return client


def contacts_filter(world: World) -> SyncFilter:
    return SyncFilter.objects.get(mailbox=world["alice"].mailbox, entity="contact")


def form(**changes: Any) -> dict[str, Any]:
    """The "My contacts" form as the page shows it, with ``changes``."""
    return {"name": "My contacts", "owner": "mine", "states": ["active"], "window_field": "", **changes}


def test_the_page_lists_each_entitys_filters_with_what_they_select(world):
    factories.contact(owner=world["alice"].crm_user)
    mailbox = world["alice"].mailbox

    page = signed_in(world, "alice").get(f"/mailboxes/{mailbox.pk}/sync-filters/").content.decode()

    assert 'data-entity="contact"' in page
    assert 'data-total="2"' in page
    assert 'value="My appointments"' in page
    assert 'value="My tasks"' in page
    detail = signed_in(world, "alice").get(f"/mailboxes/{mailbox.pk}/").content.decode()
    assert f'href="/mailboxes/{mailbox.pk}/sync-filters/"' in detail


def test_the_count_follows_the_form_and_nothing_is_saved(world):
    factories.contact(owner=world["alice"].crm_user, company_name="Acme")
    sync_filter = contacts_filter(world)
    url = f"/sync-filters/{sync_filter.pk}/?preview=count"
    client = signed_in(world, "alice")

    assert 'data-count="2"' in client.post(url, form(), **HTMX).content.decode()
    narrowed = form(condition_field="company_name", condition_op="contains", condition_value="acme")
    assert 'data-count="1"' in client.post(url, narrowed, **HTMX).content.decode()
    everyone = client.post(url, form(owner="all", states=[]), **HTMX).content.decode()
    assert 'data-count="5"' in everyone  # alice's two, and bob's, quinn's and admin's contact
    assert SyncFilter.objects.get(pk=sync_filter.pk).criteria == {"owner": "mine", "states": ["active"]}


def test_conditions_are_added_removed_and_saved_as_criteria(world):
    sync_filter = contacts_filter(world)
    url = f"/sync-filters/{sync_filter.pk}/"
    client = signed_in(world, "alice")

    added = client.post(url, form(action="add-condition"), **HTMX).content.decode()
    assert 'aria-label="Condition 1 field"' in added
    two = form(condition_field=["company_name", "job_title"], condition_op=["contains", "in"])
    two["condition_value"] = ["acme", "CEO, CFO"]
    removed = client.post(url, {**two, "action": "remove-condition-0"}, **HTMX).content.decode()
    assert 'aria-label="Condition 2 field"' not in removed
    assert 'value="CEO, CFO"' in removed

    saved = client.post(url, {**two, "action": "save"}, **HTMX)

    assert saved["HX-Redirect"] == f"/mailboxes/{world['alice'].mailbox.pk}/sync-filters/"
    assert SyncFilter.objects.get(pk=sync_filter.pk).criteria == {
        "owner": "mine",
        "states": ["active"],
        "conditions": [
            {"field": "company_name", "op": "contains", "value": "acme"},
            {"field": "job_title", "op": "in", "value": ["CEO", "CFO"]},
        ],
    }


def test_a_bad_criterion_shows_why_and_saves_nothing(world):
    sync_filter = contacts_filter(world)
    bad = form(condition_field="shoe_size", condition_op="equals", condition_value="42", action="save")

    response = signed_in(world, "alice").post(f"/sync-filters/{sync_filter.pk}/", bad, **HTMX)

    assert "Condition 1: contacts have no field &#x27;shoe_size&#x27;" in response.content.decode()
    assert SyncFilter.objects.get(pk=sync_filter.pk).criteria == {"owner": "mine", "states": ["active"]}


def test_adding_and_deleting_filters(world):
    mailbox = world["alice"].mailbox
    client = signed_in(world, "alice")

    client.post(f"/mailboxes/{mailbox.pk}/sync-filters/add/", {"entity": "task"}, **HTMX)
    added = SyncFilter.objects.filter(mailbox=mailbox, entity="task").latest("pk")
    assert (added.name, added.criteria) == ("My tasks", {"owner": "mine"})
    client.post(f"/sync-filters/{added.pk}/delete/", **HTMX)
    assert not SyncFilter.objects.filter(pk=added.pk).exists()


def test_another_users_filter_is_not_found(world):
    bobs = SyncFilter.objects.get(mailbox=world["bob"].mailbox, entity="contact")

    response = signed_in(world, "alice").post(f"/sync-filters/{bobs.pk}/", form(action="save"), **HTMX)

    assert response.status_code == 404
    assert SyncFilter.objects.get(pk=bobs.pk).name == "My contacts"


def test_the_admin_refuses_a_default_naming_no_field(world):
    template = SyncFilterTemplate.objects.get(name="My appointments")
    url = f"/admin/mailboxes/syncfiltertemplate/{template.pk}/change/"
    data = {"entity": "appointment", "name": "Mine", "criteria": '{"conditions": [{"field": "mood"}]}'}

    response = signed_in(world, "admin").post(url, data)

    assert response.status_code == 200
    assert "Condition 1: appointments have no field &#x27;mood&#x27;" in response.content.decode()
    assert SyncFilterTemplate.objects.get(pk=template.pk).name == "My appointments"
