"""An RRULE (the engine's ``Event.recurrence``) as Microsoft Graph's ``patternedRecurrence``
and back.

Graph repeats daily, weekly (on some days of the week), monthly and yearly on a day of
the month or on the first..fourth / last weekday(s), every N periods, from a start date
to an end date, for a number of times, or without end. An RRULE beyond that (HOURLY and
finer, BYHOUR / BYMINUTE / BYWEEKNO / BYYEARDAY, several days of the month or months,
an ordinal weekday in a weekly rule, a fifth weekday) is refused with ``item_refused``:
the series would come back from Exchange as another series.

What comes back is the rule in the form Graph's pattern says it, so a few rules that mean
the same come back spelled another way: what the start implies is left out (a weekly
rule on the start's weekday has no BYDAY, a monthly one on the start's day no
BYMONTHDAY, a yearly one on the start's date neither BYMONTH nor BYMONTHDAY);
``BYDAY=TU;BYSETPOS=2`` reads as ``BYDAY=2TU``; UNTIL becomes the occurrence time on
the end date (a date for all-day series), since Graph keeps only the end date. The week
starts where WKST says (Monday, RFC 5545's default, when it says nothing).
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from typing import Any

import icalendar
from dateutil.rrule import rrulestr

from sync.connectors.items.data import canonical_rule
from sync.errors import MessageError

DAYS = {
    "MO": "monday",
    "TU": "tuesday",
    "WE": "wednesday",
    "TH": "thursday",
    "FR": "friday",
    "SA": "saturday",
    "SU": "sunday",
}
CODES = {name: code for code, name in DAYS.items()}
INDEXES = {1: "first", 2: "second", 3: "third", 4: "fourth", -1: "last"}
ORDINALS = {name: number for number, name in INDEXES.items()}
SERVED = {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS", "WKST"}
WEEKDAY = re.compile(r"([+-]?\d+)?(MO|TU|WE|TH|FR|SA|SU)")


def refused(rule: str, why: str) -> MessageError:
    return MessageError(
        f"The recurrence {rule!r} is a recurrence the other side cannot express: Microsoft Graph "
        f"(Exchange Online) {why}. Change the series' pattern in the CRM to one Outlook offers.",
        code="item_refused",
    )


def to_pattern(
    rule: str, start: dt.datetime, zone: str, windows_zone: str, *, all_day: bool
) -> dict[str, Any]:
    """``patternedRecurrence`` for ``rule`` starting at ``start`` (its local time in ``zone``)."""
    parts = icalendar.vRecur.from_ical(rule)
    unknown = sorted(set(parts) - SERVED)
    if unknown:
        raise refused(rule, f"has no {', '.join(unknown)} in its recurrence patterns")
    local = start.astimezone(zoneinfo.ZoneInfo(zone))
    pattern = {"interval": int(parts.get("INTERVAL", [1])[0]), **_pattern(rule, parts, local)}
    pattern["firstDayOfWeek"] = DAYS[str(parts.get("WKST", ["MO"])[0]).upper()]
    span: dict[str, Any] = {"startDate": local.date().isoformat(), "recurrenceTimeZone": windows_zone}
    if "COUNT" in parts:
        span.update(type="numbered", numberOfOccurrences=int(parts["COUNT"][0]))
    elif "UNTIL" in parts:
        until = parts["UNTIL"][0]
        last = until.astimezone(zoneinfo.ZoneInfo(zone)).date() if isinstance(until, dt.datetime) else until
        span.update(type="endDate", endDate=last.isoformat())
    else:
        span.update(type="noEnd")
    return {"pattern": pattern, "range": span}


def _pattern(rule: str, parts: dict[str, list[Any]], local: dt.datetime) -> dict[str, Any]:
    frequency = str(parts["FREQ"][0]).upper()
    days = [_weekday(rule, str(d)) for d in parts.get("BYDAY", [])]
    month_days = [int(d) for d in parts.get("BYMONTHDAY", [])]
    months = [int(m) for m in parts.get("BYMONTH", [])]
    positions = [int(p) for p in parts.get("BYSETPOS", [])]
    if len(month_days) > 1 or any(d < 1 for d in month_days):
        raise refused(rule, "repeats on one day of the month, counted from its start")
    if len(months) > 1 or len(positions) > 1:
        raise refused(rule, "repeats in one month of the year, on one position")
    if frequency == "DAILY" and not (days or month_days or months or positions):
        return {"type": "daily"}
    if frequency == "WEEKLY" and not (month_days or months or positions) and all(n is None for n, _ in days):
        names = [d for _, d in days] or [list(DAYS.values())[local.weekday()]]
        return {"type": "weekly", "daysOfWeek": names}
    if frequency in ("MONTHLY", "YEARLY"):
        found = _monthly(rule, days, month_days, positions, local)
        if frequency == "YEARLY":
            found["type"] = found["type"].replace("Monthly", "Yearly")
            found["month"] = months[0] if months else local.month
        elif months:
            raise refused(rule, "repeats monthly in every month, not in chosen ones")
        return found
    raise refused(rule, "repeats daily, weekly, monthly or yearly, in the forms Outlook offers")


def _monthly(
    rule: str,
    days: list[tuple[int | None, str]],
    month_days: list[int],
    positions: list[int],
    local: dt.datetime,
) -> dict[str, Any]:
    if not days:
        if positions:
            raise refused(rule, "counts positions among weekdays only")
        return {"type": "absoluteMonthly", "dayOfMonth": month_days[0] if month_days else local.day}
    if month_days:
        raise refused(rule, "repeats on a day of the month or on a weekday, not both")
    ordinals = {n for n, _ in days}
    if len(ordinals) != 1 or (ordinals == {None} and not positions) or (ordinals != {None} and positions):
        raise refused(rule, "repeats on the first..fourth or last weekday(s), one position for all")
    index = positions[0] if positions else ordinals.pop()
    if index not in INDEXES:
        raise refused(rule, "counts weekdays of a month as first, second, third, fourth or last")
    return {"type": "relativeMonthly", "daysOfWeek": [d for _, d in days], "index": INDEXES[index]}


def _weekday(rule: str, text: str) -> tuple[int | None, str]:
    match = WEEKDAY.fullmatch(text.upper())
    if match is None:
        raise refused(rule, f"has no weekday {text!r}")
    return (int(match.group(1)) if match.group(1) else None), DAYS[match.group(2)]


def from_pattern(recurrence: dict[str, Any], start: dt.datetime, zone: str, *, all_day: bool) -> str:
    """The RRULE for a ``patternedRecurrence`` of a series starting at ``start`` (aware).

    A part the start implies (RFC 5545 takes it from DTSTART) is left out: a weekly rule
    on the start's weekday, a monthly one on its day, a yearly one on its date say only
    how often, as the CRM and most clients write them."""
    pattern, span = recurrence["pattern"], recurrence["range"]
    local = start.astimezone(zoneinfo.ZoneInfo(zone))
    kind = str(pattern["type"])
    parts: dict[str, Any] = {"FREQ": _FREQUENCIES[kind]}
    if int(pattern.get("interval") or 1) != 1:
        parts["INTERVAL"] = int(pattern["interval"])
    parts.update(_days(kind, pattern, local))
    first_day = str(pattern.get("firstDayOfWeek") or "monday").lower()
    if kind == "weekly" and first_day != "monday":
        parts["WKST"] = CODES[first_day]
    if span["type"] == "numbered":
        parts["COUNT"] = int(span["numberOfOccurrences"])
    elif span["type"] == "endDate":
        last = dt.date.fromisoformat(str(span["endDate"]))
        until = dt.datetime.combine(last, local.time(), local.tzinfo).astimezone(dt.UTC)
        parts["UNTIL"] = [last if all_day else until]
    rule: Any = icalendar.vRecur(parts)  # icalendar is untyped
    return canonical_rule(bytes(rule.to_ical()).decode())


_FREQUENCIES = {
    "daily": "DAILY",
    "weekly": "WEEKLY",
    "absoluteMonthly": "MONTHLY",
    "relativeMonthly": "MONTHLY",
    "absoluteYearly": "YEARLY",
    "relativeYearly": "YEARLY",
}


def _days(kind: str, pattern: dict[str, Any], local: dt.datetime) -> dict[str, list[Any]]:
    """BYDAY / BYMONTHDAY / BYMONTH / BYSETPOS of a pattern, without what the start implies."""
    days = [CODES[str(d).lower()] for d in pattern.get("daysOfWeek") or []]
    weekday = list(DAYS)[local.weekday()]
    if kind == "weekly":
        return {} if days == [weekday] else {"BYDAY": days}
    if kind == "absoluteMonthly":
        return {} if int(pattern["dayOfMonth"]) == local.day else {"BYMONTHDAY": [int(pattern["dayOfMonth"])]}
    if kind == "absoluteYearly":
        if (int(pattern["month"]), int(pattern["dayOfMonth"])) == (local.month, local.day):
            return {}
        return {"BYMONTH": [int(pattern["month"])], "BYMONTHDAY": [int(pattern["dayOfMonth"])]}
    if kind == "daily":
        return {}
    index = ORDINALS[str(pattern.get("index") or "first").lower()]
    found: dict[str, list[Any]] = {"BYMONTH": [int(pattern["month"])]} if kind == "relativeYearly" else {}
    if len(days) == 1:
        return {**found, "BYDAY": [f"{index}{days[0]}"]}
    return {**found, "BYDAY": days, "BYSETPOS": [index]}


def original_starts(rule: str, start: dt.datetime, zone: str, until: dt.datetime) -> list[dt.datetime]:
    """The series' occurrence starts up to ``until``, in the wall clock of its zone (aware)."""
    local = start.astimezone(zoneinfo.ZoneInfo(zone))
    found = []
    for occurrence in rrulestr(_utc_until(rule, zone), dtstart=local):
        if occurrence > until:
            break
        found.append(occurrence)
    return found


def _utc_until(rule: str, zone: str) -> str:
    """The rule with a date UNTIL (an all-day series') as the end of that day in UTC, which
    dateutil needs with a start that has a zone."""
    parts: Any = icalendar.vRecur.from_ical(rule)
    until = parts.get("UNTIL", [None])[0]
    if until is None or isinstance(until, dt.datetime):
        return rule
    last = dt.datetime.combine(until, dt.time(23, 59, 59), zoneinfo.ZoneInfo(zone))
    parts["UNTIL"] = [last.astimezone(dt.UTC)]
    return bytes(parts.to_ical()).decode()
