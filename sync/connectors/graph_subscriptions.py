"""Microsoft Graph change notifications for a mailbox's Inbox: a subscription to
new messages created, renewed and deleted (``sync.listener_graph`` keeps them).

Graph checks the notification URL before it answers a create (it POSTs a
validation token there and wants it back within 10 seconds): a URL Graph cannot
reach fails the create, and the mailbox stays on polling.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from sync.connectors.base import ServerSettings
from sync.connectors.graph_errors import READ_PERMISSION
from sync.connectors.graph_http import API, GraphClient, GraphRefused

# Graph's longest subscription to Outlook messages, in minutes.
MAX_MINUTES = 4230
JSON_BODY = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Subscription:
    id: str
    expires_on: datetime


class SubscriptionGone(Exception):
    """Graph no longer knows the subscription (it expired, or was removed): create a new one."""


def inbox_resource(mailbox: str) -> str:
    return f"users/{quote(mailbox, safe='@')}/mailFolders('Inbox')/messages"


def subscribe(
    settings: ServerSettings, *, notification_url: str, client_state: str, expires_on: datetime
) -> Subscription:
    """Subscribe to new messages in the Inbox; lifecycle events come to the same URL."""
    body = {
        "changeType": "created",
        "notificationUrl": notification_url,
        "lifecycleNotificationUrl": notification_url,
        "resource": inbox_resource(settings.mailbox),
        "expirationDateTime": _iso(expires_on),
        "clientState": client_state,
    }
    with _session(settings) as client:
        answer = client.call(
            "POST",
            f"{client.root}/{API}/subscriptions",
            what="subscribing to new mail",
            headers=JSON_BODY,
            content=json.dumps(body).encode(),
        )
    return _subscription(answer.json())


def renew(settings: ServerSettings, subscription_id: str, *, expires_on: datetime) -> Subscription:
    url = f"{settings.url.rstrip('/')}/{API}/subscriptions/{quote(subscription_id)}"
    with _session(settings) as client:
        try:
            answer = client.call(
                "PATCH",
                url,
                what="renewing the new-mail subscription",
                expect=frozenset({404}),
                headers=JSON_BODY,
                content=json.dumps({"expirationDateTime": _iso(expires_on)}).encode(),
            )
        except GraphRefused as error:
            raise SubscriptionGone(subscription_id) from error
    return _subscription(answer.json())


@contextmanager
def _session(settings: ServerSettings) -> Iterator[GraphClient]:
    client = GraphClient(settings, permission=READ_PERMISSION)
    client.open()
    try:
        yield client
    finally:
        client.close()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def _subscription(document: object) -> Subscription:
    if not isinstance(document, dict):
        raise ValueError("Graph answered a subscription with something other than an object")
    expires = str(document["expirationDateTime"]).replace("Z", "+00:00")
    return Subscription(str(document["id"]), datetime.fromisoformat(expires))
