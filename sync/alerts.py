"""Recording alerts (counted, never duplicated while open) and sync runs."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F

from crm.models import OrganizationSettings
from mailboxes.models import Mailbox
from profiles.models import EmailServerProfile
from sync import clock
from sync.errors import SyncError
from sync.models import AlertLevel, MailboxAlert, SyncRun
from sync.sql import Condition, quoted

_LEVEL_SETTING = {
    AlertLevel.ERROR: "record_error_alerts",
    AlertLevel.WARNING: "record_warning_alerts",
    AlertLevel.INFORMATION: "record_information_alerts",
}


# Alerts no later success can answer: someone must look (an interrupted send
# may or may not have arrived). Only naming the code resolves them.
SETTLED_BY_PEOPLE = frozenset({"outcome_unknown"})


def subject_key(*, mailbox: Mailbox | None = None, profile: EmailServerProfile | None = None) -> str:
    if mailbox is not None:
        return f"mailbox:{mailbox.pk}"
    if profile is not None:
        return f"profile:{profile.pk}"
    raise ValueError("An alert is about a mailbox or a profile.")


def record_alert(
    *,
    level: str,
    category: str,
    code: str,
    message: str,
    mailbox: Mailbox | None = None,
    profile: EmailServerProfile | None = None,
) -> MailboxAlert | None:
    """Record an alert, or count a repeat on the open one with the same subject,
    category and code. Levels the organization does not record are dropped."""
    if not getattr(OrganizationSettings.load(), _LEVEL_SETTING[AlertLevel(level)]):
        return None
    key = subject_key(mailbox=mailbox, profile=profile)
    if profile is None and mailbox is not None:
        profile = mailbox.profile
    now = clock.now()
    open_alert = MailboxAlert.objects.filter(
        subject_key=key, category=category, code=code, resolved_on__isnull=True
    )
    for _ in range(3):
        if open_alert.update(count=F("count") + 1, last_seen=now, message=message, level=level):
            return open_alert.get()
        try:
            with transaction.atomic():
                return MailboxAlert.objects.create(
                    level=level,
                    category=category,
                    code=code,
                    message=message,
                    mailbox=mailbox,
                    profile=profile,
                    subject_key=key,
                    first_seen=now,
                    last_seen=now,
                )
        except IntegrityError:
            continue  # another worker opened it first: count on theirs
    raise RuntimeError(f"Could not record alert {key} {category} {code}")


def resolve_alerts(
    *,
    mailbox: Mailbox | None = None,
    profile: EmailServerProfile | None = None,
    category: str,
    code: str | None = None,
    by: Any = None,
) -> int:
    """Close the open alerts of one category (and code, if given) for a mailbox
    or profile: it works again. Alerts SETTLED_BY_PEOPLE close only by their code."""
    key = subject_key(mailbox=mailbox, profile=profile)
    open_alerts = MailboxAlert.objects.filter(subject_key=key, category=category, resolved_on__isnull=True)
    if code is not None:
        open_alerts = open_alerts.filter(code=code)
    else:
        open_alerts = open_alerts.exclude(code__in=SETTLED_BY_PEOPLE)
    return open_alerts.update(resolved_on=clock.now(), resolved_by=by)


def resolvable_sql(*, mailbox: Mailbox, category: str) -> Condition:
    """Whether ``resolve_alerts(mailbox=mailbox, category=category)`` would close
    an alert, as an SQL condition (the same WHERE) that a caller asks beside
    others in one statement: ``mailbox_state.record_success``, on every poll,
    where building querysets cost more than the statement."""
    table, key, kind, code, resolved_on = quoted(
        MailboxAlert, "subject_key", "category", "code", "resolved_on"
    )
    settled = sorted(SETTLED_BY_PEOPLE)
    sql = (
        f"EXISTS (SELECT 1 FROM {table} WHERE {key} = %s AND {kind} = %s AND {resolved_on} IS NULL "  # noqa: S608
        f"AND {code} NOT IN ({', '.join(['%s'] * len(settled))}))"
    )
    return sql, [subject_key(mailbox=mailbox), category, *settled]


def alert_acknowledge(*, alert: MailboxAlert, by: Any) -> MailboxAlert:
    if alert.acknowledged_on is None:
        alert.acknowledged_on, alert.acknowledged_by = clock.now(), by
        alert.save(update_fields=["acknowledged_on", "acknowledged_by"])
    return alert


def alert_resolve(*, alert: MailboxAlert, by: Any) -> MailboxAlert:
    if alert.resolved_on is None:
        alert.resolved_on, alert.resolved_by = clock.now(), by
        alert.save(update_fields=["resolved_on", "resolved_by"])
    return alert


def run_finish(run: SyncRun, outcome: str, error: SyncError | None = None) -> None:
    """Close a sync run with its outcome (and the error that ended it), and save it."""
    run_close(run, outcome, error)
    run.save()


def run_close(run: SyncRun, outcome: str, error: SyncError | None = None) -> None:
    """Close a sync run with its outcome, for the caller to save (``mailbox_state.record_success``)."""
    run.finished_on, run.outcome = clock.now(), outcome
    if error is not None:
        run.error_code, run.error_text = error.code, error.message
