"""The one place engine code reads the time, so tests can move it (time-machine).

SQL that compares times takes ``now()`` from here as a parameter, never the
database clock, so a moved clock moves every comparison with it.
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone


def now() -> datetime:
    return timezone.now()
