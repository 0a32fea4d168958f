"""App-only sign-in to Microsoft Graph: msal's client credentials grant, with a
client secret or a certificate, and one token cache per app registration.

One ``ConfidentialClientApplication`` per registration (tenant, client id,
credential, authority) lives for the process: its token cache answers every
session of every mailbox the app serves until the token is about to expire,
so a poll costs no round trip to Entra ID. msal's cache is thread-safe; the
table of applications is guarded here.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime
from typing import Any

import httpx
import msal
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from msal.exceptions import MsalServiceError

from sync.connectors import network
from sync.connectors.base import OAuthApp, ServerSettings
from sync.connectors.graph_errors import (
    ENTRA,
    discovery_error,
    network_error,
    token_error,
)
from sync.errors import PermanentError, TransientError

_apps: dict[tuple[str, ...], msal.ConfidentialClientApplication] = {}
_apps_lock = threading.Lock()


def access_token(settings: ServerSettings, scopes: list[str] | None = None) -> str:
    """A token for ``scopes`` (by default ``settings.url``'s, Graph's root; IMAP, POP and SMTP
    name Exchange Online's, sync/connectors/oauth_grants.py), from the cache while it is fresh."""
    oauth = _oauth(settings)
    app = _application(oauth, settings)
    try:
        result = app.acquire_token_for_client(scopes=scopes or [f"{settings.url.rstrip('/')}/.default"])
    except httpx.HTTPError as error:
        raise network_error(error, settings, oauth.authority, service=ENTRA) from error
    except (MsalServiceError, ValueError) as error:
        # msal raises for a 5xx answer, and for an answer that is not JSON (a proxy's error page).
        raise TransientError(
            f"{ENTRA} at {oauth.authority} did not issue a token for the app {oauth.client_id} ({error}). "
            "serversync tries again later.",
            code="server_error",
        ) from error
    if not isinstance(result, dict) or "access_token" not in result:
        raise token_error(result if isinstance(result, dict) else {}, settings)
    return str(result["access_token"])


def _oauth(settings: ServerSettings) -> OAuthApp:
    if settings.oauth is None or not settings.oauth.tenant_id or not settings.oauth.client_id:
        raise PermanentError(
            f"The email server profile for {settings.mailbox} names no Entra ID app registration. Enter "
            "the tenant ID, client ID and a client secret or certificate in the profile.",
            code="credentials_missing",
        )
    return settings.oauth


def _application(oauth: OAuthApp, settings: ServerSettings) -> msal.ConfidentialClientApplication:
    credential = _credential(oauth, settings)
    secret_part = oauth.client_secret or oauth.certificate_pem
    key = (
        oauth.authority.rstrip("/"),
        oauth.tenant_id.lower(),
        oauth.client_id.lower(),
        # The credential is part of the key (a new secret is a new application), by digest only.
        hashlib.sha256(secret_part.encode()).hexdigest(),
        settings.ca_file or "",
    )
    with _apps_lock:
        app = _apps.get(key)
    if app is not None:
        return app
    authority = f"{oauth.authority.rstrip('/')}/{oauth.tenant_id}"
    try:
        # Built outside the lock: msal reads the tenant's OpenID configuration here.
        app = msal.ConfidentialClientApplication(
            oauth.client_id,
            client_credential=credential,
            authority=authority,
            # Never ask login.microsoftonline.com about another authority: the only host
            # told anything is the one the profile names.
            instance_discovery=False,
            http_client=_EntraHttp(settings),
        )
    except httpx.HTTPError as error:
        raise network_error(error, settings, oauth.authority, service=ENTRA) from error
    except ValueError as error:
        raise discovery_error(str(error), settings) from error
    with _apps_lock:
        return _apps.setdefault(key, app)


class _EntraHttp:
    """msal's HTTP client (its ``HttpClient``: ``post`` and ``get``) on httpx, with the TLS
    rules Graph's client has. msal's default, a requests session, trusts REQUESTS_CA_BUNDLE
    from the environment over the CA file it is given."""

    def __init__(self, settings: ServerSettings) -> None:
        self._client = httpx.Client(
            timeout=settings.timeout,
            verify=network.verifying_context(settings),
            headers={"User-Agent": "serversync"},
            follow_redirects=False,
        )

    def post(
        self,
        url: str,
        params: dict[str, str] | None = None,
        data: dict[str, str | bytes] | str | None = None,
        headers: dict[str, str] | None = None,
        **_: object,
    ) -> httpx.Response:
        if isinstance(data, dict):
            # msal signs its client assertion into bytes; a form field is text.
            data = {k: v.decode() if isinstance(v, bytes) else v for k, v in data.items()}
            return self._client.post(url, params=params, data=data, headers=headers)
        return self._client.post(url, params=params, content=data, headers=headers)

    def get(
        self,
        url: str,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        **_: object,
    ) -> httpx.Response:
        return self._client.get(url, params=params, headers=headers)

    def close(self) -> None:
        self._client.close()


def _credential(oauth: OAuthApp, settings: ServerSettings) -> str | dict[str, Any]:
    if oauth.certificate_pem:
        return certificate_credential(oauth.certificate_pem, settings)
    if oauth.client_secret:
        return oauth.client_secret
    raise PermanentError(
        f"The email server profile for {settings.mailbox} has neither a client secret nor a certificate "
        f"for the app {oauth.client_id}. Enter one of them in the profile.",
        code="credentials_missing",
    )


def certificate_credential(pem: str, settings: ServerSettings) -> dict[str, Any]:
    """msal's certificate credential from one PEM holding the private key and its certificate."""
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode())
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except ValueError as error:
        raise PermanentError(
            f"The certificate in the email server profile for {settings.mailbox} cannot be read ({error}). "
            "Upload a PEM file holding the unencrypted private key and its certificate.",
            code="certificate_invalid",
        ) from error
    expires = certificate.not_valid_after_utc
    if expires < datetime.now(UTC):
        raise PermanentError(
            f"The certificate of the app {settings.oauth.client_id if settings.oauth else ''} expired on "
            f"{expires:%Y-%m-%d}. Create a new certificate, upload its public part under App registrations "
            "> the app > Certificates & secrets in Entra ID, and put it in the email server profile.",
            code="credentials_expired",
        )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    # Without a "thumbprint" (SHA-1, which msal and Microsoft deprecate) msal takes the
    # certificate's SHA-256 thumbprint (x5t#S256) and signs with PS256, as Entra ID prefers.
    return {
        "private_key": key_pem,
        "public_certificate": certificate.public_bytes(serialization.Encoding.PEM).decode(),
    }
