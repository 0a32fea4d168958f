"""The Celery app of B8's workers (bench/workers.py): the project's app, plus one JSON
line per task run, appended to ``BENCH_WORKER_LOG``: which worker and process ran
it, its arguments (mailbox id, lease token), when it began and ended (wall clock)
and what it returned. The benchmark reads these lines to tell which worker ran
each mailbox's runs and that no two ran one mailbox at once. Product code knows
nothing of it: ``celery -A bench.worker_probe worker`` loads it instead of ``config``.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from celery.signals import task_postrun, task_prerun

from config.celery import app

LOG = os.environ.get("BENCH_WORKER_LOG", "")
_began: dict[str, float] = {}

# The benchmark's own keys on a shared Redis (another benchmark's workers on the same database
# would take its tasks, and it theirs): the prefix bench.scale sets for itself (isolate_broker).
if os.environ.get("BENCH_REDIS_PREFIX"):
    app.conf.broker_transport_options = {"global_keyprefix": os.environ["BENCH_REDIS_PREFIX"]}
    app.conf.result_backend_transport_options = {"global_keyprefix": os.environ["BENCH_REDIS_PREFIX"]}

# Celery's Django fix-up closes the database connection before and after every task unless
# CELERY_DB_REUSE_MAX is set, whatever DATABASE_CONN_MAX_AGE says; the project does not set it.
# ``bench.scale --reuse-connections N`` sets it here, to measure what reconnecting costs.
if os.environ.get("BENCH_DB_REUSE_MAX"):
    app.conf.CELERY_DB_REUSE_MAX = int(os.environ["BENCH_DB_REUSE_MAX"])


@task_prerun.connect
def _begin(task_id: str, **_: Any) -> None:
    _began[task_id] = time.time()


@task_postrun.connect
def _end(task_id: str, task: Any, args: Any = (), retval: Any = None, state: str = "", **_: Any) -> None:
    if not LOG:
        return
    line = {
        "worker": task.request.hostname,
        "pid": os.getpid(),
        "task": task.name,
        "args": list(args or ()),
        "began": _began.pop(task_id, None),
        "ended": time.time(),
        "result": retval if isinstance(retval, str | int | float | None) else repr(retval),
        "state": state,
    }
    with open(LOG, "a", encoding="utf-8") as log:
        log.write(json.dumps(line) + "\n")


__all__ = ["app"]
