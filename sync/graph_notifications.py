"""What Microsoft Graph POSTs to the webhook (``sync.graph_webhook``): change
notifications for new Inbox messages, and lifecycle notifications.

A notification counts only when its ``clientState`` is the secret its
subscription was made with (kept as a hash on the push lease); the rest are
refused. New mail and a ``missed`` lifecycle event wake the mailbox's sync
(``sync.push``, coalesced); ``reauthorizationRequired`` makes the subscription
due for renewal at the listener's next beat; ``subscriptionRemoved`` makes the
listener subscribe anew.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from sync import clock, push
from sync.listener_graph import client_state_hash
from sync.models import PushLease, PushState


@dataclass(frozen=True)
class Taken:
    accepted: int
    refused: int


def take(document: object) -> Taken:
    """Take a notification collection (``{"value": [...]}``) as Graph POSTs it."""
    items = document.get("value") if isinstance(document, dict) else None
    if not isinstance(items, list):
        return Taken(0, 0)
    accepted, refused, changed = 0, 0, set()
    for item in items:
        lease = _lease_of(item)
        if lease is None:
            refused += 1
            continue
        accepted += 1
        event = item.get("lifecycleEvent")
        if event == "reauthorizationRequired":
            PushLease.objects.filter(pk=lease.pk).update(subscription_expires_on=clock.now())
        elif event == "subscriptionRemoved":
            PushLease.objects.filter(pk=lease.pk).update(
                subscription_id="", subscription_expires_on=None, state=PushState.CONNECTING
            )
        else:  # new mail, or "missed": notifications were lost, so read the mailbox
            changed.add(lease.mailbox_id)
    if changed:
        push.notify(changed)
    return Taken(accepted, refused)


def _lease_of(item: Any) -> PushLease | None:
    """The push lease whose subscription sent ``item``, if its clientState is right."""
    if not isinstance(item, dict):
        return None
    subscription_id, client_state = item.get("subscriptionId"), item.get("clientState")
    if not isinstance(subscription_id, str) or not subscription_id or not isinstance(client_state, str):
        return None
    lease = PushLease.objects.filter(subscription_id=subscription_id).first()
    if lease is None or not hmac.compare_digest(lease.client_state_hash, client_state_hash(client_state)):
        return None
    return lease
