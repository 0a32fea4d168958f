import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from crm.choices import ActMethod, IncomingMethod, OutgoingMethod, ProcessEmailUsing
from crm.models import ActivityParty, EmailActivity, OrganizationSettings
from tests import factories

pytestmark = pytest.mark.django_db


def test_organization_settings_defaults_match_dynamics():
    organization = OrganizationSettings.load()

    assert organization.process_email_using == ProcessEmailUsing.SERVER_SIDE_SYNC
    assert organization.default_incoming_method == IncomingMethod.SERVER_SIDE_SYNC
    assert organization.default_outgoing_method == OutgoingMethod.SERVER_SIDE_SYNC
    assert organization.default_act_method == ActMethod.NONE
    assert organization.process_email_only_for_approved_users is True
    assert organization.process_email_only_for_approved_queues is True
    assert organization.correlation_enabled is True
    assert organization.tracking_token_enabled is True
    assert organization.tracking_token_prefix == "CRM"
    assert organization.tracking_token_user_digits == 3
    assert organization.tracking_token_counter_digits == 3
    assert organization.smart_matching_enabled is False
    assert organization.track_email_between_users_as_two_activities is False
    assert organization.set_unresolved_when_multiple_matches is False
    assert organization.max_attachment_size_kb == 5120


def test_organization_settings_is_a_single_row():
    first = OrganizationSettings.load()
    first.tracking_token_prefix = "ACME"
    first.save()

    assert OrganizationSettings.load().tracking_token_prefix == "ACME"
    assert OrganizationSettings.objects.count() == 1
    with transaction.atomic(), pytest.raises(IntegrityError, match="organization_settings_singleton"):
        OrganizationSettings.objects.create(id=2)


@pytest.mark.parametrize("prefix", ["", "X" * 21, " CRM", "CRM "])
def test_tracking_token_prefix_must_be_1_to_20_characters_without_spaces(prefix):
    organization = OrganizationSettings.load()
    organization.tracking_token_prefix = prefix

    with pytest.raises(ValidationError) as error:
        organization.full_clean()

    assert "tracking_token_prefix" in error.value.message_dict


@pytest.mark.parametrize("prefix", ["C", "X" * 20, "CRM"])
def test_tracking_token_prefix_of_1_to_20_characters_is_accepted(prefix):
    organization = OrganizationSettings.load()
    organization.tracking_token_prefix = prefix

    organization.full_clean()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tracking_token_user_digits", 0),
        ("tracking_token_user_digits", 11),
        ("tracking_token_counter_digits", 0),
        ("tracking_token_counter_digits", 10),
    ],
)
def test_tracking_token_digit_counts_are_bounded(field, value):
    organization = OrganizationSettings.load()
    setattr(organization, field, value)

    with pytest.raises(ValidationError) as error:
        organization.full_clean()

    assert field in error.value.message_dict


def test_crm_urls_must_be_http_urls_one_per_line():
    organization = OrganizationSettings.load()
    organization.crm_urls = (
        "https://crm.example.test/org1\nftp://files.example.test\nnot a url\nhttp://crm:99999/Org"
    )

    with pytest.raises(ValidationError) as error:
        organization.full_clean()

    messages = error.value.message_dict["crm_urls"]
    assert len(messages) == 3
    assert "ftp://files.example.test" in messages[0]
    assert "not a url" in messages[1]
    assert "http://crm:99999/Org" in messages[2]


def test_crm_urls_accept_on_premises_hosts_and_ignore_blank_lines():
    organization = OrganizationSettings.load()
    organization.crm_urls = " https://crm.example.test/org1 \n\nhttp://old-crm:5555/Org\n"

    organization.full_clean()

    assert organization.crm_url_list == ["https://crm.example.test/org1", "http://old-crm:5555/Org"]


def test_the_same_message_identity_without_a_copy_owner_is_stored_once():
    factories.email(message_identity="<a1@example.test>")

    with transaction.atomic(), pytest.raises(IntegrityError, match="email_identity_unique"):
        factories.email(message_identity="<a1@example.test>")


def test_two_users_may_each_hold_a_copy_of_the_same_message():
    alice, bob = factories.crm_user("Alice"), factories.crm_user("Bob")

    factories.email(message_identity="<a1@example.test>", copy_owner=alice)
    factories.email(message_identity="<a1@example.test>", copy_owner=bob)

    assert EmailActivity.objects.filter(message_identity="<a1@example.test>").count() == 2


def test_one_user_holds_one_copy_of_a_message():
    alice = factories.crm_user("Alice")
    factories.email(message_identity="<a1@example.test>", copy_owner=alice)

    with transaction.atomic(), pytest.raises(IntegrityError, match="email_identity_copy_owner_unique"):
        factories.email(message_identity="<a1@example.test>", copy_owner=alice)


def test_drafts_without_an_identity_do_not_collide():
    factories.email()
    factories.email()

    assert EmailActivity.objects.filter(message_identity=None).count() == 2


def test_an_email_is_regarding_at_most_one_record():
    with transaction.atomic(), pytest.raises(IntegrityError, match="email_regarding_at_most_one"):
        factories.email(regarding_account=factories.account(), regarding_contact=factories.contact())


def test_regarding_is_the_one_record_set():
    lead = factories.lead()

    assert factories.email(regarding_lead=lead).regarding == lead


def test_an_activity_party_resolves_to_at_most_one_record():
    email = factories.email()

    with transaction.atomic(), pytest.raises(IntegrityError, match="activity_party_one_record"):
        factories.party(email=email, user=factories.crm_user(), contact=factories.contact())


def test_an_activity_party_may_stay_unresolved():
    contact = factories.contact()
    email = factories.email()

    unresolved = factories.party(email=email, role=ActivityParty.Role.TO, address="who@example.test")
    resolved = factories.party(
        email=email, role=ActivityParty.Role.CC, address="c@example.test", contact=contact
    )

    assert (unresolved.is_resolved, unresolved.record) == (False, None)
    assert (resolved.is_resolved, resolved.record) == (True, contact)
