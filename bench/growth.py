"""B6, growth: what a poll costs as the organization grows, and as a mailbox does.

- **Per poll at N mailboxes**: a population of N real mailboxes (bench/population.py);
  the dispatcher's ticks as in production (``sync.tasks.dispatch``'s work, without
  the broker), each with as many due mailboxes as N mailboxes polled every
  ``--interval`` seconds give a tick of ``SYNC_DISPATCH_SECONDS``, and each claim run
  by ``sync.tasks.incoming_mailbox`` in this process (the code a worker runs); then
  the same mailboxes polled one after another (claimed at once). CPU per poll
  (bench/cpu.py: this process + its PostgreSQL backend; Dovecot's beside it);
  the target: polls one after another, at 10,000 ÷ at 100.
- **Per poll of a large mailbox**: an idle poll of a mailbox holding 100,000
  messages (its 100,000 receipts in the database) against one holding 100, in turns.
- **Dispatcher per tick**: a tick's time and CPU with 0 to 500 due mailboxes among
  10,000, and the plans of its slowest statements.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import format_datetime
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection
from django.utils import timezone

from bench.bulk import copy_rows
from bench.cpu import Cpu, CpuMeter
from bench.email_crm import Bench, user_mailbox
from bench.email_figures import Figure, Result, counting_queries
from bench.mail_stack import MailUser
from bench.population import POSTPONE_SQL, Population, populate
from mailboxes.models import Mailbox
from sync import outgoing, scheduler, tasks
from sync.models import FolderCursor, MailboxSchedule, Receipt, SyncKind, SyncRun

GROWTH_TARGET = 1.2
BIG_TARGET = 1.1
# Polls in turns between the large and the small mailbox, so load from other work meets both alike.
BIG_GROUP = 20


@dataclass
class PollCost:
    mailboxes: int
    polls: int = 0
    ticks: int = 0
    due_per_tick: int = 0
    cpu: Cpu = field(default_factory=Cpu)
    dispatch_cpu: Cpu = field(default_factory=Cpu)
    seconds: float = 0.0
    statements: int = 0
    not_idle: list[str] = field(default_factory=list)
    empty_tick: Cpu = field(default_factory=Cpu)  # a tick with nothing due (median of a few)
    direct: Cpu = field(default_factory=Cpu)  # the same mailboxes polled one after another, no ticks
    direct_polls: int = 0

    def per_poll(self) -> Cpu:
        """Everything: the polls and the ticks that claimed them."""
        return self.cpu.per(self.polls)

    def direct_per_poll(self) -> Cpu:
        """A poll on its own: claimed at once and run (``_direct_polls``)."""
        return self.direct.per(self.direct_polls)

    def task_per_poll(self) -> Cpu:
        """The poll itself: the task a worker runs (lease check, sync_incoming, release)."""
        return (self.cpu - self.dispatch_cpu).per(self.polls)


# --- the side connection: the benchmark's own bookkeeping, on a backend not measured ------------


class Side:
    """A second connection for what the benchmark does between measured steps (making mailboxes
    due, giving leases back), so that the measured backend's CPU is the engine's alone."""

    def __init__(self) -> None:
        db = settings.DATABASES["default"]
        self.connection = psycopg.connect(
            dbname=db["NAME"],
            user=db["USER"] or None,
            password=db["PASSWORD"] or None,
            host=db["HOST"] or None,
            port=db["PORT"] or None,
            autocommit=True,
        )

    def make_due(self, ids: list[int]) -> None:
        """These mailboxes due now, and every other one not due during the step (see NOT_DUE)."""
        self.connection.execute(POSTPONE_SQL)
        self.connection.execute(
            "UPDATE sync_mailboxschedule SET next_due_on = now() - interval '1 second'"
            " WHERE kind = 'incoming' AND mailbox_id = ANY(%s)",
            [ids],
        )

    def let_go(self) -> None:
        """Every lease given back and nothing due: after a dispatcher measurement that ran no claim."""
        self.connection.execute(
            "UPDATE sync_mailboxschedule SET lease_token = NULL, lease_expires_on = NULL,"
            " next_due_on = now() + interval '20 minutes'"
            " WHERE lease_token IS NOT NULL OR next_due_on <= now()"
        )

    def close(self) -> None:
        self.connection.close()


# --- B6: per poll at N mailboxes ------------------------------------------------------------------


def growth(bench: Bench) -> Result:
    result = Result()
    options = bench.options
    meter = CpuMeter(bench.stack.dovecot.process.pid if bench.stack.dovecot.process else None)
    side = Side()
    try:
        costs = _poll_costs(bench, meter, side, result)
        dispatcher = _dispatcher(bench, meter, side, result)
        big = _big_mailbox(bench, meter, result) if options.big_messages else None
    finally:
        side.close()
    result.figures += _growth_figures(costs[0], costs[-1])
    result.figures += dispatcher
    if big is not None:
        result.figures.append(big)
    return result


def _growth_figures(small: PollCost, large: PollCost) -> list[Figure]:
    """The poll's own CPU (the target), the same with the ticks' share, and the empty tick, large ÷ small."""
    idle = not large.not_idle and not small.not_idle
    names = f"{large.mailboxes:,} ÷ {small.mailboxes:,} mailboxes"
    rows = [
        ("B6 CPU per idle poll", large.direct_per_poll(), small.direct_per_poll(), GROWTH_TARGET),
        ("B6 CPU per idle poll in the ticks, with their share", large.per_poll(), small.per_poll(), None),
        ("B6 dispatcher tick with nothing due", large.empty_tick, small.empty_tick, GROWTH_TARGET),
    ]
    figures = []
    for name, big, little, target in rows:
        ratio = big.serversync / max(little.serversync, 1e-9)
        figures.append(
            Figure(
                f"{name}, {names}",
                f"{big.serversync * 1000:.2f} ms",
                raw=f"at {small.mailboxes:,}: {little.serversync * 1000:.2f} ms",
                ratio=f"{ratio:.2f}",
                target="-" if target is None else f"≤ {target:.1f}",
                met=None if target is None else ratio <= target and idle,
            )
        )
    return figures


def _poll_costs(bench: Bench, meter: CpuMeter, side: Side, result: Result) -> list[PollCost]:
    options = bench.options
    population = Population([], 0.0)
    costs = []
    for size in sorted(options.sizes):
        more = populate(
            bench.stack,
            bench.profile,
            count=size - len(population.ids),
            history_hours=options.history_hours,
            prefix=f"pop{size}",
            now=timezone.now(),
        )
        population = Population(population.ids + more.ids, population.seconds + more.seconds)
        result.note(
            f"{size:,} mailboxes: {len(more.ids):,} added in {more.seconds:.0f} s (COPY, Dovecot users, "
            f"{options.history_hours} h of runs each; not timed)"
        )
        cost = _measure_polls(bench, meter, side, population.ids)
        costs.append(cost)
        _note_cost(cost, result)
    _note_row_sizes(result)
    return costs


def _note_row_sizes(result: Result) -> None:
    """What a sync run and a mailbox's schedule and cursor take on disk, indexes included (after
    VACUUM ANALYZE and the measured polls), for the capacity model's database growth."""
    sizes = []
    for model in (SyncRun, MailboxSchedule, FolderCursor):
        table = model._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT pg_total_relation_size(%s), count(*) FROM {table}", [table])  # noqa: S608
            size, rows = cursor.fetchone()
        sizes.append(f"{table} {size / max(rows, 1):.0f} bytes a row ({rows:,} rows)")
    result.note("on disk with their indexes: " + "; ".join(sizes))


def _due_per_tick(size: int, interval: int) -> int:
    """Mailboxes due per dispatcher tick when ``size`` of them are polled every ``interval`` seconds."""
    tick = settings.CELERY_BEAT_SCHEDULE["dispatch-due-mailboxes"]["schedule"]
    return min(math.ceil(size * tick / interval), settings.SYNC_DISPATCH_BATCH)


def _measure_polls(bench: Bench, meter: CpuMeter, side: Side, ids: list[int]) -> PollCost:
    options = bench.options
    rng = random.Random(options.seed + len(ids))  # noqa: S311 - a sample, not a secret
    sample = rng.sample(ids, min(len(ids), options.sample))
    cost = PollCost(len(ids), due_per_tick=min(_due_per_tick(len(ids), options.interval), len(sample)))
    # Untimed: each sampled mailbox's first poll here corrects its cursor's UIDVALIDITY.
    _warm_up(sample, side)
    turn = 0
    while cost.polls < options.polls:
        due = [sample[(turn + k) % len(sample)] for k in range(cost.due_per_tick)]
        turn += cost.due_per_tick
        side.make_due(due)
        _tick(meter, cost)
    side.let_go()
    ticks = sorted((_one_tick(meter)[1] for _ in range(DISPATCH_REPEATS)), key=lambda cpu: cpu.serversync)
    cost.empty_tick = ticks[len(ticks) // 2]
    _direct_polls(sample, meter, cost)
    return cost


def _direct_polls(sample: list[int], meter: CpuMeter, cost: PollCost) -> None:
    """The sample polled one after another, each claimed at once (``claim_now``) and run as a
    worker runs it: the poll's cost with the population's size the only difference between sizes
    (in the ticks, the polls come two at a time at 100 mailboxes and 167 at a time at 10,000)."""
    mailboxes = {m.pk: m for m in Mailbox.objects.filter(pk__in=sample).select_related("profile")}
    before = meter.now()
    for number in range(cost.polls):
        cost.not_idle += _poll_now(mailboxes[sample[number % len(sample)]])
        cost.direct_polls += 1
    cost.direct = meter.now() - before


def _warm_up(sample: list[int], side: Side) -> None:
    for start in range(0, len(sample), 500):
        side.make_due(sample[start : start + 500])
        for claim in scheduler.dispatch(kinds=(SyncKind.INCOMING,)):
            run_claim(claim)


def _tick(meter: CpuMeter, cost: PollCost) -> None:
    """One dispatcher tick (what ``sync.tasks.dispatch`` does, the broker aside) and its claims' polls."""
    with counting_queries() as queries:
        before, started = meter.now(), time.perf_counter()
        outgoing.settle_expired_claims()
        outgoing.warn_stuck_pending()
        claims = scheduler.dispatch()
        dispatched = meter.now()
        for claim in claims:
            outcome = run_claim(claim)
            if outcome != "success" or claim.kind != SyncKind.INCOMING:
                cost.not_idle.append(f"{claim.mailbox_id} {claim.kind}: {outcome}")
        after = meter.now()
        cost.seconds += time.perf_counter() - started
    cost.cpu += after - before
    cost.dispatch_cpu += dispatched - before
    cost.polls += len(claims)
    cost.ticks += 1
    cost.statements += queries.count
    if not claims:
        raise RuntimeError("a tick with due mailboxes claimed none of them")


RUNS = {
    SyncKind.INCOMING: tasks.incoming_mailbox,
    SyncKind.OUTGOING: tasks.outgoing_mailbox,
    SyncKind.ACT: tasks.act_mailbox,
}


def run_claim(claim: scheduler.Claim) -> str:
    """The claim's task, run in this process as a worker runs it."""
    return str(RUNS[claim.kind](claim.mailbox_id, claim.token))


def _note_cost(cost: PollCost, result: Result) -> None:
    per = cost.per_poll()
    result.note(
        f"{cost.mailboxes:,} mailboxes: {cost.polls} polls in {cost.ticks} ticks of {cost.due_per_tick} due; "
        f"CPU per poll {per.milliseconds()}; of which the ticks' dispatch "
        f"{cost.dispatch_cpu.per(cost.polls).serversync * 1000:.2f} ms; "
        f"wall {cost.seconds / max(cost.polls, 1) * 1000:.1f} ms a poll; "
        f"{cost.statements / max(cost.polls, 1):.1f} statements a poll; the poll's own CPU "
        f"{cost.task_per_poll().milliseconds()}; "
        f"a tick with nothing due {cost.empty_tick.serversync * 1000:.1f} ms; "
        f"{cost.direct_polls} polls one after another: {cost.direct_per_poll().milliseconds()} each"
    )
    if cost.not_idle:
        result.note(f"  {len(cost.not_idle)} polls not idle: {cost.not_idle[:3]}")


# --- the dispatcher per tick ------------------------------------------------------------------------


DUE_STEPS = (0, 10, 100, 500)
DISPATCH_REPEATS = 5


def _dispatcher(bench: Bench, meter: CpuMeter, side: Side, result: Result) -> list[Figure]:
    """Ticks that claim 0 to 500 of the population's mailboxes (given back unrun), and the plans."""
    ids = sorted(MailboxSchedule.objects.filter(kind=SyncKind.INCOMING).values_list("mailbox_id", flat=True))
    rng = random.Random(bench.options.seed)  # noqa: S311 - a sample, not a secret
    rows = []
    for due in DUE_STEPS:
        samples = []
        for _ in range(DISPATCH_REPEATS):
            side.make_due(rng.sample(ids, due))
            samples.append(_one_tick(meter))
            side.let_go()
        median = sorted(samples, key=lambda s: s[1].serversync)[len(samples) // 2]
        rows.append((due, *median))
        result.note(
            f"dispatcher tick, {due} due of {len(ids):,}: {median[0] * 1000:.1f} ms wall, "
            f"CPU {median[1].serversync * 1000:.1f} ms (process {median[1].process * 1000:.1f} + "
            f"database {median[1].database * 1000:.1f}), {median[2]} statements, {median[3]} claims"
        )
    _plans(side, ids, result)
    fixed = rows[0][2].serversync
    per_due = [(row[2].serversync - fixed) / row[0] for row in rows[1:]]
    result.note(
        "dispatcher CPU per due mailbox above the empty tick: "
        + ", ".join(f"{row[0]} due {cost * 1000:.2f} ms" for row, cost in zip(rows[1:], per_due, strict=True))
    )
    spread = max(per_due[1:]) / max(min(per_due[1:]), 1e-9)
    return [
        Figure(
            f"B6 dispatcher per due mailbox, 100 vs 500 due of {len(ids):,}",
            f"{per_due[-1] * 1000:.2f} ms CPU",
            raw=f"100 due: {per_due[1] * 1000:.2f} ms; empty tick {fixed * 1000:.1f} ms",
            ratio=f"{spread:.2f}",
            target="≤ 1.2 (linear)",
            met=spread <= GROWTH_TARGET,
        )
    ]


def _one_tick(meter: CpuMeter) -> tuple[float, Cpu, int, int]:
    with counting_queries() as queries:
        before, started = meter.now(), time.perf_counter()
        outgoing.settle_expired_claims()
        outgoing.warn_stuck_pending()
        claims = scheduler.dispatch()
        seconds, after = time.perf_counter() - started, meter.now()
    return seconds, after - before, queries.count, len(claims)


def _plans(side: Side, ids: list[int], result: Result, slowest: int = 3) -> None:
    """The slowest statements of a tick with 100 due, with PostgreSQL's plans (printed, not kept)."""
    side.make_due(ids[:: max(1, len(ids) // 100)][:100])
    captured: list[tuple[float, str, Any]] = []

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            captured.append((time.perf_counter() - started, sql, params))

    with connection.execute_wrapper(wrapper):
        scheduler.dispatch()
    side.let_go()
    total = sum(seconds for seconds, _, _ in captured)
    print(f"\n--- a dispatcher tick, 100 due: {len(captured)} statements, {total * 1000:.1f} ms in them")
    for seconds, sql, params in sorted(captured, key=lambda c: c[0], reverse=True)[:slowest]:
        print(f"\n--- {seconds * 1000:.1f} ms\n{sql[:600]}{' ...' if len(sql) > 600 else ''}\n")
        if sql.lstrip().upper().startswith("SELECT"):
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                print("\n".join("    " + row[0] for row in cursor.fetchall()))
    side.let_go()
    result.note(f"plans of the tick's {slowest} slowest statements: printed above the table")


# --- a large mailbox against a small one ------------------------------------------------------------


def _big_mailbox(bench: Bench, meter: CpuMeter, result: Result) -> Figure:
    options = bench.options
    sizes = {"large": options.big_messages, "small": 100}
    boxes = {name: _filled_mailbox(bench, name, count, result) for name, count in sizes.items()}
    costs = {name: Cpu() for name in boxes}
    walls = {name: 0.0 for name in boxes}
    polls = {name: 0 for name in boxes}
    failed: list[str] = []
    for _ in range(math.ceil(options.big_polls / BIG_GROUP)):
        for name, (mailbox, _) in boxes.items():
            before, started = meter.now(), time.perf_counter()
            for _ in range(BIG_GROUP):
                failed += _poll_now(mailbox)
            walls[name] += time.perf_counter() - started
            costs[name] += meter.now() - before
            polls[name] += BIG_GROUP
    raw = {name: _raw_polls(bench, account) for name, (_, account) in boxes.items()}
    for name in boxes:
        result.note(
            f"{name} mailbox ({sizes[name]:,} messages): "
            f"CPU per poll {costs[name].per(polls[name]).milliseconds()}; "
            f"wall {walls[name] / polls[name] * 1000:.1f} ms; "
            f"raw login + EXAMINE + logout {raw[name] * 1000:.1f} ms"
        )
    large, small = costs["large"].per(polls["large"]), costs["small"].per(polls["small"])
    ratio = large.serversync / max(small.serversync, 1e-9)
    if failed:
        result.note(f"{len(failed)} polls not idle: {failed[:3]}")
    return Figure(
        f"B6 CPU per idle poll, {sizes['large']:,} ÷ 100 messages in the mailbox",
        f"{large.serversync * 1000:.2f} ms",
        raw=f"100 messages: {small.serversync * 1000:.2f} ms",
        ratio=f"{ratio:.2f}",
        target=f"≤ {BIG_TARGET:.1f}",
        met=ratio <= BIG_TARGET and not failed,
    )


def _poll_now(mailbox: Mailbox) -> list[str]:
    """One poll as a worker runs it (claim, lease check, sync, release), claimed as ``sync_mailbox`` does."""
    claim = scheduler.claim_now(mailbox=mailbox, kind=SyncKind.INCOMING)
    if claim is None:
        return [f"{mailbox.pk}: not claimed"]
    outcome = run_claim(claim)
    return [] if outcome == "success" else [f"{mailbox.pk}: {outcome}"]


def _filled_mailbox(bench: Bench, name: str, count: int, result: Result) -> tuple[Mailbox, MailUser]:
    """A mailbox holding ``count`` messages, as a finished initial sync leaves it: the folder cursor
    past the last UID, a receipt for every message (COPY; the messages themselves untracked)."""
    account = bench.stack.add_user(f"b6-{name}")
    written = bench.stack.write_maildir(account.address, _plain_messages(account.address, count))
    started = time.perf_counter()
    client = bench.stack.imap(account)
    try:  # Dovecot indexes the Maildir on the first access (not timed)
        state = client.select_folder("INBOX", readonly=True)
        uids = client.search("ALL")
    finally:
        client.logout()
    mailbox = user_mailbox(account, bench.profile, name=f"B6 {name}")
    # Incoming only, as the population: the dispatcher's ticks then claim nothing else of it.
    Mailbox.objects.filter(pk=mailbox.pk).update(outgoing_enabled=False)
    uidvalidity = int(state[b"UIDVALIDITY"])
    FolderCursor.objects.create(
        mailbox=mailbox,
        folder="INBOX",
        generation=mailbox.configuration_generation,
        uidvalidity=uidvalidity,
        last_uid=max(uids),
    )
    copy_rows(Receipt, _receipts(mailbox.pk, uidvalidity, uids))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE sync_receipt")
    for _ in range(3):  # the schedule made, the first runs' one-time work done (untimed)
        _poll_now(mailbox)
    result.note(
        f"{name} mailbox: {written.messages:,} messages ({written.bytes / 2**20:.0f} MiB) "
        f"written as Maildir files in {written.seconds:.0f} s, "
        f"indexed by Dovecot in {time.perf_counter() - started:.0f} s (not timed)"
    )
    return Mailbox.objects.get(pk=mailbox.pk), account


def _plain_messages(owner: str, count: int) -> Iterator[bytes]:
    date = timezone.now() - timedelta(days=365)
    for number in range(count):
        sent = format_datetime(date + timedelta(minutes=5 * number))
        yield (
            f"From: Customer {number} <customer{number % 997}@kunde.example>\r\n"
            f"To: <{owner}>\r\nSubject: Order {number}\r\nDate: {sent}\r\n"
            f"Message-ID: <b6-{number}@kunde.example>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            f"Hello,\r\n\r\nplease confirm order {number}.\r\n\r\nKind regards\r\n"
        ).encode()


def _receipts(mailbox_id: int, uidvalidity: int, uids: list[int]) -> Iterator[dict[str, Any]]:
    now = timezone.now()
    for number, uid in enumerate(uids):
        yield {
            "mailbox_id": mailbox_id,
            "folder": "INBOX",
            "server_id": f"{uidvalidity}:{uid}",
            "message_identity": f"<b6-{number}@kunde.example>",
            "message_id": f"<b6-{number}@kunde.example>",
            "subject": f"Order {number}",
            "sender": f"customer{number % 997}@kunde.example",
            "outcome": "no_correlation",
            "created_on": now,
            "updated_on": now,
        }


def _raw_polls(bench: Bench, account: MailUser, count: int = 40) -> float:
    """Seconds per raw login + EXAMINE + logout, the mail server's share of a poll."""
    started = time.perf_counter()
    for _ in range(count):
        client = bench.stack.imap(account)
        client.select_folder("INBOX", readonly=True)
        client.logout()
    return (time.perf_counter() - started) / count
