"""The email server profile pages (console/views/profiles.py, profiles.forms.ProfileForm):
list, create per server type, edit, write-only secrets, fields that do not apply,
and Test Connection against the real test Dovecot and SMTP relay."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.db.models import Count
from django.test import Client
from django.test.utils import CaptureQueriesContext

from crm.choices import SyncStatus
from profiles.models import (
    MICROSOFT_GRAPH_URL,
    AuthProtocol,
    CredentialsSource,
    EmailServerProfile,
    ServerType,
)
from sync.connectors import registry
from tests import factories
from tests.harness.dovecot import free_port
from tests.personas import World
from tests.sync.stack import Stack

SECRET = "Pl41n-Secret-7c1e"


def signed_in(world: World, name: str = "admin") -> Client:
    client = Client()
    client.force_login(world[name].login)
    return client


def imap_data(**changes: Any) -> dict[str, Any]:
    """What a browser posts for a new IMAP/SMTP profile (checkboxes: present when ticked)."""
    data = {
        "server_type": ServerType.IMAP_SMTP,
        "name": "Company IMAP",
        "is_active": "on",
        "incoming_server_location": "imap.example.com",
        "incoming_port": "993",
        "incoming_use_ssl": "on",
        "incoming_auth_protocol": AuthProtocol.AUTO,
        "outgoing_server_location": "smtp.example.com",
        "outgoing_port": "587",
        "outgoing_use_ssl": "on",
        "outgoing_auth_protocol": AuthProtocol.AUTO,
        "credentials_source": CredentialsSource.USER_OR_QUEUE,
        "use_same_settings_for_outgoing": "on",
        "min_polling_interval_minutes": "5",
        "max_concurrent_connections": "10",
        "connection_timeout_seconds": "30",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def edit_data(profile: EmailServerProfile, **changes: Any) -> dict[str, Any]:
    """The edit form as the browser posts it back unchanged, plus ``changes``."""
    data = imap_data(
        server_type=None,
        name=profile.name,
        incoming_server_location=profile.incoming_server_location,
        incoming_port=str(profile.incoming_port),
        outgoing_server_location=profile.outgoing_server_location,
        outgoing_port=str(profile.outgoing_port),
        credentials_source=profile.credentials_source,
        username=profile.username or None,
        connection_timeout_seconds=str(profile.connection_timeout_seconds),
    )
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def field_block(html: str, name: str) -> str:
    """The markup of one field of the page (label, input, help, errors)."""
    match = re.search(rf'<div class="field[^"]*" data-field="{name}">(.*?)\n</div>', html, re.S)
    assert match, f"no field {name} on the page"
    return match.group(1)


def shown_names(html: str) -> set[str]:
    return set(re.findall(r'data-field="([a-z_]+)"', html))


# -- the list -------------------------------------------------------------------------------------


def test_the_list_shows_each_profile_with_its_type_server_mailboxes_and_state(world: World):
    pop3 = factories.profile(
        "Branch POP3", server_type=ServerType.POP3_SMTP, incoming_server_location="pop.branch.test"
    )
    EmailServerProfile.objects.filter(pk=pop3.pk).update(is_active=False)

    html = signed_in(world).get("/profiles/").content.decode()

    counts = dict(EmailServerProfile.objects.annotate(n=Count("mailboxes")).values_list("name", "n"))
    rows = dict(re.findall(r'<tr data-profile="([^"]+)">(.*?)</tr>', html, re.S))
    assert set(rows) == set(counts)
    personas = rows[world.profile.name]
    assert "IMAP/SMTP" in personas
    assert f"/profiles/{world.profile.pk}/" in personas
    assert re.search(rf'\?profile={world.profile.pk}">{counts[world.profile.name]}</a>', personas)
    assert ">Yes<" in personas
    branch = rows["Branch POP3"]
    assert "Other (POP3/SMTP)" in branch
    assert "pop.branch.test:995" in branch
    assert ">No<" in branch


def _list_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/profiles/").status_code == 200
    return len(queries)


def test_the_list_queries_do_not_grow_with_the_profiles(world: World):
    client = signed_in(world)
    owner = factories.crm_user()
    for _ in range(2):
        factories.profile(owner=owner)
    few = _list_queries(client)
    for _ in range(27):
        factories.profile(owner=factories.crm_user())
    assert EmailServerProfile.objects.count() == 30
    assert _list_queries(client) == few


# -- create: the type first, then the form for that type -----------------------------------------


def test_new_asks_for_the_server_type_first(world: World):
    html = signed_in(world).get("/profiles/new/").content.decode()
    for value in ServerType.values:
        assert f"/profiles/new/?server_type={value}" in html
    assert 'data-field="name"' not in html
    unknown = signed_in(world).get("/profiles/new/?server_type=lotus_notes").content.decode()
    assert "Choose one of these server types." in unknown


def test_the_type_chooser_says_which_types_do_not_sync_yet(world: World):
    html = signed_in(world).get("/profiles/new/").content.decode()
    items = {
        value: html.split(f"?server_type={value}", 1)[1].split("</li>", 1)[0] for value in ServerType.values
    }
    assert ["Not supported yet" in items[value] for value in ServerType.values] == [
        value not in registry.supported_types() for value in ServerType.values
    ]
    assert "Not supported yet" not in items[ServerType.IMAP_SMTP]


@pytest.mark.parametrize(
    ("server_type", "ports", "location", "present", "absent"),
    [
        (
            ServerType.IMAP_SMTP,
            ("993", "465"),
            "",
            {"incoming_port", "outgoing_port", "credentials_source"},
            {"auto_discover_server_location", "move_failed_email_to_undeliverable", "oauth_client_id"},
        ),
        (
            ServerType.POP3_SMTP,
            ("995", "465"),
            "",
            {"incoming_port", "outgoing_port"},
            {"auto_discover_server_location", "move_failed_email_to_undeliverable"},
        ),
        (
            ServerType.EXCHANGE_ONLINE,
            None,
            MICROSOFT_GRAPH_URL,
            # Microsoft Graph: an app registration signs in; EWS's settings do not apply.
            {"move_failed_email_to_undeliverable", "oauth_client_id", "oauth_certificate", "oauth_authority"},
            {
                "incoming_port",
                "outgoing_port",
                "auto_discover_server_location",
                "exchange_server_version",
                "incoming_auth_protocol",
            },
        ),
        (
            ServerType.EXCHANGE_SERVER,
            None,
            "",
            {"auto_discover_server_location", "exchange_server_version", "incoming_auth_protocol"},
            {"incoming_port", "outgoing_port", "oauth_client_id"},
        ),
    ],
)
def test_the_form_of_each_type_starts_with_its_ports_and_shows_only_its_fields(
    world: World, server_type: str, ports: tuple[str, str] | None, location: str, present, absent
):
    html = signed_in(world).get(f"/profiles/new/?server_type={server_type}").content.decode()
    shown = shown_names(html)
    assert present <= shown
    assert not absent & shown
    # Credentials come from each mailbox by default: the profile's own fields do not apply yet.
    assert not {"username", "password", "incoming_use_impersonation"} & shown
    if ports:
        assert f'value="{ports[0]}"' in field_block(html, "incoming_port")
        assert f'value="{ports[1]}"' in field_block(html, "outgoing_port")
    value = f'value="{location}"' if location else 'name="incoming_server_location"'
    assert value in field_block(html, "incoming_server_location")


def test_exchange_online_signs_in_only_as_an_app_and_only_exchange_server_offers_ntlm(world: World):
    client = signed_in(world)
    imap = client.get("/profiles/new/?server_type=imap_smtp").content.decode()
    online = client.get("/profiles/new/?server_type=exchange_online").content.decode()
    server = client.get("/profiles/new/?server_type=exchange_server").content.decode()
    assert 'value="oauth_client_credentials"' in field_block(imap, "credentials_source")
    assert 'value="oauth_authorization_code"' in field_block(imap, "credentials_source")
    assert 'value="ntlm"' not in field_block(imap, "incoming_auth_protocol")
    assert re.findall(r'<option value="([^"]*)"', field_block(online, "credentials_source")) == [
        "oauth_client_credentials"
    ]
    assert 'value="oauth_client_credentials"' in field_block(server, "credentials_source")
    assert 'value="ntlm"' in field_block(server, "incoming_auth_protocol")
    # Exchange Online is Microsoft Graph now: its page says nothing of EWS.
    assert "EWS" not in online
    assert "Exchange Web Services" not in online


def test_the_common_ports_are_offered_per_type(world: World):
    html = signed_in(world).get("/profiles/new/?server_type=pop3_smtp").content.decode()
    incoming = re.search(r'<datalist id="incoming-ports">(.*?)</datalist>', html, re.S)
    outgoing = re.search(r'<datalist id="outgoing-ports">(.*?)</datalist>', html, re.S)
    assert incoming
    assert outgoing
    assert re.findall(r'value="(\d+)"', incoming.group(1)) == ["995", "110"]
    assert re.findall(r'value="(\d+)"', outgoing.group(1)) == ["465", "587", "25"]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"incoming_port": "", "outgoing_port": ""},
            {"server_type": ServerType.IMAP_SMTP, "incoming_port": 993, "outgoing_port": 465},
        ),
        (
            {
                "server_type": ServerType.POP3_SMTP,
                "incoming_port": "110",
                "incoming_use_ssl": None,
                "credentials_source": CredentialsSource.PROFILE,
                "username": "crm-service@example.com",
                "password": SECRET,
            },
            {"server_type": ServerType.POP3_SMTP, "incoming_port": 110, "incoming_use_ssl": False},
        ),
        (
            {
                "server_type": ServerType.EXCHANGE_ONLINE,
                "incoming_server_location": MICROSOFT_GRAPH_URL,
                "outgoing_server_location": MICROSOFT_GRAPH_URL,
                "incoming_port": None,
                "outgoing_port": None,
                "credentials_source": CredentialsSource.OAUTH_CLIENT_CREDENTIALS,
                "oauth_tenant_id": "contoso.onmicrosoft.com",
                "oauth_client_id": "6f1e0c1a",
                "oauth_client_secret": SECRET,
                "incoming_use_impersonation": "on",
                "move_failed_email_to_undeliverable": "on",
            },
            {
                "server_type": ServerType.EXCHANGE_ONLINE,
                "incoming_port": 443,
                "oauth_client_id": "6f1e0c1a",
                # An app reads every mailbox it is allowed to: impersonation means nothing to Graph.
                "incoming_use_impersonation": False,
                "move_failed_email_to_undeliverable": True,
            },
        ),
        (
            {
                "server_type": ServerType.EXCHANGE_SERVER,
                "incoming_server_location": "https://mail.contoso.test/EWS/Exchange.asmx",
                "outgoing_server_location": "",
                "incoming_auth_protocol": AuthProtocol.NTLM,
                "credentials_source": CredentialsSource.PROFILE,
                "username": "CONTOSO\\crm-service",
            },
            {
                "server_type": ServerType.EXCHANGE_SERVER,
                "outgoing_server_location": "https://mail.contoso.test/EWS/Exchange.asmx",
                "incoming_auth_protocol": AuthProtocol.NTLM,
                "username": "CONTOSO\\crm-service",
            },
        ),
    ],
    ids=["imap-blank-ports", "pop3-profile-credentials", "exchange-online-oauth", "exchange-server-ntlm"],
)
def test_creating_a_profile_of_each_type(world: World, changes: dict[str, Any], expected: dict[str, Any]):
    response = signed_in(world).post("/profiles/new/", imap_data(**changes))

    created = EmailServerProfile.objects.get(name="Company IMAP")
    assert response.status_code == 302
    assert response["Location"] == f"/profiles/{created.pk}/"
    for field, value in expected.items():
        assert getattr(created, field) == value, field
    for secret in ("password", "oauth_client_secret"):
        if changes.get(secret):
            assert getattr(created, secret).reveal() == SECRET


def test_the_owner_is_found_by_email_address(world: World):
    client = signed_in(world)
    client.post("/profiles/new/", imap_data(owner=world["alice"].crm_user.email.upper()))
    assert EmailServerProfile.objects.get(name="Company IMAP").owner == world["alice"].crm_user

    html = client.post(
        "/profiles/new/", imap_data(name="Other", owner="nobody@example.test")
    ).content.decode()
    assert "No active CRM user has this email address." in field_block(html, "owner")
    assert not EmailServerProfile.objects.filter(name="Other").exists()


# -- errors ---------------------------------------------------------------------------------------


def test_errors_show_on_the_fields_they_are_about_and_nothing_is_saved(world: World):
    data = imap_data(
        name=world.profile.name,  # taken
        incoming_server_location="imaps://imap.example.com:993",
        outgoing_port="70000",
        credentials_source=CredentialsSource.PROFILE,
        username="",
        password=SECRET,
        max_concurrent_connections="0",
    )
    response = signed_in(world).post("/profiles/new/", data)

    assert response.status_code == 200
    html = response.content.decode()
    assert "The profile was not saved" in html
    assert "already exists" in field_block(html, "name")
    assert "Enter a host name or IP address" in field_block(html, "incoming_server_location")
    assert "less than or equal to 65535" in field_block(html, "outgoing_port")
    assert "A user name is required" in field_block(html, "username")
    assert "greater than or equal to 1" in field_block(html, "max_concurrent_connections")
    assert 'aria-invalid="true"' in field_block(html, "outgoing_port")
    assert SECRET not in html
    assert EmailServerProfile.objects.count() == 1


def test_a_choice_another_type_does_not_offer_is_refused(world: World):
    # Exchange Server signs in as an app or with passwords; mailboxes connect accounts on IMAP and POP3.
    data = imap_data(
        server_type=ServerType.EXCHANGE_SERVER,
        incoming_server_location="https://mail.example.com/EWS/Exchange.asmx",
        outgoing_server_location="https://mail.example.com/EWS/Exchange.asmx",
        credentials_source=CredentialsSource.OAUTH_AUTHORIZATION_CODE,
        oauth_client_id="x",
    )
    html = signed_in(world).post("/profiles/new/", data).content.decode()
    assert "Select a valid choice" in field_block(html, "credentials_source")
    assert not EmailServerProfile.objects.filter(name="Company IMAP").exists()


# -- fields that do not apply --------------------------------------------------------------------


def test_fields_that_do_not_apply_are_ignored_and_cleared_on_the_server(world: World):
    # What a hand-made request (or a stale page) might send for an IMAP profile
    # whose mailboxes sign in with their own credentials.
    data = imap_data(
        auto_discover_server_location="on",
        move_failed_email_to_undeliverable="on",
        oauth_tenant_id="contoso",
        oauth_client_id="client",
        oauth_client_secret=SECRET,
        username="ignored",
        password=SECRET,
        outgoing_username="ignored",
        incoming_use_impersonation="on",
    )
    assert signed_in(world).post("/profiles/new/", data).status_code == 302

    created = EmailServerProfile.objects.get(name="Company IMAP")
    assert (created.auto_discover_server_location, created.move_failed_email_to_undeliverable) == (
        False,
        False,
    )
    assert (
        created.oauth_tenant_id,
        created.oauth_client_id,
        created.username,
        created.outgoing_username,
    ) == (
        "",
        "",
        "",
        "",
    )
    assert not created.oauth_client_secret
    assert not created.password
    assert created.incoming_use_impersonation is False


def test_switching_to_per_mailbox_credentials_removes_the_profiles_own(world: World):
    profile = factories.profile(
        "Shared", credentials_source=CredentialsSource.PROFILE, username="svc", password=SECRET
    )
    data = edit_data(profile, credentials_source=CredentialsSource.USER_OR_QUEUE, username=None)
    assert signed_in(world).post(f"/profiles/{profile.pk}/", data).status_code == 302

    profile.refresh_from_db()
    assert profile.credentials_source == CredentialsSource.USER_OR_QUEUE
    assert (profile.username, bool(profile.password)) == ("", False)


def test_the_outgoing_credentials_apply_only_when_they_differ(world: World):
    client = signed_in(world)
    same = imap_data(credentials_source=CredentialsSource.PROFILE, username="svc")
    html = client.post("/profiles/new/", {**same, "name": ""}).content.decode()
    assert "outgoing_username" not in shown_names(html)
    different = {**same, "use_same_settings_for_outgoing": None, "name": ""}
    html = client.post("/profiles/new/", {k: v for k, v in different.items() if v is not None}).content
    assert "outgoing_username" in shown_names(html.decode())


def test_a_type_changed_without_javascript_shows_that_types_form_before_saving(world: World):
    client = signed_in(world)
    shown = shown_on_create(client, ServerType.IMAP_SMTP)
    data = imap_data(server_type=ServerType.POP3_SMTP, shown_fields=shown, shown_server_type="imap_smtp")

    html = client.post("/profiles/new/", data).content.decode()

    assert not EmailServerProfile.objects.filter(name="Company IMAP").exists()
    assert 'value="995"' in field_block(html, "incoming_port")
    assert 'name="shown_server_type" value="pop3_smtp"' in html
    saved = client.post("/profiles/new/", {**data, "incoming_port": "995", "shown_server_type": "pop3_smtp"})
    assert saved.status_code == 302
    assert EmailServerProfile.objects.get(name="Company IMAP").server_type == ServerType.POP3_SMTP


def test_an_owner_without_an_email_address_is_kept_when_the_box_stays_empty(world: World):
    owner = factories.crm_user("Nomail Person", email="")
    profile = factories.profile("Owned", owner=owner)
    client = signed_in(world)
    assert (
        "Now Nomail Person, who has no email address"
        in client.get(f"/profiles/{profile.pk}/").content.decode()
    )

    client.post(f"/profiles/{profile.pk}/", edit_data(profile, owner=""))

    profile.refresh_from_db()
    assert profile.owner == owner


def test_the_server_type_is_fixed_once_the_profile_exists(world: World):
    profile = world.profile
    data = edit_data(profile, server_type=ServerType.POP3_SMTP, description="changed")
    assert signed_in(world).post(f"/profiles/{profile.pk}/", data).status_code == 302
    profile.refresh_from_db()
    assert (profile.server_type, profile.description) == (ServerType.IMAP_SMTP, "changed")


# -- the form redrawn for another type, credentials or SSL ---------------------------------------


def redraw(client: Client, url: str, **values: Any) -> str:
    query = {key: value for key, value in values.items() if value is not None}
    return client.get(f"{url}?{urlencode(query)}", HTTP_HX_REQUEST="true").content.decode()


def shown_on_create(client: Client, server_type: str) -> str:
    html = client.get(f"/profiles/new/?server_type={server_type}").content.decode()
    match = re.search(r'name="shown_fields" value="([^"]+)"', html)
    assert match
    return match.group(1)


def test_a_new_type_brings_its_ports_and_fields_and_keeps_what_was_typed(world: World):
    client = signed_in(world)
    shown = shown_on_create(client, ServerType.IMAP_SMTP)
    html = redraw(
        client,
        "/profiles/new/",
        **imap_data(
            server_type=ServerType.POP3_SMTP,
            name="Typed name",
            outgoing_port="2525",  # typed by the administrator: it stays
        ),
        shown_fields=shown,
        shown_server_type=ServerType.IMAP_SMTP,
    )
    assert 'value="Typed name"' in field_block(html, "name")
    assert 'value="995"' in field_block(html, "incoming_port")
    assert 'value="2525"' in field_block(html, "outgoing_port")
    assert 'name="shown_server_type" value="pop3_smtp"' in html

    html = redraw(
        client,
        "/profiles/new/",
        **imap_data(server_type=ServerType.EXCHANGE_ONLINE, incoming_server_location=""),
        shown_fields=shown,
        shown_server_type=ServerType.IMAP_SMTP,
    )
    assert {"incoming_port", "outgoing_port"}.isdisjoint(shown_names(html))
    assert "oauth_client_id" in shown_names(html)
    assert f'value="{MICROSOFT_GRAPH_URL}"' in field_block(html, "incoming_server_location")
    # A typed host is no URL, but it was typed: it stays, for the administrator to correct.
    assert 'value="smtp.example.com"' in field_block(html, "outgoing_server_location")


def test_ssl_off_brings_the_plain_port(world: World):
    client = signed_in(world)
    shown = shown_on_create(client, ServerType.IMAP_SMTP)
    html = redraw(
        client,
        "/profiles/new/",
        **imap_data(incoming_use_ssl=None, outgoing_use_ssl=None, outgoing_port="465"),
        shown_fields=shown,
        shown_server_type=ServerType.IMAP_SMTP,
    )
    assert 'value="143"' in field_block(html, "incoming_port")
    assert 'value="587"' in field_block(html, "outgoing_port")


def test_profile_credentials_bring_their_fields_on_the_edit_page(world: World):
    profile = factories.profile("Shared", credentials_source=CredentialsSource.PROFILE, username="svc")
    client = signed_in(world)
    page = client.get(f"/profiles/{profile.pk}/").content.decode()
    shown = re.search(r'name="shown_fields" value="([^"]+)"', page)
    assert shown
    assert 'value="svc"' in field_block(page, "username")

    html = redraw(
        client,
        f"/profiles/{profile.pk}/",
        **edit_data(profile, credentials_source=CredentialsSource.USER_OR_QUEUE),
        shown_fields=shown.group(1),
        shown_server_type=profile.server_type,
    )
    assert {"username", "password", "incoming_use_impersonation"}.isdisjoint(shown_names(html))
    html = redraw(
        client,
        f"/profiles/{profile.pk}/",
        **edit_data(profile, use_same_settings_for_outgoing=None),
        shown_fields=shown.group(1),
        shown_server_type=profile.server_type,
    )
    assert {"outgoing_username", "outgoing_password"} <= shown_names(html)
    profile.refresh_from_db()
    assert profile.use_same_settings_for_outgoing is True  # redrawing saves nothing


# -- secrets are write-only -----------------------------------------------------------------------


def test_secrets_never_reach_the_page_and_an_empty_box_keeps_them(world: World):
    client = signed_in(world)
    create = imap_data(credentials_source=CredentialsSource.PROFILE, username="svc", password=SECRET)
    client.post("/profiles/new/", create)
    profile = EmailServerProfile.objects.get(name="Company IMAP")
    url = f"/profiles/{profile.pk}/"

    page = client.get(url).content.decode()
    assert SECRET not in page
    assert profile.password.token not in page
    assert re.search(r'<input type="password" name="password"[^>]*>', page)
    assert 'name="password" value' not in field_block(page, "password")
    assert "A password is stored" in field_block(page, "password")
    assert "clear_password" in field_block(page, "password")

    # Saved with the box left empty: the stored password stays.
    assert client.post(url, edit_data(profile, description="x", password="")).status_code == 302
    profile.refresh_from_db()
    assert profile.password.reveal() == SECRET

    # A rejected form never echoes a typed password either.
    rejected = client.post(url, edit_data(profile, password="N3w-" + SECRET, outgoing_port="0"))
    assert rejected.status_code == 200
    assert "N3w-" + SECRET not in rejected.content.decode()
    assert SECRET not in rejected.content.decode()
    profile.refresh_from_db()
    assert profile.password.reveal() == SECRET

    # A redraw request carrying a password (the page never sends one) does not echo it either.
    assert SECRET not in redraw(client, url, **edit_data(profile, password=SECRET))


def test_a_new_password_replaces_and_clear_removes_the_stored_one(world: World):
    profile = factories.profile(
        "Shared", credentials_source=CredentialsSource.PROFILE, username="svc", password=SECRET
    )
    client = signed_in(world)
    url = f"/profiles/{profile.pk}/"

    client.post(url, edit_data(profile, password="R3placed"))
    profile.refresh_from_db()
    assert profile.password.reveal() == "R3placed"

    client.post(url, edit_data(profile, clear_password="on"))
    profile.refresh_from_db()
    assert not profile.password
    assert "A password is stored" not in client.get(url).content.decode()


# -- who may -------------------------------------------------------------------------------------


def test_a_user_can_neither_create_nor_change_nor_test_a_profile(world: World):
    alice = signed_in(world, "alice")
    profile = world.profile
    before = EmailServerProfile.objects.filter(pk=profile.pk).values().get()

    assert alice.get("/profiles/").status_code == 403
    assert alice.post("/profiles/new/", imap_data()).status_code == 403
    assert alice.post(f"/profiles/{profile.pk}/", edit_data(profile, description="hers")).status_code == 403
    assert alice.post(f"/profiles/{profile.pk}/test-connection/").status_code == 403

    assert EmailServerProfile.objects.count() == 1
    assert EmailServerProfile.objects.filter(pk=profile.pk).values().get() == before


# -- Test Connection, against the real test Dovecot and SMTP relay --------------------------------


def stack_profile_data(stack: Stack, username: str, password: str, **changes: Any) -> dict[str, Any]:
    values = {
        "name": "Test stack",
        "incoming_server_location": stack.dovecot.host,
        "incoming_port": str(stack.dovecot.imaps_port),
        "outgoing_server_location": stack.relay.host,
        "outgoing_port": str(stack.relay.port),
        "credentials_source": CredentialsSource.PROFILE,
        "username": username,
        "password": password,
        "connection_timeout_seconds": "10",
    }
    return imap_data(**{**values, **changes})


def results(html: str) -> dict[str, tuple[str, str]]:
    """Per direction: the outcome and the text shown for it."""
    found = re.findall(
        r'<li class="result" data-direction="(\w+)" data-outcome="(\w+)">(.*?)</li>', html, re.S
    )
    return {
        direction: (outcome, re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", text)).strip())
        for direction, outcome, text in found
    }


def test_test_connection_passes_with_the_right_password(world: World, stack: Stack, mail_user):
    account = mail_user("profile")
    client = signed_in(world)
    client.post("/profiles/new/", stack_profile_data(stack, account.address, account.password))
    profile = EmailServerProfile.objects.get(name="Test stack")

    response = client.post(f"/profiles/{profile.pk}/test-connection/", HTTP_HX_REQUEST="true")

    shown = results(response.content.decode())
    assert shown["incoming"][0] == shown["outgoing"][0] == "success"
    assert "Incoming email works" in shown["incoming"][1]
    profile.refresh_from_db()
    assert profile.last_test_result == SyncStatus.SUCCESS
    assert account.password not in response.content.decode()


def test_test_connection_shows_a_wrong_password_and_a_closed_port_with_cause_and_fix(
    world: World, stack: Stack, mail_user
):
    account = mail_user("profile")
    client = signed_in(world)
    data = stack_profile_data(stack, account.address, "not-the-password", outgoing_port=str(free_port()))
    client.post("/profiles/new/", data)
    profile = EmailServerProfile.objects.get(name="Test stack")

    # Without htmx the button answers with the whole page.
    page = client.post(f"/profiles/{profile.pk}/test-connection/").content.decode()

    shown = results(page)
    assert shown["incoming"][0] == "failure"
    assert "sign-in" in shown["incoming"][1]
    assert "Fix: Correct the user name and password" in shown["incoming"][1]
    assert shown["outgoing"][0] == "failure"
    assert "Fix: Check the server name and port" in shown["outgoing"][1]
    assert "not-the-password" not in page
    profile.refresh_from_db()
    assert profile.last_test_result == SyncStatus.FAILURE
    # The edit page keeps showing the last result.
    assert "Correct the user name and password" in client.get(f"/profiles/{profile.pk}/").content.decode()


# -- "Test & Enable Mailboxes" from the profile's page --------------------------------


def test_test_and_enable_mailboxes_plans_one_rollout_of_the_profiles_mailboxes(world: World):
    from sync.models import Rollout, RolloutItem

    client = signed_in(world)
    other = factories.profile("Other")
    factories.mailbox(user=factories.crm_user("Olga Other"), profile=other)

    response = client.post(f"/profiles/{world.profile.pk}/test-and-enable-mailboxes/")

    assert response.status_code == 302
    assert response["Location"] == f"/mailboxes/?profile={world.profile.pk}"
    rollout = Rollout.objects.exclude(pk=world.rollout.pk).get()
    planned = set(RolloutItem.objects.filter(rollout=rollout).values_list("mailbox_id", flat=True))
    assert planned == set(world.profile.mailboxes.values_list("pk", flat=True))
    first = RolloutItem.objects.filter(rollout=rollout).order_by("batch_number", "position").first()
    assert first.mailbox_id == world.queue_mailbox.pk  # queues first
    page = client.get(response["Location"]).content.decode()
    assert f"Rollout #{rollout.pk} will test &amp; enable the mailboxes of {world.profile.name}" in page


def test_test_and_enable_mailboxes_of_an_empty_profile_says_so(world: World):
    from sync.models import Rollout

    empty = factories.profile("Empty")
    client = signed_in(world)
    response = client.post(f"/profiles/{empty.pk}/test-and-enable-mailboxes/", follow=True)
    assert "This profile has no mailboxes to test." in response.content.decode()
    assert not Rollout.objects.exclude(pk=world.rollout.pk).exists()
