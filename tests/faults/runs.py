"""How many times a costly fault runs: ``make reliability`` sets ``RELIABILITY_RUNS`` (20) for
the table; ``make test`` runs each a few times, enough to prove it, within the suite's budget."""

from __future__ import annotations

import os


def runs(in_make_test: int) -> int:
    return int(os.environ.get("RELIABILITY_RUNS") or in_make_test)
