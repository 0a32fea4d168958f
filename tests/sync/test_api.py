"""The engine's REST API: alerts (list, acknowledge, resolve), receipts,
quarantined messages (read, reprocess) and sync runs, as the personas use them.
Who may reach which route is the permission matrix's job; these tests check
what the routes do."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine

from crm.models import OrganizationSettings
from sync.alerts import record_alert
from sync.models import AlertLevel, MailboxAlert, QuarantinedMessage, QuarantineState, ReceiptOutcome
from tests import factories
from tests.personas import RAW_MARKER

pytestmark = pytest.mark.django_db

NOON = datetime(2030, 5, 6, 12, 0, tzinfo=UTC)
HELLO = (
    b"From: Carol <carol@example.test>\r\n"
    b"To: alice@example.test\r\n"
    b"Subject: Hello again\r\n"
    b"Message-ID: <hello-again@example.test>\r\n"
    b"Date: Mon, 06 May 2030 11:00:00 +0000\r\n"
    b"\r\n"
    b"Body.\r\n"
)


def ids(response) -> set[int]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def record(mailbox, code="auth_failed", level=AlertLevel.ERROR):
    return record_alert(
        level=level, category="incoming", code=code, message="Login refused.", mailbox=mailbox
    )


# --- alerts: acknowledge and resolve ----------------------------------------------------------


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
@pytest.mark.parametrize("persona", ["alice", "admin"])
def test_an_alert_action_records_who_and_when(world, api_as, action, persona):
    alert = world["alice"].sync.alert

    with time_machine.travel(NOON, tick=False):
        response = api_as(persona).post(f"/api/v1/alerts/{alert.pk}/{action}/")

    assert response.status_code == 200, response.content
    body = response.json()
    stored = MailboxAlert.objects.get(pk=alert.pk)
    past = f"{action}d"  # acknowledged, resolved
    assert getattr(stored, f"{past}_on") == NOON
    assert getattr(stored, f"{past}_by") == world[persona].login
    assert (body[past], body[f"{past}_by"]) == (True, persona)


def test_acknowledging_again_keeps_the_first_who_and_when(world, api_as):
    alert = world["alice"].sync.alert
    with time_machine.travel(NOON, tick=False):
        api_as("alice").post(f"/api/v1/alerts/{alert.pk}/acknowledge/")

    api_as("admin").post(f"/api/v1/alerts/{alert.pk}/acknowledge/")

    stored = MailboxAlert.objects.get(pk=alert.pk)
    assert (stored.acknowledged_on, stored.acknowledged_by) == (NOON, world["alice"].login)


def test_the_queue_owner_resolves_the_queue_mailboxs_alert(world, api_as):
    alert = world.queue_sync.alert

    response = api_as("quinn").post(f"/api/v1/alerts/{alert.pk}/resolve/")

    assert response.status_code == 200
    assert MailboxAlert.objects.get(pk=alert.pk).resolved_by == world["quinn"].login


def test_another_users_alert_is_not_found_and_stays_open(world, api_as):
    alert = world["bob"].sync.alert

    response = api_as("alice").post(f"/api/v1/alerts/{alert.pk}/resolve/")

    assert response.status_code == 404
    assert MailboxAlert.objects.get(pk=alert.pk).resolved_on is None


def test_an_action_refuses_a_body_that_is_not_an_object(world, api_as):
    alert = world["alice"].sync.alert

    response = api_as("alice").post(f"/api/v1/alerts/{alert.pk}/resolve/", [1, 2], format="json")

    assert response.status_code == 400
    assert MailboxAlert.objects.get(pk=alert.pk).resolved_on is None


# --- alerts: counting ------------------------------------------------------------------------


def test_a_repeat_counts_on_the_open_alert(world):
    mailbox = world["bob"].mailbox
    first = record(mailbox)
    with time_machine.travel(NOON, tick=False):
        again = record(mailbox)

    assert again.pk == first.pk
    assert (again.count, again.last_seen) == (2, NOON)
    assert again.first_seen == first.first_seen


def test_a_repeat_after_resolving_through_the_api_opens_a_new_alert(world, api_as):
    mailbox = world["bob"].mailbox
    first = record(mailbox)
    record(mailbox)
    api_as("bob").post(f"/api/v1/alerts/{first.pk}/resolve/")

    again = record(mailbox)

    assert again.pk != first.pk
    assert again.count == 1
    assert MailboxAlert.objects.get(pk=first.pk).count == 2


@pytest.mark.parametrize(
    ("level", "setting"),
    [
        (AlertLevel.ERROR, "record_error_alerts"),
        (AlertLevel.WARNING, "record_warning_alerts"),
        (AlertLevel.INFORMATION, "record_information_alerts"),
    ],
)
def test_levels_the_organization_does_not_record_are_dropped(world, level, setting):
    organization = OrganizationSettings.load()
    setattr(organization, setting, False)
    organization.save()
    before = MailboxAlert.objects.count()

    dropped = record(world["bob"].mailbox, level=level)
    other = AlertLevel.ERROR if level != AlertLevel.ERROR else AlertLevel.WARNING
    kept = record(world["bob"].mailbox, level=other)

    assert dropped is None
    assert kept is not None
    assert MailboxAlert.objects.count() == before + 1


# --- alerts: listing -------------------------------------------------------------------------


def test_a_user_sees_only_their_own_mailboxs_alerts(world, api_as):
    response = api_as("alice").get("/api/v1/alerts/")

    assert ids(response) == {world["alice"].sync.alert.pk}


def test_a_queue_owner_sees_their_own_and_the_queues_alerts_but_not_the_profiles(world, api_as):
    response = api_as("quinn").get("/api/v1/alerts/")

    assert ids(response) == {world["quinn"].sync.alert.pk, world.queue_sync.alert.pk}


def test_an_administrator_sees_profile_alerts(world, api_as):
    response = api_as("admin").get("/api/v1/alerts/", {"profile": world.profile.pk})

    assert world.profile_alert.pk in ids(response)


@pytest.fixture
def mixed_alerts(world):
    mailbox = world["alice"].mailbox
    return {
        "warning": factories.alert(mailbox=mailbox, level=AlertLevel.WARNING, code="server_busy", count=5),
        "resolved": factories.alert(mailbox=mailbox, code="tls_expired", resolved_on=NOON),
        "acknowledged": factories.alert(
            mailbox=mailbox, category="outgoing", code="smtp_refused", acknowledged_on=NOON
        ),
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"level": "warning"}, {"warning"}),
        ({"code": "tls_expired"}, {"resolved"}),
        ({"category": "outgoing"}, {"acknowledged"}),
        ({"resolved": "true"}, {"resolved"}),
        ({"resolved": "false"}, {"warning", "acknowledged", "world"}),
        ({"acknowledged": "true"}, {"acknowledged"}),
        ({"acknowledged": "false"}, {"warning", "resolved", "world"}),
        ({"search": "busy"}, {"warning"}),
    ],
)
def test_alert_filters(world, api_as, mixed_alerts, query, expected):
    named = {**mixed_alerts, "world": world["alice"].sync.alert}

    response = api_as("alice").get("/api/v1/alerts/", query)

    assert ids(response) == {named[name].pk for name in expected}


def test_alerts_filter_by_mailbox_and_order_by_count(world, api_as, mixed_alerts):
    response = api_as("admin").get(
        "/api/v1/alerts/", {"mailbox": world["alice"].mailbox.pk, "ordering": "-count"}
    )

    rows = response.json()["results"]
    assert rows[0]["id"] == mixed_alerts["warning"].pk
    assert {row["mailbox"] for row in rows} == {world["alice"].mailbox.pk}


@pytest.mark.parametrize("query", [{"mailbox": "x"}, {"level": "fatal"}])
def test_bad_filter_values_are_a_400(world, api_as, query):
    assert api_as("alice").get("/api/v1/alerts/", query).status_code == 400


# --- receipts and sync runs ------------------------------------------------------------------


def test_receipts_filter_and_search(world, api_as):
    mailbox = world["alice"].mailbox
    tracked = factories.receipt(
        mailbox=mailbox, outcome=ReceiptOutcome.TRACKED, folder="INBOX/Projects", subject="Quote for Contoso"
    )
    client = api_as("alice")

    assert ids(client.get("/api/v1/receipts/", {"outcome": "tracked"})) == {tracked.pk}
    assert ids(client.get("/api/v1/receipts/", {"folder": "INBOX/Projects"})) == {tracked.pk}
    assert ids(client.get("/api/v1/receipts/", {"search": "contoso"})) == {tracked.pk}
    assert ids(client.get("/api/v1/receipts/")) == {tracked.pk, world["alice"].sync.receipt.pk}


def test_sync_runs_filter_by_kind_and_outcome(world, api_as):
    failed = factories.sync_run(mailbox=world["bob"].mailbox, kind="outgoing", outcome="failed")
    client = api_as("bob")

    assert ids(client.get("/api/v1/sync-runs/", {"kind": "outgoing"})) == {failed.pk}
    assert ids(client.get("/api/v1/sync-runs/", {"outcome": "success"})) == {world["bob"].sync.sync_run.pk}


# --- quarantined messages ---------------------------------------------------------------------


def test_quarantined_messages_never_show_the_raw_bytes(world, api_as):
    message = world["alice"].sync.quarantined
    client = api_as("alice")

    listed = client.get("/api/v1/quarantined-messages/")
    detail = client.get(f"/api/v1/quarantined-messages/{message.pk}/")

    assert detail.json()["raw_stored"] is True
    assert "raw" not in detail.json()
    for response in (listed, detail):
        assert RAW_MARKER not in response.content.decode()
        assert message.raw.name not in response.content.decode()


def test_quarantined_messages_filter_by_state_and_error(world, api_as):
    mailbox = world["alice"].mailbox
    done = factories.quarantined_message(
        mailbox=mailbox, state=QuarantineState.REPROCESSED, error_code="no_headers"
    )
    client = api_as("alice")

    assert ids(client.get("/api/v1/quarantined-messages/", {"state": "reprocessed"})) == {done.pk}
    assert ids(client.get("/api/v1/quarantined-messages/", {"error_code": "no_headers"})) == {done.pk}


def test_reprocessing_runs_the_message_again_and_answers_its_receipt(world, api_as):
    message = factories.quarantined_message(mailbox=world["alice"].mailbox, raw=HELLO)

    response = api_as("alice").post(f"/api/v1/quarantined-messages/{message.pk}/reprocess/")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["mailbox"], body["subject"], body["sender"]) == (
        world["alice"].mailbox.pk,
        "Hello again",
        "carol@example.test",
    )
    assert QuarantinedMessage.objects.get(pk=message.pk).state == QuarantineState.REPROCESSED


def test_a_message_that_still_fails_is_a_409_and_stays_quarantined(world, api_as):
    message = factories.quarantined_message(mailbox=world["alice"].mailbox, raw=b"  \r\n")

    response = api_as("admin").post(f"/api/v1/quarantined-messages/{message.pk}/reprocess/")

    assert response.status_code == 409
    assert response.json()["code"] == "empty_message"
    stored = QuarantinedMessage.objects.get(pk=message.pk)
    assert (stored.state, stored.attempts) == (QuarantineState.QUARANTINED, 2)


def test_a_message_never_downloaded_cannot_be_reprocessed(world, api_as):
    message = factories.quarantined_message(mailbox=world["alice"].mailbox, error_code="too_large")

    response = api_as("alice").post(f"/api/v1/quarantined-messages/{message.pk}/reprocess/")

    assert (response.status_code, response.json()["code"]) == (409, "no_raw")


def test_another_users_message_is_not_reprocessed(world, api_as):
    message = world["bob"].sync.quarantined

    response = api_as("alice").post(f"/api/v1/quarantined-messages/{message.pk}/reprocess/")

    assert response.status_code == 404
    assert QuarantinedMessage.objects.get(pk=message.pk).state == QuarantineState.QUARANTINED
