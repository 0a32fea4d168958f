"""Page benchmark: the dashboard, the mailbox list and the alert wall of a large
organization, served cold by gunicorn (as in production) from PostgreSQL.

    .venv/bin/python -m bench.dashboard             # seed, measure, drop (make bench)
    .venv/bin/python -m bench.dashboard --keep      # ... and keep the database
    .venv/bin/python -m bench.dashboard --reuse     # measure a kept database again
    .venv/bin/python -m bench.dashboard --reuse --explain   # + each page's slowest queries, EXPLAINed

It creates its own database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/serversync_bench), builds the schema with
``migrate``, bulk-loads it (bench/seed.py, COPY), and for each page restarts
gunicorn and times REQUESTS full-page GETs as an administrator. What "cold"
means and the results are in bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script as well as with -m
    sys.path.insert(0, str(ROOT))

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/serversync_bench"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/14"
# The three the target is set for, then the item-level view and one mailbox page.
PAGES = ("/", "/mailboxes/", "/alerts/", "/emails/", "/mailboxes/1/")
TARGET_MS = 300.0
DATA_DIR = ROOT / "var" / "bench"


def main() -> int:
    args = _arguments()
    os.environ.update(_environment(args))
    if not args.reuse:
        _recreate_database(args.database_url)
    import django

    django.setup()
    from django.core.management import call_command

    seeded_in = None
    if not args.reuse:
        started = time.monotonic()
        call_command("migrate", verbosity=0)
        print(f"schema (migrate): {time.monotonic() - started:.1f} s", flush=True)
        seeded_in = _seed(args)
    call_command("collectstatic", interactive=False, verbosity=0)
    session = _admin_session()
    results = [_measure(page, session, args) for page in args.pages]
    _report(results, args, seeded_in)
    if args.explain:
        _explain(args.pages)
    if not args.keep and not args.reuse:
        _drop_database(args.database_url)
    return 0 if all(r.ok for r in results) else 1


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mailboxes", type=int, default=10_000)
    parser.add_argument("--emails", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=50, help="timed requests per page")
    parser.add_argument("--pages", nargs="+", default=list(PAGES))
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers (requests are sequential)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true", help="measure the kept database; no seeding")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE each page's slowest queries")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--broker-url", default=os.environ.get("BENCH_BROKER_URL", DEFAULT_BROKER_URL))
    return parser.parse_args()


def _environment(args: argparse.Namespace) -> dict[str, str]:
    """Production settings (config.settings, DEBUG off) on the bench's own database and keys."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "false",
        "SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789",
        "CREDENTIAL_KEYS": "YmVuY2gtb25seS1jcmVkZW50aWFsLWtleS0zMmJ5dGU=",
        "DATABASE_URL": args.database_url,
        # Cold: every request opens its own database connection.
        "DATABASE_CONN_MAX_AGE": "0",
        "CELERY_BROKER_URL": args.broker_url,
        "SERVERSYNC_DATA_DIR": str(DATA_DIR),
        "ALLOWED_HOSTS": "127.0.0.1 localhost testserver",
        "LOG_LEVEL": "WARNING",
    }


# -- the database --------------------------------------------------------------------------------


def _maintenance(url: str) -> tuple[Any, str]:
    import dj_database_url
    import psycopg

    config = dj_database_url.parse(url)
    connection = psycopg.connect(
        dbname="postgres",
        user=config.get("USER") or None,
        password=config.get("PASSWORD") or None,
        host=config.get("HOST") or None,
        port=config.get("PORT") or None,
        autocommit=True,
    )
    return connection, str(config["NAME"])


def _recreate_database(url: str) -> None:
    from psycopg import sql

    connection, name = _maintenance(url)
    with connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    print(f"database {name}: created", flush=True)


def _drop_database(url: str) -> None:
    from django.db import connections
    from psycopg import sql

    connections.close_all()
    connection, name = _maintenance(url)
    with connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    print(f"database {name}: dropped", flush=True)


def _seed(args: argparse.Namespace) -> float:
    from django.db import connection
    from django.utils import timezone

    from bench.seed import seed

    started = time.monotonic()
    print(f"seeding {args.mailboxes:,} mailboxes and {args.emails:,} email activities (COPY):", flush=True)
    seed(mailboxes=args.mailboxes, emails=args.emails, now=timezone.now())
    analyzed = time.monotonic()
    with connection.cursor() as cursor:
        # What autovacuum would have done on a live system: statistics and the visibility map.
        cursor.execute("VACUUM (ANALYZE)")
    print(f"  {'VACUUM (ANALYZE)':<28} {'':>10}       {time.monotonic() - analyzed:6.1f} s", flush=True)
    elapsed = time.monotonic() - started
    print(f"seeded in {elapsed:.0f} s", flush=True)
    return elapsed


def _admin_session() -> str:
    """A signed-in administrator's session, made before the server starts, so signing in warms nothing."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore

    from bench.seed import ADMIN_USERNAME

    admin = User.objects.get(username=ADMIN_USERNAME)
    session = SessionStore()
    session[SESSION_KEY] = str(admin.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = admin.get_session_auth_hash()
    session.save()
    return str(session.session_key)


# -- the server and the timings ------------------------------------------------------------------


@dataclass
class PageResult:
    page: str
    timings_ms: list[float]
    status: int
    size: int
    queries: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def p95(self) -> float:
        return _percentile(self.timings_ms, 0.95)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    # Nearest rank: the value below which this fraction of the requests fall.
    rank = max(1, round(fraction * len(ordered) + 0.499999))
    return ordered[min(rank, len(ordered)) - 1]


class Gunicorn:
    """gunicorn serving config.wsgi as the Procfile and the Dockerfile run it."""

    def __init__(self, workers: int) -> None:
        self.port = _free_port()
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None
        self.log = DATA_DIR / "gunicorn.log"

    def __enter__(self) -> Gunicorn:
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            "--no-control-socket",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            "--access-logfile",
            "-",
        ]
        with self.log.open("ab") as log:
            # A fixed command: this interpreter's gunicorn.
            self.process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 60) -> None:
        # A static file: whitenoise answers it before Django's URLs, views, templates or the
        # database are touched, so the page's first request is still cold.
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {self.log}")
            try:
                if requests.get(self.url("/static/serversync/serversync.css"), timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"gunicorn did not start; see {self.log}")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _measure(page: str, session: str, args: argparse.Namespace) -> PageResult:
    import requests

    timings, status, size = [], 0, 0
    with Gunicorn(args.workers) as server:
        for _ in range(args.requests):
            started = time.perf_counter()
            # A new connection each time (no requests.Session), the whole body read.
            response = requests.get(
                server.url(page), cookies={"sessionid": session}, allow_redirects=False, timeout=120
            )
            timings.append((time.perf_counter() - started) * 1000)
            status, size = response.status_code, len(response.content)
            if status != 200:
                print(f"{page}: HTTP {status}; see {server.log}", file=sys.stderr)
                break
    result = PageResult(page, timings, status, size, _query_count(page))
    print(f"{page:<14} p95 {result.p95:7.1f} ms", flush=True)
    return result


def _query_count(page: str) -> int:
    """The page's SQL statements, counted in this process (not timed)."""
    return len(_captured_queries(page))


def _captured_queries(page: str) -> list[dict[str, str]]:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from bench.seed import ADMIN_USERNAME

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(User.objects.get(username=ADMIN_USERNAME))
    with CaptureQueriesContext(connection) as captured:
        client.get(page)
    return captured.captured_queries


def _report(results: list[PageResult], args: argparse.Namespace, seeded_in: float | None) -> None:
    print()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {_machine()}")
    # Other work on the machine shows in the timings; the load says how much there was.
    print("load average (1, 5, 15 min) at the end: " + ", ".join(f"{load:.1f}" for load in os.getloadavg()))
    print(
        f"{args.mailboxes:,} mailboxes, {args.emails:,} email activities; {args.requests} requests per page,"
    )
    print("cold: gunicorn restarted before each page, a new HTTP and database connection per request.")
    if seeded_in is not None:
        print(f"seeding (migrate excluded): {seeded_in:.0f} s")
    print()
    print(f"| page | first | p50 | p95 | max | target p95 ≤ {TARGET_MS:.0f} ms | queries | HTML |")
    print("|---|---:|---:|---:|---:|---|---:|---:|")
    for r in results:
        if not r.ok:
            print(f"| `{r.page}` | HTTP {r.status} | | | | failed | | |")
            continue
        verdict = "met" if r.p95 <= TARGET_MS else "**missed**"
        times = [r.timings_ms[0], statistics.median(r.timings_ms), r.p95, max(r.timings_ms)]
        cells = [
            f"`{r.page}`",
            *(f"{ms:.0f} ms" for ms in times),
            verdict,
            str(r.queries),
            f"{r.size // 1024} KiB",
        ]
        print("| " + " | ".join(cells) + " |")


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
        cpu = model
    except (OSError, StopIteration):
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0].split()[0]
    return f"{os.cpu_count()} x {cpu}{memory}, PostgreSQL {postgres}, Python {platform.python_version()}"


def _explain(pages: list[str], slowest: int = 4) -> None:
    """Each page's slowest queries, with PostgreSQL's plan and timing."""
    from django.db import connection

    for page in pages:
        queries = sorted(_captured_queries(page), key=lambda q: float(q["time"]), reverse=True)
        total = sum(float(q["time"]) for q in queries) * 1000
        print(f"\n=== {page}: {len(queries)} queries, {total:.0f} ms in the database")
        for query in queries[:slowest]:
            # A server-side cursor's query follows its DECLARE ... FOR.
            select = re.sub(r"^DECLARE .*? FOR ", "", query["sql"], count=1, flags=re.S)
            shown = re.sub(r"^SELECT .{200,}? FROM ", "SELECT ... FROM ", select, count=1, flags=re.S)
            print(f"\n--- {float(query['time']) * 1000:.1f} ms\n{shown}\n")
            if select.lstrip().upper().startswith("SELECT"):
                with connection.cursor() as cursor:
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + select)
                    print("\n".join(row[0] for row in cursor.fetchall()))


if __name__ == "__main__":
    sys.exit(main())
