"""A listener's share of the mailboxes (``manage.py listen``): push leases taken,
kept and given back through the database, as the scheduler's leases are.

Each heartbeat a listener renews what it holds, gives back what may no longer
push, and takes free leases (never held, or lapsed: their listener died) up to
its fair share, the pushable mailboxes divided by the live listeners. An IMAP
lease holds a connection, so it is taken only while the profile's connection
cap (sync/connection_caps.py, as the scheduler counts it) leaves room for a sync run beside it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, QuerySet

from mailboxes.models import Mailbox
from profiles.server_types import ServerType
from sync import clock, scheduler
from sync.connection_caps import OpenConnections, counts_per_profile
from sync.models import PushLease, PushListener, PushMethod, PushState, SyncKind


def push_types() -> tuple[str, ...]:
    """Server types a listener pushes for: IMAP always; Exchange Online once the
    webhook Graph calls has a public URL (without it Graph mailboxes poll)."""
    if settings.PUSH_GRAPH_WEBHOOK_URL:
        return (ServerType.IMAP_SMTP, ServerType.EXCHANGE_ONLINE)
    return (ServerType.IMAP_SMTP,)


def pushable(now: datetime) -> QuerySet[Mailbox]:
    return scheduler.eligible(SyncKind.INCOMING, now=now).filter(profile__server_type__in=push_types())


def beat(owner: str, *, capacity: int) -> list[PushLease]:
    """One heartbeat of the listener ``owner``: returns the leases it holds now,
    with their mailboxes and profiles."""
    now = clock.now()
    length = timedelta(seconds=settings.PUSH_LEASE_SECONDS)
    expires = now + length
    # A clock set back leaves dead listeners' leases far ahead (sync/clock.py): they lapse one
    # lease length from now, and their mailboxes neither wait for push nor go to no listener.
    clock.rebase(PushListener.objects.all(), "expires_on", now=now, length=length)
    clock.rebase(PushLease.objects.exclude(owner=""), "expires_on", now=now, length=length)
    _present(owner, now, expires)
    mine = PushLease.objects.filter(owner=owner)
    mine.exclude(mailbox__in=pushable(now).values("pk")).update(**_given_back())
    mine.update(expires_on=expires)
    _ensure_leases(now)
    room = min(capacity, _fair_share(now)) - mine.count()
    if room > 0:
        _take(owner, now, expires, room)
    elif room < 0:
        # Another listener joined: give it the excess (the newest), to take at its next beat.
        give_back(owner, mine.order_by("-pk").values_list("mailbox_id", flat=True)[:-room])
    return list(mine.select_related("mailbox__profile", "mailbox__user", "mailbox__queue"))


def leave(owner: str) -> None:
    """A listener stops: its leases are free at once, and it no longer counts for the shares."""
    give_back(owner)
    PushListener.objects.filter(owner=owner).delete()


def _present(owner: str, now: datetime, expires: datetime) -> None:
    PushListener.objects.filter(expires_on__lt=now).delete()
    PushListener.objects.update_or_create(
        owner=owner,
        defaults={"expires_on": expires},
        create_defaults={"started_on": now, "expires_on": expires},
    )


def give_back(owner: str, mailbox_ids: Iterable[int] | None = None) -> None:
    """Let go of these leases (all of the listener's by default) for another listener to take."""
    leases = PushLease.objects.filter(owner=owner)
    if mailbox_ids is not None:
        leases = leases.filter(mailbox_id__in=list(mailbox_ids))
    leases.update(**_given_back())


def _given_back() -> dict[str, object]:
    # State and detail stay: they say what was last seen (a Graph subscription outlives its listener).
    return {"owner": "", "expires_on": None}


@dataclass(frozen=True)
class Report:
    """What a listener saw of one mailbox's push."""

    mailbox_id: int
    state: str
    method: str
    detail: str = ""


def record(owner: str, reports: Iterable[Report]) -> None:
    """Write what the listener's watchers reported, on the leases it still holds."""
    now = clock.now()
    for report in reports:
        change: dict[str, object] = {"state": report.state, "detail": report.detail, "changed_on": now}
        if report.method:  # a failing connection keeps the method it had
            change["method"] = report.method
        PushLease.objects.filter(mailbox_id=report.mailbox_id, owner=owner).update(**change)


def _ensure_leases(now: datetime) -> None:
    missing = pushable(now).filter(push_lease__isnull=True).values_list("pk", "profile_id")
    PushLease.objects.bulk_create(
        [PushLease(mailbox_id=pk, profile_id=profile) for pk, profile in missing], ignore_conflicts=True
    )


def _fair_share(now: datetime) -> int:
    total = PushLease.objects.filter(mailbox__in=pushable(now).values("pk")).count()
    listeners = PushListener.objects.filter(expires_on__gte=now).count()
    return math.ceil(total / max(listeners, 1))


def _free(now: datetime) -> Q:
    return Q(owner="") | Q(expires_on__lt=now) | Q(expires_on__isnull=True)


def _take(owner: str, now: datetime, expires: datetime, room: int) -> None:
    with transaction.atomic():
        free = (
            PushLease.objects.filter(_free(now), mailbox__in=pushable(now).values("pk"))
            .select_related("mailbox__profile")
            .order_by("pk")
        )
        if connection.features.has_select_for_update_skip_locked:
            free = free.select_for_update(skip_locked=True, of=("self",))
        caps = OpenConnections(now)
        for lease in free:
            if room <= 0:
                return
            method = _method(lease.mailbox)
            if method != PushMethod.GRAPH and not caps.take_push(lease.mailbox):
                _no_room(lease, caps)
                continue
            taken = PushLease.objects.filter(pk=lease.pk).filter(_free(now))
            fresh = {"state": PushState.CONNECTING, "detail": "", "changed_on": now}
            if taken.update(
                owner=owner,
                expires_on=expires,
                profile=lease.mailbox.profile,
                method=method,
                # A Graph subscription goes on without its listener: its state stays true.
                **({} if method == PushMethod.GRAPH else fresh),
            ):
                room -= 1


def _method(mailbox: Mailbox) -> str:
    profile = mailbox.profile
    if profile is not None and profile.server_type == ServerType.EXCHANGE_ONLINE:
        return PushMethod.GRAPH
    return PushMethod.IMAP_IDLE


def _no_room(lease: PushLease, caps: OpenConnections) -> None:
    profile = lease.mailbox.profile
    cap = profile.max_concurrent_connections if profile else 0
    scope = "for all its mailboxes" if profile and counts_per_profile(profile) else "per mailbox"
    detail = (
        f"The profile allows {cap} connection(s) at once {scope}; "
        "holding one open for push would leave none for sync runs. New mail is found by polling."
    )
    PushLease.objects.filter(pk=lease.pk).filter(_free(caps.now)).update(
        state=PushState.FALLBACK, method=PushMethod.IMAP_IDLE, detail=detail, changed_on=caps.now
    )
