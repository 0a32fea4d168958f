"""The Celery app of a worker that kills itself at a named crash point.

``celery -A tests.harness.crashing_worker worker`` runs the project's app with a
hook installed in ``sync.checkpoints``: when the engine reaches one of the points
named in ``SERVERSYNC_TEST_CRASH_AT`` (comma-separated), the process dies with
SIGKILL, as a power cut would; ``after_smtp_data@3`` dies the third time the
engine reaches the point (the first time when no ``@N`` is given). Product code
reads no setting and no variable for this; only this module, which the crash
tests' worker loads, does.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

from config.celery import app
from sync import checkpoints

CRASH_AT = "SERVERSYNC_TEST_CRASH_AT"  # set by tests/harness/celery_worker.py (crash_at=...)


def _points(spec: str) -> dict[str, int]:
    """{point: the how-manyth time it is reached that kills} from "a,b@3"."""
    found = {}
    for item in filter(None, spec.split(",")):
        name, _, nth = item.partition("@")
        found[name] = int(nth or 1)
    return found


POINTS = _points(os.environ.get(CRASH_AT, ""))
reached: Counter[str] = Counter()

unknown = set(POINTS) - checkpoints.POINTS
if unknown:
    raise ValueError(f"{CRASH_AT} names no crash point of sync.checkpoints: {', '.join(sorted(unknown))}")


def _die_at(name: str) -> None:
    reached[name] += 1
    if POINTS.get(name) == reached[name]:
        os.kill(os.getpid(), signal.SIGKILL)


checkpoints.install(_die_at)

__all__ = ["app"]
