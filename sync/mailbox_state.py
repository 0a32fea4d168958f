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
from django.db import transaction

from mailboxes.models import Mailbox, SyncStatus
from sync import alerts, clock, outages
from sync.errors import PermanentError, SyncError, TransientError
from sync.models import AlertLevel


def record_success(*, mailbox: Mailbox, kind: str, processed: int = 0, failed: int = 0) -> None:
    state = {
        f"{kind}_status": SyncStatus.SUCCESS,
        f"{kind}_transient_failures": 0,
        f"{kind}_postponed_until": None,
        "items_processed_last_sync": processed,
        "items_failed_last_sync": failed,
    }
    # A healthy mailbox polled again with nothing new matches no row: nothing is
    # written (decided by the database, not by a possibly stale ``mailbox``).
    Mailbox.objects.filter(pk=mailbox.pk).exclude(**state).update(**state, modified_on=clock.now())
    alerts.resolve_alerts(mailbox=mailbox, category=kind)
    outages.server_answered(profile=mailbox.profile, kind=kind)


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
