"""The web UI's pages (console/views/): what each persona sees and may do, and flat queries."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crm.choices import SyncStatus
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


def rows(html: str) -> dict[int, str]:
    """The mailbox table rows in a page or partial, by mailbox id."""
    return {int(pk): row for pk, row in re.findall(r'<tr id="mailbox-(\d+)"(.*?)</tr>', html, re.S)}


def refreshed_rows(html: str) -> dict[int, str]:
    """The rows a progress answer swaps into the table out of band."""
    return {pk: row for pk, row in rows(html).items() if 'hx-swap-oob="true"' in row}


def without_tokens(html: str) -> str:
    # Django masks the CSRF token differently in every answer.
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)


def finish(test: MailboxTest, state: str = MailboxTestState.PASSED, **mailbox_values) -> None:
    """What test & enable leaves behind: the test finished, the mailbox's statuses recorded."""
    MailboxTest.objects.filter(pk=test.pk).update(state=state, finished_on=timezone.now())
    Mailbox.objects.filter(pk=test.mailbox_id).update(test_completed_on=timezone.now(), **mailbox_values)


def progress(client: Client, *test_ids: int, done: tuple[int, ...] = ()) -> str:
    query = "&".join([f"test={pk}" for pk in test_ids] + [f"done={pk}" for pk in done])
    response = client.get(f"/mailboxes/progress/?{query}", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return response.content.decode()


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


# --- the table follows the tests --------------------------------------------------------------


def test_a_finished_test_refreshes_its_table_row_once(world: World):
    quinns, queues = world["quinn"].mailbox, world.queue_mailbox
    test, still_running = queued_test(quinns), queued_test(queues)
    client = client_for(world, "quinn")
    assert refreshed_rows(progress(client, test.pk, still_running.pk)) == {}

    finish(
        test, incoming_status=SyncStatus.SUCCESS, incoming_enabled=True, outgoing_status=SyncStatus.FAILURE
    )
    answer = progress(client, test.pk, still_running.pk)

    assert list(refreshed_rows(answer)) == [quinns.pk]
    row = refreshed_rows(answer)[quinns.pk]
    assert re.search(r'class="incoming"><span class="badge success">Success</span> <span class="on">on', row)
    assert re.search(r'class="outgoing"><span class="badge failure">Failure</span></td>', row)
    assert "Passed" in row
    # The next poll names the test as seen, so the row is not sent again.
    assert f"test={test.pk}&amp;test={still_running.pk}&amp;done={test.pk}" in answer
    assert refreshed_rows(progress(client, test.pk, still_running.pk, done=(test.pk,))) == {}


def test_the_refreshed_row_is_the_row_the_page_shows(world: World):
    test = queued_test(world["alice"].mailbox)
    client = client_for(world, "alice")
    finish(test, state=MailboxTestState.FAILED, incoming_status=SyncStatus.FAILURE, disabled_reason="No.")

    refreshed = refreshed_rows(progress(client, test.pk))[world["alice"].mailbox.pk]
    on_the_page = rows(client.get("/mailboxes/").content.decode())[world["alice"].mailbox.pk]

    assert without_tokens(refreshed.replace(' hx-swap-oob="true"', "")) == without_tokens(on_the_page)


def test_a_page_that_shows_finished_tests_refreshes_no_row(world: World):
    test = queued_test(world["alice"].mailbox)
    finish(test)
    page = client_for(world, "alice").get(f"/mailboxes/?test={test.pk}").content.decode()
    assert refreshed_rows(page) == {}
    assert f"done={test.pk}" not in page  # finished: the panel no longer polls


def test_progress_refreshes_only_rows_the_viewer_may_see(world: World):
    alices, bobs = queued_test(world["alice"].mailbox), queued_test(world["bob"].mailbox)
    finish(alices)
    finish(bobs)
    answer = progress(client_for(world, "alice"), alices.pk, bobs.pk)
    assert list(refreshed_rows(answer)) == [world["alice"].mailbox.pk]
    assert world["bob"].mailbox.email_address not in answer


def _queries_for_progress(client: Client, test_ids: list[int]) -> int:
    with CaptureQueriesContext(connection) as queries:
        answer = progress(client, *test_ids)
    assert len(refreshed_rows(answer)) == len(test_ids)
    return len(queries)


def test_progress_queries_do_not_grow_with_the_refreshed_rows(world: World):
    client = client_for(world, "admin")

    def finished_tests(count: int) -> list[int]:
        tests = [
            queued_test(factories.mailbox(user=factories.crm_user(), profile=world.profile))
            for _ in range(count)
        ]
        for test in tests:
            finish(test, state=MailboxTestState.FAILED, incoming_status=SyncStatus.FAILURE)
        return [test.pk for test in tests]

    assert _queries_for_progress(client, finished_tests(3)) == _queries_for_progress(
        client, finished_tests(30)
    )


# --- round trip and rollouts ---------------------------------------------------------------------


@pytest.mark.parametrize(("ticked", "round_trip"), [({"round_trip": "1"}, True), ({}, False)])
def test_round_trip_is_passed_through_to_the_tests(world: World, ticked: dict, round_trip: bool):
    alice = world["alice"].mailbox
    client_for(world, "alice").post(
        "/mailboxes/test-and-enable/", {"mailbox": alice.pk, **ticked}, HTTP_HX_REQUEST="true"
    )
    assert list(MailboxTest.objects.values_list("mailbox_id", "round_trip")) == [(alice.pk, round_trip)]


def test_round_trip_is_passed_through_to_a_rollout(world: World, settings):
    settings.SYNC_ROLLOUT_BATCH_SIZE = 2
    client_for(world, "admin").post("/mailboxes/test-and-enable/", {"all_matching": "1", "round_trip": "1"})
    assert Rollout.objects.order_by("-id").values_list("round_trip", flat=True)[0] is True


def test_the_page_offers_round_trip(world: World):
    page = client_for(world, "alice").get("/mailboxes/").content.decode()
    assert 'name="round_trip" value="1"' in page


def test_an_administrator_cancels_a_rollout_from_the_plan(world: World):
    rollout = world.rollout
    assert rollout is not None
    client = client_for(world, "admin")
    page = client.get("/mailboxes/").content.decode()
    assert f'action="/mailboxes/rollouts/{rollout.pk}/cancel/"' in page
    assert "Cancel rollout" in page

    response = client.post(f"/mailboxes/rollouts/{rollout.pk}/cancel/", {"next": "/mailboxes/?owner=user"})

    assert response.status_code == 302
    assert response["Location"] == "/mailboxes/?owner=user"
    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.CANCELED
    assert rollout.next_batch_on is None
    after = client.get("/mailboxes/")
    assert rollout not in after.context["rollouts"]
    assert f"Rollout {rollout.pk} is canceled" in after.content.decode()


def test_a_finished_rollout_cannot_be_canceled_and_says_why(world: World):
    rollout = world.rollout
    assert rollout is not None
    Rollout.objects.filter(pk=rollout.pk).update(state=Rollout.State.COMPLETED)
    client = client_for(world, "admin")
    client.post(f"/mailboxes/rollouts/{rollout.pk}/cancel/")
    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.COMPLETED
    assert "nothing left to cancel" in client.get("/mailboxes/").content.decode()


def test_cancel_goes_back_only_to_this_site(world: World):
    rollout = world.rollout
    assert rollout is not None
    response = client_for(world, "admin").post(
        f"/mailboxes/rollouts/{rollout.pk}/cancel/", {"next": "https://elsewhere.example/"}
    )
    assert response["Location"] == "/mailboxes/"


def test_only_administrators_see_the_cancel_button(world: World):
    factories.rollout(mailboxes=[world["alice"].mailbox], created_by=world["alice"].login)
    page = client_for(world, "alice").get("/mailboxes/")
    assert len(page.context["rollouts"]) == 1  # her own plan shows ...
    assert "Cancel rollout" not in page.content.decode()  # ... but canceling is for administrators


# --- where a failure is fixed ------------------------------------------------------------------


def failed_with(mailbox: Mailbox, code: str) -> MailboxTest:
    results = {
        "incoming": {"outcome": "failure", "code": code, "message": f"Failed: {code}.", "fix": "Fix it."}
    }
    return queued_test(mailbox, state=MailboxTestState.FAILED, results=results)


def fix_link(html: str) -> tuple[str, str]:
    found = re.search(r'<div class="problem">.*?<a href="([^"]+)"[^>]*>([^<]+)</a>', html, re.S)
    assert found, html
    return found.group(1).replace("&amp;", "&"), found.group(2)


def test_an_owner_is_sent_to_their_credentials_form_which_opens(world: World):
    alice = world["alice"].mailbox
    test = failed_with(alice, "authentication_failed")
    client = client_for(world, "alice")

    link, text = fix_link(progress(client, test.pk))

    assert text == "Set your credentials"
    assert "/api/" not in link
    page = client.get(link)
    assert listed(page) == {alice.email_address}
    assert f'<details id="credentials-{alice.pk}" open>' in page.content.decode()
    assert f'action="/mailboxes/{alice.pk}/credentials/"' in page.content.decode()


def test_an_owner_is_shown_their_mailbox_for_a_profile_fault(world: World):
    test = failed_with(world["alice"].mailbox, "connection_refused")
    assert fix_link(progress(client_for(world, "alice"), test.pk)) == (
        f"/mailboxes/{world['alice'].mailbox.pk}/",
        "Mailbox details",
    )


def test_an_administrator_is_sent_to_the_profile_edit_page(world: World):
    test = failed_with(world["alice"].mailbox, "connection_refused")
    assert fix_link(progress(client_for(world, "admin"), test.pk)) == (
        f"/profiles/{world.profile.pk}/",
        "Fix the profile",
    )


def test_only_the_mailbox_with_the_credentials_form_is_open(world: World):
    alice, bob = world["alice"].mailbox, world["bob"].mailbox
    page = client_for(world, "admin").get(f"/mailboxes/?credentials={alice.pk}").content.decode()
    assert f'<details id="credentials-{alice.pk}" open>' in page
    assert f'<details id="credentials-{bob.pk}">' in page


def test_an_administrator_approves_from_an_approval_failure(world: World):
    alice = world["alice"].mailbox
    test = failed_with(alice, "approval_missing")
    link, text = fix_link(progress(client_for(world, "admin"), test.pk))
    assert text == "Approve the address"
    assert listed(client_for(world, "admin").get(link)) == {alice.email_address}


def test_an_owners_credentials_link_never_points_at_the_api(world: World):
    test = failed_with(world["quinn"].mailbox, "credentials_missing")
    link, text = fix_link(progress(client_for(world, "quinn"), test.pk))
    assert (text, link.split("#")[1]) == ("Set your credentials", f"credentials-{world['quinn'].mailbox.pk}")


@pytest.mark.parametrize(
    "url",
    [
        "/mailboxes/?test=%C2%B2",  # "²": a digit to str.isdigit(), not to int()
        "/mailboxes/?test=99999999999999999999",  # beyond 64 bits
        "/emails/?mailbox=%C2%B2",
        "/emails/?mailbox=99999999999999999999",
        "/emails/?received_until=9999-12-31",
        "/emails/?received_from=2026-01-01&received_until=9999-12-30",
    ],
)
def test_odd_filter_values_on_pages_answer_a_page_not_a_500(world, url):
    response = client_for(world, "admin").get(url)
    assert response.status_code == 200, url
