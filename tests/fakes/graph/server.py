"""The Microsoft Graph test server: HTTPS (a trustme CA) on a free loopback port,
HTTP/1.1, a thread per connection; Entra ID's token endpoint beside Graph v1.0.

Every JSON body it answers with and every JSON body it receives is checked
against Microsoft's Graph v1.0 metadata; a mismatch lands in ``violations``
(the fixtures fail the test that caused it). A request body that does not
validate is also answered 400, as Graph would refuse it.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import ssl
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import jwt
import trustme

from tests.fakes.graph import calls, graph_api, mime, sending, subscriptions
from tests.fakes.graph.delta import DeltaState
from tests.fakes.graph.entra import App, EntraError, Tenant, new_app
from tests.fakes.graph.http import JSON, GraphError, HttpsServer, Reply, Request, new_request_id
from tests.fakes.graph.item_delta import ItemDeltaState
from tests.fakes.graph.mailboxes import Mailbox, received_header

# Outlook's limit of concurrent requests per app and mailbox ("Outlook service limits").
MAILBOX_CONCURRENCY = 4
FUNCTION_NAMES = {
    "microsoft.graph.delta()": "delta",
    "microsoft.graph.move": "move",
    "microsoft.graph.sendMail": "sendMail",
}


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    mailbox: str  # the user addressed ("" for the token endpoint)
    status: int


@dataclass(frozen=True)
class Outbound:
    """A message Exchange Online relayed to the Internet (a recipient not of this tenant)."""

    sender: str
    recipients: tuple[str, ...]
    raw: bytes


class GraphServer:
    """Started at once; ``stop()`` ends it. Usable outside pytest too (``make demo``)."""

    def __init__(self, port: int = 0) -> None:
        self._ca = trustme.CA()
        self._directory = tempfile.TemporaryDirectory(prefix="graph-test-server-")
        self.ca_file = str(Path(self._directory.name) / "ca.pem")
        self._ca.cert_pem.write_to_path(self.ca_file)
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ca.issue_cert("127.0.0.1", "localhost").configure_cert(tls)
        self._http = HttpsServer(("127.0.0.1", port), tls, self.handle)
        self.port = self._http.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self.authority = self.url
        self.tenant = Tenant(self.authority, self.url)
        self.tenant_id = self.tenant.tenant_id
        self.lock = threading.RLock()
        self.mailboxes: dict[str, Mailbox] = {}
        self.outbound: list[Outbound] = []
        # Change notifications (/v1.0/subscriptions): tests/fakes/graph/subscriptions.py.
        self.subscriptions = subscriptions.Subscriptions(self)
        self.requests: list[LoggedRequest] = []
        self.violations: list[str] = []
        self.delta_tokens: dict[str, DeltaState] = {}
        self.item_delta_tokens: dict[str, ItemDeltaState] = {}
        self.peak_concurrency: Counter[str] = Counter()
        self._active: Counter[str] = Counter()
        self._throttled: list[tuple[int, int]] = []  # (status, retry_after) for the next requests
        # Seconds each admitted Graph request takes (to make concurrent requests overlap).
        self.latency = 0.0
        self._thread = threading.Thread(
            target=self._http.serve_forever, name="graph-test-server", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._directory.cleanup()

    # -- set-up and inspection (what tests call)

    @property
    def token_lifetime(self) -> int:
        return self.tenant.token_lifetime

    @token_lifetime.setter
    def token_lifetime(self, seconds: int) -> None:
        self.tenant.token_lifetime = seconds

    def register_app(
        self,
        client_id: str | None = None,
        *,
        secret: bool | str = True,
        certificate: bool = False,
        permissions: Iterable[str] = ("Mail.ReadWrite", "Mail.Send"),
        consented: bool = True,
        allowed_mailboxes: Iterable[str] | None = None,
    ) -> App:
        app = new_app(
            client_id,
            secret=secret,
            certificate=certificate,
            permissions=permissions,
            consented=consented,
            allowed_mailboxes=allowed_mailboxes,
        )
        return self.tenant.register(app)

    def also_reached_at(self, url: str) -> None:
        """A proxy at ``url`` forwards to this server: tokens asked for with its URL as the
        resource are this server's (as graph.microsoft.com has more than one name)."""
        self.tenant.aliases.add(url.rstrip("/"))

    def add_user(self, address: str, *, licensed: bool = True) -> Mailbox:
        with self.lock:
            mailbox = Mailbox(address, licensed=licensed, lock=self.lock)
            self.mailboxes[mailbox.address] = mailbox
            return mailbox

    def mailbox(self, address: str) -> Mailbox:
        return self.mailboxes[address.lower()]

    def deliver(self, address: str, raw: bytes, folder: str = "Inbox") -> str:
        """Put a message in a folder as Exchange's delivery would (a Received: field on top); its id."""
        with self.lock:
            box = self.mailbox(address)
            folder_id = box.by_path(folder).id
            message_id = box.add(folder_id, received_header(box.address) + raw).id
        self.subscriptions.message_created(box, folder_id, message_id)
        return message_id

    def create_folder(self, address: str, path: str) -> str:
        """A folder by path ("Inbox/Projects": a child of the Inbox; its parents must exist); its id."""
        parent, _, name = path.strip("/").rpartition("/")
        with self.lock:
            box = self.mailbox(address)
            return box.create_folder(box.by_path(parent).id if parent else box.root.id, name).id

    def delete_folder(self, address: str, path: str) -> None:
        with self.lock:
            box = self.mailbox(address)
            box.delete_folder(box.by_path(path).id)

    def messages(self, address: str, folder: str = "Inbox") -> list[bytes]:
        """The raw messages in a folder, oldest first."""
        with self.lock:
            box = self.mailbox(address)
            return [m.raw for m in box.in_folder(box.by_path(folder).id)]

    def sent_items(self, address: str) -> list[bytes]:
        return self.messages(address, "Sent Items")

    def throttle(self, count: int, *, retry_after: int = 1, status: int = 429) -> None:
        """Answer the next ``count`` Graph requests with ``status`` (429 or 503) and ``Retry-After``."""
        with self.lock:
            self._throttled += [(status, retry_after)] * count

    def expire_delta_tokens(self) -> None:
        """Forget every delta and skip token, as Exchange does when its sync state cache evicts them."""
        with self.lock:
            self.delta_tokens.clear()
            self.item_delta_tokens.clear()

    def expire_old_delta_tokens(self) -> None:
        """Forget every token but each folder's newest delta token (the one handed out last at
        a round's end), as a sync state cache that evicts what was not used for long."""
        with self.lock:
            newest = {
                (state.mailbox, state.folder_id): token
                for token, state in self.delta_tokens.items()  # in the order handed out
                if not state.pending
            }
            kept = set(newest.values())
            for token in [t for t in self.delta_tokens if t not in kept]:
                del self.delta_tokens[token]

    def take_violations(self) -> list[str]:
        """The violations recorded so far, forgotten (for tests that provoke them on purpose)."""
        with self.lock:
            taken, self.violations = self.violations, []
            return taken

    def record(self, violation: str) -> None:
        with self.lock:
            self.violations.append(violation)

    # -- sending (Exchange's transport)

    def submit(self, sender: Mailbox, raw: bytes, *, save_copy: bool) -> None:
        # Each recipient once, as Exchange's transport expands them.
        recipients = list({a.lower(): a for a in sending.check_recipients(raw)}.values())
        delivered = mime.without_bcc(raw)
        external = []
        for address in recipients:
            if address.lower() in self.mailboxes:
                self.deliver(address, delivered)
            else:
                external.append(address)
        if external:
            self.outbound.append(Outbound(sender.address, tuple(external), delivered))
        if save_copy:
            sender.add(sender.folder("sentitems").id, raw, is_read=True)

    # -- requests

    def checked_body(self, request: Request, check: Callable[[object], list[str]]) -> dict[str, Any]:
        """A JSON request body, checked against the metadata; 400 (and a violation) if it does not fit."""
        content_type = request.headers.get("content-type", "")
        try:
            body = request.json()
        except ValueError:
            body = None
        problems = ["the body is not JSON"] if not isinstance(body, dict) else check(body)
        if not content_type.lower().startswith(JSON):
            problems.append(f"Content-Type {content_type!r} where Graph expects application/json")
        if problems:
            for problem in problems:
                self.record(f"{request.method} {request.path} request: {problem}")
            raise GraphError(400, "RequestBodyRead", "; ".join(problems))
        assert isinstance(body, dict)
        return body

    def handle(self, request: Request) -> Reply:
        segments = request.segments
        request_id = new_request_id()
        client_request_id = request.headers.get("client-request-id", request_id)
        mailbox = segments[2].lower() if len(segments) > 2 and segments[:2] == ["v1.0", "users"] else ""
        try:
            if segments and segments[0] == "v1.0":
                reply = self._graph(request, [FUNCTION_NAMES.get(s, s) for s in segments[1:]])
            else:
                reply = self._entra(request, segments)
        except GraphError as error:
            reply = error.reply(request_id, client_request_id)
        except Exception as error:  # a fault of the test server itself: it fails the test, loudly
            self.record(f"{request.method} {request.path}: the test server failed: {error!r}")
            failure = GraphError(500, "InternalServerError", f"The Graph test server failed: {error!r}")
            reply = failure.reply(request_id, client_request_id)
        if segments and segments[0] == "v1.0":
            reply.headers.setdefault("request-id", request_id)
            reply.headers.setdefault("client-request-id", client_request_id)
        if reply.check is not None:
            for problem in reply.check(reply.document):
                self.record(f"{request.method} {request.path} answer: {problem}")
        with self.lock:
            self.requests.append(LoggedRequest(request.method, request.path, mailbox, reply.status))
        return reply

    def _graph(self, request: Request, segments: list[str]) -> Reply:
        user = segments[1] if len(segments) > 1 else ""
        with self._admitted(user.lower()):
            claims = self._authenticate(request)
            app = self.tenant.apps.get(str(claims["appid"]))
            if app is None:
                raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.")
            if segments[:1] == ["subscriptions"]:
                roles = claims.get("roles")
                return self.subscriptions.call(
                    request, app, roles if isinstance(roles, list) else [], segments[1:]
                )
            if segments[:1] == ["me"]:
                raise calls.bad_request("/me request is only valid with delegated authentication flow.")
            if segments[:1] != ["users"] or len(segments) < 2:
                raise calls.bad_request(
                    f"Resource not found for the segment '{segments[0] if segments else ''}'."
                )
            rest = graph_api.canonical(segments[2:])
            found = graph_api.route(request.method, rest)
            if found is None:
                raise calls.bad_request(f"Resource not found for the segment '{rest[-1] if rest else user}'.")
            roles = claims.get("roles")
            if not set(found.roles) & set(roles if isinstance(roles, list) else []):
                raise _access_denied(rest)
            box = self._find_user(user, rest)
            if rest and not app.may_reach(box.address):
                raise GraphError(
                    403,
                    "ErrorAccessDenied",
                    "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly "
                    "AccessPolicy settings.",
                )
            return graph_api.call(self, request, app, box, user, rest)

    @contextlib.contextmanager
    def _admitted(self, mailbox: str) -> Iterator[None]:
        """Throttling injected by the test, then Outlook's concurrency limit per mailbox."""
        with self.lock:
            throttled = self._throttled.pop(0) if self._throttled else None
            self._active[mailbox] += 1
            active = self._active[mailbox]
            self.peak_concurrency[mailbox] = max(self.peak_concurrency[mailbox], active)
        try:
            if throttled is not None:
                raise _throttled(*throttled)
            if mailbox and active > MAILBOX_CONCURRENCY:
                raise GraphError(
                    429,
                    "ApplicationThrottled",
                    "Application is over its MailboxConcurrency limit.",
                    {"Retry-After": "1"},
                )
            if self.latency:
                time.sleep(self.latency)
            yield
        finally:
            with self.lock:
                self._active[mailbox] -= 1

    def _authenticate(self, request: Request) -> dict[str, object]:
        challenge = {
            "WWW-Authenticate": (
                f'Bearer realm="", authorization_uri="{self.authority}/common/oauth2/authorize", '
                'client_id="00000003-0000-0000-c000-000000000000"'
            )
        }
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.", challenge)
        try:
            return self.tenant.read_token(token.strip())
        except jwt.InvalidTokenError as error:
            raise GraphError(
                401, "InvalidAuthenticationToken", graph_api.token_error(error), challenge
            ) from None

    def _find_user(self, user: str, rest: list[str]) -> Mailbox:
        with self.lock:
            box = self.mailboxes.get(user.lower()) or next(
                (b for b in self.mailboxes.values() if b.user_id == user.lower()), None
            )
        if box is None:
            if not rest:  # the directory's answer
                raise GraphError(
                    404,
                    "Request_ResourceNotFound",
                    f"Resource '{user}' does not exist or one of its queried reference-property objects are "
                    "not present.",
                )
            raise GraphError(404, "ErrorInvalidUser", f"The requested user '{user}' is invalid.")
        if rest and not box.licensed:
            raise GraphError(
                404,
                "MailboxNotEnabledForRESTAPI",
                "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
            )
        return box

    def _entra(self, request: Request, segments: list[str]) -> Reply:
        try:
            return self._entra_endpoint(request, segments)
        except EntraError as error:
            return Reply.of_json(
                error.status, error.body(self.authority), None, "application/json; charset=utf-8"
            )

    def _entra_endpoint(self, request: Request, segments: list[str]) -> Reply:
        tenant = segments[0] if segments else ""
        if request.method == "POST" and segments[1:] == ["oauth2", "v2.0", "token"]:
            form = dict(parse_qsl(request.body.decode(), keep_blank_values=True))
            document = self.tenant.token(tenant, form, _basic(request))
        elif request.method == "GET" and segments[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            document = self.tenant.openid_configuration(tenant)
        elif (
            request.method == "GET"
            and segments[1:] == ["discovery", "v2.0", "keys"]
            and self.tenant.knows(tenant)
        ):
            document = self.tenant.keys()
        elif request.method == "GET" and segments == ["common", "discovery", "instance"]:
            document = self.tenant.instance_discovery(request.query.get("authorization_endpoint", ""))
        else:
            return Reply.of_json(404, {"error": "not_found", "error_description": request.path}, None)
        return Reply.of_json(200, document, None, "application/json; charset=utf-8")


def _access_denied(rest: list[str]) -> GraphError:
    if not rest:  # the directory answers for itself
        return GraphError(
            403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
        )
    return GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")


def _throttled(status: int, retry_after: int) -> GraphError:
    headers = {"Retry-After": str(retry_after)}
    if status == 429:
        return GraphError(
            429, "TooManyRequests", "Too many requests. Please retry after the time in Retry-After.", headers
        )
    return GraphError(
        status,
        "serviceNotAvailable",
        "The service is temporarily unavailable. Please retry after the time in Retry-After.",
        headers,
    )


def _basic(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    client_id, _, secret = base64.b64decode(value).decode().partition(":")
    return unquote(client_id), unquote(secret)


def closed_port() -> socket.socket:
    """A loopback socket bound but not listening: connections to its port are refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock
