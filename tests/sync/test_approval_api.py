"""Approve / reject, test & enable and default settings through the REST API."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from crm.choices import ActMethod, IncomingMethod, OutgoingMethod
from crm.models import OrganizationSettings
from mailboxes.models import ApprovalStatus, Mailbox
from sync.models import MailboxTest, TestState
from tests import factories

pytestmark = pytest.mark.django_db


def test_approve_records_who_and_when(world, api_as):
    mailbox = world["alice"].mailbox

    response = api_as("admin").post(f"/api/v1/mailboxes/{mailbox.pk}/approve/", {}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["approval_status"] == ApprovalStatus.APPROVED
    mailbox.refresh_from_db()
    assert mailbox.approval_changed_by == world["admin"].login
    assert mailbox.approval_changed_on is not None


def test_reject(world, api_as):
    mailbox = world.queue_mailbox

    response = api_as("admin").post(f"/api/v1/mailboxes/{mailbox.pk}/reject/", {}, format="json")

    assert response.status_code == 200
    mailbox.refresh_from_db()
    assert mailbox.approval_status == ApprovalStatus.REJECTED


def test_an_owner_may_not_approve_their_own_address(world, api_as):
    mailbox = world["alice"].mailbox

    response = api_as("alice").post(f"/api/v1/mailboxes/{mailbox.pk}/approve/", {}, format="json")

    assert response.status_code == 403
    mailbox.refresh_from_db()
    assert mailbox.approval_status != ApprovalStatus.APPROVED


def test_the_permission_lets_a_non_administrator_approve_any_address(world, api_as):
    world["bob"].login.user_permissions.add(Permission.objects.get(codename="approve_email"))

    response = api_as("bob").post(
        f"/api/v1/mailboxes/{world['alice'].mailbox.pk}/approve/", {}, format="json"
    )

    assert response.status_code == 200
    assert Mailbox.objects.get(pk=world["alice"].mailbox.pk).approval_changed_by == world["bob"].login


def test_an_owner_queues_a_test_of_their_own_mailbox_only(world, api_as, django_capture_on_commit_callbacks):
    own, other = world["alice"].mailbox, world["bob"].mailbox

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_as("alice").post(
            f"/api/v1/mailboxes/{own.pk}/test-and-enable/", {"round_trip": True}, format="json"
        )
    assert response.status_code == 200, response.content
    test = MailboxTest.objects.get(pk=response.json()["id"])
    assert (test.state, test.round_trip, test.requested_by) == (TestState.QUEUED, True, world["alice"].login)
    assert len(callbacks) == 1

    refused = api_as("alice").post(f"/api/v1/mailboxes/{other.pk}/test-and-enable/", {}, format="json")
    assert refused.status_code == 404
    assert not MailboxTest.objects.filter(mailbox=other).exists()


def test_apply_default_email_settings(world, api_as):
    organization = OrganizationSettings.load()
    organization.default_outgoing_method = OutgoingMethod.NONE
    organization.default_act_method = ActMethod.SERVER_SIDE_SYNC
    organization.save()
    default = factories.profile("Default", is_default=True)
    mailboxes = [world["alice"].mailbox, world.queue_mailbox]
    Mailbox.objects.filter(pk__in=[m.pk for m in mailboxes]).update(incoming_method=IncomingMethod.NONE)

    response = api_as("admin").post(
        "/api/v1/mailboxes/apply-default-email-settings/", {"ids": [m.pk for m in mailboxes]}, format="json"
    )

    assert response.status_code == 200, response.content
    alice, queue = (Mailbox.objects.get(pk=m.pk) for m in mailboxes)
    assert (alice.profile, alice.incoming_method, alice.outgoing_method, alice.act_method) == (
        default,
        organization.default_incoming_method,
        OutgoingMethod.NONE,
        ActMethod.SERVER_SIDE_SYNC,
    )
    assert alice.configuration_generation == mailboxes[0].configuration_generation + 1
    assert queue.act_method == ActMethod.NONE  # queues cannot sync appointments, contacts and tasks


def test_apply_default_email_settings_is_for_administrators(world, api_as):
    response = api_as("alice").post(
        "/api/v1/mailboxes/apply-default-email-settings/", {"ids": [world["alice"].mailbox.pk]}, format="json"
    )
    assert response.status_code == 403
    unknown = api_as("admin").post(
        "/api/v1/mailboxes/apply-default-email-settings/", {"ids": [999999]}, format="json"
    )
    assert unknown.status_code == 400


def test_profile_test_connection_without_profile_credentials_says_so(world, api_as):
    response = api_as("admin").post(
        f"/api/v1/profiles/{world.profile.pk}/test-connection/", {}, format="json"
    )

    assert response.status_code == 200
    assert {r["code"] for r in response.json()["results"]} == {"credentials_per_mailbox"}
    assert (
        api_as("alice").post(f"/api/v1/profiles/{world.profile.pk}/test-connection/", {}).status_code == 403
    )
