import os
from typing import Any

from celery import Celery, Task
from celery.signals import task_postrun, task_prerun
from django.db import close_old_connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("serversync")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Celery's Django fix-up closes every database connection before and after each task unless
# this is set: a new PostgreSQL backend for every poll (bench/README.md, B8: one worker made
# 21.7 idle polls a second so, 28.1 with its connection kept). The fix-up is told never to
# close them, and the worker keeps them as Django does between requests instead (below).
app.conf.CELERY_DB_REUSE_MAX = 2**62


@task_prerun.connect
@task_postrun.connect
def _keep_or_close_connections(sender: Task[Any, Any] | None = None, **_: Any) -> None:
    """Before and after each task in a worker, as Django before and after each request: a
    connection older than DATABASE_CONN_MAX_AGE, or left unusable by an error, is closed (the
    next query opens another; one kept is health-checked before its first use)."""
    if sender is not None and getattr(sender.request, "is_eager", False):
        return  # run inline, inside the caller's connection and transaction
    close_old_connections()
