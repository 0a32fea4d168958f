"""The EWS test server: SOAP over HTTPS at /EWS/Exchange.asmx, as Exchange Server 2019 answers it.

Every request's SOAP header elements and body operation are checked against Microsoft's schema
(xsd.py): a failing request gets Exchange's ErrorSchemaValidation fault; a failing response is
recorded in ``response_violations`` and fails the test (fixtures.py). Then: sign-in (auth.py),
busy injection, the mailbox (own, or impersonated with the ApplicationImpersonation right), and
the operation (operations.py), dispatched on the body's first child.
"""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
import threading
import traceback
import urllib.parse
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import trustme
from lxml import etree

from tests.fakes.ews import auth, operations, soap, xsd
from tests.fakes.ews.store import Mailbox, Store
from tests.fakes.ews.xsd import T
from tests.fakes.graph import entra

EWS_PATH = "/EWS/Exchange.asmx"
MAX_BODY = 64 * 1024 * 1024
# The application permission of "Office 365 Exchange Online" that EWS app-only access needs.
FULL_ACCESS = "full_access_as_app"


@dataclass
class Record:
    """One EWS request, for assertions: what was asked, for which mailbox, signed in as whom, and
    the answer's ResponseCode(s) (a fault's code when refused)."""

    operation: str
    mailbox: str
    user: str
    auth: str
    version: str = ""
    code: str = ""
    notes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Sent:
    """A message the server sent to an address it does not hold."""

    sender: str
    recipients: tuple[str, ...]
    raw: bytes


class Refusal(Exception):
    """An answer other than the operation's response: a SOAP fault or an HTTP error."""

    def __init__(self, status: int, body: bytes, code: str) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.code = code


class EwsServer:
    def __init__(self) -> None:
        self.store = Store()
        self.credentials = auth.Credentials()
        self.requests: list[Record] = []
        self.request_violations: list[str] = []
        self.response_violations: list[str] = []
        self.failures: list[str] = []  # the server's own crashes (tracebacks)
        self.outbound: list[Sent] = []
        self._busy: list[int] = []  # back-off milliseconds, one per request still to refuse
        self._lock = threading.Lock()
        folder = Path(tempfile.mkdtemp(prefix="ews-tls-"))
        ca = trustme.CA()
        self._certificate = ca.issue_cert("127.0.0.1", "localhost")
        ca.cert_pem.write_to_path(str(folder / "ca.pem"))
        self.ca_file = str(folder / "ca.pem")
        self.certificate_der = ssl.PEM_cert_to_DER_cert(self._certificate.cert_chain_pems[0].bytes().decode())
        self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._certificate.configure_cert(self._tls)
        self._http = _HttpServer(("127.0.0.1", 0), _Handler, self)
        self.host = "127.0.0.1"
        self.port = self._http.server_address[1]
        self.url = f"https://{self.host}:{self.port}{EWS_PATH}"
        # Hybrid modern authentication: an Entra ID tenant (the Graph test server's) issues the tokens,
        # their audience this server's own URL, as Exchange registers it.
        self.oauth_authority = f"https://{self.host}:{self.port}"
        self.tenant = entra.Tenant(self.oauth_authority, self.oauth_authority)
        self._thread = threading.Thread(target=self._http.serve_forever, name="ews-server", daemon=True)

    # Lifecycle ---------------------------------------------------------------------------------

    def start(self) -> EwsServer:
        xsd.schema()  # load once, before the first request
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    # Setting up (the fixtures' API) ------------------------------------------------------------

    def add_user(self, address: str, password: str) -> Mailbox:
        self.credentials.add_user(address, password)
        return self.store.mailbox(address) or self.store.add_mailbox(address)

    def grant_impersonation(self, service_account: str, mailboxes: list[str] | None = None) -> None:
        """The ApplicationImpersonation role for ``service_account``, scoped to ``mailboxes`` (None: all)."""
        account = self._mailbox(service_account)
        with self.store.lock:
            if mailboxes is None:
                account.impersonates = None
            elif account.impersonates is not None:
                account.impersonates.update(a.lower() for a in mailboxes)

    def add_oauth_app(self, mailboxes: list[str] | None = None, *, role: bool = True) -> entra.App:
        """An app registration in this server's Entra ID tenant with a client secret, granted
        Exchange's ``full_access_as_app`` (unless ``role`` is False), reaching ``mailboxes`` (None: all)."""
        permissions = [FULL_ACCESS] if role else []
        app = entra.new_app(
            None,
            secret=True,
            certificate=False,
            permissions=permissions,
            consented=True,
            allowed_mailboxes=mailboxes,
        )
        return self.tenant.register(app)

    def deliver(self, address: str, raw: bytes, folder: str = "Inbox") -> str:
        """Deliver ``raw`` as Exchange's transport would (a Received: header on top); the item id."""
        mailbox = self._mailbox(address)
        return operations.deliver(self.store, mailbox, raw, mailbox.folder_at(folder)).id

    def touch(self, address: str, message_id: str) -> None:
        """Change the message as a user in Outlook would (flag it, categorise it): a new ChangeKey,
        and an Update change for SyncFolderItems."""
        mailbox = self._mailbox(address)
        with self.store.lock:
            for folder in mailbox.folders.values():
                for item in folder.items.values():
                    if item.header("Message-ID") == message_id:
                        self.store.touch(item)
                        return
        raise KeyError(f"no message {message_id} in {address}")

    def create_folder(self, address: str, path: str) -> None:
        mailbox = self._mailbox(address)
        parent_path, _, name = path.rpartition("/")
        self.store.create_folder(mailbox, mailbox.folder_at(parent_path or "Inbox"), name)

    def delete_folder(self, address: str, path: str) -> None:
        mailbox = self._mailbox(address)
        self.store.delete_folder(mailbox, mailbox.folder_at(path))

    def messages(self, address: str, folder: str = "Inbox") -> list[bytes]:
        with self.store.lock:
            items = self._mailbox(address).folder_at(folder).items.values()
            return [item.mime for item in sorted(items, key=lambda i: i.created_seq)]

    def sent_items(self, address: str) -> list[bytes]:
        mailbox = self._mailbox(address)
        sent = mailbox.by_distinguished("sentitems")
        assert sent is not None
        with self.store.lock:
            return [item.mime for item in sorted(sent.items.values(), key=lambda i: i.created_seq)]

    def busy(self, count: int, back_off_ms: int) -> None:
        """Answer the next ``count`` EWS requests with ErrorServerBusy asking for ``back_off_ms``."""
        with self._lock:
            self._busy = [back_off_ms] * count

    def invalidate_sync_states(self) -> None:
        self.store.invalidate_sync_states()

    def take_request_violations(self) -> list[str]:
        """The request violations recorded so far, then forgotten (a test sent bad requests on purpose)."""
        return self._take(self.request_violations)

    def take_response_violations(self) -> list[str]:
        """The response violations recorded so far, then forgotten (a test broke the server on purpose)."""
        return self._take(self.response_violations)

    def _take(self, recorded: list[str]) -> list[str]:
        with self._lock:
            taken, recorded[:] = list(recorded), []
        return taken

    def submit(self, sender: str, recipients: list[str], raw: bytes) -> None:
        """Mail sent through EWS: into this server's own mailboxes, the rest to ``outbound``."""
        remote = []
        for recipient in recipients:
            mailbox = self.store.mailbox(recipient)
            if mailbox is None:
                remote.append(recipient)
            else:
                operations.deliver(self.store, mailbox, raw)
        if remote:
            with self._lock:
                self.outbound.append(Sent(sender, tuple(remote), raw))

    def _mailbox(self, address: str) -> Mailbox:
        mailbox = self.store.mailbox(address)
        if mailbox is None:
            raise KeyError(f"no mailbox {address} on the EWS test server")
        return mailbox

    # Answering -----------------------------------------------------------------------------------

    def answer(self, body: bytes, principal: str, scheme: str, app: entra.App | None) -> bytes:
        """The SOAP answer to one authenticated request (Refusal for faults)."""
        envelope = self._parse(body)
        header = envelope.find(f"{{{soap.S}}}Header")
        body_element = envelope.find(f"{{{soap.S}}}Body")
        operation = body_element[0] if body_element is not None and len(body_element) else None
        if operation is None:
            raise self._schema_fault("The request has no operation in its SOAP body.", 1)
        headers = list(header) if header is not None else []
        asked = Record(
            etree.QName(operation).localname, _impersonated(headers) or principal, principal, scheme
        )
        try:
            return self._operation(asked, headers, operation, app)
        except Refusal as refusal:
            self._log(replace(asked, code=refusal.code))
            raise

    def _operation(
        self, asked: Record, headers: list[etree._Element], operation: etree._Element, app: entra.App | None
    ) -> bytes:
        asked.version = self._check_version(headers)
        self._check_schema([*headers, operation])
        self._check_busy()
        mailbox = self._target(headers, asked.user, app)
        handler = operations.OPERATIONS.get(asked.operation)
        if handler is None:
            raise self._fault(
                "ErrorInvalidRequest", f"The EWS test server does not implement {asked.operation}."
            )
        call = operations.Call(self.store, mailbox, operation, self)
        try:
            # One operation at a time: the store's folders and items are plain dicts.
            with self.store.lock:
                messages = handler(call)
        except Exception:
            # A bug of the test server's, not an answer Exchange would give: the test fails (fixtures.py).
            with self._lock:
                self.failures.append(traceback.format_exc())
            raise self._fault("ErrorInternalServerError", "An internal server error occurred.") from None
        response = soap.response(asked.operation, messages)
        self._check_response([response])
        codes = {message.findtext(f"{{{xsd.M}}}ResponseCode") or "" for message in messages}
        self._log(replace(asked, mailbox=mailbox.address, code=",".join(sorted(codes)), notes=call.notes))
        return soap.serialize(soap.envelope(response))

    def _log(self, record: Record) -> None:
        with self._lock:
            self.requests.append(record)

    def _parse(self, body: bytes) -> etree._Element:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
        try:
            root = etree.fromstring(body, parser)
        except etree.XMLSyntaxError as error:
            raise self._schema_fault(
                f"The request is not well-formed XML: {error}", error.lineno or 1
            ) from None
        if root.getroottree().docinfo.doctype:
            raise self._schema_fault("DTDs are not allowed in EWS requests.", 1)
        if root.tag != f"{{{soap.S}}}Envelope":
            raise self._schema_fault("The request is not a SOAP 1.1 envelope.", 1)
        return root

    def _check_version(self, headers: list[etree._Element]) -> str:
        """RequestServerVersion's Version; one this server's schema does not know is refused with
        ErrorInvalidServerVersion (clients then try an older one, as exchangelib does)."""
        found = next((h for h in headers if h.tag == f"{{{T}}}RequestServerVersion"), None)
        version = found.get("Version", "") if found is not None else "Exchange2007"
        if version not in xsd.version_values():
            raise self._fault("ErrorInvalidServerVersion", "The specified server version is invalid.")
        return version

    def _check_schema(self, elements: list[etree._Element]) -> None:
        for element in elements:
            problems = xsd.violations(element)
            if problems:
                line = element.sourceline or 1
                raise self._schema_fault(problems[0], line)

    def _check_response(self, elements: list[etree._Element]) -> None:
        for element in elements:
            problems = xsd.violations(element)
            if problems:
                with self._lock:
                    self.response_violations.extend(problems)

    def _check_busy(self) -> None:
        with self._lock:
            back_off = self._busy.pop(0) if self._busy else None
        if back_off is not None:
            detail = soap.message_xml(BackOffMilliseconds=str(back_off))
            raise self._fault(
                "ErrorServerBusy",
                "The server cannot service this request right now. Try again later.",
                detail,
            )

    def _target(self, headers: list[etree._Element], principal: str, app: entra.App | None) -> Mailbox:
        """The mailbox this request works on: the impersonated one, if any and allowed, else the signer's."""
        address = _impersonated(headers)
        if address is None:
            if app is not None:
                raise self._fault(
                    "ErrorMissingEmailAddress",
                    "When making a request as an account that does not have a mailbox, you must specify the "
                    "mailbox primary SMTP address for any distinguished folder Ids.",
                )
            return self._mailbox(principal)
        mailbox = self.store.mailbox(address)
        if mailbox is None:
            raise self._fault(
                "ErrorNonExistentMailbox", "The SMTP address has no mailbox associated with it."
            )
        if not self._may_impersonate(principal, app, address):
            raise self._fault(
                "ErrorImpersonateUserDenied",
                "The account does not have permission to impersonate the requested user.",
            )
        return mailbox

    def _may_impersonate(self, principal: str, app: entra.App | None, address: str) -> bool:
        if app is not None:
            return app.may_reach(address)
        account = self.store.mailbox(principal)
        if account is None:
            return False
        return account.impersonates is None or address in account.impersonates

    def _fault(
        self, code: str, text: str, detail: etree._Element | None = None, message: str = ""
    ) -> Refusal:
        fault = soap.fault(code, text, detail, message)
        self._check_response([fault])
        return Refusal(500, soap.serialize(soap.envelope(fault, header=False)), code)

    def _schema_fault(self, violation: str, line: int) -> Refusal:
        with self._lock:
            self.request_violations.append(violation)
        detail = soap.schema_violation_xml(violation, line)
        text = "The request failed schema validation"
        return self._fault("ErrorSchemaValidation", f"{text}: {violation}", detail, f"{text}.")

    # OAuth -------------------------------------------------------------------------------------------

    def bearer(self, token: str) -> entra.App | None:
        """The app a token was issued to, if this tenant issued it for this server with Exchange's role."""
        try:
            claims = self.tenant.read_token(token)
        except jwt.InvalidTokenError:
            return None
        app = self.tenant.apps.get(str(claims.get("appid", "")))
        roles = claims.get("roles")
        return app if app is not None and isinstance(roles, list) and FULL_ACCESS in roles else None


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[_Handler], ews: EwsServer) -> None:
        self.ews = ews
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # TLS is set up in the connection's own thread, so a slow handshake holds up nobody else.
        try:
            connection = self.ews._tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        super().finish_request(connection, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: NTLM signs in a connection
    server: _HttpServer
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
        except Refusal as refusal:
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


def _impersonated(headers: list[etree._Element]) -> str | None:
    """The mailbox an ExchangeImpersonation header names (ConnectingSID's address), if any."""
    found = next((h for h in headers if h.tag == f"{{{T}}}ExchangeImpersonation"), None)
    sid = found.find(f"{{{T}}}ConnectingSID") if found is not None else None
    if sid is None or not len(sid):
        return None
    return (sid[0].text or "").strip().lower()
