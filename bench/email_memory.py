"""B5: peak memory for one very large message, each measurement in a fresh process.

The parent (``peak_memory``) delivers the message and starts this module as a
child (``python -m bench.email_memory --mailbox N --mode sync|store``). The
child sets Django up, imports the engine, opens its database connection, and
only then reads its baseline ``ru_maxrss``; it runs the message through the
engine and reports the new peak as a JSON line. The figure is (peak - baseline)
over the message's size.

- ``sync``: ``sync_incoming`` fetches the message over IMAP and stores it (the target).
- ``store``: ``store_message`` with the raw bytes already in memory before the
  baseline: what parsing and storing need beyond holding the message.
- ``--trace`` (``--profile B5``): tracemalloc, with a watcher thread keeping the
  snapshot of the highest total it saw, printed by allocation site. It slows
  the run and adds its own memory; its figure is not the measurement.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.email_figures import ROOT, Figure, Result, is_project, short_path

if TYPE_CHECKING:  # Django models: the child imports this module before Django is set up
    from bench.email_crm import Bench

B5_TARGET = 3.0
# Deep enough to reach serversync's frame below the email package's and imaplib's own.
TRACE_FRAMES = 10


# --- the parent ----------------------------------------------------------------------------------


def peak_memory(bench: Bench) -> Result:
    from bench.email_crm import user_mailbox  # needs Django set up, as the caller has
    from bench.mail_corpus import big_message

    result = Result()
    size = bench.options.big_mb * 2**20

    def prepared(label: str, *, deliver: bool) -> tuple[int, int, Path]:
        account = bench.stack.add_user(f"b5-{label}")
        mailbox = user_mailbox(account, bench.profile, name=f"Groß {label}")
        raw = big_message(size=size, owner=account.address, message_id=f"b5-{label}@example.test", seed=5)
        path = bench.workdir / f"b5-{label}.eml"
        if deliver:
            bench.stack.deliver(account.address, [raw])
        else:
            path.write_bytes(raw)
        return mailbox.pk, len(raw), path

    sync_box, sync_size, _ = prepared("sync", deliver=True)
    store_box, store_size, store_path = prepared("store", deliver=False)
    result.note(
        f"message: {sync_size / 2**20:.1f} MiB, one base64 attachment of "
        f"~{sync_size * 57 // 78 / 2**20:.0f} MiB decoded"
    )
    sync = _probe(["--mailbox", str(sync_box), "--mode", "sync"])
    store = _probe(["--mailbox", str(store_box), "--mode", "store", "--raw", str(store_path)])
    if bench.profiled("B5"):
        trace_box, _, _ = prepared("trace", deliver=True)
        _probe(["--mailbox", str(trace_box), "--mode", "sync", "--trace", "--top", str(bench.options.top)])
    result.figures.append(_figure("B5 peak RSS, one message, sync_incoming", sync, sync_size, target=True))
    result.figures.append(
        _figure("B5 store_message alone (raw already in memory)", store, store_size, target=False)
    )
    for label, probe in (("sync_incoming", sync), ("store_message", store)):
        result.note(_described(label, probe))
    return result


def _described(label: str, probe: dict[str, Any]) -> str:
    def mib(key: str) -> str:
        return f"{probe.get(key, 0) / 1024:,.0f} MiB"

    return (
        f"{label}: ru_maxrss {mib('baseline_kib')} after set-up (VmRSS {mib('resident_kib')}), "
        f"{mib('peak_kib')} after the message (VmHWM {mib('hwm_kib')}); "
        f"{probe.get('seconds', 0):.1f} s, {probe.get('outcome', probe.get('error', ''))}"
    )


def _probe(arguments: list[str]) -> dict[str, Any]:
    """Run the child; its last line is the JSON result, anything before it is printed."""
    # On Linux ru_maxrss survives execve: a child exec'd straight from this process would start with
    # this process's high-water mark as its own. A shell that forks it anew gives it a clean one
    # ("; exit" keeps sh from exec'ing the command in its own place).
    command = ["/bin/sh", "-c", '"$@"; exit $?', "sh", sys.executable, "-m", "bench.email_memory", *arguments]
    # A fixed command: this interpreter running this module; the environment carries the settings.
    done = subprocess.run(command, cwd=ROOT, env=os.environ, capture_output=True, text=True, check=False)  # noqa: S603
    lines = done.stdout.strip().splitlines()
    for line in lines[:-1]:
        print(line)
    try:
        return dict(json.loads(lines[-1]))
    except (IndexError, json.JSONDecodeError):
        return {"error": f"the child exited with {done.returncode}: {done.stderr.strip()[-2000:]}"}


def _figure(name: str, probe: dict[str, Any], size: int, *, target: bool) -> Figure:
    if "error" in probe:
        print(probe["error"], file=sys.stderr)
        return Figure(name, f"failed: {probe['error'][-120:]}", failed=target)
    grown = (probe["peak_kib"] - probe["baseline_kib"]) * 1024
    multiple = grown / size
    return Figure(
        name,
        f"{multiple:.1f}x its size ({grown / 2**20:,.0f} MiB over baseline)",
        target=f"≤ {B5_TARGET:.1f}x" if target else "-",
        met=multiple <= B5_TARGET if target else None,
    )


# --- the child -----------------------------------------------------------------------------------


def _maxrss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _status_kib(field: str) -> int:
    """VmRSS / VmHWM from /proc/self/status: the same high-water mark, to cross-check ru_maxrss."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


class PeakTracer:
    """Keeps the tracemalloc snapshot taken at the highest traced total seen (sampled every 5 ms,
    a new snapshot each time the total grows by a tenth: snapshots are not cheap)."""

    def __init__(self) -> None:
        tracemalloc.start(TRACE_FRAMES)
        self.highest = 0
        self.snapshot: tracemalloc.Snapshot | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            current, _ = tracemalloc.get_traced_memory()
            if current > self.highest * 1.1:
                self.highest = current
                self.snapshot = tracemalloc.take_snapshot()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        tracemalloc.stop()

    def print_top(self, top: int) -> None:
        if self.snapshot is None:
            return
        stats = self.snapshot.statistics("traceback")
        print(f"\n--- B5 memory at the highest traced point ({self.highest / 2**20:,.0f} MiB), by allocation")
        print(f"  {'MiB':>6}  allocated at  <-  the innermost serversync frame")
        for stat in [s for s in stats if s.size >= 2**17][:top]:  # from 128 KiB: the rest is noise
            frames = list(stat.traceback)
            inner = frames[-1]
            mine = next((f for f in reversed(frames) if is_project(f.filename)), None)
            mine_text = f"{short_path(mine.filename)}:{mine.lineno}" if mine else "-"
            print(f"  {stat.size / 2**20:6.1f}  {short_path(inner.filename)}:{inner.lineno}  <-  {mine_text}")


def _child(arguments: argparse.Namespace) -> dict[str, Any]:
    import django

    django.setup()
    from django.db import connection

    from bench.email_crm import fresh
    from sync import incoming

    mailbox = fresh(arguments.mailbox)
    raw = Path(arguments.raw).read_bytes() if arguments.mode == "store" else b""
    connection.ensure_connection()
    gc.collect()
    tracer = PeakTracer() if arguments.trace else None
    baseline, resident = _maxrss_kib(), _status_kib("VmRSS")
    started = time.perf_counter()
    if arguments.mode == "sync":
        run = incoming.sync_incoming(mailbox=mailbox)
        outcome = f"{run.outcome}: {run.received} received, {run.tracked} tracked {run.error_text}".strip()
    else:
        source = incoming.Source(mailbox, "INBOX", "bench:1")
        outcome = incoming.store_message(source=source, raw=raw, advance=lambda: None).outcome
    seconds = time.perf_counter() - started
    peak = _maxrss_kib()
    if tracer is not None:
        tracer.stop()
        tracer.print_top(arguments.top)
    return {
        "baseline_kib": baseline,
        "peak_kib": peak,
        "resident_kib": resident,
        "hwm_kib": _status_kib("VmHWM"),
        "seconds": seconds,
        "outcome": outcome,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description="B5's child process; see bench/email_engine.py.")
    parser.add_argument("--mailbox", type=int, required=True)
    parser.add_argument("--mode", choices=["sync", "store"], required=True)
    parser.add_argument("--raw", help="store mode: the message file")
    parser.add_argument("--trace", action="store_true", help="tracemalloc; no figure")
    parser.add_argument("--top", type=int, default=25)
    print(json.dumps(_child(parser.parse_args())), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
