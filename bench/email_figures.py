"""What the email benchmark reports: figures side by side with their raw
counterparts, SQL statement counts, and cProfile hot spots."""

from __future__ import annotations

import cProfile
import pstats
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Figure:
    """One line of the table. ``met`` is None for a figure without a target
    (shown for information) or one that could not be measured with a reason."""

    name: str
    measured: str
    raw: str = "-"
    ratio: str = "-"
    target: str = "-"
    met: bool | None = None
    failed: bool = False  # could not be measured: counts as a missed target

    @property
    def verdict(self) -> str:
        if self.failed:
            return "**not measured**"
        if self.met is None:
            return "-"
        return "met" if self.met else "**missed**"

    @property
    def missed(self) -> bool:
        return self.failed or self.met is False


@dataclass
class Result:
    """A benchmark's figures and the lines that explain them."""

    figures: list[Figure] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def note(self, line: str) -> None:
        print(f"  {line}", flush=True)
        self.details.append(line)


def ratio_figure(name: str, *, unit: str, engine: float, raw_label: str, raw: float, target: float) -> Figure:
    """Engine rate against the raw protocol's rate; the target is a floor for the ratio."""
    ratio = engine / raw if raw else 0.0
    return Figure(
        name=name,
        measured=f"{engine:,.1f} {unit}",
        raw=f"{raw_label} {raw:,.1f} {unit}",
        ratio=f"{ratio:.2f}",
        target=f"≥ {target:.2f}",
        met=ratio >= target,
    )


def print_table(figures: list[Figure]) -> None:
    print("| figure | serversync | raw counterpart, same run | ratio | target | |")
    print("|---|---:|---|---:|---|---|")
    for f in figures:
        print(f"| {f.name} | {f.measured} | {f.raw} | {f.ratio} | {f.target} | {f.verdict} |")


class Rate:
    """Items over seconds, timed with ``perf_counter``."""

    def __init__(self) -> None:
        self.items = 0
        self.seconds = 0.0

    @contextmanager
    def timing(self) -> Iterator[Rate]:
        started = time.perf_counter()
        try:
            yield self
        finally:
            self.seconds += time.perf_counter() - started

    @property
    def per_second(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0


# --- SQL statements ------------------------------------------------------------------------------


class QueryCount:
    count = 0


@contextmanager
def counting_queries() -> Iterator[QueryCount]:
    """Counts the statements sent on the default connection (an execute wrapper costs ~1 µs each,
    far below a round trip, so it stays on while timing)."""
    from django.db import connection

    counted = QueryCount()

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        counted.count += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield counted


# --- profiles ------------------------------------------------------------------------------------


class Profiler:
    """cProfile over the blocks run under ``measuring()`` (the engine's side only), when
    enabled; ``report()`` prints the hot spots. Disabled, it costs nothing."""

    def __init__(self, enabled: bool, title: str, top: int) -> None:
        self.profile = cProfile.Profile() if enabled else None
        self.title, self.top = title, top

    @contextmanager
    def measuring(self) -> Iterator[None]:
        if self.profile is None:
            yield
            return
        self.profile.enable()
        try:
            yield
        finally:
            self.profile.disable()

    def report(self) -> None:
        if self.profile is not None:
            print_hot_spots(pstats.Stats(self.profile), self.title, self.top)


def print_hot_spots(stats: pstats.Stats, title: str, top: int) -> None:
    """Two lists: where the time is spent (own time, any code) and which of
    serversync's functions it is spent under (cumulative, project code only)."""
    rows = stats.stats  # type: ignore[attr-defined]
    total = max(sum(tt for _, _, tt, _, _ in rows.values()), 1e-9)
    print(f"\n--- profile: {title} (cProfile; {total:.1f} s profiled, timings inflated by the profiler)")
    print(f"own time, top {top}:")
    print(f"  {'own s':>7} {'share':>6} {'calls':>9}  function")
    by_own = sorted(rows.items(), key=lambda item: item[1][2], reverse=True)
    for func, (_, calls, own, _, _) in by_own[:top]:
        print(f"  {own:7.2f} {own / total:6.1%} {calls:9,}  {_where(func)}")
    print(f"serversync's functions by cumulative time, top {top}:")
    print(f"  {'cum s':>7} {'share':>6} {'calls':>9}  function")
    mine = [item for item in rows.items() if is_project(item[0][0])]
    for func, (_, calls, _, cumulative, _) in sorted(mine, key=lambda item: item[1][3], reverse=True)[:top]:
        print(f"  {cumulative:7.2f} {cumulative / total:6.1%} {calls:9,}  {_where(func)}")
    print(flush=True)


def is_project(filename: str) -> bool:
    """serversync's own code: not the venv's packages, not the benchmark's."""
    path = Path(filename)
    return path.is_relative_to(ROOT) and ".venv" not in path.parts and "bench" not in path.parts


def short_path(filename: str) -> str:
    path = Path(filename)
    if is_project(filename):
        return str(path.relative_to(ROOT))
    if "site-packages" in path.parts:
        return "/".join(path.parts[path.parts.index("site-packages") + 1 :])
    return "/".join(path.parts[-2:])


def _where(func: tuple[str, int, str]) -> str:
    filename, line, name = func
    if filename == "~":  # a builtin
        return name
    return f"{name} ({short_path(filename)}:{line})"
