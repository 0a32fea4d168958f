"""OAuth 2.0 for IMAP, POP3 and SMTP sign-in: the authorization request (with PKCE
and ``state``), the token endpoint's ``authorization_code`` and ``refresh_token``
grants (RFC 6749, client secret in the form), and app tokens (client credentials,
Exchange Online's IMAP / POP / SMTP) through msal as for Graph (graph_auth).

Plain settings in, tokens out, every failure one of sync/errors.py's classes; no
Django. Keeping tokens, serializing refreshes per mailbox and alerting are the
engine's (sync/oauth_tokens.py).

A refused grant (``invalid_grant``: the refresh token was revoked, expired, or its
user changed their password) is a PermanentError with code ``reauthorize``: only
a person signing in at the provider again fixes it.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from sync.connectors import graph_auth, network
from sync.connectors.base import ServerSettings, Tls
from sync.connectors.graph_errors import network_error
from sync.errors import PermanentError, SyncError, TransientError

REAUTHORIZE = "reauthorize"
PROVIDER = "The OAuth provider"


@dataclass(frozen=True, repr=False)
class OAuthClient:
    """The app a profile's mailboxes connect through, at one token endpoint."""

    token_url: str
    client_id: str
    client_secret: str = field(default="", repr=False)
    ca_file: str | None = None
    timeout: float = 30.0

    def __repr__(self) -> str:
        return f"OAuthClient(token_url={self.token_url!r}, client_id={self.client_id!r})"


@dataclass(frozen=True, repr=False)
class Tokens:
    """What the token endpoint answered. ``refresh_token`` is "" when the provider kept the
    one it was given (Google does not rotate; Microsoft and the test issuer do)."""

    access_token: str
    expires_in: int
    refresh_token: str = ""
    scope: str = ""

    def __repr__(self) -> str:
        return f"Tokens(expires_in={self.expires_in}, rotated={bool(self.refresh_token)})"


@dataclass(frozen=True)
class AuthorizationRequest:
    """Where to send the browser, and what the callback must match and send back."""

    url: str
    state: str
    code_verifier: str


def authorization_request(
    authorize_url: str,
    *,
    client_id: str,
    redirect_uri: str,
    scopes: str,
    login_hint: str = "",
    extra: tuple[tuple[str, str], ...] = (),
) -> AuthorizationRequest:
    """A fresh ``state`` (CSRF: the callback must bring it back) and PKCE pair (RFC 7636, S256)."""
    state, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scopes,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **({"login_hint": login_hint} if login_hint else {}),
        **dict(extra),
    }
    joiner = "&" if urlsplit(authorize_url).query else "?"
    return AuthorizationRequest(f"{authorize_url}{joiner}{urlencode(params)}", state, verifier)


def redeem_code(client: OAuthClient, *, code: str, redirect_uri: str, code_verifier: str) -> Tokens:
    """The authorization code grant: the callback's code for the mailbox's first tokens."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": code_verifier,
    }
    tokens = _post(client, form)
    if not tokens.refresh_token:
        raise PermanentError(
            f"{PROVIDER} at {client.token_url} signed the account in but gave no refresh token, so "
            "serversync could not sign in again later. Add the offline access scope to the profile's "
            "scopes (Microsoft: offline_access; Google asks for it itself) and connect again.",
            code="refresh_token_missing",
        )
    return tokens


def refresh(client: OAuthClient, refresh_token: str) -> Tokens:
    """The refresh token grant; the answer may carry a new refresh token, which replaces the old."""
    return _post(client, {"grant_type": "refresh_token", "refresh_token": refresh_token})


def app_token(settings: ServerSettings, scopes: str) -> str:
    """Client credentials: an app token for ``scopes`` (Exchange Online:
    https://outlook.office365.com/.default), from msal's cache while it is fresh."""
    return graph_auth.access_token(settings, scopes.split())


def _post(client: OAuthClient, form: dict[str, str]) -> Tokens:
    at = _endpoint(client)
    body = {**form, "client_id": client.client_id}
    if client.client_secret:
        body["client_secret"] = client.client_secret
    try:
        with httpx.Client(
            timeout=client.timeout, verify=network.verifying_context(at), follow_redirects=False
        ) as http:
            response = http.post(client.token_url, data=body, headers={"Accept": "application/json"})
    except httpx.HTTPError as error:
        raise network_error(error, at, client.token_url, service=PROVIDER) from error
    answer = _json(response)
    if response.status_code == 200 and isinstance(answer.get("access_token"), str):
        return Tokens(
            access_token=answer["access_token"],
            expires_in=_int(answer.get("expires_in"), default=3600),
            refresh_token=str(answer.get("refresh_token") or ""),
            scope=str(answer.get("scope") or ""),
        )
    raise _refusal(client, response.status_code, answer)


def _refusal(client: OAuthClient, status: int, answer: dict[str, Any]) -> SyncError:
    error = str(answer.get("error") or "")
    said = str(answer.get("error_description") or error or f"HTTP {status}")
    if status >= 500 or status == 429 or not error:
        return TransientError(
            f"{PROVIDER} at {client.token_url} did not answer with a token ({said}). serversync tries "
            "again later.",
            code="server_error",
        )
    if error == "invalid_grant":
        return PermanentError(
            f"{PROVIDER} no longer accepts this mailbox's sign-in ({said}): it was revoked, it expired, "
            "or the account's password changed. Open the mailbox's page and choose Connect to sign in again.",
            code=REAUTHORIZE,
        )
    if error in ("invalid_client", "unauthorized_client"):
        return PermanentError(
            f"{PROVIDER} at {client.token_url} does not accept the app {client.client_id} ({said}). Correct "
            "the client ID and secret in the email server profile.",
            code="authentication_failed",
        )
    return PermanentError(
        f"{PROVIDER} at {client.token_url} refused the token request of the app {client.client_id} "
        f"({said}). Check the profile's OAuth settings (scopes, endpoints).",
        code="token_request_refused",
    )


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        answer = response.json()
    except ValueError:
        return {}  # a proxy's error page: _refusal calls it a server error
    return answer if isinstance(answer, dict) else {}


def _int(value: object, *, default: int) -> int:
    try:
        return int(str(value))
    except ValueError:
        return default


def _endpoint(client: OAuthClient) -> ServerSettings:
    """Settings naming the token endpoint, for the TLS checks and network messages."""
    parts = urlsplit(client.token_url)
    return ServerSettings(
        host=parts.hostname or "",
        port=parts.port or 443,
        tls=Tls.IMPLICIT,
        timeout=client.timeout,
        ca_file=client.ca_file,
    )
