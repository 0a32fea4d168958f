"""Address resolution at CRM scale: ``sync.tracking.resolve`` against 100,000
contacts and 10,000 accounts (COPY-loaded), for hits and misses, next to one
statement that looks the address up in all five tables through their
``lower(email)`` indexes; and the plans of resolve's own statements."""

from __future__ import annotations

import random
import re
import statistics
import time
from collections.abc import Callable

from django.db import connection
from django.db.models import Model
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bench.bulk import copy_rows
from bench.email_crm import Bench
from bench.email_figures import Figure, Result
from crm.models import Account, Contact, CrmUser, Lead, OrganizationSettings, Queue
from sync import tracking

# Per group; at 100,000 contacts today's scans take ~0.1 s an address.
SAMPLES = 100
# Tables big enough that a scan shows: their statements must read the lower(email) index.
INDEXED: dict[type[Model], str] = {Contact: "contact_email_lower", Account: "account_email_lower"}
PARTY_TABLES = (CrmUser, Queue, Contact, Account, Lead)
# The raw counterpart: every kind of record in one round trip, each through its lower(email) index.
ONE_STATEMENT = " UNION ALL ".join(
    f"(SELECT '{model.__name__}', id FROM {model._meta.db_table} "  # noqa: S608 - names from the models
    "WHERE lower(email) = lower(%s) AND is_active ORDER BY id LIMIT 2)"
    for model in PARTY_TABLES
)


def resolution(bench: Bench) -> Result:
    result = Result()
    contacts, accounts = bench.options.contacts, bench.options.accounts
    _seed(contacts, accounts)
    organization = OrganizationSettings.load()
    rng = random.Random(bench.options.seed)  # noqa: S311 - sampling, not secrets
    groups = {
        f"contact hit ({contacts:,} contacts)": [
            _cased(rng, _contact(rng.randrange(contacts), accounts)) for _ in range(SAMPLES)
        ],
        f"account hit ({accounts:,} accounts)": [
            _cased(rng, _account(rng.randrange(accounts))) for _ in range(SAMPLES)
        ],
        "miss": [f"nobody{n}@unknown{n}.example" for n in range(SAMPLES)],
    }
    resolve = _resolver(organization)
    for label, addresses in groups.items():
        engine = _timed(addresses, resolve)
        raw = _timed(addresses, _one_statement)
        result.figures.append(
            Figure(
                f"resolve, {label}",
                f"{statistics.mean(engine):.2f} ms/address (p95 {_p95(engine):.2f})",
                raw=f"one indexed statement {statistics.mean(raw):.2f} ms",
                ratio=f"{statistics.mean(raw) / statistics.mean(engine):.2f}",
            )
        )
    result.figures.append(_plans(organization, groups["miss"][0], result))
    return result


def _resolver(organization: OrganizationSettings) -> Callable[[str], object]:
    """One address, uncached: ``resolve(address, organization)`` as the engine has it today, or
    ``Parties(organization).of(address)`` once issue 11's rework replaces it (a new ``Parties``
    for each address, so its memory of the run answers nothing)."""
    resolve = getattr(tracking, "resolve", None)
    if resolve is not None:
        return lambda address: resolve(address, organization)
    return lambda address: tracking.Parties(organization).of(address)


def _seed(contacts: int, accounts: int) -> None:
    now = timezone.now()
    stamps = {"created_on": now, "modified_on": now}
    copy_rows(
        Account, ({"name": f"Kunde {n:05d} AG", "email": _account(n), **stamps} for n in range(accounts))
    )
    copy_rows(
        Contact,
        (
            {"first_name": "Pat", "last_name": f"Kontakt{n:06d}", "email": _contact(n, accounts), **stamps}
            for n in range(contacts)
        ),
    )
    with connection.cursor() as cursor:
        # What autovacuum would have done by now on a live system: statistics for the planner.
        cursor.execute(f"VACUUM (ANALYZE) {Contact._meta.db_table}, {Account._meta.db_table}")


def _contact(number: int, accounts: int) -> str:
    return f"kontakt{number}@kunde{number % accounts}.crm.example"


def _account(number: int) -> str:
    return f"info@kunde{number}.crm.example"


def _cased(rng: random.Random, address: str) -> str:
    """Senders write addresses in any case; resolution must not care."""
    return rng.choice([address, address.upper(), address.capitalize()])


def _timed(addresses: list[str], call: Callable[[str], object]) -> list[float]:
    timings = []
    for address in addresses:
        started = time.perf_counter()
        call(address)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def _p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def _one_statement(address: str) -> None:
    """The raw counterpart: every kind of record in one round trip, each through its index."""
    with connection.cursor() as cursor:
        cursor.execute(ONE_STATEMENT, [address] * len(PARTY_TABLES))
        cursor.fetchall()


def _plans(organization: OrganizationSettings, address: str, result: Result) -> Figure:
    """EXPLAIN ANALYZE of each statement resolve sends for a miss (a miss asks every table)."""
    with CaptureQueriesContext(connection) as captured:
        _resolver(organization)(address)
    unindexed = []
    print(f"\n--- resolving {address!r}: {len(captured.captured_queries)} statements, their plans")
    for query in captured.captured_queries:
        sql = query["sql"]
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
            plan = [row[0] for row in cursor.fetchall()]
        shown = re.sub(r"^SELECT .{100,}? FROM ", "SELECT ... FROM ", sql, count=1, flags=re.S)
        print(f"\n{shown}\n" + "\n".join(f"    {line}" for line in plan))
        for model, index in INDEXED.items():
            if f'FROM "{model._meta.db_table}"' in sql and not any(index in line for line in plan):
                unindexed.append(f"{model._meta.db_table} ({_scan(plan)})")
    _print_raw_plan(address)
    result.note(f"resolve's statements without their lower(email) index: {', '.join(unindexed) or 'none'}")
    return Figure(
        "resolve's statements on contacts and accounts",
        ", ".join(unindexed) or "index scans",
        target="the lower(email) indexes",
        met=not unindexed,
    )


def _print_raw_plan(address: str) -> None:
    """The raw counterpart's plan, to show what the indexes give."""
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, COSTS OFF) " + ONE_STATEMENT, [address] * len(PARTY_TABLES))
        plan = [row[0] for row in cursor.fetchall()]
    print("\nthe raw counterpart, one statement (lower(email) = lower(%s) in each table):")
    print("\n".join(f"    {line}" for line in plan))


def _scan(plan: list[str]) -> str:
    """The plan's scan node, e.g. 'Seq Scan on crm_contact'."""
    for line in plan:
        match = re.search(r"((?:Parallel )?(?:Seq|Index|Index Only|Bitmap Heap) Scan[^(]*)", line)
        if match:
            return match.group(1).strip()
    return "?"
