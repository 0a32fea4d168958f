"""A small OAuth 2.0 authorization server for the tests: what Microsoft Entra ID and
Google are to IMAP, POP3 and SMTP sign-in, on loopback.

One instance runs in a thread of the test worker process, over HTTPS (a
certificate from the CA it is given: pass Dovecot's, so that one CA file
verifies every test server) and, for Dovecot's ``oauth2`` passdb only, a plain
HTTP listener on loopback serving the introspection endpoint. Paths follow
Entra ID's (``/<tenant>/oauth2/v2.0/authorize`` and ``/token``, the OpenID
configuration msal reads at ``/<tenant>/v2.0/.well-known/openid-configuration``),
so a profile's "Microsoft" defaults point at it with the authority changed.

- ``/authorize`` signs a test user in at once (``login_hint``, else
  :attr:`OAuthIssuer.signed_in_user`), as a browser that has a session with the
  provider does, and redirects to ``redirect_uri`` with a code and the
  ``state`` it was given. PKCE (S256) is required; the redirect URI must be one
  the client registered.
- ``/token``: ``client_credentials`` (an app token that may sign in to the
  mailboxes granted to the app, as Exchange Online's ``Add-MailboxPermission``
  grants a service principal), ``authorization_code`` (the code once, its
  verifier checked against the challenge) and ``refresh_token`` (rotated on
  every use: the old one is dead; a revoked or unknown one is ``invalid_grant``).
  Client authentication: ``client_secret_post`` or ``client_secret_basic``.
- ``/introspect`` (RFC 7662, POST ``token=``): ``active``, ``username``,
  ``scope``, ``client_id``, ``exp``. Dovecot checks bearer tokens here.

Tests read what happened (:attr:`Client.requests`, by grant) and steer it
(:meth:`expire_access_tokens`, :meth:`revoke`, :attr:`access_token_seconds`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import trustme

HOST = "127.0.0.1"
TENANT = "serversync-test"


class TokenError(Exception):
    """An OAuth error answer (RFC 6749 5.2)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error, self.description, self.status = error, description, status


@dataclass
class Client:
    client_id: str
    secret: str
    redirect_uris: list[str] = field(default_factory=list)
    # Client credentials: the mailboxes an app token may sign in to.
    granted_mailboxes: set[str] = field(default_factory=set)
    # Token requests this client made, by grant type (a test counts its refreshes here).
    requests: Counter[str] = field(default_factory=Counter)


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str
    username: str
    scope: str


@dataclass
class _Grant:
    """A refresh token's chain: every rotation hands it on; revoking ends the chain."""

    client_id: str
    username: str
    scope: str
    revoked: bool = False


@dataclass
class _Access:
    client_id: str
    scope: str
    expires: float
    username: str = ""  # "" for an app token: see Client.granted_mailboxes
    revoked: bool = False


class OAuthIssuer:
    def __init__(self, *, ca: trustme.CA | None = None) -> None:
        self.ca = ca or trustme.CA()
        self.host = HOST
        self.signed_in_user = ""
        self.access_token_seconds = 3600
        self._lock = threading.Lock()
        self._clients: dict[str, Client] = {}
        self._codes: dict[str, _Code] = {}
        self._refresh: dict[str, _Grant] = {}
        self._access: dict[str, _Access] = {}
        self._servers: list[ThreadingHTTPServer] = []
        self.port = 0
        self.introspection_port = 0

    # -- life cycle --------------------------------------------------------------

    def start(self) -> OAuthIssuer:
        secure = ThreadingHTTPServer((self.host, 0), _handler(self))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("localhost", HOST).configure_cert(context)
        secure.socket = context.wrap_socket(secure.socket, server_side=True)
        plain = ThreadingHTTPServer((self.host, 0), _handler(self))
        self._servers = [secure, plain]
        self.port, self.introspection_port = secure.server_port, plain.server_port
        for server in self._servers:
            threading.Thread(target=server.serve_forever, name="oauth-issuer", daemon=True).start()
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers = []

    @property
    def authority(self) -> str:
        """What a profile names as its Entra ID authority (the tenant goes after it)."""
        return f"https://{self.host}:{self.port}"

    @property
    def authorize_url(self) -> str:
        return f"{self.authority}/{TENANT}/oauth2/v2.0/authorize"

    @property
    def token_url(self) -> str:
        return f"{self.authority}/{TENANT}/oauth2/v2.0/token"

    @property
    def introspection_url(self) -> str:
        return f"http://{self.host}:{self.introspection_port}/introspect"

    # -- set-up and faults ---------------------------------------------------------

    def register(self, *, redirect_uris: list[str] | None = None, granted: set[str] | None = None) -> Client:
        client = Client(
            client_id=f"client-{secrets.token_hex(4)}",
            secret=secrets.token_urlsafe(16),
            redirect_uris=list(redirect_uris or []),
            granted_mailboxes={m.lower() for m in granted or set()},
        )
        with self._lock:
            self._clients[client.client_id] = client
        return client

    def expire_access_tokens(self, username: str = "") -> None:
        """Every access token (of ``username``) has expired, as an hour later."""
        with self._lock:
            for access in self._access.values():
                if not username or access.username == username:
                    access.expires = 0

    def revoke(self, username: str) -> None:
        """The user revoked the app's access (or changed their password): every refresh
        and access token of theirs is dead."""
        with self._lock:
            for grant in self._refresh.values():
                if grant.username == username:
                    grant.revoked = True
            for access in self._access.values():
                if access.username == username:
                    access.revoked = True

    def issue_for(self, client: Client, username: str, scope: str = "mail") -> dict[str, Any]:
        """A token answer as the authorization code grant gives it (for tests that
        need a connected mailbox without the browser round trip)."""
        with self._lock:
            return self._user_tokens(client.client_id, username, scope)

    # -- the endpoints (called from the server threads) -------------------------------

    def authorize(self, query: dict[str, str]) -> str:
        """The Location to redirect the browser to."""
        client = self._clients.get(query.get("client_id", ""))
        redirect_uri = query.get("redirect_uri", "")
        if client is None or redirect_uri not in client.redirect_uris:
            raise TokenError("invalid_request", "unknown client or redirect_uri not registered")
        username = query.get("login_hint") or self.signed_in_user
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return _with(redirect_uri, error="invalid_request", state=query.get("state", ""))
        if query.get("response_type") != "code" or not username:
            return _with(redirect_uri, error="access_denied", state=query.get("state", ""))
        code = secrets.token_urlsafe(24)
        with self._lock:
            challenge, scope = query["code_challenge"], query.get("scope", "")
            self._codes[code] = _Code(client.client_id, redirect_uri, challenge, username.lower(), scope)
        return _with(redirect_uri, code=code, state=query.get("state", ""))

    def token(self, form: dict[str, str], basic: tuple[str, str] | None) -> dict[str, Any]:
        grant_type = form.get("grant_type", "")
        with self._lock:
            client = self._client(form, basic)
            client.requests[grant_type] += 1
            if grant_type == "client_credentials":
                return self._app_token(client, form.get("scope", ""))
            if grant_type == "authorization_code":
                return self._redeem(client, form)
            if grant_type == "refresh_token":
                return self._rotate(client, form.get("refresh_token", ""))
        raise TokenError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")

    def introspect(self, token: str) -> dict[str, Any]:
        with self._lock:
            access = self._access.get(token)
            if access is None or access.revoked or access.expires < time.time():
                return {"active": False}
            return {
                "active": True,
                "username": access.username,
                "scope": access.scope,
                "client_id": access.client_id,
                "exp": int(access.expires),
                "token_type": "Bearer",
            }

    def may_sign_in(self, token: str, username: str) -> bool:
        """Whether ``token`` signs ``username`` in: the user's own token, or an app's
        granted that mailbox (the SMTP relay asks this)."""
        answer = self.introspect(token)
        if not answer["active"]:
            return False
        if answer["username"]:
            return bool(answer["username"] == username.lower())
        client = self._clients.get(str(answer["client_id"]))
        return client is not None and username.lower() in client.granted_mailboxes

    # -- grants (under the lock) --------------------------------------------------------

    def _client(self, form: dict[str, str], basic: tuple[str, str] | None) -> Client:
        client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
        client = self._clients.get(client_id)
        if client is None or not secrets.compare_digest(client.secret, secret):
            raise TokenError("invalid_client", "client authentication failed", status=401)
        return client

    def _app_token(self, client: Client, scope: str) -> dict[str, Any]:
        token = secrets.token_urlsafe(32)
        self._access[token] = _Access(client.client_id, scope, time.time() + self.access_token_seconds)
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.access_token_seconds}

    def _redeem(self, client: Client, form: dict[str, str]) -> dict[str, Any]:
        code = self._codes.pop(form.get("code", ""), None)  # a code works once
        if code is None or code.client_id != client.client_id:
            raise TokenError("invalid_grant", "the authorization code is invalid or was used")
        if form.get("redirect_uri") != code.redirect_uri:
            raise TokenError("invalid_grant", "redirect_uri does not match the authorization request")
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if not verifier or challenge != code.challenge:
            raise TokenError("invalid_grant", "PKCE verification failed")
        return self._user_tokens(client.client_id, code.username, code.scope)

    def _rotate(self, client: Client, refresh_token: str) -> dict[str, Any]:
        grant = self._refresh.pop(refresh_token, None)  # rotation: the old one dies here
        if grant is None or grant.revoked or grant.client_id != client.client_id:
            raise TokenError("invalid_grant", "the refresh token is invalid, expired or revoked")
        return self._user_tokens(client.client_id, grant.username, grant.scope)

    def _user_tokens(self, client_id: str, username: str, scope: str) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self._access[access] = _Access(client_id, scope, time.time() + self.access_token_seconds, username)
        self._refresh[refresh] = _Grant(client_id, username, scope)
        return {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "expires_in": self.access_token_seconds,
            "scope": scope,
        }

    def openid_configuration(self, tenant: str) -> dict[str, Any]:
        base = f"{self.authority}/{tenant}"
        return {
            "issuer": f"{base}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "introspection_endpoint": self.introspection_url,
        }


def _with(url: str, **params: str) -> str:
    joiner = "&" if urlsplit(url).query else "?"
    return f"{url}{joiner}{urlencode(params)}"


def _handler(issuer: OAuthIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            parts = url.path.strip("/").split("/")
            try:
                if parts[1:] == ["oauth2", "v2.0", "authorize"]:
                    self.send_response(302)
                    self.send_header("Location", issuer.authorize(query))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
                    self._json(200, issuer.openid_configuration(parts[0]))
                else:
                    self._json(404, {"error": "not_found"})
            except TokenError as error:
                self._json(error.status, {"error": error.error, "error_description": error.description})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            parts = urlsplit(self.path).path.strip("/").split("/")
            try:
                if parts == ["introspect"]:
                    self._json(200, issuer.introspect(form.get("token", "")))
                elif parts[1:] == ["oauth2", "v2.0", "token"]:
                    self._json(200, issuer.token(form, self._basic()))
                else:
                    self._json(404, {"error": "not_found"})
            except TokenError as error:
                self._json(error.status, {"error": error.error, "error_description": error.description})

        def _basic(self) -> tuple[str, str] | None:
            header = self.headers.get("Authorization", "")
            if not header.startswith("Basic "):
                return None
            user, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            return user, secret

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
