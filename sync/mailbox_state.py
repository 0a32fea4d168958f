"""What a run's result does to a mailbox: statuses, retries, disabling and alerts.

Permanent errors disable the direction at once; transient ones retry
``SYNC_TRANSIENT_RETRY_LIMIT`` times ``SYNC_TRANSIENT_RETRY_MINUTES`` apart,
then count as permanent — as Dynamics 365 does. A server that does not answer
many mailboxes of one profile at once is an outage (``sync.outages``), not a
reason to spend their retries; nor is a server asking to be left alone for a
while (``ThrottledError``: HTTP 429 / 503 with Retry-After, EWS ErrorServerBusy):
the mailbox waits as long as it was asked to, capped at
``SYNC_THROTTLE_MAX_WAIT_SECONDS``.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction

from crm.choices import SyncStatus
from mailboxes.models import DIRECTION_FIELDS, Mailbox
from sync import alerts, clock, outages
from sync.errors import PermanentError, SyncError, ThrottledError, TransientError
from sync.models import AlertLevel, SyncRun
from sync.sql import Condition, insert_returning_pk, quoted


def record_success(
    *, mailbox: Mailbox, kind: str, processed: int = 0, failed: int = 0, run: SyncRun | None = None
) -> None:
    """A run of ``kind`` worked: the mailbox is healthy, its alerts of that kind
    are resolved and its profile's outage, if any, is over. ``run``, finished,
    is saved too: a new one in the same statement."""
    open_alerts, outage = _healthy(mailbox, kind, processed, failed, run)
    if open_alerts:
        alerts.resolve_alerts(mailbox=mailbox, category=kind)
    if outage:
        outages.server_answered(profile=mailbox.profile, kind=kind)


def _healthy(
    mailbox: Mailbox, kind: str, processed: int, failed: int, run: SyncRun | None
) -> tuple[bool, bool]:
    """Save the run, mark the mailbox healthy, and ask whether it has alerts to
    resolve and its profile an outage to end: one statement on PostgreSQL, more elsewhere.

    A healthy mailbox polled again with nothing new, no open alert and no outage
    then costs this one statement instead of an INSERT and four UPDATEs that
    match no row. The answer is the database's at this moment (not the run's
    possibly stale ``mailbox``): what those UPDATEs' own WHERE would have seen;
    and each write that follows keeps its WHERE."""
    update = _success_update(mailbox, kind, processed, failed)
    outage = outages.outage_sql(profile=mailbox.profile, kind=kind)
    asks = [alerts.resolvable_sql(mailbox=mailbox, category=kind), *outage]
    postgresql = connection.vendor == "postgresql"
    new_run = run if postgresql and run is not None and run.pk is None else None
    if run is not None and new_run is None:
        run.save()
    if not postgresql:
        with connection.cursor() as cursor:
            cursor.execute(*update)
            cursor.execute(*_select(asks))
            row = cursor.fetchone()
        return bool(row[0]), any(row[1:])
    ctes = [f"healthy AS ({update[0]})"]
    params = list(update[1])
    if new_run is not None:
        insert, insert_params = insert_returning_pk(new_run)
        ctes.append(f"new_run AS ({insert})")
        params += insert_params
        asks.insert(0, ("(SELECT * FROM new_run)", []))
        if processed == failed == 0 and not connection.in_atomic_block:
            asks.append(_NOT_WAITING_FOR_THE_DISK)
    ask, ask_params = _select(asks)
    with connection.cursor() as cursor:
        # A data-modifying WITH runs to completion whether the query reads it or not.
        cursor.execute(f"WITH {', '.join(ctes)} {ask}", params + ask_params)
        row = cursor.fetchone()
    if new_run is not None:
        new_run.pk, new_run._state.adding = row[0], False
        row = row[1:]
    return bool(row[0]), any(row[1 : 1 + len(outage)])


def _select(asks: list[Condition]) -> Condition:
    return "SELECT " + ", ".join(text for text, _ in asks), [v for _, values in asks for v in values]


# An idle poll's statement (a run that processed nothing) commits without
# waiting for the WAL to reach the disk: it is the commonest write of a large
# installation, and all that a crash of PostgreSQL in the next fraction of a
# second could take back is the record of a poll that found nothing (and a
# status already on its way to success; the next poll writes it again). Only for
# a statement that is its own transaction (autocommit), so nothing else shares it.
_NOT_WAITING_FOR_THE_DISK: Condition = ("set_config('synchronous_commit', 'off', true)", [])


def _success_update(mailbox: Mailbox, kind: str, processed: int, failed: int) -> Condition:
    """The UPDATE that records a success: it matches no row, and writes nothing,
    when the mailbox already says exactly that."""
    fields = DIRECTION_FIELDS[kind]
    table, pk, status, failures, postponed, items, items_failed, modified_on = quoted(
        Mailbox,
        "id",
        fields.status,
        fields.transient_failures,
        fields.postponed_until,
        "items_processed_last_sync",
        "items_failed_last_sync",
        "modified_on",
    )
    now = Mailbox._meta.get_field("modified_on").get_db_prep_value(clock.now(), connection)
    success = SyncStatus.SUCCESS.value
    sql = (
        f"UPDATE {table} SET {status} = %s, {failures} = 0, {postponed} = NULL, {items} = %s, "  # noqa: S608
        f"{items_failed} = %s, {modified_on} = %s WHERE {pk} = %s AND NOT ({status} = %s "
        f"AND {failures} = 0 AND {postponed} IS NULL AND {items} = %s AND {items_failed} = %s)"
    )
    return sql, [success, processed, failed, now, mailbox.pk, success, processed, failed]


def longest_postponement() -> timedelta:
    """The longest a direction is ever postponed: a retry after a failure (an
    outage's probe interval is as long) or a server's wait, at its cap. The
    scheduler treats one further ahead as over (sync/clock.py)."""
    retry = timedelta(minutes=settings.SYNC_TRANSIENT_RETRY_MINUTES)
    return max(retry, outages.probe_interval(), timedelta(seconds=settings.SYNC_THROTTLE_MAX_WAIT_SECONDS))


@transaction.atomic
def record_failure(*, mailbox: Mailbox, kind: str, error: SyncError) -> None:
    """A run of ``kind`` failed with ``error``: retry later, or disable with the reason.
    A connection failure during its profile's outage is held instead, its retries untouched."""
    locked = Mailbox.objects.select_for_update(of=("self",)).select_related("profile").get(pk=mailbox.pk)
    if isinstance(error, ThrottledError):
        _wait_as_asked(locked, kind, error)
        return
    if outages.hold(mailbox=locked, kind=kind, error=error):
        return
    if not outages.is_connection_failure(error):
        outages.server_answered(profile=locked.profile, kind=kind)  # it answered, if only to refuse
    now = clock.now()
    fields = DIRECTION_FIELDS[kind]
    failures = fields.transient_failures_of(locked) + 1
    permanent = isinstance(error, PermanentError) or failures >= settings.SYNC_TRANSIENT_RETRY_LIMIT
    message = error.message
    if isinstance(error, TransientError) and permanent:
        message = f"{error.message} (failed {failures} times in a row; retries exhausted)"
    changes = {
        fields.transient_failures: 0 if permanent else failures,
        "last_sync_error_code": error.code,
        "last_sync_error_text": message,
        "last_sync_error_count": locked.last_sync_error_count + 1,
        "last_sync_error_on": now,
        "modified_on": now,
    }
    if permanent:
        disable = {fields.status: SyncStatus.FAILURE, fields.enabled: False, "disabled_reason": message}
        changes |= disable
    else:
        minutes = settings.SYNC_TRANSIENT_RETRY_MINUTES
        changes[fields.postponed_until] = now + timedelta(minutes=minutes)
    Mailbox.objects.filter(pk=locked.pk).update(**changes)
    level = AlertLevel.ERROR if permanent else AlertLevel.WARNING
    alerts.record_alert(level=level, category=kind, code=error.code, message=message, mailbox=locked)


def _wait_as_asked(mailbox: Mailbox, kind: str, error: ThrottledError) -> None:
    """The server answered, asking for a pause: postpone the direction that long,
    its retries untouched (a pause asked for is not a failure), and say so."""
    outages.server_answered(profile=mailbox.profile, kind=kind)
    # A Retry-After of days would stall the mailbox on one header's word.
    wait = min(max(error.retry_after, 1.0), float(settings.SYNC_THROTTLE_MAX_WAIT_SECONDS))
    now = clock.now()
    until = now + timedelta(seconds=wait)
    Mailbox.objects.filter(pk=mailbox.pk).update(
        **{DIRECTION_FIELDS[kind].postponed_until: until, "modified_on": now}
    )
    message = f"{error.message} The mailbox waits {wait:g} s, as the server asked, then goes on."
    alerts.record_alert(
        level=AlertLevel.WARNING, category=kind, code=error.code, message=message, mailbox=mailbox
    )
