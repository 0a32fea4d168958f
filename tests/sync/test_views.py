"""The web UI's pages (sync/views/): what each persona sees and may do, and flat queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from mailboxes.models import ApprovalStatus, Mailbox
from sync.models import MailboxTest, Rollout
from sync.models import TestState as MailboxTestState
from tests import factories
from tests.personas import World


def client_for(world: World, name: str) -> Client:
    client = Client()
    client.force_login(world[name].login)
    return client


def listed(response) -> set[str]:
    return {mailbox.email_address for mailbox in response.context["page"]}


def queued_test(mailbox: Mailbox, **extra) -> MailboxTest:
    return MailboxTest.objects.create(mailbox=mailbox, queued_on=timezone.now(), **extra)


def test_a_user_sees_only_their_own_mailbox_and_a_queue_owner_also_the_queues(world: World):
    assert listed(client_for(world, "alice").get("/mailboxes/")) == {world["alice"].mailbox.email_address}
    assert listed(client_for(world, "quinn").get("/mailboxes/")) == {
        world["quinn"].mailbox.email_address,
        world.queue_mailbox.email_address,
    }
    assert len(listed(client_for(world, "admin").get("/mailboxes/"))) == 5


def test_a_user_cannot_test_another_users_mailbox(world: World):
    bob = world["bob"].mailbox
    response = client_for(world, "alice").post(
        "/mailboxes/test-and-enable/", {"mailbox": [world["alice"].mailbox.pk, bob.pk]}
    )
    assert response.status_code == 404
    assert not MailboxTest.objects.exists()


def test_all_matching_takes_only_the_viewers_mailboxes(world: World):
    response = client_for(world, "quinn").post(
        "/mailboxes/test-and-enable/", {"all_matching": "1"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    tested = set(MailboxTest.objects.values_list("mailbox_id", flat=True))
    assert tested == {world["quinn"].mailbox.pk, world.queue_mailbox.pk}


def test_progress_never_shows_another_users_test(world: World):
    bobs = queued_test(world["bob"].mailbox)
    alices = queued_test(world["alice"].mailbox)
    response = client_for(world, "alice").get(f"/mailboxes/progress/?test={bobs.pk}&test={alices.pk}")
    assert [row.test for row in response.context["progress"].rows] == [alices]
    assert world["bob"].mailbox.email_address not in response.content.decode()


def test_progress_polls_until_every_test_has_finished(world: World):
    test = queued_test(world["alice"].mailbox)
    client = client_for(world, "alice")
    assert 'hx-trigger="every 1s"' in client.get(f"/mailboxes/progress/?test={test.pk}").content.decode()
    MailboxTest.objects.filter(pk=test.pk).update(state=MailboxTestState.PASSED)
    assert "hx-trigger" not in client.get(f"/mailboxes/progress/?test={test.pk}").content.decode()


def test_a_failure_shows_its_reason_and_where_to_fix_it(world: World):
    results = {
        "incoming": {
            "outcome": "failure",
            "code": "authentication_failed",
            "message": "The server rejected the sign-in.",
            "fix": "Correct the password.",
        }
    }
    test = queued_test(world["alice"].mailbox, state=MailboxTestState.FAILED, results=results)
    page = client_for(world, "admin").get(f"/mailboxes/progress/?test={test.pk}").content.decode()
    assert "The server rejected the sign-in." in page
    assert f"/admin/mailboxes/mailbox/{world['alice'].mailbox.pk}/change/" in page


def test_approving_needs_the_permission_and_records_who(world: World):
    alice = world["alice"].mailbox
    denied = client_for(world, "alice").post(
        "/mailboxes/approval/", {"mailbox": alice.pk, "decision": "approve"}
    )
    assert denied.status_code == 403
    client_for(world, "admin").post("/mailboxes/approval/", {"mailbox": alice.pk, "decision": "approve"})
    alice.refresh_from_db()
    assert alice.approval_status == ApprovalStatus.APPROVED
    assert alice.approval_changed_by == world["admin"].login


def test_more_than_a_batch_becomes_a_rollout(world: World, settings):
    settings.SYNC_ROLLOUT_BATCH_SIZE = 2
    response = client_for(world, "admin").post("/mailboxes/test-and-enable/", {"all_matching": "1"})
    assert response.status_code == 302
    rollout = Rollout.objects.order_by("-id").first()
    assert rollout is not None
    assert rollout.items.count() == 5
    page = client_for(world, "admin").get("/mailboxes/")
    assert rollout in page.context["rollouts"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("backoff=yes", {"alice"}),
        ("disabled=yes", {"bob"}),
        ("owner=queue", {"support"}),
        ("q=quinn", {"quinn"}),
    ],
)
def test_filters(world: World, query: str, expected: set[str]):
    Mailbox.objects.filter(pk=world["alice"].mailbox.pk).update(
        incoming_postponed_until=timezone.now() + timedelta(minutes=5)
    )
    Mailbox.objects.filter(pk=world["bob"].mailbox.pk).update(disabled_reason="Authentication failed.")
    response = client_for(world, "admin").get(f"/mailboxes/?{query}")
    assert {address.split("@")[0] for address in listed(response)} == expected


def _queries_for_mailbox_page(client: Client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/mailboxes/").status_code == 200
    return len(queries)


def test_the_mailbox_page_queries_do_not_grow_with_the_mailboxes(world: World):
    profile = world.profile
    client = client_for(world, "admin")
    for _ in range(3):
        queued_test(factories.mailbox(user=factories.crm_user(), profile=profile))
    few = _queries_for_mailbox_page(client)
    for _ in range(27):
        queued_test(factories.mailbox(user=factories.crm_user(), profile=profile))
    assert _queries_for_mailbox_page(client) == few
