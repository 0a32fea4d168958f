"""IANA time zone names, as appointments store them (validated with zoneinfo)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError


def zone(name: str) -> ZoneInfo:
    """The zone called ``name``; ValidationError when the tz database has none by that name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError: a name that is not a key at all (an absolute path, ".."); OSError: one the
        # file system refuses to look up (a directory such as "America", a name too long).
        raise ValidationError(
            f"{name!r} is not an IANA time zone name (for example Europe/Berlin or America/New_York).",
            code="unknown_time_zone",
        ) from None


def validate_time_zone(name: str) -> None:
    zone(name)
