"""What push leases (``sync.models.PushLease``) mean to the rest of the engine:
which connections the listeners hold (counted against the profiles' connection
caps, with the scheduler's runs), and whether push is live for a mailbox (its
safety-net poll comes seldom then, and its page says so).

Listeners take and keep leases in ``sync.listener_shares``; this module only reads.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Exists, Q, QuerySet

from mailboxes.models import FolderScope, Mailbox
from sync import clock
from sync.models import PushLease, PushMethod, PushState

# Methods that keep a connection to the mail server open all the time.
HELD_CONNECTION = (PushMethod.IMAP_IDLE, PushMethod.IMAP_NOOP)


def held(now: datetime) -> QuerySet[PushLease]:
    """Leases a live listener holds now."""
    return PushLease.objects.exclude(owner="").filter(expires_on__gte=now)


def connections_held(now: datetime) -> tuple[Counter[int], Counter[int]]:
    """The listeners' open connections, per profile and per mailbox: counted with the
    sync runs' against the profiles' caps (``sync.connection_caps``)."""
    rows = held(now).filter(method__in=HELD_CONNECTION).values_list("profile_id", "mailbox_id")
    per_profile: Counter[int] = Counter()
    per_mailbox: Counter[int] = Counter()
    for profile_id, mailbox_id in rows:
        if profile_id is not None:
            per_profile[profile_id] += 1
        per_mailbox[mailbox_id] += 1
    return per_profile, per_mailbox


def live(now: datetime) -> QuerySet[PushLease]:
    """Leases whose push delivers new mail now: an IMAP connection a live listener
    holds, or a Graph subscription not expired (Graph calls the web app, not the
    listener, so it outlives the listener that made it)."""
    connection_held = Q(owner__gt="", expires_on__gte=now) & ~Q(method=PushMethod.GRAPH)
    subscribed = Q(method=PushMethod.GRAPH, subscription_expires_on__gt=now)
    return PushLease.objects.filter(connection_held | subscribed, state=PushState.LIVE)


def is_live(mailbox_id: int, *, now: datetime | None = None) -> bool:
    return live(now or clock.now()).filter(mailbox_id=mailbox_id).exists()


def live_for(mailbox_id: Any, now: datetime) -> Exists:
    """``is_live`` as an expression, for a statement that reads it with other things
    (the scheduler's lease check: an idle poll pays no statement of its own for it)."""
    return Exists(live(now).filter(mailbox_id=mailbox_id))


def covers_new_mail(mailbox: Mailbox, *, now: datetime | None = None, live_now: bool | None = None) -> bool:
    """Push brings all the new mail this mailbox reads: it is live (``live_now``, when the
    caller read it already), and the mailbox reads only its inbox (push watches the inbox;
    mail that server rules file into sub-folders still waits for a poll)."""
    if mailbox.folders != FolderScope.ROOT_INBOX:
        return False
    return live_now if live_now is not None else is_live(mailbox.pk, now=now)


@dataclass(frozen=True)
class PushStatus:
    """What the mailbox page shows of push."""

    live: bool
    label: str
    method: str
    detail: str
    since: datetime | None


def status_of(mailbox: Mailbox) -> PushStatus | None:
    """The mailbox's push as a person reads it; None where no listener ever looked at it."""
    lease = PushLease.objects.filter(mailbox=mailbox).first()
    if lease is None:
        return None
    now = clock.now()
    is_on = live(now).filter(pk=lease.pk).exists()
    holder_alive = bool(lease.owner) and lease.expires_on is not None and lease.expires_on >= now
    if lease.state == PushState.FALLBACK:
        label = "Not available: polling"
    elif is_on:
        label = PushState.LIVE.label
    elif not holder_alive:
        label = "No listener holds it: polling"
    else:
        label = PushState(lease.state).label
    method = PushMethod(lease.method).label if lease.method else ""
    return PushStatus(live=is_on, label=label, method=method, detail=lease.detail, since=lease.changed_on)
