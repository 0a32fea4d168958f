"""The EWS test server: SOAP over HTTPS at /EWS/Exchange.asmx, as Exchange Server 2019 answers it.

Every request's SOAP header elements and body operation are checked against Microsoft's schema
(xsd.py): a failing request gets Exchange's ErrorSchemaValidation fault; a failing response is
recorded in ``response_violations`` and fails the test (fixtures.py). Then: sign-in (auth.py),
busy injection, the mailbox (own, or impersonated with the ApplicationImpersonation right), and
the operation (operations.py), dispatched on the body's first child. HTTP is transport.py's.
"""

from __future__ import annotations

import ssl
import tempfile
import threading
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path

import jwt
import trustme
from lxml import etree

from tests.fakes.ews import act_items, auth, operations, soap, transport, xsd
from tests.fakes.ews.store import Mailbox, Store
from tests.fakes.ews.store import deliver as deliver_into
from tests.fakes.ews.transport import EWS_PATH
from tests.fakes.ews.xsd import T
from tests.fakes.graph import entra

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
        self._http = transport.HttpServer(("127.0.0.1", 0), self)
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
        return deliver_into(self.store, mailbox, raw, mailbox.folder_at(folder)).id

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

    def put_item(self, address: str, xml: str) -> str:
        """A calendar item, contact or task (``<t:CalendarItem xmlns:t=...>...``) straight into its
        folder, as another client (Outlook over MAPI) would leave it: no EWS request, so nothing
        checks it. The item id."""
        mailbox = self._mailbox(address)
        element = etree.fromstring(xml.encode())
        folder = mailbox.by_distinguished(act_items.KINDS[etree.QName(element).localname])
        assert folder is not None
        with self.store.lock:
            return self.store.add_item(folder, b"", props=act_items.canonical(element)).id

    def create_folder(self, address: str, path: str) -> None:
        mailbox = self._mailbox(address)
        parent_path, _, name = path.rpartition("/")
        self.store.create_folder(mailbox, mailbox.folder_at(parent_path or "Inbox"), name)

    def delete_folder(self, address: str, path: str) -> None:
        mailbox = self._mailbox(address)
        self.store.delete_folder(mailbox, mailbox.folder_at(path))

    def make_read_only(self, address: str) -> None:
        """The account may read this mailbox but no longer change it (moves, deletions and new
        folders are refused with ErrorAccessDenied), as with a Reviewer folder permission."""
        mailbox = self._mailbox(address)
        with self.store.lock:
            mailbox.read_only = True

    def top_folder_messages(self, address: str, name: str) -> list[bytes] | None:
        """The messages of the folder named ``name`` beside the Inbox, oldest first; None if none is."""
        with self.store.lock:
            folder = self._mailbox(address).top_folder(name)
            if folder is None:
                return None
            return [item.mime for item in sorted(folder.items.values(), key=lambda i: i.created_seq)]

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

    def forget_old_sync_states(self) -> None:
        """Honour only each folder's newest sync state, as after a long quiet period."""
        self.store.forget_old_sync_states()

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
                deliver_into(self.store, mailbox, raw)
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
        except soap.Refusal as refusal:
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
        if call.unimplemented:
            with self._lock:
                self.request_violations.extend(
                    f"{asked.operation}: {what} (not implemented by the EWS test server)"
                    for what in call.unimplemented
                )
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
    ) -> soap.Refusal:
        fault = soap.fault(code, text, detail, message)
        self._check_response([fault])
        return soap.Refusal(500, soap.serialize(soap.envelope(fault, header=False)), code)

    def _schema_fault(self, violation: str, line: int) -> soap.Refusal:
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


def _impersonated(headers: list[etree._Element]) -> str | None:
    """The mailbox an ExchangeImpersonation header names (ConnectingSID's address), if any."""
    found = next((h for h in headers if h.tag == f"{{{T}}}ExchangeImpersonation"), None)
    sid = found.find(f"{{{T}}}ConnectingSID") if found is not None else None
    if sid is None or not len(sid):
        return None
    return (sid[0].text or "").strip().lower()
