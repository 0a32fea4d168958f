"""A series' occurrences, as Exchange expands a CalendarItem's Recurrence (RecurrenceType).

The pattern repeats in the wall clock of the master's StartTimeZone (a Windows id, read
through CLDR's table as exchangelib ships it), so a 09:00 meeting stays 09:00 across DST.
Instance indexes are 1-based, as OccurrenceItemId's InstanceIndex.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from dateutil import rrule
from exchangelib.winzone import MS_TIMEZONE_TO_IANA_MAP
from lxml import etree

from tests.fakes.ews.xsd import T

DAYS = {"Monday": 0, "Tuesday": 1, "Wednesday": 2, "Thursday": 3, "Friday": 4, "Saturday": 5, "Sunday": 6}
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
ORDINALS = {"First": 1, "Second": 2, "Third": 3, "Fourth": 4, "Last": -1}
# A series without an end is expanded this far (Exchange's own limit for occurrence indexes is
# larger; no test needs more).
NO_END_LIMIT = 1000


class Unsupported(Exception):
    """A pattern this server does not expand (Exchange's "Day", "Weekday" and "WeekendDay")."""


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def zone_of(props: etree._Element) -> ZoneInfo:
    found = props.find(f"{{{T}}}StartTimeZone")
    ms_id = found.get("Id", "UTC") if found is not None else "UTC"
    return ZoneInfo("UTC" if ms_id == "UTC" else MS_TIMEZONE_TO_IANA_MAP.get(ms_id, "UTC"))


def starts(props: etree._Element) -> Iterator[datetime]:
    """The series' occurrence starts (UTC), in order."""
    recurrence = props.find(f"{{{T}}}Recurrence")
    assert recurrence is not None
    zone = zone_of(props)
    first = parse_time(props.findtext(f"{{{T}}}Start") or "").astimezone(zone)
    pattern, boundary = recurrence[0], recurrence[1]
    options = _pattern(pattern)
    kind = etree.QName(boundary).localname
    begin = datetime.combine(
        datetime.fromisoformat((boundary.findtext(f"{{{T}}}StartDate") or "")[:10]).date(), first.time(), zone
    )
    if kind == "NumberedRecurrence":
        options["count"] = int(boundary.findtext(f"{{{T}}}NumberOfOccurrences") or "1")
    elif kind == "EndDateRecurrence":
        last = datetime.fromisoformat((boundary.findtext(f"{{{T}}}EndDate") or "")[:10]).date()
        options["until"] = datetime.combine(last, time(23, 59, 59), zone)
    freq = options.pop("freq")
    found = rrule.rrule(freq, dtstart=begin, **options)
    limited = found if kind != "NoEndRecurrence" else itertools.islice(found, NO_END_LIMIT)
    for start in limited:
        yield start.astimezone(UTC)


def _pattern(pattern: etree._Element) -> dict[str, Any]:
    name = etree.QName(pattern).localname
    interval = int(pattern.findtext(f"{{{T}}}Interval") or "1")
    days = (pattern.findtext(f"{{{T}}}DaysOfWeek") or "").split()
    if any(d not in DAYS for d in days):
        raise Unsupported(f"DaysOfWeek {' '.join(days)}")
    month = pattern.findtext(f"{{{T}}}Month")
    ordinal = ORDINALS.get(pattern.findtext(f"{{{T}}}DayOfWeekIndex") or "", 0)
    day_of_month = int(pattern.findtext(f"{{{T}}}DayOfMonth") or "0")
    if name == "DailyRecurrence":
        return {"freq": rrule.DAILY, "interval": interval}
    if name == "WeeklyRecurrence":
        wkst = DAYS[pattern.findtext(f"{{{T}}}FirstDayOfWeek") or "Monday"]
        return {
            "freq": rrule.WEEKLY,
            "interval": interval,
            "byweekday": [DAYS[d] for d in days],
            "wkst": wkst,
        }
    if name == "AbsoluteMonthlyRecurrence":
        return {"freq": rrule.MONTHLY, "interval": interval, "bymonthday": day_of_month}
    if name == "RelativeMonthlyRecurrence":
        return {
            "freq": rrule.MONTHLY,
            "interval": interval,
            "byweekday": rrule.weekday(DAYS[days[0]], ordinal),
        }
    if name == "AbsoluteYearlyRecurrence":
        return {"freq": rrule.YEARLY, "bymonth": MONTHS.index(month or "") + 1, "bymonthday": day_of_month}
    if name == "RelativeYearlyRecurrence":
        return {
            "freq": rrule.YEARLY,
            "bymonth": MONTHS.index(month or "") + 1,
            "byweekday": rrule.weekday(DAYS[days[0]], ordinal),
        }
    raise Unsupported(name)


def occurrence(props: etree._Element, index: int) -> tuple[datetime, datetime] | None:
    """The start and end of occurrence ``index`` (1-based); None past the series' end."""
    if index < 1:
        return None
    found = next(itertools.islice(starts(props), index - 1, None), None)
    if found is None:
        return None
    start = parse_time(props.findtext(f"{{{T}}}Start") or "")
    end = parse_time(props.findtext(f"{{{T}}}End") or "")
    return found, found + (end - start)


def index_of(props: etree._Element, original_start: datetime) -> int | None:
    for index, start in enumerate(starts(props), start=1):
        if start == original_start:
            return index
        if start > original_start:
            return None
    return None
