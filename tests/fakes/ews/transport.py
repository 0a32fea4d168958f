"""HTTP for the EWS test server: TLS, keep-alive connections (NTLM signs in a connection), sign-in
as IIS answers it, and the routes: EWS, and the Entra ID tenant's token and discovery documents."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from tests.fakes.ews import auth, soap
from tests.fakes.graph import entra

if TYPE_CHECKING:
    from tests.fakes.ews.server import EwsServer

EWS_PATH = "/EWS/Exchange.asmx"
MAX_BODY = 64 * 1024 * 1024


class HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], ews: EwsServer) -> None:
        self.ews = ews
        super().__init__(address, Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # TLS is set up in the connection's own thread, so a slow handshake holds up nobody else.
        try:
            connection = self.ews._tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        super().finish_request(connection, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: NTLM signs in a connection
    server: HttpServer
    ntlm: auth.NtlmExchange | None = None
    signed_in: str = ""  # the NTLM user of this connection, once authenticated

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log is ews.requests

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        if length > MAX_BODY:
            self._send(413, b"", "text/plain")
            return
        body = self.rfile.read(length)
        if len(body) < length:  # the connection broke part way through the body: never acted on
            self.close_connection = True
            return
        path = urllib.parse.urlsplit(self.path).path
        ews = self.server.ews
        if path.lower() == EWS_PATH.lower():
            self._ews(ews, body)
        elif path.endswith("/oauth2/v2.0/token"):
            form = dict(urllib.parse.parse_qsl(body.decode()))
            try:
                self._json(200, ews.tenant.token(path.split("/")[1], form))
            except entra.EntraError as error:
                self._json(error.status, error.body(ews.oauth_authority))
        else:
            self._send(404, b"", "text/html")

    def do_GET(self) -> None:
        """Entra ID's discovery documents, which msal reads before asking for a token."""
        split = urllib.parse.urlsplit(self.path)
        tenant = self.server.ews.tenant
        try:
            if split.path.endswith("/v2.0/.well-known/openid-configuration"):
                self._json(200, tenant.openid_configuration(split.path.split("/")[1]))
            elif split.path == "/common/discovery/instance":
                query = dict(urllib.parse.parse_qsl(split.query))
                self._json(200, tenant.instance_discovery(query.get("authorization_endpoint", "")))
            else:
                self._send(404, b"", "text/html")
        except entra.EntraError as error:
            self._json(error.status, error.body(self.server.ews.oauth_authority))

    def _json(self, status: int, answer: dict[str, object]) -> None:
        self._send(status, json.dumps(answer).encode(), "application/json; charset=utf-8")

    def _ews(self, ews: EwsServer, body: bytes) -> None:
        signed = self._authenticate(ews)
        if signed is None:
            return
        principal, scheme, app = signed
        try:
            answer = ews.answer(body, principal, scheme, app)
        except soap.Refusal as refusal:
            self._send(refusal.status, refusal.body, "text/xml; charset=utf-8")
            return
        self._send(200, answer, "text/xml; charset=utf-8")

    def _authenticate(self, ews: EwsServer) -> tuple[str, str, entra.App | None] | None:
        """Who signed in (address, scheme, OAuth app); None once a 401 or a challenge went out."""
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if not header and self.signed_in:
            return self.signed_in, "ntlm", None
        if scheme == "basic":
            address = ews.credentials.basic(value.strip())
            if address:
                return address, "basic", None
        elif scheme == "bearer":
            app = ews.bearer(value.strip())
            if app is not None:
                return f"app:{app.client_id}", "oauth", app
            self._unauthorized(['Bearer error="invalid_token"'])
            return None
        elif scheme in {"ntlm", "negotiate"}:
            return self._ntlm(ews, scheme, value.strip())
        self._unauthorized()
        return None

    def _ntlm(self, ews: EwsServer, scheme: str, value: str) -> tuple[str, str, None] | None:
        try:
            token = base64.b64decode(value)
            if self.ntlm is None or self.ntlm.complete:
                self.ntlm = auth.NtlmExchange(ews.certificate_der)
            challenge = self.ntlm.step(token)
        except (auth.SpnegoError, ValueError):
            self.ntlm = None
            self._unauthorized()
            return None
        if not self.ntlm.complete:
            text = base64.b64encode(challenge or b"").decode()
            self._send(401, b"", "text/html", [("WWW-Authenticate", f"{scheme.upper()} {text}")])
            return None
        address = ews.credentials.address_of(self.ntlm.principal)
        if address is None:
            self._unauthorized()
            return None
        self.signed_in = address
        return address, "ntlm", None

    def _unauthorized(self, challenges: list[str] | None = None) -> None:
        # IIS's page for a 401.1, with every scheme the site offers.
        title = b"401 - Unauthorized: Access is denied due to invalid credentials."
        page = b"<html><head><title>" + title + b"</title></head></html>"
        headers = [("WWW-Authenticate", c) for c in (challenges or auth.CHALLENGES)]
        self._send(401, page, "text/html", headers)

    def _send(
        self, status: int, body: bytes, content_type: str, headers: list[tuple[str, str]] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers or []:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
