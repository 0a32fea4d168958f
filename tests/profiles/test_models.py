import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from profiles.models import (
    MICROSOFT_GRAPH_URL,
    AuthProtocol,
    CredentialsSource,
    EmailServerProfile,
    ServerType,
)
from tests import factories

pytestmark = pytest.mark.django_db

IMAP = {
    "server_type": ServerType.IMAP_SMTP,
    "incoming_server_location": "imap.example.test",
    "outgoing_server_location": "smtp.example.test",
}
POP3 = {**IMAP, "server_type": ServerType.POP3_SMTP, "incoming_server_location": "pop.example.test"}
EXCHANGE_ONLINE = {
    "server_type": ServerType.EXCHANGE_ONLINE,
    "credentials_source": CredentialsSource.OAUTH_CLIENT_CREDENTIALS,
}
EXCHANGE_SERVER = {
    "server_type": ServerType.EXCHANGE_SERVER,
    "incoming_server_location": "https://mail.example.test/EWS/Exchange.asmx",
}


def validated(**values) -> EmailServerProfile:
    profile = EmailServerProfile(name="Checked", **values)
    profile.full_clean()
    return profile


def refused(**values) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as error:
        validated(**values)
    return error.value.message_dict


@pytest.mark.parametrize(
    ("values", "incoming", "outgoing"),
    [
        ({**IMAP}, 993, 465),
        ({**IMAP, "incoming_use_ssl": False, "outgoing_use_ssl": False}, 143, 587),
        ({**POP3}, 995, 465),
        ({**POP3, "incoming_use_ssl": False, "outgoing_use_ssl": False}, 110, 587),
        ({**EXCHANGE_SERVER}, 443, 443),
        ({**EXCHANGE_ONLINE}, 443, 443),
    ],
)
def test_blank_ports_are_filled_from_server_type_and_ssl(values, incoming, outgoing):
    profile = validated(**values)

    assert (profile.incoming_port, profile.outgoing_port) == (incoming, outgoing)


def test_a_port_given_is_kept():
    profile = validated(**IMAP, incoming_port=1993, outgoing_port=2525)

    assert (profile.incoming_port, profile.outgoing_port) == (1993, 2525)


def test_exchange_online_defaults_to_microsoft_graph_both_ways():
    profile = validated(**EXCHANGE_ONLINE)

    assert profile.incoming_server_location == MICROSOFT_GRAPH_URL
    assert profile.outgoing_server_location == MICROSOFT_GRAPH_URL


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({**IMAP, "incoming_port": 70000}, "incoming_port"),
        ({**IMAP, "outgoing_port": 0}, "outgoing_port"),
        ({**IMAP, "credentials_source": CredentialsSource.PROFILE}, "username"),
        # IMAP and POP3 take an app's token from Microsoft only (Exchange Online's IMAP / POP / SMTP).
        (
            {
                **IMAP,
                "credentials_source": CredentialsSource.OAUTH_CLIENT_CREDENTIALS,
                "oauth_provider": "google",
            },
            "oauth_provider",
        ),
        # Mailboxes connect their own accounts on IMAP and POP3, not on Exchange.
        (
            {**EXCHANGE_SERVER, "credentials_source": CredentialsSource.OAUTH_AUTHORIZATION_CODE},
            "credentials_source",
        ),
        # Exchange Online is Microsoft Graph: an app registration signs in, nothing else.
        ({**EXCHANGE_ONLINE, "credentials_source": CredentialsSource.PROFILE}, "credentials_source"),
        ({**EXCHANGE_ONLINE, "oauth_certificate": "not a certificate"}, "oauth_certificate"),
        ({**EXCHANGE_ONLINE, "incoming_use_impersonation": True}, "incoming_use_impersonation"),
        ({**EXCHANGE_ONLINE, "outgoing_use_impersonation": True}, "outgoing_use_impersonation"),
        ({**IMAP, "move_failed_email_to_undeliverable": True}, "move_failed_email_to_undeliverable"),
        ({**IMAP, "auto_discover_server_location": True}, "auto_discover_server_location"),
        ({**IMAP, "incoming_auth_protocol": AuthProtocol.NTLM}, "incoming_auth_protocol"),
        ({**IMAP, "incoming_server_location": ""}, "incoming_server_location"),
        ({**IMAP, "incoming_server_location": "imaps://imap.example.test:993"}, "incoming_server_location"),
        ({**EXCHANGE_SERVER, "incoming_server_location": "mail.example.test"}, "incoming_server_location"),
        ({**IMAP, "max_concurrent_connections": 301}, "max_concurrent_connections"),
        ({**IMAP, "max_concurrent_connections": 0}, "max_concurrent_connections"),
        ({**IMAP, "min_polling_interval_minutes": 1441}, "min_polling_interval_minutes"),
        ({**IMAP, "connection_timeout_seconds": 101}, "connection_timeout_seconds"),
    ],
)
def test_impossible_settings_are_refused_on_the_field(values, field):
    assert field in refused(**values)


def test_a_second_default_profile_is_refused():
    factories.profile("First", is_default=True)

    errors = refused(**IMAP, is_default=True)

    assert errors["is_default"] == ["Another profile is already the default for new mailboxes."]


def test_the_default_profile_may_be_saved_again():
    default = factories.profile("First", is_default=True)

    default.full_clean()


def test_the_database_refuses_a_second_default_profile():
    factories.profile("First", is_default=True)
    second = factories.profile("Second")

    with transaction.atomic(), pytest.raises(IntegrityError, match="one_default_profile"):
        EmailServerProfile.objects.filter(pk=second.pk).update(is_default=True)


@pytest.mark.parametrize("field", ["incoming_port", "outgoing_port"])
def test_the_database_refuses_a_port_out_of_range(field):
    profile = factories.profile()

    with transaction.atomic(), pytest.raises(IntegrityError, match=f"profile_{field}_range"):
        EmailServerProfile.objects.filter(pk=profile.pk).update(**{field: 65536})


def test_impersonation_with_credentials_in_the_profile_is_accepted():
    profile = validated(
        **EXCHANGE_SERVER,
        credentials_source=CredentialsSource.PROFILE,
        username="svc-crm@example.test",
        incoming_use_impersonation=True,
        outgoing_use_impersonation=True,
    )

    assert profile.holds_credentials


def test_oauth_client_credentials_with_exchange_online_are_accepted():
    profile = validated(
        **EXCHANGE_ONLINE,
        oauth_tenant_id="contoso.onmicrosoft.com",
        oauth_client_id="11111111-2222-3333-4444-555555555555",
        oauth_client_secret="client-secret",
    )

    assert profile.holds_credentials


def test_credentials_from_each_mailbox_are_not_held_by_the_profile():
    assert not validated(**IMAP).holds_credentials
