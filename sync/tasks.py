"""Celery tasks: thin wrappers that take ids and call plain functions."""

from __future__ import annotations

import socket

from celery import shared_task

from sync import clock


@shared_task(name="sync.tasks.ping")
def ping() -> dict[str, str]:
    """A no-op round trip through the broker, for smoke tests and health checks."""
    return {"worker": socket.gethostname(), "at": clock.now().isoformat()}
