"""Profile outages: many mailboxes of one profile failing to connect at once is
the server, not the mailboxes.

The evidence is the profile's sync runs, so every worker on every machine
reaches the same answer: since the last run of that kind that reached the
server (any finished run that is not a connection failure), at least
``SYNC_OUTAGE_MIN_MAILBOXES`` distinct mailboxes failed to connect within
``SYNC_OUTAGE_WINDOW_SECONDS`` of each other. While that holds, a mailbox that
fails to connect is *held*: postponed one retry interval with the last error
``server_unreachable``, its retry budget untouched, and one Error alert stands
for the profile. The dispatcher lets one mailbox of a profile with held
mailboxes probe per retry interval; the first run that reaches the server ends
the outage, resolves the alert, and the held mailboxes are due at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Max
from django.db.models.functions import Greatest

from mailboxes.models import DIRECTION_FIELDS, Mailbox
from profiles.models import EmailServerProfile
from sync import alerts, clock
from sync.errors import SyncError, TransientError
from sync.models import AlertLevel, MailboxAlert, SyncKind, SyncOutcome, SyncRun
from sync.sql import Condition, quoted

# Failures that say nothing about the mailbox: the server did not answer at all.
CONNECTION_CODES = frozenset({"connection_refused", "timeout", "connection_lost", "dns_unavailable"})
OUTAGE_CODE = "server_unreachable"


def is_connection_failure(error: SyncError) -> bool:
    return isinstance(error, TransientError) and error.code in CONNECTION_CODES


def probe_interval() -> timedelta:
    return timedelta(minutes=settings.SYNC_TRANSIENT_RETRY_MINUTES)


def in_outage(*, profile: EmailServerProfile, kind: str) -> bool:
    """Whether the profile's server for ``kind`` has been unreachable for enough
    mailboxes at once since it last answered."""
    runs = SyncRun.objects.filter(mailbox__profile=profile, kind=kind).exclude(outcome="")
    connection_failed = runs.filter(outcome=SyncOutcome.FAILED, error_code__in=CONNECTION_CODES)
    answered = runs.exclude(pk__in=connection_failed.values("pk")).aggregate(at=Max("finished_on"))["at"]
    if answered is not None:
        connection_failed = connection_failed.filter(finished_on__gt=answered)
    failures = connection_failed.order_by("finished_on", "pk").values_list("finished_on", "mailbox_id")
    return _clustered(failures.iterator(chunk_size=500))


def _clustered(failures: Iterable[tuple[datetime | None, int]]) -> bool:
    """Enough distinct mailboxes among failures no further apart than the window."""
    window = timedelta(seconds=settings.SYNC_OUTAGE_WINDOW_SECONDS)
    recent: deque[tuple[datetime, int]] = deque()
    for at, mailbox_id in failures:
        if at is None:
            continue  # never: failed runs are finished
        recent.append((at, mailbox_id))
        while recent[0][0] < at - window:
            recent.popleft()
        if len({mailbox for _, mailbox in recent}) >= settings.SYNC_OUTAGE_MIN_MAILBOXES:
            return True
    return False


def hold(*, mailbox: Mailbox, kind: str, error: SyncError) -> bool:
    """Hold a mailbox whose connection failed while its profile is in an outage,
    and count the profile's alert. False (nothing done) when it is not one."""
    profile = mailbox.profile
    if profile is None or not is_connection_failure(error) or not in_outage(profile=profile, kind=kind):
        return False
    now = clock.now()
    _hold_earlier_failures(profile=profile, kind=kind, besides=mailbox)
    Mailbox.objects.filter(pk=mailbox.pk).update(
        **{DIRECTION_FIELDS[kind].postponed_until: now + probe_interval()},
        last_sync_error_code=OUTAGE_CODE,
        last_sync_error_text=error.message,
        last_sync_error_count=F("last_sync_error_count") + 1,
        last_sync_error_on=now,
        modified_on=now,
    )
    held = Mailbox.objects.filter(profile=profile, last_sync_error_code=OUTAGE_CODE).count()
    alerts.record_alert(
        level=AlertLevel.ERROR,
        category=kind,
        code=OUTAGE_CODE,
        message=f"The {SyncKind(kind).label.lower()} server {_address(profile, kind)} of profile "
        f"{profile.name} does not answer ({error.message}); {held} mailboxes wait for it without "
        "using up their retries and sync again when it answers.",
        profile=profile,
    )
    return True


def _hold_earlier_failures(*, profile: EmailServerProfile, kind: str, besides: Mailbox) -> None:
    """The mailboxes whose failures opened the outage spent a retry before it was
    known: give it back, and let the profile's alert stand for theirs."""
    since = clock.now() - timedelta(seconds=settings.SYNC_OUTAGE_WINDOW_SECONDS)
    failed = SyncRun.objects.filter(
        mailbox__profile=profile,
        kind=kind,
        outcome=SyncOutcome.FAILED,
        error_code__in=CONNECTION_CODES,
        finished_on__gte=since,
    ).values("mailbox_id")
    earlier = (
        Mailbox.objects.filter(profile=profile, pk__in=failed)
        .exclude(pk=besides.pk)
        .exclude(last_sync_error_code=OUTAGE_CODE)
    )
    ids = list(earlier.values_list("pk", flat=True))
    failures = DIRECTION_FIELDS[kind].transient_failures
    # The WHERE is checked again under the row lock, so two workers never refund one mailbox twice.
    earlier.filter(pk__in=ids).update(
        **{failures: Greatest(F(failures) - 1, 0)},
        last_sync_error_code=OUTAGE_CODE,
    )
    for held in Mailbox.objects.filter(pk__in=ids):
        alerts.resolve_alerts(mailbox=held, category=kind)


def server_answered(*, profile: EmailServerProfile | None, kind: str) -> None:
    """A run reached the profile's server: end its outage, if any. Held mailboxes are due at once."""
    if profile is None:
        return
    Mailbox.objects.filter(profile=profile, last_sync_error_code=OUTAGE_CODE).update(
        **{DIRECTION_FIELDS[kind].postponed_until: None}, last_sync_error_code="", modified_on=clock.now()
    )
    MailboxAlert.objects.filter(
        subject_key=alerts.subject_key(profile=profile), category=kind, code=OUTAGE_CODE, resolved_on=None
    ).update(resolved_on=clock.now())


def outage_sql(*, profile: EmailServerProfile | None, kind: str) -> list[Condition]:
    """Whether ``server_answered`` would change a row, as SQL conditions (the
    WHERE of its two UPDATEs) that a caller asks beside others in one statement:
    ``mailbox_state.record_success``, on every poll. None true: no outage to end."""
    if profile is None:
        return []
    mailboxes, profile_id, error_code = quoted(Mailbox, "profile", "last_sync_error_code")
    table, key, category, code, resolved_on = quoted(
        MailboxAlert, "subject_key", "category", "code", "resolved_on"
    )
    return [
        (
            f"EXISTS (SELECT 1 FROM {mailboxes} WHERE {profile_id} = %s AND {error_code} = %s)",  # noqa: S608
            [profile.pk, OUTAGE_CODE],
        ),
        (
            f"EXISTS (SELECT 1 FROM {table} WHERE {key} = %s AND {category} = %s AND {code} = %s "  # noqa: S608
            f"AND {resolved_on} IS NULL)",
            [alerts.subject_key(profile=profile), kind, OUTAGE_CODE],
        ),
    ]


def probing_profiles(kind: str) -> set[int]:
    """Profiles in an outage: the dispatcher lets one of their mailboxes probe per interval."""
    held = Mailbox.objects.filter(last_sync_error_code=OUTAGE_CODE, **{DIRECTION_FIELDS[kind].enabled: True})
    return set(held.values_list("profile_id", flat=True).distinct())


def probed_recently(*, profile_id: int, kind: str, now: datetime) -> bool:
    # A run started "after now" (the clock went back since) is no recent probe: it
    # would keep the profile from probing for as long as the jump (sync/clock.py).
    return SyncRun.objects.filter(
        mailbox__profile_id=profile_id,
        kind=kind,
        started_on__gt=now - probe_interval(),
        started_on__lte=now,
    ).exists()


def _address(profile: EmailServerProfile, kind: str) -> str:
    if kind == SyncKind.OUTGOING:
        return f"{profile.outgoing_server_location}:{profile.outgoing_port}"
    return f"{profile.incoming_server_location}:{profile.incoming_port}"
