"""Email engine benchmark: serversync's sync and send paths timed side by side with
the raw protocol doing the least the same job needs, in one process run (issue 11 §3).

    .venv/bin/python -m bench.email_engine                      # everything (make bench-email; ~7 min)
    .venv/bin/python -m bench.email_engine --messages 300 --mailboxes 20   # a quick check
    .venv/bin/python -m bench.email_engine --only B1,B2 --profile B1       # a subset, with hot spots

- B1  initial sync of one mailbox holding the corpus into activities (sync_incoming)
      vs imapclient fetch + BytesParser(policy.default), and vs fetch only
- B2  idle polls of mailboxes with nothing new (sync_incoming) vs login + EXAMINE + logout
- B3  new mail's delay, delivery -> stored activity: push (manage.py listen, IDLE) and polling
- B4  sending pending CRM email (send_pending) vs smtplib over one connection, same relay
- B5  peak RSS of one very large message through sync_incoming, in a fresh process
- resolve  sync.tracking.resolve against 100,000 contacts and 10,000 accounts, with its plans

It starts the test harness's Dovecot (mail on tmpfs) and SMTP relay (tests/harness/),
so it must run as root as the tests do, and a PostgreSQL database of its own
(BENCH_EMAIL_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/serversync_bench_email_<pid>, so that two runs at
once do not drop each other's), which it drops and creates — never point it at one
you care about — and drops again at the end unless --keep. Production settings
(config.settings, DEBUG off); the benchmarks size the engine's runs themselves.
Exits 1 when a target is missed or a figure could not be measured. Results:
bench/README.md.
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
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bench.dashboard import DEFAULT_BROKER_URL, _drop_database, _machine, _recreate_database
from bench.email_figures import Figure, Result, print_table
from bench.mail_stack import MailStack

if TYPE_CHECKING:  # the models: imported at run time only once Django is set up
    from bench.email_crm import Bench

# A database per run: two engineers' runs on one machine must not drop each other's.
DEFAULT_DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/serversync_bench_email_{os.getpid()}"
BENCHMARKS = ("B1", "B2", "B3", "B4", "B5", "resolve")
PROFILABLE = ("B1", "B2", "B4", "B5")
# Dovecot's mail, the stored raw messages and attachments: memory, so the figures are not the disk's.
TMPFS = Path("/dev/shm")  # noqa: S108 - a private mkdtemp below it, 0755


def main() -> int:
    options = _arguments()
    if os.geteuid() != 0:
        print("bench.email_engine starts Dovecot as the tests do: run it as root.", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    for pid in _other_runs():
        print(
            f"another email benchmark is running (process {pid}): both runs' timings suffer", file=sys.stderr
        )
    workdir = Path(tempfile.mkdtemp(prefix="serversync-bench-email-", dir=TMPFS if TMPFS.is_dir() else None))
    workdir.chmod(0o755)  # Dovecot's users walk through it to their mail
    try:
        with MailStack(workdir) as stack:
            return _run(options, stack, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class Terminated(SystemExit):
    """SIGTERM (timeout, kill): the run stops and cleans up as after Ctrl-C (servers, tmpfs, database)."""


_terminated: list[Terminated] = []


def _terminate(number: int, frame: object) -> None:
    _terminated.append(Terminated(128 + number))
    raise _terminated[-1]


def _other_runs() -> list[int]:
    """Other processes running this benchmark: they share the two cores, so say so."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if b"bench.email_engine" in command:
            found.append(int(entry.name))
    return found


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only", type=_names(BENCHMARKS), default=list(BENCHMARKS), help="e.g. B1,B2 (default: all)"
    )
    parser.add_argument(
        "--profile",
        type=_names(PROFILABLE),
        default=[],
        help="cProfile hot spots of e.g. B1,B2; B5: tracemalloc",
    )
    parser.add_argument("--top", type=int, default=25, help="lines per profile list")
    parser.add_argument("--messages", type=int, default=3000, help="B1's corpus")
    parser.add_argument("--mailboxes", type=int, default=200, help="B2's idle mailboxes")
    parser.add_argument("--push-mailboxes", type=int, default=1000, help="B3's mailboxes held in IDLE")
    parser.add_argument("--push-seconds", type=int, default=120, help="B3's seconds of one message a second")
    parser.add_argument(
        "--emails", type=int, default=None, help="B4's pending emails (default: messages / 15)"
    )
    parser.add_argument("--big-mb", type=int, default=42, help="B5's message, MiB")
    parser.add_argument("--contacts", type=int, default=100_000, help="address resolution's contacts")
    parser.add_argument("--accounts", type=int, default=10_000, help="address resolution's accounts")
    parser.add_argument("--seed", type=int, default=11, help="the corpus's random seed")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_EMAIL_DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    parser.add_argument("--broker-url", default=os.environ.get("BENCH_BROKER_URL", DEFAULT_BROKER_URL))
    options = parser.parse_args()
    options.emails = options.emails or max(20, options.messages // 15)
    return options


def _names(allowed: tuple[str, ...]) -> Callable[[str], list[str]]:
    by_key = {name.lower(): name for name in allowed}

    def parse(text: str) -> list[str]:
        names = [part.strip().lower() for part in text.split(",") if part.strip()]
        unknown = [name for name in names if name not in by_key]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(unknown)}; choose from {', '.join(allowed)}"
            )
        return [by_key[name] for name in names]

    return parse


def _environment(options: argparse.Namespace, stack: MailStack, workdir: Path) -> dict[str, str]:
    """Production settings (DEBUG off) on the bench's own database, keys and data folder."""
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "false",
        "SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789",
        "CREDENTIAL_KEYS": "YmVuY2gtb25seS1jcmVkZW50aWFsLWtleS0zMmJ5dGU=",
        "DATABASE_URL": options.database_url,
        "CELERY_BROKER_URL": options.broker_url,
        "SERVERSYNC_DATA_DIR": str(workdir / "data"),
        "SYNC_CA_FILE": stack.ca_file,
        # The benchmarks size the runs themselves (bench.email_crm.run_budget), not the defaults'
        # 200 messages and 120 s: the figures are the engine's pace, not its budget's.
        "SYNC_RUN_MAX_MESSAGES": "1000000",
        "SYNC_RUN_MAX_SECONDS": "3600",
        # The per-message time limit (issue 11 §2), which tracemalloc would slow B5's message past.
        "SYNC_MESSAGE_MAX_SECONDS": "600",
        "LOG_LEVEL": "WARNING",
    }


def _run(options: argparse.Namespace, stack: MailStack, workdir: Path) -> int:
    os.environ.update(_environment(options, stack, workdir))
    _recreate_database(options.database_url)
    try:
        import django

        django.setup()
        results = _measure(options, stack, workdir)
        _report(options, results)
    finally:
        if not options.keep:
            _drop_database(options.database_url)
    return 1 if any(f.missed for r in results.values() for f in r.figures) else 0


def _measure(options: argparse.Namespace, stack: MailStack, workdir: Path) -> dict[str, Result]:
    from django.core.management import call_command

    # Imported once Django is set up: they import the models.
    from bench.address_resolution import resolution
    from bench.email_crm import Bench, stack_profile
    from bench.email_incoming import idle_poll, initial_sync
    from bench.email_memory import peak_memory
    from bench.email_outgoing import send
    from bench.email_push import push_latency

    # aiosmtpd's deprecation warning on every relay login is the harness's, not the engine's.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    started = time.monotonic()
    call_command("migrate", verbosity=0)
    print(f"schema (migrate): {time.monotonic() - started:.0f} s", flush=True)
    bench = Bench(options=options, stack=stack, profile=stack_profile(stack), workdir=workdir)
    runners: dict[str, Callable[[Bench], Result]] = {
        "B1": initial_sync,
        "B2": idle_poll,
        "B3": push_latency,
        "B4": send,
        "B5": peak_memory,
        "resolve": resolution,
    }
    return {name: _guarded(name, runners[name], bench) for name in BENCHMARKS if name in options.only}


def _guarded(name: str, runner: Callable[[Bench], Result], bench: Bench) -> Result:
    """One benchmark; one that breaks (the engine is being changed) is reported, and the others still run."""
    print(f"\n== {name}", flush=True)
    started = time.monotonic()
    try:
        result = runner(bench)
    except Exception as error:
        if (
            _terminated
        ):  # cleaning up after the signal failed in turn (say, an IMAP logout): stop all the same
            raise _terminated[-1] from error
        traceback.print_exc()
        result = Result([Figure(name, f"error: {type(error).__name__}: {str(error)[:100]}", failed=True)])
    print(f"== {name}: {time.monotonic() - started:.0f} s", flush=True)
    return result


def _report(options: argparse.Namespace, results: dict[str, Result]) -> None:
    print(f"\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {_machine()}")
    # Other work on the machine shows in the timings; the load says how much there was.
    print("load average (1, 5, 15 min) at the end: " + ", ".join(f"{load:.1f}" for load in os.getloadavg()))
    print(
        f"B1 {options.messages:,} messages; B2 {options.mailboxes} mailboxes; B4 {options.emails} emails; "
        f"B5 {options.big_mb} MiB; resolve {options.contacts:,} contacts, {options.accounts:,} accounts"
    )
    if options.profile:
        print(f"profiled: {', '.join(options.profile)} — their timings include the profiler's overhead")
    print()
    print_table([f for r in results.values() for f in r.figures])
    for name, result in results.items():
        if result.details:
            print(f"\n{name}:")
            for line in result.details:
                print(f"- {line}")


if __name__ == "__main__":
    sys.exit(main())
