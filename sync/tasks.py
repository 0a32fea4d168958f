"""Celery tasks: thin wrappers that take ids and call plain functions."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from sync import clock


@shared_task(name="sync.tasks.ping", bind=True)
def ping(self: Any) -> dict[str, str]:
    """A no-op round trip through the broker, for smoke tests and health checks."""
    return {"worker": self.request.hostname or "eager", "at": clock.now().isoformat()}
