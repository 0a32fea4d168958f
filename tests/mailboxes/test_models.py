import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from crm.choices import ActMethod, IncomingMethod
from mailboxes.models import Mailbox
from profiles.models import ServerType
from tests import factories

pytestmark = pytest.mark.django_db


def refused(**values) -> dict[str, list[str]]:
    values.setdefault("name", "Checked")
    values.setdefault("email_address", "checked@example.test")
    with pytest.raises(ValidationError) as error:
        Mailbox(**values).full_clean()
    return error.value.message_dict


def test_act_sync_is_refused_on_a_pop3_profile():
    pop3 = factories.profile(server_type=ServerType.POP3_SMTP, incoming_server_location="pop.example.test")

    errors = refused(user=factories.crm_user(), profile=pop3, act_method=ActMethod.SERVER_SIDE_SYNC)

    assert errors["act_method"] == [
        "A POP3/SMTP profile cannot synchronize appointments, contacts and tasks."
    ]


def test_act_sync_is_refused_on_a_queue_mailbox():
    errors = refused(queue=factories.queue(), act_method=ActMethod.SERVER_SIDE_SYNC)

    assert errors["act_method"] == ["Queue mailboxes cannot synchronize appointments, contacts and tasks."]


def test_act_sync_is_accepted_for_a_user_on_exchange():
    exchange = factories.profile(
        server_type=ServerType.EXCHANGE_ONLINE, incoming_server_location="", outgoing_server_location=""
    )
    mailbox = Mailbox(
        name="Alice",
        email_address="alice@example.test",
        user=factories.crm_user(),
        profile=exchange,
        act_method=ActMethod.SERVER_SIDE_SYNC,
    )

    mailbox.full_clean()


def test_delete_after_processing_is_refused_on_a_user_mailbox():
    errors = refused(user=factories.crm_user(), delete_email_after_processing=True)

    assert "delete_email_after_processing" in errors


@pytest.mark.parametrize("owner", ["queue", "forward"])
def test_delete_after_processing_is_accepted_on_queue_and_forward_mailboxes(owner):
    values = {"queue": factories.queue()} if owner == "queue" else {"is_forward_mailbox": True}
    mailbox = Mailbox(
        name="Shared", email_address="shared@example.test", delete_email_after_processing=True, **values
    )

    mailbox.full_clean()


def test_a_mailbox_with_both_a_user_and_a_queue_is_refused():
    errors = refused(user=factories.crm_user(), queue=factories.queue())

    assert errors["queue"] == ["A mailbox belongs to a user or a queue, not both."]


def test_the_database_refuses_a_mailbox_with_both_a_user_and_a_queue():
    mailbox = factories.mailbox(user=factories.crm_user())

    with transaction.atomic(), pytest.raises(IntegrityError, match="mailbox_single_owner"):
        Mailbox.objects.filter(pk=mailbox.pk).update(queue=factories.queue())


def test_a_mailbox_without_owner_must_be_a_forward_mailbox():
    assert "user" in refused()


def test_a_forward_mailbox_has_no_owner():
    assert "is_forward_mailbox" in refused(is_forward_mailbox=True, user=factories.crm_user())


def test_a_forward_mailbox_does_not_itself_use_forward_mailbox_processing():
    errors = refused(is_forward_mailbox=True, incoming_method=IncomingMethod.FORWARD_MAILBOX)

    assert "incoming_method" in errors


def test_a_deactivated_users_mailbox_stops_syncing():
    active = factories.mailbox(user=factories.crm_user("Active Person"))
    leaver = factories.crm_user("Leaving Person")
    stopped = factories.mailbox(user=leaver)
    shared = factories.mailbox(queue=factories.queue())
    forward = factories.mailbox(is_forward_mailbox=True, email_address="forward@example.test")
    leaver.is_active = False
    leaver.save()

    assert set(Mailbox.objects.for_active_owners()) == {active, shared, forward}
    assert stopped not in Mailbox.objects.for_active_owners()


def test_a_deactivated_queues_mailbox_stops_syncing():
    closed = factories.queue(is_active=False)
    factories.mailbox(queue=closed)

    assert not Mailbox.objects.for_active_owners().filter(queue=closed).exists()


def test_the_mailbox_an_email_is_sent_through_is_its_users_or_its_queues_and_none_for_others(world):
    alice, queue = world["alice"], world.queue
    assert list(Mailbox.objects.sending_as(user_id=alice.crm_user.pk, queue_id=None)) == [alice.mailbox]
    assert list(Mailbox.objects.sending_as(user_id=None, queue_id=queue.pk)) == [world.queue_mailbox]
    # A sender that is neither (a contact, an address): no mailbox, not any mailbox without a queue.
    assert not Mailbox.objects.sending_as(user_id=None, queue_id=None).exists()
