"""What a run's result does to a mailbox: statuses, retries, disabling and alerts.

Permanent errors disable the direction at once; transient ones retry
``SYNC_TRANSIENT_RETRY_LIMIT`` times ``SYNC_TRANSIENT_RETRY_MINUTES`` apart,
then count as permanent — as Dynamics 365 does. A server that does not answer
many mailboxes of one profile at once is an outage (``sync.outages``), not a
reason to spend their retries.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction

from mailboxes.models import Mailbox, SyncStatus
from sync import alerts, clock, outages
from sync.errors import PermanentError, SyncError, TransientError
from sync.models import AlertLevel
from sync.sql import Condition, quoted


def record_success(*, mailbox: Mailbox, kind: str, processed: int = 0, failed: int = 0) -> None:
    """A run of ``kind`` worked: the mailbox is healthy, its alerts of that kind
    are resolved and its profile's outage, if any, is over."""
    open_alerts, outage = _healthy(mailbox, kind, processed, failed)
    if open_alerts:
        alerts.resolve_alerts(mailbox=mailbox, category=kind)
    if outage:
        outages.server_answered(profile=mailbox.profile, kind=kind)


def _healthy(mailbox: Mailbox, kind: str, processed: int, failed: int) -> tuple[bool, bool]:
    """Mark the mailbox healthy, and ask whether it has alerts to resolve and its
    profile an outage to end: one statement on PostgreSQL, two elsewhere.

    A healthy mailbox polled again with nothing new, no open alert and no outage
    then costs this one statement, which writes nothing, instead of four UPDATEs
    that match no row. The answer is the database's at this moment (not the
    run's possibly stale ``mailbox``): what those UPDATEs' own WHERE would have
    seen; and each write that follows keeps its WHERE."""
    update, update_params = _success_update(mailbox, kind, processed, failed)
    checks = [
        alerts.resolvable_sql(mailbox=mailbox, category=kind),
        *outages.outage_sql(profile=mailbox.profile, kind=kind),
    ]
    ask = "SELECT " + ", ".join(sql for sql, _ in checks)
    ask_params = [value for _, params in checks for value in params]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # A data-modifying WITH runs to completion whether the query reads it or not.
            cursor.execute(f"WITH healthy AS ({update}) {ask}", update_params + ask_params)
        else:
            cursor.execute(update, update_params)
            cursor.execute(ask, ask_params)
        row = cursor.fetchone()
    return bool(row[0]), any(row[1:])


def _success_update(mailbox: Mailbox, kind: str, processed: int, failed: int) -> Condition:
    """The UPDATE that records a success: it matches no row, and writes nothing,
    when the mailbox already says exactly that."""
    table, pk, status, failures, postponed, items, items_failed, modified_on = quoted(
        Mailbox,
        "id",
        f"{kind}_status",
        f"{kind}_transient_failures",
        f"{kind}_postponed_until",
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


@transaction.atomic
def record_failure(*, mailbox: Mailbox, kind: str, error: SyncError) -> None:
    """A run of ``kind`` failed with ``error``: retry later, or disable with the reason.
    A connection failure during its profile's outage is held instead, its retries untouched."""
    locked = Mailbox.objects.select_for_update(of=("self",)).select_related("profile").get(pk=mailbox.pk)
    if outages.hold(mailbox=locked, kind=kind, error=error):
        return
    if not outages.is_connection_failure(error):
        outages.server_answered(profile=locked.profile, kind=kind)  # it answered, if only to refuse
    now = clock.now()
    failures = getattr(locked, f"{kind}_transient_failures") + 1
    permanent = isinstance(error, PermanentError) or failures >= settings.SYNC_TRANSIENT_RETRY_LIMIT
    message = error.message
    if isinstance(error, TransientError) and permanent:
        message = f"{error.message} (failed {failures} times in a row; retries exhausted)"
    changes = {
        f"{kind}_transient_failures": 0 if permanent else failures,
        "last_sync_error_code": error.code,
        "last_sync_error_text": message,
        "last_sync_error_count": locked.last_sync_error_count + 1,
        "last_sync_error_on": now,
        "modified_on": now,
    }
    if permanent:
        disable = {f"{kind}_status": SyncStatus.FAILURE, f"{kind}_enabled": False, "disabled_reason": message}
        changes |= disable
    else:
        minutes = settings.SYNC_TRANSIENT_RETRY_MINUTES
        changes[f"{kind}_postponed_until"] = now + timedelta(minutes=minutes)
    Mailbox.objects.filter(pk=locked.pk).update(**changes)
    level = AlertLevel.ERROR if permanent else AlertLevel.WARNING
    alerts.record_alert(level=level, category=kind, code=error.code, message=message, mailbox=locked)
