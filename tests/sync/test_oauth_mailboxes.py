"""OAuth 2.0 sign-in for IMAP, POP3 and SMTP mailboxes, end to end: the Connect flow
through the pages against the harness's token issuer, syncs signing in to the real
Dovecot (its oauth2 passdb checks the bearer tokens at the issuer) and sending
through the relay, refreshes with rotation, a revoked grant, and serialized refreshes.
"""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.db import connection, connections
from django.test import Client

from crm.choices import SyncStatus
from crm.models import EmailActivity
from mailboxes.models import Mailbox, OAuthGrant
from profiles.models import (
    GOOGLE_SCOPES,
    GOOGLE_TOKEN_URL,
    CredentialsSource,
    EmailServerProfile,
    SaslMechanism,
    ServerType,
)
from sync import checks, clock, oauth_tokens
from sync.connectors import oauth_grants
from sync.connectors.smtp import SmtpConnection
from sync.errors import PermanentError
from sync.incoming import sync_incoming
from sync.models import MailboxAlert
from sync.server_settings import outgoing_settings
from tests import factories, messages
from tests.harness.oauth_issuer import TENANT, OAuthIssuer
from tests.harness.oauth_issuer import Client as IssuerClient
from tests.sync.stack import Stack

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

CALLBACK = "http://testserver/mailboxes/oauth/callback/"


def oauth_profile(
    stack: Stack, issuer: OAuthIssuer, app: IssuerClient, **extra: object
) -> EmailServerProfile:
    """A profile whose mailboxes connect their accounts, with Microsoft's defaults pointed at the issuer."""
    pop3 = extra.pop("pop3", False)
    return factories.profile(
        f"OAuth {'POP3' if pop3 else 'IMAP'} {app.client_id}",
        server_type=ServerType.POP3_SMTP if pop3 else ServerType.IMAP_SMTP,
        incoming_server_location=stack.dovecot.host,
        incoming_port=stack.dovecot.pop3s_port if pop3 else stack.dovecot.imaps_port,
        outgoing_server_location=stack.relay.host,
        outgoing_port=stack.relay.port,
        connection_timeout_seconds=10,
        credentials_source=extra.pop("credentials_source", CredentialsSource.OAUTH_AUTHORIZATION_CODE),
        oauth_authority=issuer.authority,
        oauth_tenant_id=TENANT,
        oauth_client_id=app.client_id,
        oauth_client_secret=app.secret,
        **extra,
    )


@pytest.fixture
def app(oauth_issuer: OAuthIssuer) -> IssuerClient:
    return oauth_issuer.register(redirect_uris=[CALLBACK])


@pytest.fixture
def admin() -> Client:
    client = Client()
    client.force_login(factories.login_user("oauth-admin", administrator=True))
    return client


def connect(admin: Client, mailbox: Mailbox) -> httpx.Response:
    """Connect as a browser does: the button, the provider's sign-in, the callback."""
    started = admin.post(f"/mailboxes/{mailbox.pk}/connect/")
    assert started.status_code == 302, started.content
    with httpx.Client(verify=False) as browser:  # noqa: S501 - only the redirect is read, not trusted
        signed_in = browser.get(started["Location"])
    assert signed_in.status_code == 302, signed_in.text
    back = urlsplit(signed_in.headers["Location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == CALLBACK
    return signed_in


def callback(admin: Client, signed_in: httpx.Response) -> object:
    return admin.get(f"/mailboxes/oauth/callback/?{urlsplit(signed_in.headers['Location']).query}")


def connected_mailbox(
    stack: Stack, admin: Client, profile: EmailServerProfile, name: str = "olivia"
) -> Mailbox:
    mailbox = stack.user_mailbox(name, profile=profile)
    answer = callback(admin, connect(admin, mailbox))
    assert answer.status_code == 302  # type: ignore[attr-defined]
    return mailbox


def expire(mailbox: Mailbox) -> None:
    """An hour later: the access token the mailbox holds has run out."""
    OAuthGrant.objects.filter(mailbox=mailbox).update(
        access_token_expires_on=clock.now() - timedelta(seconds=1)
    )


def raw_column(mailbox: Mailbox, column: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM mailboxes_oauthgrant WHERE mailbox_id = %s", [mailbox.pk])  # noqa: S608
        return str(cursor.fetchone()[0])


# -- connecting ----------------------------------------------------------------------------------


def test_connect_signs_the_account_in_and_keeps_its_tokens_encrypted(
    stack: Stack, oauth_issuer: OAuthIssuer, app: IssuerClient, admin: Client
) -> None:
    mailbox = stack.user_mailbox("olivia", profile=oauth_profile(stack, oauth_issuer, app))
    page = admin.get(f"/mailboxes/{mailbox.pk}/").content.decode()
    assert "Not connected" in page
    assert 'id="oauth-connect"' in page

    signed_in = connect(admin, mailbox)
    query = parse_qs(urlsplit(signed_in.headers["Location"]).query)
    answer = admin.get(
        f"/mailboxes/oauth/callback/?code={query['code'][0]}&state={query['state'][0]}", follow=True
    )

    assert f"{mailbox.email_address} is connected" in answer.content.decode()
    grant = OAuthGrant.objects.get(mailbox=mailbox)
    assert grant.refresh_token
    assert grant.access_token
    assert not grant.needs_reauthorization
    assert grant.access_token_expires_on is not None
    assert grant.access_token_expires_on > clock.now()
    # At rest only ciphertext: neither token's text is in its column.
    for column, secret in (("refresh_token", grant.refresh_token), ("access_token", grant.access_token)):
        assert secret.reveal() not in raw_column(mailbox, column)
    page = admin.get(f"/mailboxes/{mailbox.pk}/").content.decode()
    assert ">Connected<" in page
    assert grant.access_token.reveal() not in page
    assert grant.refresh_token.reveal() not in page


def test_a_callback_whose_state_this_browser_did_not_start_stores_nothing(
    stack: Stack, oauth_issuer: OAuthIssuer, app: IssuerClient, admin: Client
) -> None:
    mailbox = stack.user_mailbox("olivia", profile=oauth_profile(stack, oauth_issuer, app))
    signed_in = connect(admin, mailbox)
    code = parse_qs(urlsplit(signed_in.headers["Location"]).query)["code"][0]

    forged = admin.get(f"/mailboxes/oauth/callback/?code={code}&state=someone-elses")
    other_browser = Client()
    other_browser.force_login(factories.login_user("other-admin", administrator=True))
    replayed = callback(other_browser, signed_in)

    for answer in (forged, replayed):
        assert answer.status_code == 400  # type: ignore[attr-defined]
        assert "its state does not match" in answer.content.decode()  # type: ignore[attr-defined]
    assert not OAuthGrant.objects.filter(mailbox=mailbox).exists()
    assert app.requests["authorization_code"] == 0


def test_the_provider_refusing_sign_in_says_so_and_stores_nothing(
    stack: Stack, oauth_issuer: OAuthIssuer, app: IssuerClient, admin: Client
) -> None:
    mailbox = stack.user_mailbox("olivia", profile=oauth_profile(stack, oauth_issuer, app))
    started = admin.post(f"/mailboxes/{mailbox.pk}/connect/")
    state = parse_qs(urlsplit(started["Location"]).query)["state"][0]

    answer = admin.get(f"/mailboxes/oauth/callback/?error=access_denied&state={state}", follow=True)

    assert "did not connect" in answer.content.decode()
    assert "access_denied" in answer.content.decode()
    assert not OAuthGrant.objects.filter(mailbox=mailbox).exists()


def test_a_profile_whose_mailboxes_connect_is_set_up_on_its_page_with_the_providers_defaults(
    admin: Client,
) -> None:
    data = {
        "server_type": ServerType.IMAP_SMTP,
        "name": "Gmail",
        "is_active": "on",
        "incoming_server_location": "imap.gmail.com",
        "incoming_port": "993",
        "incoming_use_ssl": "on",
        "incoming_auth_protocol": "auto",
        "outgoing_server_location": "smtp.gmail.com",
        "outgoing_port": "465",
        "outgoing_use_ssl": "on",
        "outgoing_auth_protocol": "auto",
        "credentials_source": CredentialsSource.OAUTH_AUTHORIZATION_CODE,
        "oauth_provider": "google",
        "oauth_client_id": "serversync.apps.googleusercontent.com",
        "oauth_client_secret": "GOCSPX-the-secret",
        "oauth_sasl_mechanism": SaslMechanism.OAUTHBEARER,
        "min_polling_interval_minutes": "5",
        "max_concurrent_connections": "10",
        "connection_timeout_seconds": "30",
    }
    redraw = "/profiles/new/?server_type=imap_smtp&credentials_source=oauth_authorization_code"
    redraw += "&shown_fields=server_type,credentials_source"
    form = admin.get(redraw, HTTP_HX_REQUEST="true")
    shown = set(re.findall(r'data-field="([a-z_]+)"', form.content.decode()))

    created = admin.post("/profiles/new/", data)

    assert {"oauth_provider", "oauth_client_id", "oauth_client_secret", "oauth_scopes"} <= shown
    assert not {"password", "oauth_certificate", "incoming_use_impersonation"} & shown
    assert created.status_code == 302, created.content.decode()
    profile = EmailServerProfile.objects.get(name="Gmail")
    assert profile.oauth_client_secret.reveal() == "GOCSPX-the-secret"
    endpoints = profile.oauth_endpoints()
    assert (endpoints.token_url, endpoints.scopes) == (GOOGLE_TOKEN_URL, GOOGLE_SCOPES)
    assert ("access_type", "offline") in endpoints.extra_authorize_params
    assert "GOCSPX-the-secret" not in admin.get(f"/profiles/{profile.pk}/").content.decode()


# -- signing in ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", SaslMechanism.values)
@pytest.mark.parametrize("pop3", [False, True], ids=["imap", "pop3"])
def test_a_connected_mailbox_syncs_over_dovecot_with_its_token(
    stack: Stack, oauth_issuer: OAuthIssuer, app: IssuerClient, admin: Client, mechanism: str, pop3: bool
) -> None:
    profile = oauth_profile(stack, oauth_issuer, app, pop3=pop3, oauth_sasl_mechanism=mechanism)
    mailbox = connected_mailbox(stack, admin, profile)
    stack.deliver(mailbox, messages.simple(subject="Signed in with a token", to=mailbox.email_address))

    run = sync_incoming(mailbox=mailbox)

    assert run.outcome == "success", run.error_text
    assert EmailActivity.objects.filter(subject="Signed in with a token").count() == 1
    assert f"Login: user=<{mailbox.email_address}>, method={mechanism}" in stack.dovecot.log()


def test_test_and_enable_passes_and_sends_through_the_relay_with_the_token(
    stack: Stack, oauth_issuer: OAuthIssuer, app: IssuerClient, admin: Client
) -> None:
    mailbox = connected_mailbox(stack, admin, oauth_profile(stack, oauth_issuer, app))
    Mailbox.objects.filter(pk=mailbox.pk).update(incoming_enabled=False, outgoing_enabled=False)
    mailbox.refresh_from_db()

    report = checks.mailbox_test_and_enable(mailbox=mailbox, round_trip=True)

    assert report.passed, report.summary
    mailbox.refresh_from_db()
    assert mailbox.incoming_enabled
    assert mailbox.outgoing_enabled
    assert [t.login for t in stack.relay.transactions() if mailbox.email_address in t.rcpt_to] == [
        mailbox.email_address
    ]


def test_an_app_token_signs_in_to_the_relay_for_a_granted_mailbox(
    stack: Stack, oauth_issuer: OAuthIssuer, mail_user
) -> None:
    """Client credentials (Exchange Online's IMAP / SMTP with an Entra ID app): msal asks the
    issuer for an app token, and the relay lets it send as a mailbox granted to the app."""
    account = mail_user("appbox")
    app = oauth_issuer.register(granted={account.address})
    profile = oauth_profile(
        stack, oauth_issuer, app, credentials_source=CredentialsSource.OAUTH_CLIENT_CREDENTIALS
    )
    mailbox = factories.mailbox(email_address=account.address, profile=profile, is_forward_mailbox=True)

    settings = outgoing_settings(mailbox)

    assert settings.sasl_mechanism == "XOAUTH2"
    assert settings.username == account.address
    assert oauth_issuer.introspect(settings.access_token)["client_id"] == app.client_id
    with SmtpConnection(settings):
        pass
    assert app.requests["client_credentials"] == 1


# -- refreshing ----------------------------------------------------------------------------------


def test_an_expired_access_token_is_refreshed_and_the_rotated_refresh_token_saved(
    stack: Stack, oauth_issuer: OAuthIssuer, app: IssuerClient, admin: Client
) -> None:
    mailbox = connected_mailbox(stack, admin, oauth_profile(stack, oauth_issuer, app))
    first = OAuthGrant.objects.get(mailbox=mailbox)
    oauth_issuer.expire_access_tokens(mailbox.email_address)
    expire(mailbox)
    stack.deliver(mailbox, messages.simple(subject="After an hour", to=mailbox.email_address))

    run = sync_incoming(mailbox=mailbox)

    assert run.outcome == "success", run.error_text
    assert app.requests["refresh_token"] == 1
    grant = OAuthGrant.objects.get(mailbox=mailbox)
    assert grant.refresh_token.reveal() != first.refresh_token.reveal()  # rotated, and kept
    assert grant.refresh_token.reveal() not in raw_column(mailbox, "refresh_token")
    assert grant.refreshed_on is not None
    assert grant.access_token_expires_on > clock.now()
    # The old refresh token is dead at the provider; the saved one works.
    client = oauth_tokens.client_of(mailbox.profile)
    with pytest.raises(PermanentError):
        oauth_grants.refresh(client, first.refresh_token.reveal())
    assert oauth_grants.refresh(client, grant.refresh_token.reveal()).access_token
    # A fresh token is used as it is: the next run asks the provider nothing.
    assert app.requests["refresh_token"] == 3  # the run's, and this test's own two
    assert sync_incoming(mailbox=mailbox).outcome == "success"
    assert app.requests["refresh_token"] == 3


def test_a_revoked_grant_raises_reauthorize_once_and_reconnecting_resolves_it(
    stack: Stack, oauth_issuer: OAuthIssuer, app: IssuerClient, admin: Client
) -> None:
    mailbox = connected_mailbox(stack, admin, oauth_profile(stack, oauth_issuer, app))
    oauth_issuer.revoke(mailbox.email_address)
    expire(mailbox)

    run = sync_incoming(mailbox=mailbox)
    for _ in range(3):  # later runs (a re-enabled mailbox, a test) ask the provider nothing
        with pytest.raises(PermanentError) as refused:
            oauth_tokens.access_token(mailbox, mailbox.profile)
        assert refused.value.code == "reauthorize"

    assert (run.outcome, run.error_code) == ("failed", "reauthorize")
    assert app.requests["refresh_token"] == 1
    mailbox.refresh_from_db()
    assert (mailbox.incoming_status, mailbox.incoming_enabled) == (SyncStatus.FAILURE, False)
    alerts = MailboxAlert.objects.filter(mailbox=mailbox, code="reauthorize", resolved_on__isnull=True)
    assert [(a.level, a.count) for a in alerts] == [("error", 1)]
    assert "choose Connect" in alerts[0].message
    page = admin.get(f"/mailboxes/{mailbox.pk}/").content.decode()
    assert "Must be connected again" in page
    assert "revoked" in page.split('id="oauth-error"', 1)[1].split("</span>", 1)[0]

    callback(admin, connect(admin, mailbox))

    assert not MailboxAlert.objects.filter(mailbox=mailbox, code="reauthorize", resolved_on__isnull=True)
    grant = OAuthGrant.objects.get(mailbox=mailbox)
    assert not grant.needs_reauthorization
    assert grant.last_error == ""
    assert oauth_tokens.access_token(mailbox, mailbox.profile) == grant.access_token.reveal()


def test_after_a_revoked_grant_test_and_enable_points_at_connect(
    stack: Stack, oauth_issuer: OAuthIssuer, app: IssuerClient, admin: Client
) -> None:
    profile = oauth_profile(stack, oauth_issuer, app)
    mailbox = connected_mailbox(stack, admin, profile)
    oauth_issuer.revoke(mailbox.email_address)
    expire(mailbox)

    (test,) = checks.queue_test_and_enable(mailbox_ids=[mailbox.pk], requested_by=None)
    report = checks.run_queued_test(test_id=test.pk)
    progress = admin.get(f"/mailboxes/progress/?test={test.pk}").content.decode()

    assert report is not None
    assert not report.passed
    assert "Connect the account" in progress
    assert f"/mailboxes/{mailbox.pk}/#oauth" in progress
    # The profile has no account of its own to test: each mailbox connects its own.
    results = checks.profile_test_connection(profile=profile)
    assert {(r.outcome, r.code) for r in results} == {("skipped", "credentials_per_mailbox")}


def test_a_token_the_server_refuses_before_its_expiry_is_replaced_at_the_next_sign_in(
    stack: Stack, oauth_issuer: OAuthIssuer, app: IssuerClient, admin: Client
) -> None:
    mailbox = connected_mailbox(stack, admin, oauth_profile(stack, oauth_issuer, app))
    oauth_issuer.expire_access_tokens(mailbox.email_address)  # ended early: the mailbox still trusts it

    refused = sync_incoming(mailbox=mailbox)
    Mailbox.objects.filter(pk=mailbox.pk).update(incoming_enabled=True)  # test & enable, say
    mailbox.refresh_from_db()
    again = sync_incoming(mailbox=mailbox)

    assert (refused.outcome, refused.error_code) == ("failed", "token_refused")
    assert again.outcome == "success", again.error_text
    assert app.requests["refresh_token"] == 1


@pytest.mark.django_db(transaction=True)
def test_two_workers_refreshing_one_mailbox_make_one_token_request(
    stack: Stack, oauth_issuer: OAuthIssuer, app: IssuerClient, admin: Client
) -> None:
    mailbox = connected_mailbox(stack, admin, oauth_profile(stack, oauth_issuer, app))
    expire(mailbox)
    start = threading.Barrier(2)
    tokens: list[str] = []

    def worker() -> None:
        try:
            start.wait(timeout=10)
            tokens.append(oauth_tokens.access_token(mailbox, mailbox.profile))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(tokens) == 2
    assert tokens[0] == tokens[1]
    assert app.requests["refresh_token"] == 1
    assert oauth_issuer.introspect(tokens[0])["active"]
