"""Exchange Online push: a Graph subscription to each held mailbox's new Inbox
messages, created and renewed by the listener holding its lease; Graph then
POSTs to the web app's webhook (``sync.graph_notifications``).

The subscription outlives its listener: Graph calls the web app, not the
listener, so a listener that dies loses nothing but the renewals, which the
next holder of the lease takes over. A subscription is renewed once less than a
quarter of its length is left. Where it cannot be made (Graph cannot reach the
webhook URL, the app may not read the mailbox) the mailbox polls, its page says
why, and the listener tries again every ``RETRY_MINUTES``.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet

from sync import clock, push
from sync.connectors import graph_subscriptions
from sync.connectors.base import ServerSettings
from sync.errors import SyncError
from sync.models import PushLease, PushMethod, PushState
from sync.server_settings import incoming_settings

RETRY_MINUTES = 10


def client_state_hash(client_state: str) -> str:
    """What is kept of a subscription's clientState: the webhook compares hashes."""
    return hashlib.sha256(client_state.encode()).hexdigest()


def needs_call(lease: PushLease) -> bool:
    """Whether ``keep`` has anything to do: no subscription, one to renew or to mark
    live (taken over from another listener), or a failed one due to be tried again."""
    now = clock.now()
    if _subscribed(lease, now):
        return lease.state != PushState.LIVE
    return not (lease.state == PushState.FALLBACK and lease.changed_on and now - lease.changed_on < _retry())


def keep(owner: str, lease: PushLease) -> None:
    """Make sure the mailbox has a live subscription, as the listener ``owner``."""
    now = clock.now()
    length = timedelta(minutes=settings.PUSH_GRAPH_SUBSCRIPTION_MINUTES)
    held = PushLease.objects.filter(pk=lease.pk, owner=owner)
    if _subscribed(lease, now):
        if lease.state != PushState.LIVE:  # taken over from a listener that made it
            held.update(state=PushState.LIVE, detail="", changed_on=now)
        return
    if not needs_call(lease):
        return
    try:
        server = incoming_settings(lease.mailbox)
        if lease.subscription_id and _renewed(server, lease, now + length, held):
            return
        client_state = secrets.token_urlsafe(32)
        made = graph_subscriptions.subscribe(
            server,
            notification_url=settings.PUSH_GRAPH_WEBHOOK_URL,
            client_state=client_state,
            expires_on=now + length,
        )
    except SyncError as error:
        held.update(
            state=PushState.FALLBACK,
            method=PushMethod.GRAPH,
            detail=(
                f"Graph change notifications could not be set up: {error} New mail is found by polling; "
                f"the listener tries again in {RETRY_MINUTES} minutes."
            ),
            changed_on=now,
        )
        return
    held.update(
        subscription_id=made.id,
        subscription_expires_on=made.expires_on,
        client_state_hash=client_state_hash(client_state),
        state=PushState.LIVE,
        method=PushMethod.GRAPH,
        detail="",
        changed_on=now,
    )
    push.notify([lease.mailbox_id])  # mail that came while no subscription was there


def _renewed(
    server: ServerSettings, lease: PushLease, expires_on: datetime, held: QuerySet[PushLease]
) -> bool:
    """Renew the subscription; False when Graph no longer has it (a new one is needed)."""
    try:
        renewed = graph_subscriptions.renew(server, lease.subscription_id, expires_on=expires_on)
    except graph_subscriptions.SubscriptionGone:
        return False
    held.update(
        subscription_expires_on=renewed.expires_on,
        state=PushState.LIVE,
        method=PushMethod.GRAPH,
        detail="",
        changed_on=clock.now(),
    )
    return True


def _subscribed(lease: PushLease, now: datetime) -> bool:
    """A subscription with more than a quarter of its length left (renewed after that)."""
    expires = lease.subscription_expires_on
    quarter = timedelta(minutes=settings.PUSH_GRAPH_SUBSCRIPTION_MINUTES) / 4
    return bool(lease.subscription_id) and expires is not None and expires - now > quarter


def _retry() -> timedelta:
    return timedelta(minutes=RETRY_MINUTES)
