"""Filters for the log configuration in config/settings.py."""

from __future__ import annotations

import logging


class SkipFailingHealthProbes(logging.Filter):
    """A 503 from /health/ is the answer a load balancer asked for, not an error
    in the application: Django would log every probe at ERROR while a worker is
    down. The answer names the failing checks; console.health logs a check that
    errs or times out as a warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        probe = getattr(request, "path", "") == "/health/"
        return not (probe and getattr(record, "status_code", None) == 503)
