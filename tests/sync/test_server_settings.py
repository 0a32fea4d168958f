"""From a mailbox and its Exchange profile to the settings its connectors take."""

from __future__ import annotations

from dataclasses import replace

import pytest
from django.core.exceptions import ValidationError

from profiles.models import AuthProtocol, CredentialsSource, EmailServerProfile, ServerType
from sync.connectors import registry
from sync.connectors.base import ServerSettings
from sync.errors import PermanentError
from sync.server_settings import act_settings, incoming_settings, outgoing_settings
from tests import factories

pytestmark = pytest.mark.django_db
EWS_URL = "https://mail.contoso.test/EWS/Exchange.asmx"


def mailbox_on(profile: EmailServerProfile, **extra):
    user = factories.crm_user("Alice", email="alice@contoso.test")
    return factories.mailbox(email_address="alice@contoso.test", profile=profile, user=user, **extra)


def test_an_exchange_online_mailbox_is_addressed_at_graph_with_the_profiles_app(settings):
    settings.SYNC_CA_FILE = None
    profile = factories.profile(
        server_type=ServerType.EXCHANGE_ONLINE,
        incoming_server_location="",
        outgoing_server_location="",
        oauth_tenant_id="contoso.onmicrosoft.com",
        oauth_client_id="11111111-2222-3333-4444-555555555555",
        oauth_client_secret="s3cret",
    )
    mailbox = mailbox_on(profile)

    found = incoming_settings(mailbox)

    assert (found.url, found.mailbox, found.host, found.port) == (
        "https://graph.microsoft.com",
        "alice@contoso.test",
        "graph.microsoft.com",
        443,
    )
    assert found.oauth is not None
    assert (found.oauth.tenant_id, found.oauth.client_secret, found.oauth.authority) == (
        "contoso.onmicrosoft.com",
        "s3cret",
        "https://login.microsoftonline.com",
    )
    assert (found.username, found.password, found.auth, found.act_as) == ("", "", "oauth", "")
    assert outgoing_settings(mailbox) == found
    # The secret never shows in a log line or traceback.
    assert "s3cret" not in repr(found)


def test_an_exchange_server_profile_impersonating_with_ntlm():
    profile = factories.profile(
        server_type=ServerType.EXCHANGE_SERVER,
        incoming_server_location=EWS_URL,
        outgoing_server_location=EWS_URL,
        incoming_auth_protocol=AuthProtocol.NTLM,
        credentials_source=CredentialsSource.PROFILE,
        username="CONTOSO\\svc-serversync",
        password="pa55",
        incoming_use_impersonation=True,
        exchange_server_version="Exchange2016",
    )
    found = incoming_settings(mailbox_on(profile))
    assert (found.url, found.host, found.auth, found.server_version) == (
        EWS_URL,
        "mail.contoso.test",
        "ntlm",
        "Exchange2016",
    )
    assert (found.username, found.password, found.act_as, found.oauth) == (
        "CONTOSO\\svc-serversync",
        "pa55",
        "alice@contoso.test",
        None,
    )


def test_autodiscover_is_asked_once_and_its_answer_kept_on_the_profile(monkeypatch):
    asked: list[ServerSettings] = []

    def discover(settings: ServerSettings) -> str:
        asked.append(settings)
        return "https://mail.contoso.test/EWS/Exchange.asmx"

    # Autodiscover itself is exchangelib's; what is tested here is serversync keeping its answer.
    kind = registry.KINDS[ServerType.EXCHANGE_SERVER]
    monkeypatch.setitem(registry.KINDS, ServerType.EXCHANGE_SERVER, replace(kind, discover=discover))
    profile = factories.profile(
        server_type=ServerType.EXCHANGE_SERVER,
        incoming_server_location="",
        outgoing_server_location="",
        auto_discover_server_location=True,
    )
    mailbox = mailbox_on(
        profile, username="alice@contoso.test", password="pa55", allow_credentials_for_email_processing=True
    )

    first = incoming_settings(mailbox)
    mailbox.refresh_from_db()
    second = incoming_settings(mailbox)

    assert [s.mailbox for s in asked] == ["alice@contoso.test"]
    assert asked[0].autodiscover
    assert first.url == second.url == EWS_URL
    assert not second.autodiscover
    profile.refresh_from_db()
    assert profile.autodiscovered_ews_url == EWS_URL
    # A location typed on the profile replaces it (and what Autodiscover said is forgotten).
    profile.incoming_server_location = "https://ews.contoso.test/EWS/Exchange.asmx"
    profile.outgoing_server_location = profile.incoming_server_location
    profile.full_clean()
    assert profile.autodiscovered_ews_url == ""


def test_an_app_registration_missing_its_secret_is_a_permanent_error_with_what_to_enter():
    profile = factories.profile(
        server_type=ServerType.EXCHANGE_ONLINE, incoming_server_location="", outgoing_server_location=""
    )
    with pytest.raises(PermanentError) as raised:
        incoming_settings(mailbox_on(profile))
    assert raised.value.code == "credentials_missing"
    assert "tenant id, client id and client secret or certificate" in raised.value.message


def test_an_imap_profiles_appointments_contacts_and_tasks_live_on_its_dav_server(settings):
    settings.SYNC_CA_FILE = "/etc/ssl/private-ca.pem"
    profile = factories.profile(
        credentials_source=CredentialsSource.PROFILE,
        username="crm-sync",
        password="pa55",
        dav_server_url="https://dav.contoso.test:8443/",
    )
    found = act_settings(mailbox_on(profile))
    assert (found.url, found.host, found.port, found.mailbox) == (
        "https://dav.contoso.test:8443/",
        "dav.contoso.test",
        8443,
        "alice@contoso.test",
    )
    assert (found.username, found.password, found.ca_file) == ("crm-sync", "pa55", "/etc/ssl/private-ca.pem")


def test_without_a_dav_server_act_settings_say_what_to_enter():
    profile = factories.profile(credentials_source=CredentialsSource.PROFILE, username="u", password="p")
    with pytest.raises(PermanentError) as raised:
        act_settings(mailbox_on(profile))
    assert raised.value.code == "act_not_configured"
    assert "names no CalDAV / CardDAV server" in raised.value.message


def test_an_exchange_mailboxs_act_is_its_exchange_service():
    profile = factories.profile(
        server_type=ServerType.EXCHANGE_ONLINE,
        incoming_server_location="",
        outgoing_server_location="",
        oauth_tenant_id="contoso.onmicrosoft.com",
        oauth_client_id="11111111-2222-3333-4444-555555555555",
        oauth_client_secret="s3cret",
    )
    mailbox = mailbox_on(profile)
    assert act_settings(mailbox) == incoming_settings(mailbox)


@pytest.mark.parametrize("server_type", [ServerType.POP3_SMTP, ServerType.EXCHANGE_SERVER])
def test_only_imap_profiles_name_a_dav_server(server_type):
    profile = EmailServerProfile(
        name="No DAV",
        server_type=server_type,
        incoming_server_location=EWS_URL if server_type == ServerType.EXCHANGE_SERVER else "pop.contoso.test",
        outgoing_server_location=EWS_URL
        if server_type == ServerType.EXCHANGE_SERVER
        else "smtp.contoso.test",
        dav_server_url="https://dav.contoso.test/",
    )
    with pytest.raises(ValidationError) as raised:
        profile.full_clean()
    assert (
        "Only IMAP/SMTP profiles name a CalDAV / CardDAV server"
        in raised.value.message_dict["dav_server_url"][0]
    )
