"""Recurrence rules (RFC 5545 RRULE, parsed and expanded by dateutil) and their occurrences.

A rule is expanded from a start that carries the series' own time zone, so
dateutil steps the wall clock: a 09:00 Europe/Berlin meeting stays at 09:00
on both sides of a DST change (its UTC time moves by an hour).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from dateutil.rrule import rrule, rrulestr
from django.core.exceptions import ValidationError

FREQUENCIES = frozenset({"DAILY", "WEEKLY", "MONTHLY", "YEARLY"})
# The parts Exchange (Graph, EWS) and CalDAV servers can all express; BYHOUR and the
# like would make series no mail server keeps.
PARTS = frozenset(
    {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS", "WKST"}
)


def normalize_rule(text: str) -> str:
    """The rule without an "RRULE:" prefix, surrounding space or upper/lower case differences."""
    text = text.strip()
    if text.upper().startswith("RRULE:"):
        text = text[len("RRULE:") :]
    return ";".join(part for part in text.upper().split(";") if part)


def parse_rule(text: str, dtstart: dt.datetime) -> rrule:
    """The rule ``text`` (one RRULE value, normalized) from ``dtstart``; ValidationError when
    it is not one RRULE of the parts a mail server keeps."""
    if not text or any(c in text for c in ":\r\n"):
        raise ValidationError("Give one RRULE value, for example FREQ=WEEKLY;BYDAY=TU;COUNT=10.")
    # Only the part names are read here (to refuse what mail servers cannot keep);
    # dateutil parses and checks the values.
    pairs = [part.partition("=") for part in text.split(";") if part]
    names = [name for name, _, _ in pairs]
    unknown = sorted(set(names) - PARTS)
    if unknown:
        raise ValidationError(f"Not supported in a recurrence rule: {', '.join(unknown)}.")
    if len(names) != len(set(names)):
        raise ValidationError("A part of the recurrence rule is given twice.")
    if "FREQ" not in names:
        raise ValidationError("A recurrence rule needs FREQ (DAILY, WEEKLY, MONTHLY or YEARLY).")
    if "COUNT" in names and "UNTIL" in names:
        raise ValidationError("A recurrence rule ends either after COUNT occurrences or at UNTIL, not both.")
    frequency = next(value for name, _, value in pairs if name == "FREQ")
    for name, _, value in pairs:
        if name in {"INTERVAL", "COUNT"} and not (value.isdigit() and int(value) >= 1):
            raise ValidationError(f"{name} is a whole number, 1 or more.")
    if frequency not in FREQUENCIES:
        raise ValidationError(f"FREQ={frequency}: a series repeats DAILY, WEEKLY, MONTHLY or YEARLY.")
    try:
        parsed = rrulestr(text, dtstart=dtstart)
    except (ValueError, TypeError) as error:
        raise ValidationError(f"Not a valid recurrence rule: {error}.") from None
    if not isinstance(parsed, rrule):  # an rruleset: cannot happen with one RRULE value
        raise ValidationError("Give one RRULE value, for example FREQ=WEEKLY;BYDAY=TU;COUNT=10.")
    try:
        first = parsed.after(dtstart, inc=True)
    except ValueError as error:  # a value dateutil accepts but cannot step with
        raise ValidationError(f"Not a valid recurrence rule: {error}.") from None
    if first is None:
        raise ValidationError(
            "This recurrence rule has no occurrence (for example BYMONTHDAY=31 in June only)."
        )
    return parsed


def starts_between(rule: rrule, after: dt.datetime, before: dt.datetime) -> list[dt.datetime]:
    """The rule's starts with ``after <= start < before``."""
    return [start for start in rule.between(after, before, inc=True) if start < before]


# How far past a series' start an occurrence is looked for: stepping a daily rule through
# a century takes a tenth of a second, through millennia seconds.
HORIZON = dt.timedelta(days=366 * 100)


def is_occurrence(rule: rrule, start: dt.datetime, series_start: dt.datetime) -> bool:
    if not series_start <= start <= series_start + HORIZON:
        return False
    return bool(rule.between(start, start, inc=True))


def instants(values: Iterable[dt.datetime]) -> set[dt.datetime]:
    """Aware datetimes as UTC, so starts given in different zones compare as the same instant."""
    return {value.astimezone(dt.UTC) for value in values}
