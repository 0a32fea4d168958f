"""RRULE text <-> EWS recurrence patterns (exchangelib.recurrence), and occurrence indexes.

EWS holds a series as one pattern (daily, weekly, absolute / relative monthly, absolute /
relative yearly) and one range (no end, an end date, a count). An RRULE that says more than
a pattern can (BYHOUR, BYWEEKNO, several month days, a yearly rule every other year, a
negative month day, FREQ=HOURLY...) is refused with ``MessageError`` code ``item_refused``
naming the part: writing a weaker rule would move meetings.

Read back, a rule says everything EWS keeps explicitly: a weekly rule its BYDAY, a monthly or
yearly rule its BYMONTHDAY / BYMONTH (a rule written without them reads back with the start's
day and month, the same occurrences). An end date is a date in EWS: UNTIL reads back as the
series' start time of day on that date (the last possible occurrence), in UTC, or as a date for
an all-day series. FirstDayOfWeek is WKST, left out when Monday.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import icalendar
from dateutil.rrule import rrulestr
from exchangelib.fields import MONTHS, WEEK_NUMBERS, WEEKDAY_NAMES, WEEKDAYS
from exchangelib.recurrence import (
    AbsoluteMonthlyPattern,
    AbsoluteYearlyPattern,
    DailyPattern,
    EndDatePattern,
    NoEndPattern,
    NumberedPattern,
    Recurrence,
    RelativeMonthlyPattern,
    RelativeYearlyPattern,
    WeeklyPattern,
)

from sync.errors import MessageError

ICAL_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
# RRULE's ordinal of a weekday in the month, as EWS's DayOfWeekIndex.
ORDINALS = {1: "First", 2: "Second", 3: "Third", 4: "Fourth", -1: "Last"}
# Parts a pattern expresses; any other is refused.
UNDERSTOOD = {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS", "WKST"}


def refused(rule: str, why: str) -> MessageError:
    return MessageError(
        f"Exchange cannot hold the recurrence {rule!r}: {why}. Change the series' pattern in the CRM "
        "to one Outlook offers (daily, weekly on some days, monthly or yearly on a day or a weekday).",
        code="item_refused",
    )


def to_ews(rule: str, first: dt.datetime, zone: str, *, all_day: bool) -> Recurrence:
    """The EWS recurrence of ``rule`` for a series whose first start is ``first`` (in ``zone``)."""
    parts = icalendar.vRecur.from_ical(rule)
    unknown = sorted(set(parts) - UNDERSTOOD)
    if unknown:
        raise refused(rule, f"EWS has no {', '.join(unknown)}")
    local = first.astimezone(ZoneInfo(zone))
    pattern = _pattern(rule, parts, local)
    start = local.date()
    if "COUNT" in parts:
        return Recurrence(
            pattern=pattern, boundary=NumberedPattern(start=start, number=int(parts["COUNT"][0]))
        )
    if "UNTIL" in parts:
        until = parts["UNTIL"][0]
        last = until.astimezone(ZoneInfo(zone)).date() if isinstance(until, dt.datetime) else until
        return Recurrence(pattern=pattern, boundary=EndDatePattern(start=start, end=last))
    return Recurrence(pattern=pattern, boundary=NoEndPattern(start=start))


def _pattern(rule: str, parts: icalendar.vRecur, local: dt.datetime) -> object:
    freq = str(parts["FREQ"][0]).upper()
    interval = int(parts.get("INTERVAL", [1])[0])
    days = [str(d).upper() for d in parts.get("BYDAY", [])]
    month_days = [int(d) for d in parts.get("BYMONTHDAY", [])]
    months = [int(m) for m in parts.get("BYMONTH", [])]
    positions = [int(p) for p in parts.get("BYSETPOS", [])]
    if freq == "DAILY" and not (days or month_days or months or positions):
        return DailyPattern(interval=interval)
    if freq == "WEEKLY" and not (month_days or months or positions):
        plain = [_weekday(rule, d) for d in days] or [WEEKDAY_NAMES[local.weekday()]]
        wkst = str(parts.get("WKST", ["MO"])[0]).upper()
        return WeeklyPattern(interval=interval, weekdays=plain, first_day_of_week=_weekday(rule, wkst))
    if freq == "MONTHLY" and not months:
        return _monthly(rule, interval, days, month_days, positions, local)
    if freq == "YEARLY":
        if interval != 1:
            raise refused(rule, "a yearly series repeats every year")
        return _yearly(rule, days, month_days, months, positions, local)
    raise refused(rule, f"no EWS pattern repeats {freq} with these parts")


def _monthly(
    rule: str, interval: int, days: list[str], month_days: list[int], positions: list[int], local: dt.datetime
) -> object:
    if days:
        weekday, ordinal = _relative(rule, days, positions)
        return RelativeMonthlyPattern(interval=interval, weekday=weekday, week_number=ordinal)
    return AbsoluteMonthlyPattern(interval=interval, day_of_month=_month_day(rule, month_days, local))


def _yearly(
    rule: str,
    days: list[str],
    month_days: list[int],
    months: list[int],
    positions: list[int],
    local: dt.datetime,
) -> object:
    if len(months) > 1:
        raise refused(rule, "a yearly series falls in one month")
    month = MONTHS[(months[0] if months else local.month) - 1]
    if days:
        weekday, ordinal = _relative(rule, days, positions)
        return RelativeYearlyPattern(weekday=weekday, week_number=ordinal, month=month)
    return AbsoluteYearlyPattern(day_of_month=_month_day(rule, month_days, local), month=month)


def _month_day(rule: str, month_days: list[int], local: dt.datetime) -> int:
    if len(month_days) > 1 or any(d < 1 for d in month_days):
        raise refused(rule, "EWS repeats on one day of the month, counted from its start")
    return month_days[0] if month_days else local.day


def _relative(rule: str, days: list[str], positions: list[int]) -> tuple[str, str]:
    """('Monday', 'Second') from BYDAY=2MO, or BYDAY=MO;BYSETPOS=2."""
    if len(days) != 1 or len(positions) > 1:
        raise refused(rule, "EWS repeats on one weekday of the month")
    text = days[0]
    number, name = text[:-2], text[-2:]
    ordinal = int(number) if number else (positions[0] if positions else 0)
    if ordinal not in ORDINALS or (number and positions):
        raise refused(rule, "EWS counts a weekday first to fourth, or last, in the month")
    return _weekday(rule, name), ORDINALS[ordinal]


def _weekday(rule: str, ical: str) -> str:
    if ical not in ICAL_DAYS:
        raise refused(rule, f"{ical} is not a plain weekday")
    return str(WEEKDAY_NAMES[ICAL_DAYS.index(ical)])


# -- reading -----------------------------------------------------------------------------------


def from_ews(recurrence: Recurrence, first: dt.datetime, zone: str, *, all_day: bool) -> str:
    """The RRULE text of an EWS recurrence (see the module docstring for what reads back how)."""
    parts = [*_pattern_parts(recurrence.pattern), *_range_parts(recurrence.boundary, first, zone, all_day)]
    return ";".join(parts)


def _pattern_parts(pattern: object) -> list[str]:
    if isinstance(pattern, DailyPattern):
        return ["FREQ=DAILY", *_interval(pattern.interval)]
    if isinstance(pattern, WeeklyPattern):
        days = ",".join(_ical_day(d) for d in pattern.weekdays)
        wkst = _ical_day(pattern.first_day_of_week)
        return [
            "FREQ=WEEKLY",
            *_interval(pattern.interval),
            f"BYDAY={days}",
            *([f"WKST={wkst}"] if wkst != "MO" else []),
        ]
    if isinstance(pattern, AbsoluteMonthlyPattern):
        return ["FREQ=MONTHLY", *_interval(pattern.interval), f"BYMONTHDAY={pattern.day_of_month}"]
    if isinstance(pattern, RelativeMonthlyPattern):
        return ["FREQ=MONTHLY", *_interval(pattern.interval), f"BYDAY={_ordinal_day(pattern)}"]
    if isinstance(pattern, AbsoluteYearlyPattern):
        return ["FREQ=YEARLY", f"BYMONTH={_month(pattern.month)}", f"BYMONTHDAY={pattern.day_of_month}"]
    if isinstance(pattern, RelativeYearlyPattern):
        return ["FREQ=YEARLY", f"BYMONTH={_month(pattern.month)}", f"BYDAY={_ordinal_day(pattern)}"]
    raise MessageError(f"The series has a pattern serversync cannot read ({pattern}).", code="item_invalid")


def _range_parts(boundary: object, first: dt.datetime, zone: str, all_day: bool) -> list[str]:
    if isinstance(boundary, NumberedPattern):
        return [f"COUNT={boundary.number}"]
    if isinstance(boundary, EndDatePattern):
        end = dt.date(boundary.end.year, boundary.end.month, boundary.end.day)
        if all_day:
            return [f"UNTIL={end:%Y%m%d}"]
        local = first.astimezone(ZoneInfo(zone))
        last = dt.datetime.combine(end, local.time(), ZoneInfo(zone)).astimezone(dt.UTC)
        return [f"UNTIL={last:%Y%m%dT%H%M%SZ}"]
    return []


def _interval(interval: int) -> list[str]:
    return [f"INTERVAL={interval}"] if interval != 1 else []


def _name(value: object, names: tuple[str, ...]) -> str:
    # exchangelib gives enum values as names, or as 1-based numbers after some parses.
    return names[value - 1] if isinstance(value, int) else str(value)


def _ical_day(value: object) -> str:
    return ICAL_DAYS[WEEKDAY_NAMES.index(_name(value, WEEKDAY_NAMES))]


def _month(value: object) -> int:
    return int(MONTHS.index(_name(value, MONTHS))) + 1


def _ordinal_day(pattern: RelativeMonthlyPattern | RelativeYearlyPattern) -> str:
    weekday = _name(pattern.weekday, WEEKDAYS)  # the seven days, then Day, Weekday and WeekendDay
    if weekday not in WEEKDAY_NAMES:
        raise MessageError(
            f"The series repeats on a '{weekday}', which serversync cannot read as one weekday.",
            code="item_invalid",
        )
    ordinal = {v: k for k, v in ORDINALS.items()}[_name(pattern.week_number, WEEK_NUMBERS)]
    return f"{ordinal}{_ical_day(weekday)}"


# -- occurrences -------------------------------------------------------------------------------


def instance_index(rule: str, first: dt.datetime, zone: str, original_start: dt.datetime) -> int:
    """The 1-based index of the occurrence starting at ``original_start`` (EWS's InstanceIndex)."""
    local = first.astimezone(ZoneInfo(zone))
    # UNTIL only bounds the series (and dateutil refuses a date UNTIL with an aware start):
    # the walk stops past the occurrence sought anyway.
    unbounded = ";".join(p for p in rule.split(";") if not p.upper().startswith("UNTIL="))
    for index, start in enumerate(rrulestr(unbounded, dtstart=local), start=1):
        if start == original_start:
            return index
        if start > original_start:
            break
    raise MessageError(
        f"{original_start.isoformat()} is not an occurrence of the series {rule!r} starting "
        f"{local.isoformat()}.",
        code="item_invalid",
    )
