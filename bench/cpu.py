"""CPU time per unit of work, counted where it is spent: the benchmark's own process
(the engine runs in it, threads included), the PostgreSQL backend serving its
connection, and the Dovecot processes. Wall time alone would count the waits
and the other work on a shared two-core machine.

- the process: ``time.process_time()`` (every thread of it, ns resolution);
- the PostgreSQL backend: ``/proc/<pid>/schedstat``'s time on a CPU (ns) of the
  backend process serving Django's connection (PostgreSQL runs on this machine);
  the server's shared work (WAL writer, checkpointer, autovacuum) is not counted;
- Dovecot: ``utime + stime`` of every process of its process group, plus what its
  master has reaped from exited children (``cutime + cstime``: the short-lived
  login and IMAP processes of each connection), in clock ticks (10 ms).

Runs as root, which the mail stack needs anyway, so ``/proc`` is readable.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Cpu:
    """Seconds of CPU, by where they were spent."""

    process: float = 0.0
    database: float = 0.0
    dovecot: float = 0.0

    @property
    def serversync(self) -> float:
        """The engine's own share: its process and the database work it asked for."""
        return self.process + self.database

    def __add__(self, other: Cpu) -> Cpu:
        return Cpu(self.process + other.process, self.database + other.database, self.dovecot + other.dovecot)

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(self.process - other.process, self.database - other.database, self.dovecot - other.dovecot)

    def per(self, count: int) -> Cpu:
        count = max(count, 1)
        return Cpu(self.process / count, self.database / count, self.dovecot / count)

    def milliseconds(self) -> str:
        return (
            f"{self.serversync * 1000:.2f} ms (process {self.process * 1000:.2f} + "
            f"database {self.database * 1000:.2f}); Dovecot {self.dovecot * 1000:.2f} ms"
        )


class CpuMeter:
    """Snapshots of the three counters; ``Cpu`` differences between two of them."""

    def __init__(self, dovecot_pid: int | None) -> None:
        self.dovecot_group = os.getpgid(dovecot_pid) if dovecot_pid else None
        # This process's CPU spent taking snapshots (walking /proc for Dovecot's processes takes
        # ~20 ms on a busy machine): left out of the process's figure, which is the engine's.
        self.overhead = 0.0

    def now(self) -> Cpu:
        started = time.process_time()
        database, dovecot = schedstat(backend_pid()), self._dovecot()
        process = started - self.overhead
        self.overhead += time.process_time() - started
        return Cpu(process, database, dovecot)

    def _dovecot(self) -> float:
        if self.dovecot_group is None:
            return 0.0
        return sum(process_ticks(pid, children=True) for pid in group_members(self.dovecot_group)) / TICK


def backend_pid() -> int:
    """The PostgreSQL process serving Django's default connection (asked once per connection)."""
    from django.db import connection

    connection.ensure_connection()
    cached: int | None = getattr(connection, "_bench_backend_pid", None)
    if cached is None or getattr(connection, "_bench_backend_of", None) is not connection.connection:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            cached = int(cursor.fetchone()[0])
        connection._bench_backend_pid = cached  # type: ignore[attr-defined]
        connection._bench_backend_of = connection.connection  # type: ignore[attr-defined]
    return cached


def schedstat(pid: int) -> float:
    """A process's time on a CPU, in seconds (ns resolution)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


def process_ticks(pid: int, *, children: bool = False) -> int:
    """utime + stime (and the reaped children's cutime + cstime) of ``pid``, in clock ticks; 0 if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0
    # After the name: state ppid pgrp ...; utime (field 14) is fields[11], then stime, cutime, cstime.
    own = int(fields[11]) + int(fields[12])
    return own + (int(fields[13]) + int(fields[14]) if children else 0)


def process_cpu(pid: int) -> float:
    """A running process's CPU seconds (its threads included), from ``/proc``."""
    return process_ticks(pid) / TICK


def group_members(group: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == group:
            members.append(int(entry.name))
    return members
