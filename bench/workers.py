"""B8, workers: the B1 and B2 loads run by 1, 2 and 4 real ``celery worker`` processes
(``--pool solo``: one task at a time each, as ``--concurrency 1``) against one
PostgreSQL and one Redis, the dispatcher's work done by this process in ticks
(``sync.tasks.dispatch``, what beat has a worker run every ``SYNC_DISPATCH_SECONDS``;
here every half second during the B1 load, whose runs are due again at once, so the load is
not paced by the tick, and once per round of the B2 load).

- **B1 load**: mailboxes holding the generated corpus (bench/mail_corpus.py), written
  as Maildir files and read once untimed; runs of ``--run-budget`` messages each,
  so each mailbox takes several runs and the workers take turns on it. Throughput:
  messages from the first tick to the last run's end.
- **B2 load**: idle mailboxes (one message each, synced once before), all due at
  once, ``--rounds`` times. Throughput: polls from the tick to the last run's end.

Checked for each worker count: which worker ran each task (bench/worker_probe.py),
that no two tasks and no two sync runs of one mailbox overlap in time, that no
message has two receipts in a mailbox or two activities, and that every message
was received. Also measured: the workers' and their database backends' CPU, and
what the database and the stored files grew by (for the capacity model).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.db import connection
from django.db.models import Count
from django.utils import timezone

from bench.cpu import CpuMeter, process_cpu, schedstat
from bench.email_crm import Bench, add_records, user_mailbox
from bench.email_figures import Figure, Result
from bench.email_incoming import _raw_pass, _uids
from bench.mail_corpus import IncomingCorpus
from bench.mail_stack import MailUser
from bench.population import NOT_DUE, POSTPONE_SQL
from config.celery import app
from crm.models import EmailActivity
from mailboxes.models import Mailbox
from sync import tasks
from sync.incoming import sync_incoming
from sync.models import MailboxSchedule, Receipt, SyncKind, SyncRun

ROOT = Path(__file__).resolve().parent.parent
# Seconds between the dispatcher's ticks: B1's runs stop at their budget and are due again at
# once, so its ticks come often (production's SYNC_DISPATCH_SECONDS is 30: a mailbox's first sync
# takes a run per tick there); B2's round is claimed by its first tick, as one of production's.
B1_TICKS, B2_TICKS = 0.5, 30.0
CHECK_EVERY = 0.1  # seconds between looks at whether a load is done
LOAD_TIMEOUT = 900  # seconds: a load that has not finished by then is reported as not measured


@dataclass
class Load:
    """One load's outcome under one worker count."""

    name: str
    workers: int
    items: int = 0
    seconds: float = 0.0
    tasks: int = 0
    runs: int = 0
    overlaps: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    missing: int = 0
    by_worker: Counter[str] = field(default_factory=Counter)
    cpu_workers: float = 0.0
    cpu_database: float = 0.0
    cpu_dovecot: float = 0.0
    cpu_dispatcher: float = 0.0  # this process: the ticks and the benchmark's own checks
    db_bytes: int = 0
    file_bytes: int = 0
    lease_not_held: int = 0
    again: int = 0  # polls of a mailbox already polled in the same round (B2)
    tables: str = ""  # the tables that grew most, KiB per item
    task_seconds: float = 0.0  # the tasks' time, summed over the workers
    shared: int = 0  # mailboxes whose runs were taken by more than one worker
    backends: int = 0  # the workers' database backends seen during the load (connections opened)
    peak_connections: int = 0
    run_seconds: float = 0.0  # the sync runs' time (started_on to finished_on), summed
    since: datetime = field(default_factory=timezone.now)
    results: Counter[str] = field(default_factory=Counter)

    @property
    def cores(self) -> float:
        """The CPU counted here over the load's time: how many of the machine's cores it kept busy."""
        spent = self.cpu_workers + self.cpu_database + self.cpu_dovecot + self.cpu_dispatcher
        return spent / self.seconds if self.seconds else 0.0

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0


# --- worker processes ---------------------------------------------------------------------------


class Worker:
    """``celery -A bench.worker_probe worker --pool solo`` with the benchmark's settings."""

    def __init__(self, pool: int, number: int, workdir: Path, extra_env: dict[str, str]) -> None:
        # Unique per worker count too: each pool's probe files are its own.
        self.name = f"bench-{pool}w{number}-{os.getpid()}"
        self.hostname = f"{self.name}@serversync-bench"
        self.log_path = workdir / "workers" / f"{self.name}.log"
        self.probe_path = workdir / "workers" / f"{self.name}.jsonl"
        self.extra_env = extra_env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        database_url = os.environ["DATABASE_URL"]
        separator = "&" if "?" in database_url else "?"
        env = {
            **os.environ,
            **self.extra_env,
            "DATABASE_URL": f"{database_url}{separator}application_name={self.name}",
            "BENCH_WORKER_LOG": str(self.probe_path),
        }
        command = [
            sys.executable, "-m", "celery", "-A", "bench.worker_probe", "worker",
            "--pool", "solo", "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-Q", "default,incoming,outgoing,act", "-n", self.hostname, "-l", "WARNING",
        ]  # fmt: skip
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"worker {self.name} exited: {self.log_path.read_text(errors='replace')[-2000:]}"
                )
            if app.control.ping(destination=[self.hostname], timeout=0.5):
                return
        raise TimeoutError(f"worker {self.name} not ready after {timeout} s")

    def cpu(self) -> float:
        return process_cpu(self.process.pid) if self.process is not None else 0.0

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)

    def probe(self) -> list[dict[str, Any]]:
        if not self.probe_path.exists():
            return []
        return [json.loads(line) for line in self.probe_path.read_text().splitlines() if line.strip()]


class BackendCpu:
    """CPU of the PostgreSQL backends the workers open (by application_name), sampled at each
    dispatcher tick: a backend that ends (a connection past DATABASE_CONN_MAX_AGE) keeps what
    was sampled of it; one that starts counts from zero, its start-up included."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.peak = 0  # the most connections open at one sample
        self.sample(starting=True)

    def sample(self, *, starting: bool = False) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pid FROM pg_stat_activity WHERE application_name = ANY(%s)", [self.names])
            pids = [row[0] for row in cursor.fetchall()]
        self.peak = max(self.peak, len(pids))
        for pid in pids:
            try:
                used = schedstat(pid)
            except OSError:
                continue  # ended meanwhile
            self.first.setdefault(pid, used if starting else 0.0)
            self.last[pid] = used

    @property
    def seconds(self) -> float:
        return sum(self.last[pid] - self.first[pid] for pid in self.last)


# --- sizes ------------------------------------------------------------------------------------------


def _table_bytes() -> dict[str, int]:
    """Each table's size with its indexes and TOAST."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, pg_total_relation_size(oid) FROM pg_class"
            " WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
        )
        return dict(cursor.fetchall())


def _grown(before: dict[str, int], items: int, top: int = 6) -> str:
    after = _table_bytes()
    grown = sorted(((after[t] - before.get(t, 0), t) for t in after), reverse=True)[:top]
    return ", ".join(f"{table} {size / max(items, 1) / 1024:.1f}" for size, table in grown if size > 0)


def _database_bytes() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database())")
        return int(cursor.fetchone()[0])


def _files_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file()) if root.exists() else 0


# --- the loads ----------------------------------------------------------------------------------------


def workers(bench: Bench) -> Result:
    result = Result()
    options = bench.options
    idle = _idle_mailboxes(bench, result)
    loads: list[Load] = []
    for count in options.workers:
        busy = _busy_mailboxes(bench, count, result)
        loads += _with_workers(bench, count, busy, idle, result)
    result.figures += _figures(loads)
    _results_kept(bench, result)
    return result


def _results_kept(bench: Bench, result: Result) -> None:
    """What the task results kept in the result backend (the broker's Redis, an hour) weigh."""
    import redis

    client = redis.Redis.from_url(bench.options.broker_url)
    prefix = os.environ.get("BENCH_REDIS_PREFIX", "")
    keys = list(client.scan_iter(match=f"{prefix}celery-task-meta-*", count=1000))
    sizes = [client.memory_usage(key) or 0 for key in keys[:200]]
    for start in range(0, len(keys), 500):  # this run's results: not left to expire in a shared Redis
        client.delete(*keys[start : start + 500])
    if sizes:
        from django.conf import settings

        result.note(
            f"result backend: each task's result is kept {settings.CELERY_RESULT_EXPIRES} s "
            f"(CELERY_RESULT_EXPIRES), {sum(sizes) / len(sizes):.0f} bytes of Redis's memory "
            f"({len(keys):,} at the end: this run's)"
        )


def _with_workers(bench: Bench, count: int, busy: list[int], idle: list[int], result: Result) -> list[Load]:
    env = {"SYNC_RUN_MAX_MESSAGES": str(bench.options.run_budget)}
    if bench.options.reuse_connections:
        env["BENCH_DB_REUSE_MAX"] = str(bench.options.reuse_connections)
    app.control.purge()
    pool = [Worker(count, number, bench.workdir, env) for number in range(1, count + 1)]
    try:
        for worker in pool:
            worker.start()
        for worker in pool:
            worker.wait_ready()
        meter = CpuMeter(bench.stack.dovecot.process.pid if bench.stack.dovecot.process else None)
        b1 = _b1_load(bench, pool, busy, meter)
        _note(b1, result)
        b2 = _b2_load(bench, pool, idle, meter)
        _note(b2, result)
    finally:
        for worker in pool:
            worker.stop()
    probes = [line for worker in pool for line in worker.probe()]
    for load, ids in ((b1, busy), (b2, idle)):
        _check(load, ids, [p for p in probes if p["args"] and p["args"][0] in set(ids)])
        task = load.task_seconds / max(load.tasks, 1)
        run = load.run_seconds / max(load.runs, 1)
        busy = load.task_seconds / max(load.seconds * count, 1e-9)
        result.note(
            f"{load.name} load, {count} worker(s): a task {task * 1000:.1f} ms on average, its sync run "
            f"{run * 1000:.1f} ms; the workers busy {busy:.0%} of the load's time; "
            f"{load.shared} of {len(ids)} mailboxes run by more than one worker in turn; "
            f"{load.backends} database backends of the workers seen (sampled every {CHECK_EVERY} s), "
            f"at most {load.peak_connections} at once"
        )
    return [b1, b2]


@dataclass(frozen=True)
class Snapshot:
    workers: float
    dovecot: float
    dispatcher: float
    database_bytes: int
    file_bytes: int


def _snapshot(pool: list[Worker], meter: CpuMeter) -> Snapshot:
    cpu = meter.now()
    workers = sum(worker.cpu() for worker in pool)
    return Snapshot(workers, cpu.dovecot, cpu.process, _database_bytes(), _files_bytes(_media()))


def _account(load: Load, before: Snapshot, after: Snapshot, backends: BackendCpu) -> None:
    backends.sample()
    load.cpu_workers, load.cpu_database = after.workers - before.workers, backends.seconds
    load.backends = len(backends.last)
    load.peak_connections = backends.peak
    load.cpu_dovecot = after.dovecot - before.dovecot
    load.cpu_dispatcher = after.dispatcher - before.dispatcher
    load.db_bytes = after.database_bytes - before.database_bytes
    load.file_bytes = after.file_bytes - before.file_bytes


def _media() -> Path:
    from django.conf import settings

    return Path(settings.MEDIA_ROOT)


def _b1_load(bench: Bench, pool: list[Worker], ids: list[int], meter: CpuMeter) -> Load:
    load = Load("B1", len(pool))
    expected = bench.options.load_messages
    before = _snapshot(pool, meter)
    backends = BackendCpu([worker.name for worker in pool])
    tables = _table_bytes()
    _postpone_others()  # the load's mailboxes have no schedule yet: the first tick makes them, due
    started = timezone.now()
    _dispatch_until(
        lambda: Receipt.objects.filter(mailbox_id__in=ids).count() >= expected and _all_free(ids),
        backends,
        B1_TICKS,
    )
    _account(load, before, _snapshot(pool, meter), backends)
    load.items = Receipt.objects.filter(mailbox_id__in=ids).count()
    load.missing = expected - load.items
    load.seconds = _last_end(ids, started) - started.timestamp()
    load.tables = _grown(tables, load.items)
    return load


def _b2_load(bench: Bench, pool: list[Worker], ids: list[int], meter: CpuMeter) -> Load:
    load = Load("B2", len(pool))
    before = _snapshot(pool, meter)
    backends = BackendCpu([worker.name for worker in pool])
    tables = _table_bytes()
    for _ in range(bench.options.rounds):
        _postpone_others()
        MailboxSchedule.objects.filter(mailbox_id__in=ids, kind=SyncKind.INCOMING).update(
            next_due_on=timezone.now() - timedelta(seconds=1)
        )
        started = timezone.now()
        done = SyncRun.objects.filter(mailbox_id__in=ids, started_on__gte=started, finished_on__isnull=False)
        _dispatch_until(lambda: done.count() >= len(ids) and _all_free(ids), backends, B2_TICKS)  # noqa: B023
        load.items += done.count()
        load.again += done.count() - done.values("mailbox_id").distinct().count()
        load.seconds += _last_end(ids, started) - started.timestamp()
    _account(load, before, _snapshot(pool, meter), backends)
    load.tables = _grown(tables, load.items)
    return load


def _postpone_others() -> None:
    """The mailboxes of other loads not due during this one (bench.population.NOT_DUE)."""
    with connection.cursor() as cursor:
        cursor.execute(POSTPONE_SQL)


def _dispatch_until(finished: Any, backends: BackendCpu, every: float) -> None:
    """Dispatcher ticks (``sync.tasks.dispatch``, in this process) every ``every`` seconds until done."""
    deadline = time.monotonic() + LOAD_TIMEOUT
    tick = 0.0
    while time.monotonic() < deadline:
        if time.monotonic() - tick >= every:
            tasks.dispatch()
            tick = time.monotonic()
        time.sleep(CHECK_EVERY)
        backends.sample()
        if finished():
            return
    raise TimeoutError(f"the load did not finish within {LOAD_TIMEOUT} s")


def _all_free(ids: list[int]) -> bool:
    return not MailboxSchedule.objects.filter(mailbox_id__in=ids, lease_token__isnull=False).exists()


def _last_end(ids: list[int], since: Any) -> float:
    last = (
        SyncRun.objects.filter(mailbox_id__in=ids, started_on__gte=since)
        .order_by("-finished_on")
        .values_list("finished_on", flat=True)
        .first()
    )
    return last.timestamp() if last else time.time()


# --- the mailboxes ----------------------------------------------------------------------------------


def _busy_mailboxes(bench: Bench, workers: int, result: Result) -> list[int]:
    """B1's mailboxes for one worker count: each its own corpus (its own messages and CRM records)."""
    options = bench.options
    per_mailbox = options.load_messages // options.load_mailboxes
    ids = []
    started = time.monotonic()
    for number in range(options.load_mailboxes):
        account = bench.stack.add_user(f"b8-w{workers}-{number:02d}")
        corpus = IncomingCorpus(
            messages=per_mailbox, owner=account.address, seed=options.seed + 1000 * workers + number
        )
        add_records(corpus.crm)
        bench.stack.write_maildir(account.address, corpus.messages())
        _raw_pass(bench.stack, account, _uids(bench.stack, account), parse=False)  # Dovecot's first read
        ids.append(_incoming_only(user_mailbox(account, bench.profile, name=f"B8 {workers} {number}")))
    options.load_messages = per_mailbox * options.load_mailboxes
    result.note(
        f"{workers} worker(s): {len(ids)} mailboxes of {per_mailbox} messages written and read once "
        f"in {time.monotonic() - started:.0f} s (not timed)"
    )
    return ids


def _idle_mailboxes(bench: Bench, result: Result) -> list[int]:
    """B2's mailboxes: one message each, synced once here (untimed), not due until a round makes them."""
    started = time.monotonic()
    ids = []
    for number in range(bench.options.poll_mailboxes):
        account: MailUser = bench.stack.add_user(f"b8-idle-{number:04d}")
        one = IncomingCorpus(messages=1, owner=account.address, seed=bench.options.seed + number)
        bench.stack.write_maildir(account.address, one.messages())
        mailbox = user_mailbox(account, bench.profile, name=f"B8 idle {number}")
        first = sync_incoming(mailbox=mailbox)
        if first.received != 1:
            raise RuntimeError(
                f"the first sync of {account.address} failed: {first.outcome} {first.error_text}"
            )
        ids.append(_incoming_only(mailbox))
    MailboxSchedule.objects.bulk_create(
        MailboxSchedule(
            mailbox_id=pk,
            kind=SyncKind.INCOMING,
            profile=bench.profile,
            next_due_on=timezone.now() + NOT_DUE,
            idle_runs=5,
        )
        for pk in ids
    )
    result.note(
        f"{len(ids)} idle mailboxes, one message each, synced once in {time.monotonic() - started:.0f} s"
    )
    return ids


def _incoming_only(mailbox: Mailbox) -> int:
    # The loads are incoming: the dispatcher would otherwise also claim each mailbox's (empty) send runs.
    Mailbox.objects.filter(pk=mailbox.pk).update(outgoing_enabled=False)
    return mailbox.pk


# --- the checks -------------------------------------------------------------------------------------


def _check(load: Load, ids: list[int], probes: list[dict[str, Any]]) -> None:
    load.tasks = len(probes)
    load.by_worker = Counter(p["worker"].split("@")[0] for p in probes)
    load.lease_not_held = sum(1 for p in probes if p["result"] == "lease not held")
    load.results = Counter(str(p["result"]) for p in probes)
    by_mailbox: dict[int, list[tuple[float, float, str]]] = defaultdict(list)
    for p in probes:
        by_mailbox[p["args"][0]].append((p["began"], p["ended"], p["worker"]))
    load.overlaps += _overlapping("task", by_mailbox)
    load.shared = sum(1 for spans in by_mailbox.values() if len({who for _, _, who in spans}) > 1)
    load.task_seconds = sum(p["ended"] - p["began"] for p in probes)
    runs = SyncRun.objects.filter(mailbox_id__in=ids, started_on__gte=load.since)
    by_run: dict[int, list[tuple[float, float, str]]] = defaultdict(list)
    for mailbox_id, began, ended in runs.values_list("mailbox_id", "started_on", "finished_on"):
        load.runs += 1
        load.run_seconds += ((ended or began) - began).total_seconds()
        by_run[mailbox_id].append((began.timestamp(), (ended or timezone.now()).timestamp(), "run"))
    load.overlaps += _overlapping("run", by_run)
    load.doubled += _doubles(ids)


def _overlapping(what: str, spans: dict[int, list[tuple[float, float, str]]]) -> Iterator[str]:
    for mailbox_id, intervals in spans.items():
        intervals.sort()
        for (_, ended, who), (began, _, other) in itertools.pairwise(intervals):
            if began < ended:
                overlap = ended - began
                yield f"mailbox {mailbox_id}: a {what} of {other} began {overlap:.3f} s before {who}'s ended"


def _doubles(ids: list[int]) -> list[str]:
    receipts = (
        Receipt.objects.filter(mailbox_id__in=ids)
        .values("mailbox_id", "server_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
    activities = (
        EmailActivity.objects.filter(receipts__mailbox_id__in=ids)
        .values("message_identity")
        .annotate(n=Count("id", distinct=True))
        .filter(n__gt=1)
    )
    return [f"receipt {r}" for r in receipts[:5]] + [f"activity {a}" for a in activities[:5]]


# --- the report -------------------------------------------------------------------------------------


def _note(load: Load, result: Result) -> None:
    unit = "messages" if load.name == "B1" else "polls"
    result.note(
        f"{load.name} load, {load.workers} worker(s): {load.items:,} {unit} in {load.seconds:.1f} s "
        f"= {load.rate:.1f}/s ({load.rate / load.workers:.1f}/s per worker); "
        f"CPU: workers {load.cpu_workers:.1f} s, "
        f"their database backends {load.cpu_database:.1f} s "
        f"({(load.cpu_workers + load.cpu_database) / max(load.items, 1) * 1000:.1f} ms per item), "
        f"Dovecot {load.cpu_dovecot:.1f} s, the dispatcher (this process) {load.cpu_dispatcher:.1f} s: "
        f"{load.cores:.2f} cores busy on average; "
        f"database +{load.db_bytes / 2**20:.1f} MiB "
        f"({load.db_bytes / max(load.items, 1) / 1024:.1f} KiB per item), "
        f"stored files +{load.file_bytes / 2**20:.1f} MiB"
    )
    result.note(f"  KiB per item by table: {load.tables}")
    if load.again:
        result.note(
            f"  of which {load.again} polls of a mailbox already polled in its round: claimed again by a "
            "tick whose time was read before that mailbox's release (see bench/README.md, B8)"
        )


def _figures(loads: list[Load]) -> list[Figure]:
    figures = []
    for name, unit in (("B1", "msg/s"), ("B2", "polls/s")):
        mine = [load for load in loads if load.name == name]
        if not mine:
            continue
        one = mine[0].rate / mine[0].workers
        for load in mine:
            figures.append(
                Figure(
                    f"B8 {name} load, {load.workers} worker(s)",
                    f"{load.rate:,.1f} {unit} ({load.rate / load.workers:,.1f} per worker)",
                    raw=f"{load.workers} x 1 worker's: {one * load.workers:,.1f} {unit}",
                    ratio=f"{load.rate / max(one * load.workers, 1e-9):.2f}",
                )
            )
    for load in loads:
        spread = ", ".join(f"{worker} {count}" for worker, count in sorted(load.by_worker.items()))
        clean = not load.overlaps and not load.doubled and load.missing == 0
        figures.append(
            Figure(
                f"B8 {load.name} load, {load.workers} worker(s): overlaps, doubles, missing",
                f"{len(load.overlaps)}, {len(load.doubled)}, {load.missing}",
                raw=f"{load.tasks} tasks ({spread}), {load.runs} runs, {load.lease_not_held} lease not held",
                target="0, 0, 0",
                met=clean,
            )
        )
    return figures
