"""Scale-out benchmarks (issue 15): B6 growth and B8 workers, on the test mail stack.

    .venv/bin/python -m bench.scale                         # both (make bench-scale)
    .venv/bin/python -m bench.scale --only B6 --sizes 100,1000 --big-messages 10000   # a quick check
    .venv/bin/python -m bench.scale --only B8 --workers 1,2 --load-messages 400

- B6  CPU per idle poll at 10,000 mailboxes ÷ at 100 (bench/growth.py); a mailbox of
      100,000 messages ÷ one of 100; the dispatcher's cost per tick against its due
      mailboxes, with the plans of its slowest statements
- B8  the B1 and B2 loads with 1, 2 and 4 real Celery workers (bench/workers.py):
      throughput per worker, no mailbox run by two workers at once, nothing doubled

As bench.email_engine: root (it starts Dovecot as the tests do), PostgreSQL and Redis,
a database of its own (BENCH_SCALE_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/serversync_bench_scale_<pid>) which it drops and
creates — never point it at one you care about — and drops again at the end unless
--keep; the workers' broker is BENCH_BROKER_URL (default redis://127.0.0.1:6379/14),
whose queues it purges. Exits 1 when a target is missed or a figure could not be
measured. Results and the capacity model: bench/README.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bench.dashboard import DEFAULT_BROKER_URL, _drop_database, _machine, _recreate_database
from bench.email_engine import TMPFS, _environment, _guarded, _names, _terminate
from bench.email_figures import Result, print_table
from bench.mail_stack import MailStack

if TYPE_CHECKING:
    from bench.email_crm import Bench

DEFAULT_DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/serversync_bench_scale_{os.getpid()}"
BENCHMARKS = ("B6", "B8")


def main() -> int:
    options = _arguments()
    if os.geteuid() != 0:
        print("bench.scale starts Dovecot as the tests do: run it as root.", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    workdir = Path(tempfile.mkdtemp(prefix="serversync-bench-scale-", dir=TMPFS if TMPFS.is_dir() else None))
    workdir.chmod(0o755)  # Dovecot's users walk through it to their mail
    try:
        with MailStack(workdir) as stack:
            return _run(options, stack, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _integers(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--only", type=_names(BENCHMARKS), default=list(BENCHMARKS), help="B6, B8 (default: both)")
    add("--sizes", type=_integers, default=[100, 10_000], help="B6's populations, smallest first")
    add("--polls", type=int, default=300, help="B6's timed polls per population")
    add("--sample", type=int, default=300, help="B6's mailboxes polled, drawn from the population")
    add("--interval", type=int, default=1800, help="B6: seconds between an idle mailbox's polls")
    add("--history-hours", type=int, default=24, help="B6: hourly sync runs behind each mailbox")
    add("--big-messages", type=int, default=100_000, help="B6's large mailbox (0: skip)")
    add("--big-polls", type=int, default=200, help="B6's polls of each of the large and small mailbox")
    add("--workers", type=_integers, default=[1, 2, 4], help="B8's worker counts")
    add("--load-mailboxes", type=int, default=8, help="B8's B1 load: mailboxes")
    add("--load-messages", type=int, default=1600, help="B8's B1 load: messages, over all its mailboxes")
    add("--run-budget", type=int, default=50, help="B8's B1 load: messages per run (SYNC_RUN_MAX_MESSAGES)")
    add("--poll-mailboxes", type=int, default=300, help="B8's B2 load: idle mailboxes")
    add("--rounds", type=int, default=3, help="B8's B2 load: rounds over them")
    add(
        "--reuse-connections",
        type=int,
        default=0,
        help="B8: CELERY_DB_REUSE_MAX in the workers (default: unset, as the project: a connection per task)",
    )
    add("--seed", type=int, default=11, help="random seed")
    add("--keep", action="store_true", help="keep the database afterwards")
    add("--database-url", default=os.environ.get("BENCH_SCALE_DATABASE_URL", DEFAULT_DATABASE_URL))
    add("--broker-url", default=os.environ.get("BENCH_BROKER_URL", DEFAULT_BROKER_URL))
    options = parser.parse_args()
    options.profile = []  # bench.email_crm.Bench's: nothing profiled here
    return options


def _run(options: argparse.Namespace, stack: MailStack, workdir: Path) -> int:
    os.environ.update(_environment(options, stack, workdir))
    # The run budget back to production's for B6 (B8's workers get theirs from --run-budget).
    for name in ("SYNC_RUN_MAX_MESSAGES", "SYNC_RUN_MAX_SECONDS", "SYNC_MESSAGE_MAX_SECONDS"):
        os.environ.pop(name, None)
    _recreate_database(options.database_url)
    results: dict[str, Result] = {}
    try:
        import django

        django.setup()
        _isolate_broker()
        results = _measure(options, stack, workdir)
        _report(options, results)
    finally:
        if not options.keep:
            _drop_database(options.database_url)
    return 1 if any(f.missed for r in results.values() for f in r.figures) else 0


def _isolate_broker() -> None:
    """Keys of this run's own on the broker's Redis, for this process and B8's workers
    (bench/worker_probe.py): another benchmark's workers on the same Redis database (the
    default BENCH_BROKER_URL is shared) would otherwise take this run's tasks, and its workers theirs."""
    from config.celery import app

    prefix = f"serversync-bench-scale-{os.getpid()}:"
    os.environ["BENCH_REDIS_PREFIX"] = prefix
    app.conf.broker_transport_options = {"global_keyprefix": prefix}
    app.conf.result_backend_transport_options = {"global_keyprefix": prefix}


def _measure(options: argparse.Namespace, stack: MailStack, workdir: Path) -> dict[str, Result]:
    from django.core.management import call_command

    from bench.email_crm import Bench, stack_profile
    from bench.growth import growth
    from bench.workers import workers

    logging.getLogger("mail.log").setLevel(logging.ERROR)
    started = time.monotonic()
    call_command("migrate", verbosity=0)
    print(f"schema (migrate): {time.monotonic() - started:.0f} s", flush=True)
    bench = Bench(options=options, stack=stack, profile=stack_profile(stack), workdir=workdir)
    runners: dict[str, Callable[[Bench], Result]] = {"B6": growth, "B8": workers}
    return {name: _guarded(name, runners[name], bench) for name in BENCHMARKS if name in options.only}


def _report(options: argparse.Namespace, results: dict[str, Result]) -> None:
    print(f"\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {_machine()}")
    print("load average (1, 5, 15 min) at the end: " + ", ".join(f"{load:.1f}" for load in os.getloadavg()))
    print(
        f"B6 populations {', '.join(f'{n:,}' for n in options.sizes)}, {options.polls} polls each, "
        f"one poll per mailbox every {options.interval} s; large mailbox {options.big_messages:,} messages. "
        f"B8 workers {', '.join(map(str, options.workers))}; B1 load {options.load_messages:,} messages in "
        f"{options.load_mailboxes} mailboxes, runs of {options.run_budget}; "
        f"B2 load {options.poll_mailboxes} mailboxes, {options.rounds} rounds"
        + (
            f"; workers reuse connections for {options.reuse_connections} tasks"
            if options.reuse_connections
            else ""
        )
    )
    print()
    print_table([f for r in results.values() for f in r.figures])
    for name, result in results.items():
        if result.details:
            print(f"\n{name}:")
            for line in result.details:
                print(f"- {line}")


if __name__ == "__main__":
    sys.exit(main())
