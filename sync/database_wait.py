"""Waiting for the database to answer again after its connection broke mid-task.

Django reconnects between requests (and Celery tasks), never inside one: once a query
failed on a lost connection, every later one in the task fails too until the connection
is closed. A task that has something to record after such a loss (sync/database_loss.py,
sync/outgoing.py) drops the connection and tries again until the database answers.
"""

from __future__ import annotations

import time
from contextlib import suppress

from django.db import DatabaseError, connection

RECONNECT_SECONDS = 30


def database_back(seconds: float = RECONNECT_SECONDS) -> bool:
    """Drop the broken connection and connect again until the database answers (True),
    or ``seconds`` have passed (False)."""
    deadline = time.monotonic() + seconds
    while True:
        with suppress(DatabaseError):
            connection.close()
        with suppress(DatabaseError):
            connection.ensure_connection()
            if connection.is_usable():
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
