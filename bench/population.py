"""A population of N real mailboxes for the scale-out benchmarks (B6): every one a
CRM user's mailbox on the benchmark's Dovecot, with a Dovecot user of its own (an
empty INBOX), its schedule, its folder cursor and a day of sync runs behind it,
bulk-loaded with COPY (bench/bulk.py). Any of them can be polled for real; the
database holds what N mailboxes leave in it.

The rows are copies of one mailbox made by ``mailboxes.services.mailbox_create``
(as test & enable leaves it: approved, incoming enabled, its own credentials), so
a field added to the model with a default needs nothing here. Every Dovecot user
has the same password, so the template's encrypted password serves all of them.
Needs Django set up.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from psycopg.types.json import Jsonb

from bench.bulk import copy_rows, reset_sequences
from bench.email_crm import user_mailbox
from bench.mail_stack import MailStack
from crm.choices import TrackIncomingEmail
from crm.models import CrmUser
from mailboxes.models import Mailbox
from profiles.models import EmailServerProfile
from sync.models import FolderCursor, MailboxSchedule, SyncKind, SyncRun

# Not due for a while: only the mailboxes a measurement makes due are polled. Within the longest
# wait the scheduler sets (the idle cap, SYNC_IDLE_BACKOFF_MAX_MINUTES, 30): a due time further
# ahead is taken for a clock gone back and is due at once (sync.clock.came). The benchmarks push
# it on again before each measured step (``postpone``), as their runs last longer than this.
NOT_DUE = timedelta(minutes=20)
POSTPONE_SQL = (
    "UPDATE sync_mailboxschedule SET next_due_on = now() + interval '20 minutes'"
    " WHERE lease_token IS NULL AND next_due_on < now() + interval '15 minutes'"
)


@dataclass
class Population:
    ids: list[int]  # the mailboxes, in id order
    seconds: float  # to build it (not timed by any figure)


def populate(
    stack: MailStack,
    profile: EmailServerProfile,
    *,
    count: int,
    history_hours: int,
    prefix: str,
    now: datetime,
) -> Population:
    """``count`` mailboxes; ``history_hours`` of hourly incoming runs behind each (the seed of
    bench/seed.py keeps 24: what retention leaves is longer, see bench/README.md)."""
    started = time.monotonic()
    password = "bench-population-password"  # noqa: S105 - the test Dovecot's, thrown away
    template = user_mailbox(
        stack.add_user(f"{prefix}-template", password), profile, name=f"{prefix} template"
    )
    users = [stack.add_user(f"{prefix}-{number:06d}", password).address for number in range(count)]
    first_user = _next_id(CrmUser)
    first_box = _next_id(Mailbox)
    ids = list(range(first_box, first_box + count))
    template_row = _raw_row(template.pk)
    Mailbox.objects.filter(pk=template.pk).delete()  # its Dovecot user stays, unused
    with connection.cursor() as cursor:
        # The ids are consistent by construction; skipping the foreign-key triggers makes COPY fast
        # (as bench/seed.py does).
        cursor.execute("SET session_replication_role = replica")
    try:
        copy_rows(CrmUser, _users(users, first_user, now))
        copy_rows(Mailbox, _mailboxes(template_row, users, first_user, first_box))
        copy_rows(MailboxSchedule, _schedules(ids, profile.pk, now))
        copy_rows(FolderCursor, _cursors(ids, now))
        copy_rows(SyncRun, _runs(ids, history_hours, now))
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = origin")
    reset_sequences([CrmUser, Mailbox, MailboxSchedule, FolderCursor, SyncRun])
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")  # as autovacuum would have, on a live system
    return Population(ids, time.monotonic() - started)


def _next_id(model: type[Any]) -> int:
    last = model.objects.order_by("-pk").values_list("pk", flat=True).first()
    return (last or 0) + 1


def _raw_row(mailbox_id: int) -> dict[str, Any]:
    """The template's columns as stored (the password still encrypted)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {Mailbox._meta.db_table} WHERE id = %s", [mailbox_id])  # noqa: S608
        names = [column.name for column in cursor.description]
        values = cursor.fetchone()
    by_column = {field.column: field.attname for field in Mailbox._meta.concrete_fields}
    return {
        by_column[name]: Jsonb(value) if isinstance(value, dict | list) else value
        for name, value in zip(names, values, strict=True)
    }


def _users(addresses: list[str], first: int, now: datetime) -> Iterator[dict[str, Any]]:
    for offset, address in enumerate(addresses):
        yield {
            "id": first + offset,
            "full_name": f"Population {offset:06d}",
            "email": address,
            "track_incoming_email": TrackIncomingEmail.ALL,
            "created_on": now,
            "modified_on": now,
        }


def _mailboxes(
    template: dict[str, Any], addresses: list[str], first_user: int, first_box: int
) -> Iterator[dict[str, Any]]:
    for offset, address in enumerate(addresses):
        yield template | {
            "id": first_box + offset,
            "name": f"Population {offset:06d}",
            "email_address": address,
            "username": address,
            "user_id": first_user + offset,
            # Incoming only: B6 measures incoming polls; the dispatcher's other kinds find nothing due.
            "outgoing_enabled": False,
        }


def _schedules(ids: list[int], profile_id: int, now: datetime) -> Iterator[dict[str, Any]]:
    rng = random.Random(len(ids))  # noqa: S311 - made-up data, not secrets
    for mailbox_id in ids:
        yield {
            "mailbox_id": mailbox_id,
            "kind": SyncKind.INCOMING,
            "profile_id": profile_id,
            "next_due_on": now + NOT_DUE + timedelta(seconds=rng.randint(0, 300)),
            "idle_runs": 5,
            "last_run_on": now - timedelta(minutes=rng.randint(0, 30)),
        }


def _cursors(ids: list[int], now: datetime) -> Iterator[dict[str, Any]]:
    # UIDVALIDITY 1 is not Dovecot's: a mailbox's first poll here corrects it (untimed warm-up).
    for mailbox_id in ids:
        yield {
            "mailbox_id": mailbox_id,
            "folder": "INBOX",
            "generation": 1,
            "uidvalidity": 1,
            "last_uid": 0,
            "updated_on": now,
        }


def _runs(ids: list[int], hours: int, now: datetime) -> Iterator[dict[str, Any]]:
    rng = random.Random(hours)  # noqa: S311 - made-up data, not secrets
    for mailbox_id in ids:
        for hours_ago in range(hours, 0, -1):
            started = now - timedelta(hours=hours_ago, seconds=rng.randint(0, 3000))
            yield {
                "mailbox_id": mailbox_id,
                "kind": SyncKind.INCOMING,
                "started_on": started,
                "finished_on": started + timedelta(milliseconds=rng.randint(20, 2000)),
                "outcome": "success",
            }
