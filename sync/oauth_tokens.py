"""OAuth 2.0 sign-in for IMAP, POP3 and SMTP mailboxes: which access token a sign-in
uses, refreshing it, and connecting a mailbox's account.

- Client credentials (an Entra ID app, Exchange Online): an app token from msal's
  per-process cache (sync/connectors/oauth_grants.py), for the mailbox's address.
- Authorization code (each mailbox's account, "Connect" on its page): the access
  token kept on the mailbox's ``OAuthGrant`` while it has more than
  ``REFRESH_MARGIN`` to live, else a refresh. Refreshes of one mailbox are
  serialized by the grant row's lock (``SELECT … FOR UPDATE``): the second worker
  waits, then finds the token the first one bought, so one token request is made
  and a rotated refresh token is never overwritten by an older one. The new
  refresh token is saved in the same transaction that reads the old one. A token
  the mail server refused before its expiry (the mailbox's last error is
  ``token_refused``) is not offered again: the next sign-in refreshes.
- A refused refresh token (``invalid_grant``) marks the grant: the run fails with
  the permanent ``reauthorize`` error (the engine disables the direction and
  raises its alert, once: a marked grant asks the provider nothing more), until
  someone connects the mailbox again, which resolves those alerts.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.db import transaction

from mailboxes.models import SYNC_DIRECTIONS, Mailbox, OAuthGrant
from profiles.models import CredentialsSource, EmailServerProfile
from sync import alerts, clock
from sync.connectors import oauth_grants, sasl
from sync.connectors.base import OAuthApp, ServerSettings
from sync.errors import PermanentError, SyncError

# A token with less than this to live is refreshed before a sign-in: a run that
# signs in again later (an SMTP reconnect) still holds a valid one.
REFRESH_MARGIN = timedelta(minutes=5)
REAUTHORIZE = oauth_grants.REAUTHORIZE


class SaslSignIn(NamedTuple):
    username: str
    access_token: str


def sasl_sign_in(mailbox: Mailbox, profile: EmailServerProfile) -> SaslSignIn:
    """Who signs in and with which access token, for a profile that signs in with OAuth."""
    if profile.credentials_source == CredentialsSource.OAUTH_CLIENT_CREDENTIALS:
        return SaslSignIn(mailbox.email_address, _app_token(mailbox, profile))
    return SaslSignIn(mailbox.username or mailbox.email_address, access_token(mailbox, profile))


def access_token(mailbox: Mailbox, profile: EmailServerProfile) -> str:
    """The mailbox's access token, refreshed (once, whoever else asks) when it is about to expire."""
    grant = OAuthGrant.objects.filter(mailbox_id=mailbox.pk).first()
    _check_usable(grant, mailbox)
    assert grant is not None  # noqa: S101 - _check_usable raised otherwise
    if _fresh(grant, mailbox):
        return grant.access_token.reveal()
    return _refreshed(mailbox, profile)


def _refreshed(mailbox: Mailbox, profile: EmailServerProfile) -> str:
    failure: SyncError
    with transaction.atomic():
        grant = OAuthGrant.objects.select_for_update().get(mailbox_id=mailbox.pk)
        _check_usable(grant, mailbox)
        if _fresh(grant, mailbox):
            return grant.access_token.reveal()  # refreshed by whoever held the lock before
        try:
            tokens = oauth_grants.refresh(client_of(profile), grant.refresh_token.reveal())
        except SyncError as error:
            failure = error
            _note_failure(grant, error)
        else:
            _store(grant, tokens)
            return tokens.access_token
    raise failure


def _check_usable(grant: OAuthGrant | None, mailbox: Mailbox) -> None:
    if grant is None or not grant.refresh_token:
        raise PermanentError(
            f"The mailbox {mailbox.email_address} is not connected to its account yet: open its page "
            "and choose Connect to sign in at the provider.",
            code="oauth_not_connected",
        )
    if grant.needs_reauthorization:
        raise PermanentError(
            f"The mailbox {mailbox.email_address} must be connected again ({grant.last_error}). Open its "
            "page and choose Connect.",
            code=REAUTHORIZE,
        )


def _fresh(grant: OAuthGrant, mailbox: Mailbox) -> bool:
    expires = grant.access_token_expires_on
    alive = bool(grant.access_token) and expires is not None and expires - REFRESH_MARGIN > clock.now()
    return alive and not _refused_since_refresh(grant, mailbox)


def _refused_since_refresh(grant: OAuthGrant, mailbox: Mailbox) -> bool:
    """The mail server refused this access token before its expiry (the provider ended it
    early): the next sign-in buys a new one rather than offer it again until it expires."""
    refused_on = mailbox.last_sync_error_on
    if mailbox.last_sync_error_code != sasl.TOKEN_REFUSED or refused_on is None:
        return False
    return grant.refreshed_on is None or grant.refreshed_on <= refused_on


def _store(grant: OAuthGrant, tokens: oauth_grants.Tokens) -> None:
    now = clock.now()
    grant.access_token = tokens.access_token  # the field wraps it in a Secret
    grant.access_token_expires_on = now + timedelta(seconds=tokens.expires_in)
    if tokens.refresh_token:
        grant.refresh_token = tokens.refresh_token  # rotated: the old one is dead
    if tokens.scope:
        grant.scopes = tokens.scope
    grant.refreshed_on, grant.last_error, grant.last_error_on = now, "", None
    grant.save()


def _note_failure(grant: OAuthGrant, error: SyncError) -> None:
    grant.last_error, grant.last_error_on = error.message, clock.now()
    grant.needs_reauthorization = error.code == REAUTHORIZE
    grant.save(update_fields=["last_error", "last_error_on", "needs_reauthorization", "modified_on"])


def _app_token(mailbox: Mailbox, profile: EmailServerProfile) -> str:
    at = ServerSettings(
        host="",
        port=443,
        timeout=float(profile.connection_timeout_seconds),
        ca_file=settings.SYNC_CA_FILE,
        mailbox=mailbox.email_address,
        oauth=app_of(profile),
    )
    return oauth_grants.app_token(at, profile.oauth_endpoints().scopes)


def app_of(profile: EmailServerProfile) -> OAuthApp:
    """The Entra ID app the profile signs in as (client credentials: Graph, EWS, IMAP, POP3, SMTP)."""
    if profile.app_registration_violations():
        raise PermanentError(
            f"The profile {profile} has no complete app registration: enter the tenant id, client id and "
            "client secret or certificate of the app registered in Microsoft Entra ID on the profile.",
            code="credentials_missing",
        )
    return OAuthApp(
        tenant_id=profile.oauth_tenant_id,
        client_id=profile.oauth_client_id,
        client_secret=profile.oauth_client_secret.reveal(),
        certificate_pem=profile.oauth_certificate.reveal(),
        authority=profile.oauth_authority,
    )


def client_of(profile: EmailServerProfile) -> oauth_grants.OAuthClient:
    """The app the profile's mailboxes connect through (authorization code)."""
    violations = profile.oauth_client_violations()
    if violations:
        raise PermanentError(
            f"The profile {profile} lacks OAuth settings: "
            + "; ".join(f"{field}: {message}" for field, message in violations),
            code="credentials_missing",
        )
    return oauth_grants.OAuthClient(
        token_url=profile.oauth_endpoints().token_url,
        client_id=profile.oauth_client_id,
        client_secret=profile.oauth_client_secret.reveal(),
        ca_file=settings.SYNC_CA_FILE,
        timeout=float(profile.connection_timeout_seconds),
    )


# -- connecting a mailbox (the Connect button and the provider's callback) -----------


def connect_start(mailbox: Mailbox, *, redirect_uri: str) -> oauth_grants.AuthorizationRequest:
    """Where to send the browser to sign the mailbox's account in; the caller keeps
    ``state`` and ``code_verifier`` for the callback (in the session)."""
    profile = _connecting_profile(mailbox)
    endpoints = profile.oauth_endpoints()
    return oauth_grants.authorization_request(
        endpoints.authorize_url,
        client_id=profile.oauth_client_id,
        redirect_uri=redirect_uri,
        scopes=endpoints.scopes,
        login_hint=mailbox.username or mailbox.email_address,
        extra=endpoints.extra_authorize_params,
    )


def connect_finish(
    mailbox: Mailbox, *, code: str, redirect_uri: str, code_verifier: str, by: Any
) -> OAuthGrant:
    """Redeem the callback's code and keep the tokens: the mailbox signs in with them from
    now on, and its reauthorize alerts are resolved."""
    profile = _connecting_profile(mailbox)
    tokens = oauth_grants.redeem_code(
        client_of(profile), code=code, redirect_uri=redirect_uri, code_verifier=code_verifier
    )
    now = clock.now()
    with transaction.atomic():
        grant, _ = OAuthGrant.objects.select_for_update().get_or_create(mailbox=mailbox)
        _store(grant, tokens)
        grant.connected_on, grant.connected_by, grant.needs_reauthorization = now, by, False
        grant.save(update_fields=["connected_on", "connected_by", "needs_reauthorization", "modified_on"])
        for kind in SYNC_DIRECTIONS:
            alerts.resolve_alerts(mailbox=mailbox, category=kind, code=REAUTHORIZE, by=by)
    return grant


def _connecting_profile(mailbox: Mailbox) -> EmailServerProfile:
    profile = mailbox.profile
    if profile is None or not profile.mailboxes_connect:
        raise PermanentError(
            "This mailbox's profile does not sign mailboxes in with their own accounts (OAuth "
            "authorization code): there is nothing to connect.",
            code="not_supported",
        )
    return profile
