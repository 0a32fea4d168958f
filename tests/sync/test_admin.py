"""The engine's records in the admin: shown, never edited; alerts acknowledged
and resolved by admin actions; quarantined raw messages never rendered."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from sync.models import MailboxAlert, QuarantinedMessage, Receipt, SyncRun
from tests import factories
from tests.personas import RAW_MARKER

pytestmark = pytest.mark.django_db


@pytest.fixture
def as_admin(client, world):
    client.force_login(world["admin"].login)
    return client


def url(model, view: str, *args) -> str:
    return reverse(f"admin:sync_{model._meta.model_name}_{view}", args=args)


@pytest.mark.parametrize(("action", "field"), [("acknowledge", "acknowledged"), ("resolve", "resolved")])
def test_alert_actions_record_who_and_when(world, as_admin, action, field):
    chosen = [world["alice"].sync.alert, world.profile_alert]
    before = timezone.now()

    response = as_admin.post(
        url(MailboxAlert, "changelist"),
        {"action": action, "_selected_action": [alert.pk for alert in chosen]},
    )

    assert response.status_code == 302
    assert response.url == url(MailboxAlert, "changelist")
    for alert in MailboxAlert.objects.filter(pk__in=[alert.pk for alert in chosen]):
        assert before <= getattr(alert, f"{field}_on") <= timezone.now()
        assert getattr(alert, f"{field}_by") == world["admin"].login
    assert MailboxAlert.objects.get(pk=world["bob"].sync.alert.pk).resolved_on is None


@pytest.mark.parametrize("model", [MailboxAlert, Receipt, QuarantinedMessage, SyncRun])
def test_engine_records_are_read_only(world, as_admin, model):
    obj = model.objects.first()

    change = as_admin.get(url(model, "change", obj.pk))

    assert change.status_code == 200
    assert change.context["has_change_permission"] is False
    assert as_admin.get(url(model, "add")).status_code == 403
    assert as_admin.get(url(model, "delete", obj.pk)).status_code == 403


def test_the_raw_message_is_never_rendered(world, as_admin):
    message = world["alice"].sync.quarantined

    pages = [
        as_admin.get(url(QuarantinedMessage, "changelist")).content.decode(),
        as_admin.get(url(QuarantinedMessage, "change", message.pk)).content.decode(),
    ]

    for page in pages:
        assert RAW_MARKER not in page
        assert message.raw.name not in page


def alert_changelist_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url(MailboxAlert, "changelist")).status_code == 200
    return len(queries)


def test_alert_changelist_queries_do_not_grow_with_rows(world, as_admin):
    few = alert_changelist_queries(as_admin)
    for number in range(20):
        mailbox = factories.mailbox(user=factories.crm_user(), profile=world.profile)
        factories.alert(mailbox=mailbox, profile=world.profile, code=f"c{number}")

    assert alert_changelist_queries(as_admin) == few
