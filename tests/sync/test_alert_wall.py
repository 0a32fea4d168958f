"""The alert wall (/alerts/): what it lists is checked against the test's own SQL;
acknowledge / resolve and the "outcome unknown" buttons change what they say."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crm.models import EmailActivity
from sync import outgoing
from sync.models import AlertLevel, MailboxAlert
from tests import factories
from tests.sync.stack import Stack
from tests.sync.test_engine_outgoing import api_client_for, compose, inbox

pytestmark = pytest.mark.django_db


def client_for(login) -> Client:
    client = Client()
    client.force_login(login)
    return client


def shown_alert_ids(response) -> set[int]:
    assert response.status_code == 200
    return {int(pk) for pk in re.findall(r'data-alert="(\d+)"', response.content.decode())}


def sql_ids(where: str, params: list) -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM sync_mailboxalert WHERE {where}", params)  # noqa: S608 - the tests' own clauses
        return {row[0] for row in cursor.fetchall()}


@pytest.fixture
def wall(world):
    """A spread of alerts over the personas' mailboxes and the profile."""
    now = timezone.now()
    alice, bob = world["alice"].mailbox, world["bob"].mailbox
    factories.alert(
        mailbox=alice,
        profile=alice.profile,
        level=AlertLevel.WARNING,
        category="outgoing",
        message="Relay said 451: try later",
        last_seen=now - timedelta(minutes=5),
    )
    factories.alert(
        mailbox=bob,
        profile=bob.profile,
        level=AlertLevel.ERROR,
        category="incoming",
        code="auth_failed",
        message="The password was rejected",
        count=7,
    )
    factories.alert(
        mailbox=bob,
        profile=bob.profile,
        level=AlertLevel.INFORMATION,
        category="incoming",
        resolved_on=now,
        message="Old news",
    )
    factories.alert(
        mailbox=alice,
        profile=alice.profile,
        category="act",
        acknowledged_on=now,
        message="Calendar not found",
    )
    return world


def test_the_wall_shows_open_alerts_by_default_newest_first(wall):
    response = client_for(wall["admin"].login).get("/alerts/")
    assert shown_alert_ids(response) == sql_ids("resolved_on IS NULL", [])
    order = [int(pk) for pk in re.findall(r'data-alert="(\d+)"', response.content.decode())]
    assert order == [
        a.pk for a in MailboxAlert.objects.filter(resolved_on=None).order_by("-last_seen", "-pk")
    ]


@pytest.mark.parametrize(
    ("query", "where", "params"),
    [
        ("level=error", "resolved_on IS NULL AND level = %s", ["error"]),
        ("level=warning", "resolved_on IS NULL AND level = %s", ["warning"]),
        ("category=incoming", "resolved_on IS NULL AND category = %s", ["incoming"]),
        ("state=resolved", "resolved_on IS NOT NULL", []),
        ("state=acknowledged", "resolved_on IS NULL AND acknowledged_on IS NOT NULL", []),
        ("state=all", "1 = 1", []),
        ("q=password", "resolved_on IS NULL AND message LIKE %s", ["%password%"]),
    ],
)
def test_filters_and_search_list_exactly_the_matching_alerts(wall, query, where, params):
    response = client_for(wall["admin"].login).get(f"/alerts/?{query}")
    assert shown_alert_ids(response) == sql_ids(where, params)


def test_search_finds_a_mailbox_by_address(wall):
    bob = wall["bob"].mailbox
    response = client_for(wall["admin"].login).get("/alerts/", {"q": bob.email_address, "state": "all"})
    assert shown_alert_ids(response) == sql_ids("mailbox_id = %s", [bob.pk])


def test_the_open_counts_by_level_match_the_database(wall):
    body = client_for(wall["admin"].login).get("/alerts/").content.decode()
    for level in AlertLevel:
        shown = int(re.search(rf'data-level="{level.value}">(\d+)<', body).group(1))
        assert shown == len(sql_ids("resolved_on IS NULL AND level = %s", [level.value])), level


def test_a_user_sees_only_their_own_mailboxes_alerts(wall):
    bob = wall["bob"]
    response = client_for(bob.login).get("/alerts/?state=all")
    assert shown_alert_ids(response) == sql_ids("mailbox_id = %s", [bob.mailbox.pk])
    body = response.content.decode()
    assert wall["alice"].mailbox.email_address not in body
    # Nor can a filter reach another mailbox's alerts, or its address.
    response = client_for(bob.login).get(f"/alerts/?mailbox={wall['alice'].mailbox.pk}&state=all")
    assert shown_alert_ids(response) == set()
    assert wall["alice"].mailbox.email_address not in response.content.decode()


def test_a_mailbox_pages_link_narrows_the_wall_to_that_mailbox(wall):
    alice = wall["alice"].mailbox
    response = client_for(wall["admin"].login).get(f"/alerts/?mailbox={alice.pk}&state=all")
    assert shown_alert_ids(response) == sql_ids("mailbox_id = %s", [alice.pk])
    assert f"Mailbox: {alice.email_address}" in response.content.decode()


def test_acknowledge_then_resolve_records_who_and_when(wall):
    admin = wall["admin"].login
    alert = MailboxAlert.objects.get(code="auth_failed")
    client = client_for(admin)

    response = client.post(f"/alerts/{alert.pk}/acknowledge/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "Acknowledged" in response.content.decode()
    alert.refresh_from_db()
    assert alert.acknowledged_by == admin
    assert alert.acknowledged_on is not None

    response = client.post(f"/alerts/{alert.pk}/resolve/")  # a browser without htmx
    assert response.status_code == 302
    assert response["Location"] == "/alerts/"
    alert.refresh_from_db()
    assert alert.resolved_by == admin
    assert alert.resolved_on is not None
    assert alert.pk not in shown_alert_ids(client.get("/alerts/"))
    assert alert.pk in shown_alert_ids(client.get("/alerts/?state=resolved"))


def test_a_user_cannot_resolve_another_users_alert(wall):
    alert = MailboxAlert.objects.get(code="auth_failed")  # bob's
    response = client_for(wall["alice"].login).post(f"/alerts/{alert.pk}/resolve/", HTTP_HX_REQUEST="true")
    assert response.status_code == 404
    alert.refresh_from_db()
    assert alert.resolved_on is None


def test_unknown_outcomes_are_listed_for_user_and_queue_mailboxes_alike(world):
    shown = {}
    for mailbox, sender in (
        (world["bob"].mailbox, {"user": world["bob"].crm_user}),
        (world.queue_mailbox, {"queue": world.queue}),
    ):
        factories.alert(mailbox=mailbox, profile=mailbox.profile, code="outcome_unknown", category="outgoing")
        email = factories.email(status=EmailActivity.Status.OUTCOME_UNKNOWN, subject=f"Maybe {mailbox.pk}")
        factories.party(email=email, **sender)
        shown[mailbox.pk] = email
    body = client_for(world["admin"].login).get("/alerts/").content.decode()
    for email in shown.values():
        assert f"/alerts/emails/{email.pk}/resend/" in body


def _alerts_for(count: int, world) -> None:
    for index in range(count):
        mailbox = factories.mailbox(
            user=factories.crm_user(f"User{index} Many", email=f"many{index}-{count}@example.test"),
            profile=world.profile,
        )
        factories.alert(mailbox=mailbox, profile=world.profile)
        factories.alert(mailbox=mailbox, profile=world.profile, code="outcome_unknown", category="outgoing")
        email = factories.email(status=EmailActivity.Status.OUTCOME_UNKNOWN, owner=mailbox.user)
        factories.party(email=email, user=mailbox.user)


def test_the_wall_costs_the_same_queries_for_3_and_for_30_mailboxes(world):
    client = client_for(world["admin"].login)
    _alerts_for(3, world)
    with CaptureQueriesContext(connection) as few:
        assert client.get("/alerts/").status_code == 200
    _alerts_for(27, world)
    with CaptureQueriesContext(connection) as many:
        response = client.get("/alerts/")
    assert len(shown_alert_ids(response)) == 50  # one full page, and the rest on the next
    assert '<a href="?page=2">Next</a>' in response.content.decode()
    rest = shown_alert_ids(client.get("/alerts/?page=2"))
    assert len(rest) == len(sql_ids("resolved_on IS NULL", [])) - 50
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]


# -- "outcome unknown": a send interrupted after the relay took the message --------


def interrupted_send(stack: Stack):
    alice, bob = stack.user_mailbox("alice"), stack.user_mailbox("bob")
    message = compose(api_client_for(alice), subject="Maybe delivered", to=[bob.email_address])
    stack.relay.drop_next(stage="DATA")
    outgoing.send_pending(mailbox=alice)
    message.refresh_from_db()
    assert message.status == EmailActivity.Status.OUTCOME_UNKNOWN
    return alice, bob, message


@pytest.mark.slow
def test_resend_from_the_wall_sends_it_again_with_the_same_message_id(stack):
    alice, bob, message = interrupted_send(stack)
    client = client_for(factories.login_user("admin", administrator=True))
    body = client.get("/alerts/").content.decode()
    assert "Maybe delivered" in body
    assert f"/alerts/emails/{message.pk}/resend/" in body

    response = client.post(f"/alerts/emails/{message.pk}/resend/", HTTP_HX_REQUEST="true")
    assert "Queued to send again" in response.content.decode()
    message.refresh_from_db()
    assert message.status == EmailActivity.Status.PENDING_SEND
    assert not MailboxAlert.objects.filter(mailbox=alice, code="outcome_unknown", resolved_on=None).exists()

    outgoing.send_pending(mailbox=alice)
    message.refresh_from_db()
    assert message.status == EmailActivity.Status.SENT
    copies = [m for m in inbox(stack, bob) if m["Message-ID"].strip("<>") == message.message_id.strip("<>")]
    assert len(copies) == 2  # the one the interrupted send delivered, and the resend

    # A second click finds nothing left to settle, and says so.
    response = client.post(f"/alerts/emails/{message.pk}/mark-sent/", HTTP_HX_REQUEST="true")
    assert "no longer unknown" in response.content.decode()


@pytest.mark.slow
def test_mark_sent_from_the_wall_never_sends_it_again(stack):
    alice, bob, message = interrupted_send(stack)
    client = client_for(factories.login_user("admin", administrator=True))

    response = client.post(f"/alerts/emails/{message.pk}/mark-sent/")
    assert response.status_code == 302
    message.refresh_from_db()
    assert message.status == EmailActivity.Status.SENT
    outgoing.send_pending(mailbox=alice)
    assert stack.relay.accepted_count(message.message_id) == 1
    assert len(inbox(stack, bob)) == 1
    body = client.get("/alerts/").content.decode()
    assert "Maybe delivered: marked as sent." in body  # the confirmation
    assert f"/alerts/emails/{message.pk}/" not in body  # and no button left
