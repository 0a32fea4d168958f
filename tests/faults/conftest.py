"""The fault table: each fault test records its runs here, and ``make reliability`` writes
them to docs/reliability.md (``RELIABILITY_REPORT`` names the file; unset, nothing is written)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.harness.tcp_proxy import FaultyProxy


@dataclass
class FaultRow:
    fault: str
    runs: int = 0
    messages: int = 0
    lost: int = 0
    doubled: int = 0
    unknown: int = 0  # emails left "outcome unknown" with their alert (never resent on their own)
    recovery_seconds: list[float] = field(default_factory=list)

    def add(self, *, messages: int, lost: int, doubled: int, recovered_in: float, unknown: int = 0) -> None:
        self.runs += 1
        self.messages += messages
        self.lost += lost
        self.doubled += doubled
        self.unknown += unknown
        self.recovery_seconds.append(recovered_in)


ROWS: dict[str, FaultRow] = {}


@pytest.fixture
def fault_table():
    def row(fault: str) -> FaultRow:
        return ROWS.setdefault(fault, FaultRow(fault))

    return row


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get("RELIABILITY_REPORT")
    if not target or not ROWS or hasattr(session.config, "workerinput"):
        return
    lines = [
        "| fault | runs | messages | lost | doubled | outcome unknown (alerted) | recovered in (max) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in ROWS.values():
        slowest = max(row.recovery_seconds) if row.recovery_seconds else 0.0
        lines.append(
            f"| {row.fault} | {row.runs} | {row.messages} | {row.lost} | {row.doubled} | {row.unknown} "
            f"| {slowest:.1f} s |"
        )
    path = Path(target)
    text = path.read_text() if path.exists() else ""
    start, end = "<!-- fault-table -->", "<!-- /fault-table -->"
    table = (
        f"{start}\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, `make reliability`:\n\n"
        + "\n".join(lines)
        + f"\n{end}"
    )
    if start in text and end in text:
        text = text[: text.index(start)] + table + text[text.index(end) + len(end) :]
    else:
        text = text + "\n" + table + "\n"
    path.write_text(text)


@pytest.fixture
def imap_proxy(dovecot) -> Iterator[FaultyProxy]:
    proxy = FaultyProxy(dovecot.host, dovecot.imaps_port)
    yield proxy
    proxy.close()


@pytest.fixture
def smtp_proxy(smtp_relay) -> Iterator[FaultyProxy]:
    proxy = FaultyProxy(smtp_relay.host, smtp_relay.port)
    yield proxy
    proxy.close()
