"""A large organization for the page benchmarks, bulk-loaded with COPY (bench/bulk.py).

Volumes for 10,000 mailboxes and 1,000,000 emails (the defaults): 9,000 users'
mailboxes, 900 queues', 100 forward mailboxes on six profiles; the email
activities spread over 60 days with ~2.2 million parties; a receipt for every
received message (and for untracked mail); 24 hours of sync runs; 7 days of
hourly roll-ups and their per-profile totals; ~4,000 alerts, 1,000 of them
resolved history. Statuses are spread as in a real organization: most
mailboxes succeed, some fail and are disabled, some wait in backoff, a few
await approval, and one profile fails for most of its mailboxes.

Deterministic: one seed value gives the same rows (times relative to ``now``).
User n's mailbox is mailbox n, and queue q's mailbox is mailbox users + q.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import Group, User
from django.db import connection
from psycopg.types.json import Jsonb

from bench.bulk import copy_rows, report, reset_sequences
from crm.models import Account, ActivityParty, Contact, CrmUser, EmailActivity, Lead, Queue
from mailboxes.models import Mailbox
from profiles.models import EmailServerProfile, ServerType
from sync.models import (
    FolderCursor,
    HourlyRollup,
    MailboxAlert,
    MailboxSchedule,
    MailboxTest,
    QuarantinedMessage,
    Receipt,
    SyncRun,
    WorkerHeartbeat,
)

ADMIN_USERNAME = "bench-admin"
EMAIL_DAYS = 60
RUN_HOURS = 24
ROLLUP_DAYS = 7
QUARANTINED = 1000
RESOLVED_ALERTS = 1000
UNSETTLED_SENDS = 40
CONTACTS, ACCOUNTS, LEADS = 50_000, 5_000, 5_000
KINDS = ("incoming", "outgoing", "act")
LOADED = [
    *(CrmUser, Queue, Account, Contact, Lead, Mailbox, EmailActivity, ActivityParty, Receipt),
    *(QuarantinedMessage, SyncRun, HourlyRollup, MailboxAlert, MailboxTest, MailboxSchedule),
    *(FolderCursor, WorkerHeartbeat),
]
EXCHANGE = (ServerType.EXCHANGE_ONLINE, ServerType.EXCHANGE_SERVER)


@dataclass(frozen=True)
class ProfilePlan:
    name: str
    server_type: str
    share: float  # of the mailboxes
    failing: float  # share of its mailboxes whose incoming fails


PROFILES = [
    ProfilePlan("Exchange Online", ServerType.EXCHANGE_ONLINE, 0.50, 0.03),
    ProfilePlan("Exchange Server (on premises)", ServerType.EXCHANGE_SERVER, 0.20, 0.05),
    ProfilePlan("IMAP mail.example.com", ServerType.IMAP_SMTP, 0.20, 0.04),
    ProfilePlan("IMAP legacy.example.com", ServerType.IMAP_SMTP, 0.04, 0.60),  # the sick one
    ProfilePlan("POP3 branch offices", ServerType.POP3_SMTP, 0.03, 0.05),
    ProfilePlan("IMAP partners", ServerType.IMAP_SMTP, 0.03, 0.05),
]
SICK_PROFILE = 3
FAILURES = {
    "incoming": {
        "authentication_failed": "The server refused the credentials (AUTHENTICATIONFAILED).",
        "mailbox_not_found": "The mailbox or its INBOX does not exist on the server.",
        "connection_refused": "Connection refused (failed 10 times in a row; retries exhausted)",
        "certificate_invalid": "The server's certificate is not trusted: self-signed certificate.",
    },
    "outgoing": {
        "smtp_auth_failed": "535 5.7.8 Authentication credentials invalid.",
        "sender_rejected": "550 5.7.1 Client does not have permissions to send as this sender.",
    },
    "act": {"ews_access_denied": "The account does not have permission to impersonate the mailbox."},
}
BODY = (
    "Hello,\n\nthank you for your message about the order. We looked into it and will come back to "
    "you with the delivery date as soon as the warehouse confirms it.\n\nKind regards\n"
)


@dataclass
class Box:
    """What the later tables need to know about a seeded mailbox."""

    id: int
    address: str
    user_id: int | None
    queue_id: int | None
    profile: int = 0  # index into PROFILES
    profile_id: int = 0
    approved: bool = True
    status: dict[str, str] = field(default_factory=dict)
    failure: dict[str, str] = field(default_factory=dict)  # kind -> error code
    backoff: bool = False


@dataclass
class Organization:
    now: datetime
    rng: random.Random
    users: int
    queues: int
    forward: int
    emails: int
    admin_id: int = 0
    profile_ids: list[int] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    # Users with an interrupted send ("outcome unknown") and an alert about it.
    unsettled_senders: list[int] = field(default_factory=list)
    quarantined_boxes: list[int] = field(default_factory=list)


def seed(*, mailboxes: int, emails: int, now: datetime, seed_value: int = 20240601) -> Organization:
    """Fill the (migrated, empty) database; returns what was planned."""
    with connection.cursor() as cursor:
        # The ids are consistent by construction; skipping the foreign-key triggers makes COPY fast.
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("SET synchronous_commit = off")
    queues, forward = mailboxes * 9 // 100, mailboxes // 100
    org = Organization(
        now=now,
        rng=random.Random(seed_value),  # noqa: S311 - made-up data, not secrets
        users=mailboxes - queues - forward,
        queues=queues,
        forward=forward,
        emails=emails,
    )
    _admin_and_profiles(org)
    copy_rows(CrmUser, _crm_users(org))
    copy_rows(Queue, _queues(org))
    copy_rows(Account, _accounts(org))
    copy_rows(Contact, _contacts(org))
    copy_rows(Lead, _leads(org))
    copy_rows(Mailbox, _mailboxes(org))
    plan = list(_email_plan(org))
    copy_rows(EmailActivity, (email.row for email in plan))
    copy_rows(ActivityParty, _parties(org, plan))
    copy_rows(Receipt, _receipts(org, plan))
    del plan
    copy_rows(QuarantinedMessage, _quarantined(org))
    copy_rows(SyncRun, _sync_runs(org))
    copy_rows(HourlyRollup, _rollups(org))
    _hourly_totals()
    copy_rows(MailboxSchedule, _schedules(org))
    copy_rows(FolderCursor, _cursors(org))
    copy_rows(MailboxTest, _tests(org))
    copy_rows(WorkerHeartbeat, _heartbeats(org))
    copy_rows(MailboxAlert, _alerts(org))
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = origin")
    reset_sequences(LOADED)
    CrmUser.objects.create(user_id=org.admin_id, full_name="Bench Administrator", email="admin@bench.example")
    return org


# -- people and records ---------------------------------------------------------------------------


def _admin_and_profiles(org: Organization) -> None:
    admin = User.objects.create_superuser(ADMIN_USERNAME, "admin@bench.example", password=None)
    admin.groups.add(Group.objects.get_or_create(name="Administrators")[0])
    org.admin_id = admin.pk
    for number, plan in enumerate(PROFILES, start=1):
        exchange = plan.server_type in EXCHANGE
        profile = EmailServerProfile.objects.create(
            name=plan.name,
            server_type=plan.server_type,
            incoming_server_location=(
                f"https://mail{number}.example.com/EWS/Exchange.asmx"
                if exchange
                else f"mail{number}.example.com"
            ),
            outgoing_server_location=f"smtp{number}.example.com",
        )
        org.profile_ids.append(profile.pk)


def _long_ago(org: Organization) -> datetime:
    return org.now - timedelta(days=400)


def _crm_users(org: Organization) -> Iterator[dict[str, Any]]:
    created = _long_ago(org)
    for n in range(1, org.users + 1):
        yield {
            "id": n,
            "full_name": f"User {n:05d}",
            "email": f"user{n}@bench.example",
            "created_on": created,
            "modified_on": created,
        }


def _queues(org: Organization) -> Iterator[dict[str, Any]]:
    created = _long_ago(org)
    for q in range(1, org.queues + 1):
        yield {
            "id": q,
            "name": f"Queue {q:04d}",
            "email": f"queue{q}@bench.example",
            "owner_id": (q * 10) % org.users + 1,
            "created_on": created,
            "modified_on": created,
        }


def _accounts(org: Organization) -> Iterator[dict[str, Any]]:
    created = _long_ago(org)
    for a in range(1, ACCOUNTS + 1):
        yield {
            "id": a,
            "name": f"Customer {a:04d} Ltd",
            "email": f"info@customer{a}.example",
            "owner_id": a % org.users + 1,
            "created_on": created,
            "modified_on": created,
        }


def _contacts(org: Organization) -> Iterator[dict[str, Any]]:
    created = _long_ago(org)
    for c in range(1, CONTACTS + 1):
        yield {
            "id": c,
            "first_name": "Pat",
            "last_name": f"Contact{c:05d}",
            "email": _contact_address(c),
            "account_id": c % ACCOUNTS + 1,
            "owner_id": c % org.users + 1,
            "created_on": created,
            "modified_on": created,
        }


def _contact_address(number: int) -> str:
    return f"contact{number}@customer{number % ACCOUNTS + 1}.example"


def _leads(org: Organization) -> Iterator[dict[str, Any]]:
    created = _long_ago(org)
    for n in range(1, LEADS + 1):
        yield {
            "id": n,
            "last_name": f"Lead{n:05d}",
            "company_name": f"Prospect {n}",
            "email": f"lead{n}@prospect.example",
            "owner_id": n % org.users + 1,
            "created_on": created,
            "modified_on": created,
        }


# -- mailboxes ------------------------------------------------------------------------------------


def _mailboxes(org: Organization) -> Iterator[dict[str, Any]]:
    weights = [plan.share for plan in PROFILES]
    for number in range(1, org.users + org.queues + org.forward + 1):
        box = _owner(org, number)
        box.profile = org.rng.choices(range(len(PROFILES)), weights)[0]
        box.profile_id = org.profile_ids[box.profile]
        org.boxes.append(box)
        yield _mailbox_row(org, box)


def _owner(org: Organization, number: int) -> Box:
    if number <= org.users:
        return Box(number, f"user{number}@bench.example", user_id=number, queue_id=None)
    queue = number - org.users
    if queue <= org.queues:
        return Box(number, f"queue{queue}@bench.example", user_id=None, queue_id=queue)
    return Box(number, f"forward{queue - org.queues}@bench.example", user_id=None, queue_id=None)


def _approval(rng: random.Random) -> str:
    roll = rng.random()
    for status, below in (("pending_approval", 0.03), ("rejected", 0.04), ("empty", 0.05)):
        if roll < below:
            return status
    return "approved"


def _plan_statuses(org: Organization, box: Box, methods: dict[str, str]) -> None:
    """Success for most; failures (which disable the direction) at the profile's rate."""
    rng = org.rng
    for kind, method in methods.items():
        if method == "none" or not box.approved:
            box.status[kind] = "not_run"
            continue
        failing = PROFILES[box.profile].failing * (1 if kind == "incoming" else 0.5)
        roll = rng.random()
        if roll < failing:
            box.status[kind] = "failure"
            box.failure[kind] = rng.choice(list(FAILURES[kind]))
        else:
            box.status[kind] = "not_run" if roll < failing + 0.04 else "success"
    box.backoff = box.status["incoming"] == "success" and rng.random() < 0.02


def _mailbox_row(org: Organization, box: Box) -> dict[str, Any]:
    rng, now = org.rng, org.now
    approval_status = _approval(rng)
    box.approved = approval_status == "approved"
    forward = box.user_id is None and box.queue_id is None
    syncs_act = (
        box.user_id is not None and PROFILES[box.profile].server_type in EXCHANGE and rng.random() < 0.4
    )
    methods = {
        "incoming": "server_side_sync",
        "outgoing": "none" if forward else "server_side_sync",
        "act": "server_side_sync" if syncs_act else "none",
    }
    _plan_statuses(org, box, methods)
    errors = [(code, FAILURES[kind][code]) for kind, code in box.failure.items()]
    if box.backoff:
        errors.append(("connection_timeout", "Timed out connecting to the server."))
    created = now - timedelta(days=rng.randint(30, 400))
    name = box.address.split("@")[0]
    return {
        "id": box.id,
        "name": name.replace("user", "User ").replace("queue", "Queue ").replace("forward", "Forward "),
        "email_address": box.address,
        "user_id": box.user_id,
        "queue_id": box.queue_id,
        "is_forward_mailbox": forward,
        "profile_id": box.profile_id,
        "approval_status": approval_status,
        **{f"{kind}_method": method for kind, method in methods.items()},
        **{f"{kind}_status": box.status[kind] for kind in KINDS},
        **{f"{kind}_enabled": box.status[kind] == "success" for kind in KINDS},
        "disabled_reason": " ".join(FAILURES[kind][code] for kind, code in box.failure.items()),
        "incoming_transient_failures": rng.randint(1, 8) if box.backoff else 0,
        "incoming_postponed_until": now + timedelta(seconds=rng.randint(60, 1500)) if box.backoff else None,
        "last_sync_error_code": errors[0][0] if errors else "",
        "last_sync_error_text": errors[0][1] if errors else "",
        "last_sync_error_count": rng.randint(1, 40) if errors else 0,
        "last_sync_error_on": now - timedelta(minutes=rng.randint(1, 600)) if errors else None,
        "items_processed_last_sync": rng.randint(0, 20),
        "test_completed_on": created + timedelta(hours=1) if box.status["incoming"] != "not_run" else None,
        "created_on": created,
        "modified_on": now - timedelta(minutes=rng.randint(0, 60)),
    }


# -- email activities, their parties and receipts ---------------------------------------------------


@dataclass
class _Email:
    id: int
    incoming: bool
    owner: int
    contact: int | None
    row: dict[str, Any]


def _email_plan(org: Organization) -> Iterator[_Email]:
    """Email activities in time order (ids grow with time), 65 % received."""
    rng, now = org.rng, org.now
    span = timedelta(days=EMAIL_DAYS).total_seconds()
    start = now - timedelta(days=EMAIL_DAYS)
    unsettled = rng.sample(range(max(1, org.emails - 5000), org.emails + 1), UNSETTLED_SENDS)
    org.unsettled_senders = rng.sample(range(1, org.users + 1), UNSETTLED_SENDS)
    sender_of = dict(zip(unsettled, org.unsettled_senders, strict=True))
    for number in range(1, org.emails + 1):
        created = start + timedelta(seconds=span * number / org.emails)
        incoming = number not in sender_of and rng.random() < 0.65
        # Some users get far more mail than others.
        owner = sender_of.get(number) or int(org.users * rng.random() ** 1.4) + 1
        regarding = rng.random()
        contact = rng.randint(1, CONTACTS) if regarding < 0.7 else None
        message_id = f"<bench-{number}@bench.example>"
        row = {
            "id": number,
            "direction": "incoming" if incoming else "outgoing",
            "status": "received" if incoming else "outcome_unknown" if number in sender_of else "sent",
            "owner_id": owner,
            "subject": f"Re: Order {number % 90_000:05d} delivery",
            "body_text": BODY,
            "message_id": message_id,
            "message_identity": message_id,
            "regarding_account_id": rng.randint(1, ACCOUNTS) if 0.7 <= regarding < 0.8 else None,
            "regarding_contact_id": contact,
            "regarding_lead_id": rng.randint(1, LEADS) if 0.8 <= regarding < 0.85 else None,
            "correlation_method": "in_reply_to" if contact else "none",
            "received_on": created - timedelta(seconds=rng.randint(2, 300)) if incoming else None,
            "sent_on": None if incoming else created + timedelta(seconds=rng.randint(1, 60)),
            "created_on": created,
            "modified_on": created,
        }
        yield _Email(number, incoming, owner, contact, row)


def _parties(org: Organization, plan: list[_Email]) -> Iterator[dict[str, Any]]:
    """From and To for every email, Cc to a colleague on one in five."""
    party_id = 0
    for email in plan:
        customer = (
            _contact_address(email.contact) if email.contact else f"someone{email.id % 7919}@else.example"
        )
        user = (f"user{email.owner}@bench.example", email.owner, None)
        other = (customer, None, email.contact)
        sender, recipient = (other, user) if email.incoming else (user, other)
        parties = [("from", *sender), ("to", *recipient)]
        if org.rng.random() < 0.2:
            colleague = (email.owner * 7) % org.users + 1
            parties.append(("cc", f"user{colleague}@bench.example", colleague, None))
        for role, address, user_id, contact_id in parties:
            party_id += 1
            yield {
                "id": party_id,
                "email_id": email.id,
                "role": role,
                "address": address,
                "user_id": user_id,
                "contact_id": contact_id,
            }


def _receipt(box_id: int, number: str, identity: str, outcome: str, **values: Any) -> dict[str, Any]:
    return {
        "mailbox_id": box_id,
        "folder": "INBOX",
        "server_id": f"1:{number}",
        "message_identity": identity,
        "message_id": identity,
        "outcome": outcome,
        **values,
    }


def _receipts(org: Organization, plan: list[_Email]) -> Iterator[dict[str, Any]]:
    """Every received activity's receipt (one in ten also reached a queue, linked), then untracked mail."""
    rng, now = org.rng, org.now
    queue_boxes = [b.id for b in org.boxes if b.queue_id is not None]
    for email in plan:
        if not email.incoming:
            continue
        row = email.row
        common = {
            "subject": row["subject"],
            "sender": "customer@example",
            "email_id": email.id,
            "server_received_on": row["received_on"],
            "created_on": row["created_on"],
            "updated_on": row["created_on"],
        }
        yield _receipt(email.owner, str(email.id), row["message_identity"], "tracked", **common)
        if rng.random() < 0.1:
            queue_box = queue_boxes[email.id % len(queue_boxes)]
            yield _receipt(queue_box, str(email.id), row["message_identity"], "linked", **common)
    outcomes = ["not_tracked_option", "no_correlation", "sender_not_crm", "auto_reply"]
    for number in range(1, org.emails // 6 + 1):
        created = now - timedelta(seconds=rng.randint(60, EMAIL_DAYS * 86400))
        yield _receipt(
            rng.randint(1, len(org.boxes)),
            f"u{number}",
            f"<untracked-{number}@newsletter.example>",
            outcomes[number % 4],
            subject="Weekly newsletter",
            sender="news@newsletter.example",
            email_id=None,
            server_received_on=created,
            created_on=created,
            updated_on=created,
        )


# -- the engine's rows ----------------------------------------------------------------------------


def _quarantined(org: Organization) -> Iterator[dict[str, Any]]:
    rng = org.rng
    receiving = [b.id for b in org.boxes if b.status["incoming"] == "success"]
    org.quarantined_boxes = sorted(rng.sample(receiving, QUARANTINED // 4))
    for number in range(1, QUARANTINED + 1):
        yield {
            "mailbox_id": org.quarantined_boxes[number % len(org.quarantined_boxes)],
            "folder": "INBOX",
            "server_id": f"1:q{number}",
            "message_identity": f"sha256:{number:064x}",
            "size": 4096,
            "error_code": "parse_error",
            "error_text": "The MIME structure is broken: a boundary never ends.",
            "created_on": org.now - timedelta(hours=rng.randint(1, 24 * 30)),
        }


def _sync_runs(org: Organization) -> Iterator[dict[str, Any]]:
    """Incoming every hour, outgoing every two, ACT every four hours; failing mailboxes
    failed the last six hours."""
    rng, now = org.rng, org.now
    for box in org.boxes:
        for kind, every in (("incoming", 1), ("outgoing", 2), ("act", 4)):
            if box.status[kind] == "not_run":
                continue
            for hours_ago in range(RUN_HOURS, 0, -every):
                started = now - timedelta(hours=hours_ago, seconds=rng.randint(0, 3000))
                failed = box.status[kind] == "failure" and hours_ago <= 6
                received = 0 if failed or kind != "incoming" else rng.randint(0, 4)
                yield {
                    "mailbox_id": box.id,
                    "kind": kind,
                    "started_on": started,
                    "finished_on": started + timedelta(seconds=rng.randint(1, 20)),
                    "outcome": "failed" if failed else "success",
                    "received": received,
                    "tracked": received,
                    "sent": rng.randint(0, 2) if kind == "outgoing" and not failed else 0,
                    "error_code": box.failure.get(kind, "") if failed else "",
                    "error_text": FAILURES[kind].get(box.failure.get(kind, ""), "") if failed else "",
                }


def _rollups(org: Organization) -> Iterator[dict[str, Any]]:
    """Every receiving mailbox, every hour of the last week: busier in office hours."""
    rng, now = org.rng, org.now
    first_hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(days=ROLLUP_DAYS)
    active = [b for b in org.boxes if b.status["incoming"] != "not_run"]
    histograms: dict[tuple[int, int], Jsonb] = {}
    for h in range(ROLLUP_DAYS * 24 + 1):
        hour = first_hour + timedelta(hours=h)
        office = 7 <= hour.hour <= 18
        for box in active:
            failing = box.status["incoming"] == "failure" and hour > now - timedelta(hours=6)
            received = 0 if failing else rng.randint(0, 6 if office else 1)
            tracked = received - (received > 2)
            fast = tracked * 3 // 4
            key = (fast, tracked - fast)
            if key not in histograms:
                histograms[key] = Jsonb({bound: n for bound, n in (("15", key[0]), ("60", key[1])) if n})
            yield {
                "hour": hour,
                "mailbox_id": box.id,
                "profile_id": box.profile_id,
                "runs": 2,
                "failed_runs": 2 if failing else 0,
                "received": received,
                "tracked": tracked,
                "sent": 0 if failing else rng.randint(0, 3 if office else 0),
                "latency_count": tracked,
                "latency_histogram": histograms[key],
            }


def _hourly_totals() -> None:
    """The per-profile hourly totals the dashboard reads, summed from the roll-ups as
    sync.rollups does (the latency histograms merged bucket by bucket)."""
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO sync_hourlytotal (hour, profile_id, mailboxes, runs, failed_runs, received, tracked,
                                          sent, failed, latency_count, latency_histogram)
            SELECT r.hour, r.profile_id, count(*), sum(runs), sum(failed_runs), sum(received), sum(tracked),
                   sum(sent), sum(failed), sum(latency_count),
                   coalesce((SELECT jsonb_object_agg(key, total) FROM (
                       SELECT h.key, sum(h.value::int) AS total
                       FROM sync_hourlyrollup r2, jsonb_each_text(r2.latency_histogram) h
                       WHERE r2.hour = r.hour AND r2.profile_id IS NOT DISTINCT FROM r.profile_id
                       GROUP BY h.key) merged), '{}'::jsonb)
            FROM sync_hourlyrollup r GROUP BY r.hour, r.profile_id
            """
        )
        rows = cursor.rowcount
    report("sync_hourlytotal", rows, time.monotonic() - started)


def _schedules(org: Organization) -> Iterator[dict[str, Any]]:
    for box in org.boxes:
        for kind, status in box.status.items():
            if status == "success":
                yield {
                    "mailbox_id": box.id,
                    "kind": kind,
                    "profile_id": box.profile_id,
                    "next_due_on": org.now + timedelta(seconds=org.rng.randint(0, 1800)),
                    "last_run_on": org.now,
                }


def _cursors(org: Organization) -> Iterator[dict[str, Any]]:
    for box in org.boxes:
        if box.status["incoming"] != "not_run":
            yield {
                "mailbox_id": box.id,
                "folder": "INBOX",
                "generation": 1,
                "uidvalidity": 1,
                "last_uid": 100 + box.id % 5000,
                "updated_on": org.now,
            }


def _tests(org: Organization) -> Iterator[dict[str, Any]]:
    """Each mailbox's test & enable (a fifth of those never run have none), and 20 under way."""
    rng, now = org.rng, org.now
    for box in org.boxes:
        if box.status["incoming"] == "not_run" and rng.random() < 0.8:
            continue
        finished = now - timedelta(days=rng.randint(1, 300))
        passed = not box.failure
        yield {
            "mailbox_id": box.id,
            "state": "passed" if passed else "failed",
            "requested_by_id": org.admin_id,
            "queued_on": finished - timedelta(minutes=2),
            "started_on": finished - timedelta(minutes=1),
            "finished_on": finished,
            "summary": "Incoming: Success. Outgoing: Success." if passed else "Incoming: Failure.",
        }
    for box in rng.sample(org.boxes, 20):
        yield {
            "mailbox_id": box.id,
            "state": "testing",
            "requested_by_id": org.admin_id,
            "queued_on": now - timedelta(minutes=1),
            "started_on": now,
            "finished_on": None,
            "summary": "",
        }


def _heartbeats(org: Organization) -> Iterator[dict[str, Any]]:
    for n in (1, 2):
        yield {
            "hostname": f"worker{n}@bench",
            "queues": "act,default,incoming,outgoing",
            "pid": 1000 + n,
            "started_on": org.now - timedelta(days=2),
            "last_seen": org.now,
        }


# -- alerts ---------------------------------------------------------------------------------------


def _alert(box: Box, level: str, category: str, code: str, message: str, **values: Any) -> dict[str, Any]:
    return {
        "level": level,
        "category": category,
        "code": code,
        "message": message,
        "mailbox_id": box.id,
        "profile_id": box.profile_id,
        "subject_key": f"mailbox:{box.id}",
        **values,
    }


def _alerts(org: Organization) -> Iterator[dict[str, Any]]:
    """Open alerts as the engine leaves them (one per subject, category and code), then history."""
    rng, now = org.rng, org.now

    def seen(hours: int, acknowledged_on: datetime | None = None) -> dict[str, Any]:
        first = now - timedelta(hours=rng.randint(1, hours))
        return {
            "count": rng.randint(1, 10),
            "first_seen": first,
            "last_seen": now,
            "acknowledged_on": acknowledged_on,
            "resolved_on": None,
        }

    for box in org.boxes:
        for kind, code in box.failure.items():
            acknowledged = now - timedelta(minutes=30) if rng.random() < 0.3 else None
            yield _alert(
                box, "error", kind, code, FAILURES[kind][code], **seen(300, acknowledged_on=acknowledged)
            )
        if box.backoff:
            message = "Timed out connecting to the server; retrying."
            yield _alert(box, "warning", "incoming", "connection_timeout", message, **seen(3))
    for box_id in org.quarantined_boxes:
        message = "A message could not be processed and was quarantined."
        yield _alert(org.boxes[box_id - 1], "warning", "incoming", "message_quarantined", message, **seen(72))
    for user in org.unsettled_senders:
        message = "A send was interrupted; check the recipient's copy before resending."
        yield _alert(org.boxes[user - 1], "warning", "outgoing", "outcome_unknown", message, **seen(2))
    sick_id = org.profile_ids[SICK_PROFILE]
    yield {
        **_alert(
            Box(0, "", None, None), "error", "profile", "profile_failing", "Most mailboxes are failing."
        ),
        "mailbox_id": None,
        "profile_id": sick_id,
        "subject_key": f"profile:{sick_id}",
        **seen(6),
    }
    for number in range(RESOLVED_ALERTS):
        box = org.boxes[rng.randrange(len(org.boxes))]
        first = now - timedelta(days=rng.randint(1, 80))
        yield _alert(
            box,
            "warning",
            "incoming",
            f"connection_timeout-{number}",
            "Timed out connecting to the server.",
            count=rng.randint(1, 5),
            first_seen=first,
            last_seen=first + timedelta(hours=1),
            acknowledged_on=None,
            resolved_on=first + timedelta(hours=2),
        )
