"""The "download mailbox details" report: one mailbox's settings, statuses,
recent runs, errors and alerts, and (for administrators) the versions running,
as plain text to attach to a support ticket.

Built from allow-lists of fields, never by walking a model, so no credential
can slip in; the finished text is then passed through the mailbox's redactor
as well, in case a server's error message echoed a password."""

from __future__ import annotations

import platform
import sqlite3
from collections.abc import Iterable
from datetime import datetime
from importlib import metadata
from typing import Any, cast

import celery
import django
from django.db import connection
from django.db.models import Field, Model
from django.utils.text import capfirst

from console.mailbox_overview import MailboxOverview, Redactor
from mailboxes.models import Mailbox
from profiles.models import ADDITIONAL_SETTINGS
from sync import clock

MAILBOX_FIELDS = (
    "name",
    "email_address",
    "is_forward_mailbox",
    "folders",
    "allow_credentials_for_email_processing",
    "needs_credentials",
    "delete_email_after_processing",
    "process_email_received_after",
    "configuration_generation",
)
MAILBOX_STATUS_FIELDS = (
    "approval_status",
    "approval_changed_on",
    "test_completed_on",
    "disabled_reason",
    "last_sync_error_code",
    "last_sync_error_text",
    "last_sync_error_count",
    "last_sync_error_on",
    "items_processed_last_sync",
    "items_failed_last_sync",
)
PROFILE_FIELDS = (
    "name",
    "server_type",
    "is_active",
    "auto_discover_server_location",
    "incoming_server_location",
    "incoming_port",
    "incoming_use_ssl",
    "incoming_auth_protocol",
    "incoming_use_impersonation",
    "outgoing_server_location",
    "outgoing_port",
    "outgoing_use_ssl",
    "outgoing_auth_protocol",
    "outgoing_use_impersonation",
    "credentials_source",
    "use_same_settings_for_outgoing",
    "oauth_tenant_id",
    *ADDITIONAL_SETTINGS,
    "last_test_started_on",
    "last_test_result",
    "last_test_message",
)


def support_report(*, overview: MailboxOverview, with_versions: bool) -> str:
    """The report's text; every secret of the mailbox and its profile removed.

    The versions running are for administrators only (WITH_VERSIONS): to anyone
    else they would only be a map of which known flaws to try."""
    sections = [
        [f"serversync mailbox details, generated {_value(clock.now())}"],
        _section(
            "Mailbox", [("Owner", _owner(overview.mailbox)), *_fields(overview.mailbox, MAILBOX_FIELDS)]
        ),
        _section("Credentials (never shown; only whether they are set)", _credentials(overview)),
        _section("Server profile", _profile(overview)),
        _section("Status", _status(overview)),
        _section("Latest test & enable", _latest_test(overview)),
        _section("Recent email sync runs (newest first)", _runs(overview)),
        *_act_sections(overview),
        _section("Folder cursors (current configuration)", _cursors(overview)),
        _section("Recent alerts", _alerts(overview)),
        _section("Quarantined messages", _quarantined(overview)),
    ]
    if with_versions:
        sections.append(_section("Versions", _versions()))
    text = "\n\n".join("\n".join(lines) for lines in sections) + "\n"
    return Redactor(overview.mailbox, overview.profile)(text)


def _section(title: str, rows: Iterable[tuple[str, str] | str]) -> list[str]:
    lines = [f"== {title} =="]
    for row in rows:
        lines.append(row if isinstance(row, str) else f"{row[0]}: {row[1]}")
    if len(lines) == 1:
        lines.append("(none)")
    return lines


def _value(value: object) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return str(value)


def _fields(record: Model, names: Iterable[str]) -> list[tuple[str, str]]:
    rows = []
    for name in names:
        field = cast("Field[Any, Any]", record._meta.get_field(name))  # a concrete field: the lists name them
        value = getattr(record, name)
        if field.choices:
            value = dict(field.flatchoices).get(value, value)
        rows.append((str(capfirst(field.verbose_name)), _value(value)))
    return rows


def _owner(mailbox: Mailbox) -> str:
    if mailbox.user is not None:
        return f"User: {mailbox.user.full_name} <{mailbox.user.email}>"
    if mailbox.queue is not None:
        owner = mailbox.queue.owner
        return f"Queue: {mailbox.queue.name}" + (f" (owned by {owner.full_name})" if owner else "")
    return "Forward mailbox (no owner)"


def _credentials(overview: MailboxOverview) -> list[tuple[str, str]]:
    return [(c.label, "set" if c.is_set else "not set") for c in overview.credentials]


def _profile(overview: MailboxOverview) -> list[tuple[str, str] | str]:
    if overview.profile is None:
        return ["No server profile."]
    if not overview.show_profile_settings:
        return [("Name", overview.profile.name), ("Server type", overview.profile.get_server_type_display())]
    return list(_fields(overview.profile, PROFILE_FIELDS))


def _status(overview: MailboxOverview) -> list[tuple[str, str] | str]:
    rows: list[tuple[str, str] | str] = list(_fields(overview.mailbox, MAILBOX_STATUS_FIELDS))
    rows.append(("Waits for approval before processing", _value(overview.awaits_approval)))
    for d in overview.directions:
        backoff = f", in backoff until {_value(d.postponed_until)}" if d.in_backoff else ""
        rows.append(
            (
                d.label,
                f"method {d.method}; status {d.status_label}; "
                f"{'enabled' if d.enabled else 'not enabled'}; "
                f"transient failures {d.transient_failures}{backoff}",
            )
        )
    return rows


def _latest_test(overview: MailboxOverview) -> list[tuple[str, str] | str]:
    test = overview.latest_test
    if test is None:
        return []
    rows: list[tuple[str, str] | str] = [
        ("State", test.get_state_display()),
        ("Queued", _value(test.queued_on)),
        ("Finished", _value(test.finished_on)),
        ("Summary", _value(test.summary)),
    ]
    for direction, result in (test.results or {}).items():
        if isinstance(result, dict):
            outcome, code, message = (result.get(key, "") for key in ("outcome", "code", "message"))
            rows.append((direction, f"{outcome or '-'} {code}: {message}"))
    return rows


def _runs(overview: MailboxOverview) -> list[str]:
    lines = []
    for run in overview.runs:
        duration = "running" if run.duration_seconds is None else f"{run.duration_seconds:.1f} s"
        error = f" | {run.error_code}: {run.error_text}" if run.error_code else ""
        lines.append(
            f"{_value(run.started_on)} {run.kind} {run.get_outcome_display() or 'running'} ({duration}): "
            f"received {run.received}, tracked {run.tracked}, linked {run.linked}, "
            f"not tracked {run.not_tracked}, quarantined {run.quarantined}, "
            f"sent {run.sent}, failed {run.failed}{error}"
        )
    return lines


def _act_sections(overview: MailboxOverview) -> list[list[str]]:
    """Appointments, contacts and tasks, when the mailbox syncs them: runs in the ACT
    counters' own words, links per entity, the newest item problems."""
    act = overview.act
    if act is None:
        return []
    runs = []
    for run in act.runs:
        duration = "running" if run.duration_seconds is None else f"{run.duration_seconds:.1f} s"
        error = f" | {run.error_code}: {run.error_text}" if run.error_code else ""
        runs.append(
            f"{_value(run.started_on)} {run.get_outcome_display() or 'running'} ({duration}): "
            f"server changes read {run.received}, CRM records created or changed {run.tracked}, "
            f"linked to existing items {run.linked}, server items written {run.sent}, "
            f"item problems {run.failed}{error}"
        )
    problems = [
        f"{_value(row.problem.created_on)} {row.entity_label} {row.problem.title or '-'}: "
        + (
            f"{row.field_label}: {row.dropped_side} change dropped ({row.dropped}), kept {row.kept}"
            if row.is_conflict
            else f"{row.problem.get_kind_display()}: {row.problem.message}"
        )
        for row in act.problems
    ]
    return [
        _section("Appointments, contacts and tasks: recent runs (newest first)", runs),
        _section(
            "Appointments, contacts and tasks: linked items", [(c.label, str(c.count)) for c in act.linked]
        ),
        _section(f"Appointments, contacts and tasks: item problems ({act.problem_count} in all)", problems),
    ]


def _cursors(overview: MailboxOverview) -> list[str]:
    return [
        f"{c.folder}: uidvalidity {_value(c.uidvalidity)}, last UID {c.last_uid}, "
        f"highest modseq {_value(c.highestmodseq)}, UIDLs seen {len(c.seen_uidls)}, "
        f"updated {_value(c.updated_on)}"
        for c in overview.cursors
    ]


def _alerts(overview: MailboxOverview) -> list[str]:
    lines = []
    for alert in overview.alerts:
        state = "resolved" if alert.resolved_on else "acknowledged" if alert.acknowledged_on else "open"
        lines.append(
            f"[{alert.get_level_display()}] {alert.category}/{alert.code} x{alert.count} "
            f"first {_value(alert.first_seen)} last {_value(alert.last_seen)} ({state}): {alert.message}"
        )
    return lines


def _quarantined(overview: MailboxOverview) -> list[str]:
    counts = ", ".join(f"{state} {n}" for state, n in sorted(overview.quarantined_counts.items()))
    lines = [f"Counts: {counts or 'none'}"]
    for held in overview.quarantined:
        lines.append(
            f"#{held.pk} {held.folder} {held.server_id} {held.size} bytes, {held.get_state_display()}, "
            f"attempts {held.attempts}, received {_value(held.server_received_on)}: "
            f"{held.error_code}: {held.error_text}"
        )
    return lines


def _versions() -> list[tuple[str, str]]:
    return [
        ("serversync", metadata.version("serversync")),
        ("Python", platform.python_version()),
        ("Django", django.get_version()),
        ("Celery", celery.__version__),
        ("Database", _database_version()),
    ]


def _database_version() -> str:
    if connection.vendor == "postgresql":
        number = connection.pg_version  # type: ignore[attr-defined]
        return f"PostgreSQL {number // 10000}.{number % 10000}"
    if connection.vendor == "sqlite":
        return f"SQLite {sqlite3.sqlite_version}"
    return connection.vendor
