"""/api/v1/rollouts/: plan by ids or by the mailbox list's filters, progress per batch, cancel."""

from __future__ import annotations

import pytest

from mailboxes.models import Mailbox
from sync.models import Rollout
from sync.rollout import rollout_tick
from tests import factories
from tests.personas import World

pytestmark = pytest.mark.django_db


def test_an_administrator_plans_a_rollout_of_chosen_mailboxes_queue_first(world: World, api_as):
    chosen = [world["alice"].mailbox.pk, world.queue_mailbox.pk]
    response = api_as("admin").post("/api/v1/rollouts/", {"mailboxes": chosen}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["state"], body["mailbox_count"], body["created_by"]) == ("planned", 2, "admin")
    assert body["batches"] == [
        {
            "number": 1,
            "mailboxes": 2,
            "started": False,
            "counts": {"queued": 0, "testing": 0, "passed": 0, "failed": 0, "canceled": 0},
        }
    ]
    rollout = Rollout.objects.get(pk=body["id"])
    assert [item.mailbox_id for item in rollout.items.all()] == [world.queue_mailbox.pk, chosen[0]]


def test_all_matching_uses_the_mailbox_filters(world: World, api_as):
    response = api_as("admin").post(
        "/api/v1/rollouts/", {"all_matching": {"owner_type": "user", "search": "alice"}}, format="json"
    )
    assert response.status_code == 201, response.content
    rollout = Rollout.objects.get(pk=response.json()["id"])
    assert [item.mailbox_id for item in rollout.items.all()] == [world["alice"].mailbox.pk]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"mailboxes": [999_999]},
        {"mailboxes": [1], "all_matching": {}},
        {"all_matching": {"owner_type": "robot"}},
        {"all_matching": {"search": "nobody-matches-this"}},
    ],
)
def test_a_selection_that_is_not_one_or_matches_nothing_is_a_400(world: World, api_as, body):
    before = Rollout.objects.count()
    assert api_as("admin").post("/api/v1/rollouts/", body, format="json").status_code == 400
    assert Rollout.objects.count() == before


def test_progress_and_next_batch_time_then_cancel(world: World, api_as):
    assert world.rollout is not None
    rollout_tick()
    url = f"/api/v1/rollouts/{world.rollout.pk}/"
    body = api_as("admin").get(url).json()
    assert body["state"] == "running"
    assert body["next_batch_on"] is None  # one batch: nothing left to start
    assert body["batches"][0]["counts"]["queued"] == Mailbox.objects.count()

    canceled = api_as("admin").post(url + "cancel/", {}, format="json")
    assert canceled.status_code == 200
    assert canceled.json()["state"] == "canceled"
    assert canceled.json()["batches"][0]["counts"]["canceled"] == Mailbox.objects.count()


def test_a_completed_rollout_cannot_be_canceled(world: World, api_as):
    assert world.rollout is not None
    Rollout.objects.filter(pk=world.rollout.pk).update(state=Rollout.State.COMPLETED)
    response = api_as("admin").post(f"/api/v1/rollouts/{world.rollout.pk}/cancel/", {}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "rollout_finished"


def test_test_and_enable_mailboxes_of_a_profile_is_one_rollout_of_all_its_mailboxes(world: World, api_as):
    response = api_as("admin").post(f"/api/v1/profiles/{world.profile.pk}/test-and-enable-mailboxes/")
    assert response.status_code == 200, response.content
    rollout = Rollout.objects.get(pk=response.json()["id"])
    planned = set(rollout.items.values_list("mailbox_id", flat=True))
    assert planned == set(Mailbox.objects.filter(profile=world.profile).values_list("pk", flat=True))
    empty = factories.profile("Unused")
    response = api_as("admin").post(f"/api/v1/profiles/{empty.pk}/test-and-enable-mailboxes/")
    assert response.status_code == 400
    assert "no mailboxes" in response.json()["detail"]
