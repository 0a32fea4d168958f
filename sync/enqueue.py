"""The one way to enqueue each Celery task the engine starts itself.

Services enqueue through these functions, never through ``sync.tasks``: the task
module is an entry point above every service (it imports them), so here a task
is named by its name, and ``sync.tasks`` registers each under the name given
here. Each function enqueues after the current transaction commits (at once
outside one), so a task never looks for rows that are not there yet.

Beat's periodic tasks are named in the settings (``CELERY_BEAT_SCHEDULE``); the
``ping`` task is sent by the ``ping_worker`` command, which waits for its answer.
"""

from __future__ import annotations

from functools import partial

from celery import current_app
from django.db import transaction

from sync.models import SyncKind

INCOMING_MAILBOX = "sync.tasks.incoming_mailbox"
OUTGOING_MAILBOX = "sync.tasks.outgoing_mailbox"
ACT_MAILBOX = "sync.tasks.act_mailbox"
TEST_AND_ENABLE_MAILBOX = "sync.tasks.test_and_enable_mailbox"
_MAILBOX_SYNC: dict[str, str] = {
    SyncKind.INCOMING: INCOMING_MAILBOX,
    SyncKind.OUTGOING: OUTGOING_MAILBOX,
    SyncKind.ACT: ACT_MAILBOX,
}


def mailbox_sync(*, mailbox_id: int, kind: str, lease_token: str) -> None:
    """Run a claimed mailbox's sync of ``kind`` (a ``sync.scheduler.Claim``) in a worker."""
    _after_commit(_MAILBOX_SYNC[kind], mailbox_id, lease_token)


def run_queued_test(*, test_id: int) -> None:
    """Run a queued test & enable (``sync.checks.run_queued_test``) in a worker."""
    _after_commit(TEST_AND_ENABLE_MAILBOX, test_id)


def _after_commit(name: str, *args: object) -> None:
    transaction.on_commit(partial(_send, name, args))


def _send(name: str, args: tuple[object, ...]) -> None:
    app = current_app
    if app.conf.task_always_eager:
        # CELERY_TASK_ALWAYS_EAGER (debugging): run in this process, as ``delay()``
        # would. Celery's autodiscovery (config/celery.py) registers the tasks.
        app.loader.import_default_modules()
        app.tasks[name].apply_async(args=args)
    else:
        app.send_task(name, args=args)
