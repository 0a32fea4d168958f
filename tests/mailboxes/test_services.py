import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from crm.choices import ActMethod, IncomingMethod, OutgoingMethod
from crm.models import OrganizationSettings
from mailboxes.models import ApprovalStatus, Mailbox, SyncStatus
from mailboxes.services import mailbox_set_approval, mailbox_update
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def running():
    """An approved, tested mailbox that has been syncing."""
    mailbox = factories.mailbox(user=factories.crm_user("Alice"), profile=factories.profile())
    Mailbox.objects.filter(pk=mailbox.pk).update(
        approval_status=ApprovalStatus.APPROVED,
        approval_changed_on=timezone.now(),
        incoming_status=SyncStatus.SUCCESS,
        outgoing_status=SyncStatus.FAILURE,
        incoming_enabled=True,
        outgoing_enabled=True,
        outgoing_transient_failures=3,
        test_completed_on=timezone.now(),
        disabled_reason="Outgoing: authentication failed",
    )
    return Mailbox.objects.get(pk=mailbox.pk)


def test_a_new_address_starts_a_new_generation_that_needs_approval_again(running):
    updated = mailbox_update(mailbox=running, data={"email_address": "alice.new@example.test"})

    stored = Mailbox.objects.get(pk=updated.pk)
    assert stored.configuration_generation == 2
    assert (stored.incoming_status, stored.outgoing_status) == (SyncStatus.NOT_RUN, SyncStatus.NOT_RUN)
    assert (stored.incoming_enabled, stored.outgoing_enabled) == (False, False)
    assert stored.outgoing_transient_failures == 0
    assert stored.test_completed_on is None
    assert stored.disabled_reason == ""
    assert stored.approval_status == ApprovalStatus.EMPTY
    assert stored.approval_changed_on is None


def test_a_new_profile_starts_a_new_generation_but_keeps_approval(running):
    mailbox_update(mailbox=running, data={"profile": factories.profile("Other")})

    stored = Mailbox.objects.get(pk=running.pk)
    assert stored.configuration_generation == 2
    assert stored.incoming_status == SyncStatus.NOT_RUN
    assert stored.incoming_enabled is False
    assert stored.test_completed_on is None
    assert stored.approval_status == ApprovalStatus.APPROVED


def test_the_same_address_in_other_case_is_no_change(running):
    mailbox_update(mailbox=running, data={"email_address": running.email_address.upper()})

    assert Mailbox.objects.get(pk=running.pk).configuration_generation == 1


def test_an_unrelated_change_keeps_generation_statuses_and_approval(running):
    mailbox_update(mailbox=running, data={"name": "Alice (sales)", "act_method": ActMethod.SERVER_SIDE_SYNC})

    stored = Mailbox.objects.get(pk=running.pk)
    assert stored.name == "Alice (sales)"
    assert stored.configuration_generation == 1
    assert stored.incoming_status == SyncStatus.SUCCESS
    assert stored.incoming_enabled is True
    assert stored.approval_status == ApprovalStatus.APPROVED


def test_update_validates_like_the_model(running):
    with pytest.raises(ValidationError) as error:
        mailbox_update(mailbox=running, data={"delete_email_after_processing": True})

    assert "delete_email_after_processing" in error.value.message_dict
    assert Mailbox.objects.get(pk=running.pk).delete_email_after_processing is False


def test_create_applies_the_organizations_defaults_and_default_profile():
    organization = OrganizationSettings.load()
    organization.default_incoming_method = IncomingMethod.EMAIL_ROUTER
    organization.default_outgoing_method = OutgoingMethod.NONE
    organization.default_act_method = ActMethod.SERVER_SIDE_SYNC
    organization.save()
    factories.profile("Not the default")
    default = factories.profile("The default", is_default=True)

    mailbox = factories.mailbox(user=factories.crm_user("Dana Default"))

    assert (mailbox.incoming_method, mailbox.outgoing_method, mailbox.act_method) == (
        IncomingMethod.EMAIL_ROUTER,
        OutgoingMethod.NONE,
        ActMethod.SERVER_SIDE_SYNC,
    )
    assert mailbox.profile == default
    assert mailbox.name == "Dana Default"
    assert mailbox.email_address == "dana@example.test"
    assert mailbox.approval_status == ApprovalStatus.EMPTY
    assert mailbox.configuration_generation == 1


def test_create_keeps_what_is_given_over_the_defaults():
    factories.profile("The default", is_default=True)
    chosen = factories.profile("Chosen")

    mailbox = factories.mailbox(queue=factories.queue(), profile=chosen, incoming_method=IncomingMethod.NONE)

    assert (mailbox.profile, mailbox.incoming_method) == (chosen, IncomingMethod.NONE)


def test_a_queue_mailbox_takes_the_queues_name_and_address():
    support = factories.queue("Support", email="support@example.test")

    mailbox = factories.mailbox(queue=support)

    assert (mailbox.name, mailbox.email_address) == ("Support", "support@example.test")


def test_an_inactive_default_profile_is_not_applied():
    factories.profile("Retired default", is_default=True, is_active=False)

    assert factories.mailbox(queue=factories.queue()).profile is None


def test_approval_records_who_and_when(running):
    approver = factories.login_user("approver", administrator=True)

    mailbox_set_approval(mailbox=running, status=ApprovalStatus.REJECTED, by=approver)

    stored = Mailbox.objects.get(pk=running.pk)
    assert stored.approval_status == ApprovalStatus.REJECTED
    assert stored.approval_changed_by == approver
    assert stored.approval_changed_on is not None


def test_approval_refuses_a_status_that_is_not_a_decision(running):
    with pytest.raises(ValueError, match="Not an approval decision"):
        mailbox_set_approval(mailbox=running, status=ApprovalStatus.EMPTY, by=None)
