"""Change notifications on the Graph test server: ``/v1.0/subscriptions`` (create,
read, renew, delete) for new messages in a mailbox folder, as Graph serves them.

- A create is checked against the metadata like every other body, its expiry
  against Graph's limit for Outlook messages (4230 minutes), its app's roles
  (Mail.Read or Mail.ReadWrite) and its reach (an app limited to some mailboxes).
- Before answering a create, the server does Graph's handshake: it POSTs
  ``?validationToken=...`` to the notification URL (and the lifecycle URL) and
  wants the token back as text/plain within 10 seconds; otherwise the create
  fails with Graph's 400.
- A message delivered to a subscribed folder is POSTed to the notification URL
  as a ``changeNotificationCollection``, checked against the metadata too, on a
  thread (Graph delivers in the background); ``lifecycle()`` sends a lifecycle
  event the way Graph does.

Notification URLs must be https, as Graph's, except on the loopback interface,
where tests serve the web app over plain HTTP.
"""

from __future__ import annotations

import re
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import httpx

from tests.fakes.graph import metadata
from tests.fakes.graph.entra import App
from tests.fakes.graph.http import GraphError, Reply, Request

if TYPE_CHECKING:
    from tests.fakes.graph.mailboxes import Mailbox
    from tests.fakes.graph.server import GraphServer

MAX_MINUTES = 4230
VALIDATION_SECONDS = 10
READ_ROLES = {"Mail.Read", "Mail.ReadWrite", "Mail.ReadBasic", "Mail.ReadBasic.All"}
RESOURCE = re.compile(r"/?users/([^/]+)/mailFolders\('?([^')/]+)'?\)/messages", re.IGNORECASE)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass
class Subscription:
    id: str
    resource: str
    mailbox: str  # the address
    folder_id: str
    change_type: str
    notification_url: str
    lifecycle_url: str
    client_state: str
    expires: datetime
    app_id: str

    def document(self, server: GraphServer) -> dict[str, Any]:
        return {
            "@odata.context": f"{server.url}/v1.0/$metadata#subscriptions/$entity",
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.app_id,
            "changeType": self.change_type,
            "clientState": self.client_state or None,
            "notificationUrl": self.notification_url,
            "lifecycleNotificationUrl": self.lifecycle_url or None,
            "expirationDateTime": _iso(self.expires),
            "creatorId": str(uuid.uuid5(uuid.NAMESPACE_URL, self.app_id)),
            "includeResourceData": False,
            "latestSupportedTlsVersion": "v1_2",
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationQueryOptions": None,
            "notificationUrlAppId": None,
        }


@dataclass
class Subscriptions:
    """The server's subscriptions, and what it POSTed (``sent``: the notifications and
    the status each got), for tests to read."""

    server: GraphServer
    by_id: dict[str, Subscription] = field(default_factory=dict)
    sent: list[tuple[str, int]] = field(default_factory=list)  # (subscription id, status)
    _threads: list[threading.Thread] = field(default_factory=list)

    # -- the API

    def call(self, request: Request, app: App, roles: list[str], rest: list[str]) -> Reply:
        if not READ_ROLES & set(roles):
            raise GraphError(403, "ExtensionError", "Operation: Create; Exception: [Status Code: Forbidden]")
        if request.method == "POST" and not rest:
            return self._create(request, app)
        with self.server.lock:
            found = self.by_id.get(rest[0]) if len(rest) == 1 else None
        if found is None or found.app_id != app.client_id:
            raise GraphError(404, "ResourceNotFound", "The object was not found.")
        if request.method == "GET":
            return self._answer(200, found)
        if request.method == "PATCH":
            return self._renew(request, found)
        if request.method == "DELETE":
            with self.server.lock:
                del self.by_id[found.id]
            return Reply(204)
        raise GraphError(405, "MethodNotAllowed", f"{request.method} is not allowed on subscriptions.")

    def _create(self, request: Request, app: App) -> Reply:
        body = self.server.checked_body(request, lambda b: metadata.validate("subscription", b, request=True))
        match = RESOURCE.fullmatch(str(body.get("resource", "")))
        if match is None or str(body.get("changeType")) != "created":
            raise GraphError(400, "ExtensionError", "Only 'created' on a folder's messages is served here.")
        box = self._mailbox(unquote(match[1]), app)
        try:
            folder = box.folder(match[2])
        except KeyError:
            raise GraphError(404, "ExtensionError", "The folder does not exist.") from None
        subscription = Subscription(
            id=str(uuid.uuid4()),
            resource=str(body["resource"]),
            mailbox=box.address,
            folder_id=folder.id,
            change_type="created",
            notification_url=str(body["notificationUrl"]),
            lifecycle_url=str(body.get("lifecycleNotificationUrl") or ""),
            client_state=str(body.get("clientState") or ""),
            expires=_expiry(body),
            app_id=app.client_id,
        )
        for url in {subscription.notification_url, subscription.lifecycle_url} - {""}:
            self._validate_url(url)
        with self.server.lock:
            self.by_id[subscription.id] = subscription
        return self._answer(201, subscription)

    def _renew(self, request: Request, found: Subscription) -> Reply:
        body = self.server.checked_body(request, lambda b: metadata.validate("subscription", b, request=True))
        with self.server.lock:
            found.expires = _expiry(body)
        return self._answer(200, found)

    def _answer(self, status: int, subscription: Subscription) -> Reply:
        return Reply.of_json(
            status, subscription.document(self.server), lambda d: metadata.validate("subscription", d)
        )

    def _mailbox(self, user: str, app: App) -> Mailbox:
        with self.server.lock:
            box = self.server.mailboxes.get(user.lower()) or next(
                (b for b in self.server.mailboxes.values() if b.user_id == user.lower()), None
            )
        if box is None:
            raise GraphError(404, "ExtensionError", f"The requested user '{user}' is invalid.")
        if not app.may_reach(box.address):
            raise GraphError(403, "ExtensionError", "Access to OData is disabled.")
        return box

    def _validate_url(self, url: str) -> None:
        """Graph's handshake: the token must come back, as plain text, in time."""
        parts = urlsplit(url)
        if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in LOOPBACK):
            raise GraphError(400, "ValidationError", "The notification URL must be https.")
        token = (
            f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
        )
        try:
            answer = httpx.post(
                url, params={"validationToken": token}, headers={"Content-Type": "text/plain"},
                timeout=VALIDATION_SECONDS,
            )  # fmt: skip
        except httpx.HTTPError:
            answer = None
        if answer is None or answer.status_code != 200 or answer.text != token:
            raise GraphError(
                400,
                "ValidationError",
                "Subscription validation request failed. Notification endpoint must respond with 200 OK "
                "to validation request.",
            )

    # -- notifications

    def message_created(self, box: Mailbox, folder_id: str, message_id: str) -> None:
        """A message arrived: notify every live subscription to its folder."""
        now = datetime.now(UTC)
        with self.server.lock:
            targets = [
                s for s in self.by_id.values() if s.mailbox == box.address and s.folder_id == folder_id
            ]
        for subscription in targets:
            if subscription.expires > now:
                resource = f"Users/{box.user_id}/Messages/{message_id}"
                self._post(subscription, subscription.notification_url, {
                    "changeType": "created",
                    "resource": resource,
                    # Graph also sends "@odata.type": "#Microsoft.Graph.Message" here, which its own
                    # metadata does not allow (message does not derive from resourceData): left out.
                    "resourceData": {
                        "@odata.id": resource,
                        "@odata.etag": f'W/"{secrets.token_hex(8)}"',
                        "id": message_id,
                    },
                })  # fmt: skip

    def lifecycle(self, subscription_id: str, event: str, *, client_state: str | None = None) -> None:
        """Send a lifecycle event (reauthorizationRequired, subscriptionRemoved, missed)."""
        with self.server.lock:
            subscription = self.by_id[subscription_id]
        url = subscription.lifecycle_url or subscription.notification_url
        self._post(
            subscription, url, {"lifecycleEvent": event, "resource": subscription.resource}, client_state
        )

    def wait_sent(self, timeout: float = 30) -> None:
        """Wait for the notifications posted so far to be answered."""
        for thread in list(self._threads):
            thread.join(timeout)

    def _post(
        self, subscription: Subscription, url: str, item: dict[str, Any], client_state: str | None = None
    ) -> None:
        document = {
            "value": [
                {
                    "subscriptionId": subscription.id,
                    "subscriptionExpirationDateTime": _iso(subscription.expires),
                    "clientState": subscription.client_state if client_state is None else client_state,
                    "tenantId": self.server.tenant_id,
                    **item,
                }
            ]
        }
        for problem in metadata.validate("changeNotificationCollection", document):
            self.server.record(f"notification to {url}: {problem}")
        thread = threading.Thread(target=self._deliver, args=(subscription.id, url, document), daemon=True)
        self._threads.append(thread)
        thread.start()

    def _deliver(self, subscription_id: str, url: str, document: dict[str, Any]) -> None:
        try:
            status = httpx.post(url, json=document, timeout=VALIDATION_SECONDS).status_code
        except httpx.HTTPError:
            status = 0
        with self.server.lock:
            self.sent.append((subscription_id, status))


def _expiry(body: dict[str, Any]) -> datetime:
    try:
        expires = datetime.fromisoformat(str(body["expirationDateTime"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        raise GraphError(400, "InvalidRequest", "expirationDateTime is not a date and time.") from None
    now = datetime.now(UTC)
    if expires <= now:
        raise GraphError(400, "InvalidRequest", "Subscription expiration must be in the future.")
    if expires > now + timedelta(minutes=MAX_MINUTES):
        raise GraphError(
            400,
            "InvalidRequest",
            f"Subscription expiration can only be {MAX_MINUTES} minutes in the future.",
        )
    return expires


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
