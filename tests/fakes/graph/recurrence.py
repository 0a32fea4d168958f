"""A series' occurrences as Exchange computes them from its ``patternedRecurrence``: in the
wall clock of the series' start zone, from the range's start date, to its end date, its
number of occurrences, or (no end) as far as asked.

Built straight from the pattern's fields with dateutil's rrule (not from RRULE text), so
that the connector's RRULE <-> pattern mapping is checked against an independent reading.
"""

from __future__ import annotations

import zoneinfo
from datetime import date, datetime, time, timedelta
from typing import Any

from dateutil import rrule
from exchangelib.winzone import MS_TIMEZONE_TO_IANA_MAP

DAYS = {
    "monday": rrule.MO,
    "tuesday": rrule.TU,
    "wednesday": rrule.WE,
    "thursday": rrule.TH,
    "friday": rrule.FR,
    "saturday": rrule.SA,
    "sunday": rrule.SU,
}
INDEX = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}


def zone(name: str) -> zoneinfo.ZoneInfo:
    """A Windows zone name (as Outlook writes them) or an IANA one (Graph takes both)."""
    return zoneinfo.ZoneInfo(str(MS_TIMEZONE_TO_IANA_MAP.get(name, name)))


def local(value: dict[str, Any]) -> datetime:
    """A dateTimeTimeZone as an aware date-time."""
    text = str(value["dateTime"])[:26]
    return datetime.fromisoformat(text).replace(tzinfo=zone(str(value["timeZone"])))


def starts(document: dict[str, Any], until: datetime) -> list[datetime]:
    """The original starts (aware, UTC) of a series' occurrences up to ``until``."""
    pattern, span = document["recurrence"]["pattern"], document["recurrence"]["range"]
    first = local(document["start"])
    where = zone(str(span.get("recurrenceTimeZone") or document["start"]["timeZone"]))
    first = first.astimezone(where)
    begin = datetime.combine(date.fromisoformat(span["startDate"]), first.time(), where)
    options: dict[str, Any] = {"dtstart": begin.replace(tzinfo=None), "interval": pattern.get("interval", 1)}
    options.update(_pattern(pattern))
    if span["type"] == "numbered":
        options["count"] = span["numberOfOccurrences"]
    elif span["type"] == "endDate":
        options["until"] = datetime.combine(date.fromisoformat(span["endDate"]), time(23, 59, 59))
    limit = until.astimezone(where).replace(tzinfo=None)
    found = []
    for naive in rrule.rrule(**options):
        if naive > limit:
            break
        found.append(naive.replace(tzinfo=where).astimezone(zoneinfo.ZoneInfo("UTC")))
    return found


def _pattern(pattern: dict[str, Any]) -> dict[str, Any]:
    kind = pattern["type"]
    days = [DAYS[d.lower()] for d in pattern.get("daysOfWeek") or []]
    index = INDEX[str(pattern.get("index") or "first").lower()]
    if kind == "daily":
        return {"freq": rrule.DAILY}
    if kind == "weekly":
        first_day = DAYS[str(pattern.get("firstDayOfWeek") or "sunday").lower()]
        return {"freq": rrule.WEEKLY, "byweekday": days, "wkst": first_day}
    if kind == "absoluteMonthly":
        return {"freq": rrule.MONTHLY, "bymonthday": pattern["dayOfMonth"]}
    if kind == "relativeMonthly":
        return {"freq": rrule.MONTHLY, "byweekday": days, "bysetpos": index}
    if kind == "absoluteYearly":
        return {"freq": rrule.YEARLY, "bymonth": pattern["month"], "bymonthday": pattern["dayOfMonth"]}
    return {"freq": rrule.YEARLY, "bymonth": pattern["month"], "byweekday": days, "bysetpos": index}


def duration(document: dict[str, Any]) -> timedelta:
    return local(document["end"]) - local(document["start"])
