"""Reading and writing iCalendar date-times in the zones the data names.

On write, a date-time carries its IANA zone as TZID and the calendar a VTIMEZONE
for it (icalendar builds them from zoneinfo); UTC is written with "Z". On read,
the TZID a server wrote is resolved here, not by icalendar's process-wide cache
of VTIMEZONEs (two servers' "Customized Time Zone" would share one entry there):
an IANA id, a Windows id (Outlook, Exchange: through ``sync.connectors.timezones``),
a vendor-prefixed IANA id ("/mozilla.org/20050126_1/Europe/Berlin"), or else the
calendar's own VTIMEZONE for that TZID (Outlook's "Customized Time Zone"): the IANA
zone among CLDR's choices for Windows zones whose UTC offsets agree with it every
day of this year and the next, so that a series keeps its wall clock; when none
agrees, the instant is kept in UTC (the instant is what can still be trusted).
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import zoneinfo
from typing import Any

import icalendar
from exchangelib.winzone import MS_TIMEZONE_TO_IANA_MAP

from sync.connectors.timezones import iana_of
from sync.errors import MessageError

UTC = "UTC"


def bad_ical(message: str) -> MessageError:
    return MessageError(message, code="ical_invalid")


def parse_calendar(data: bytes | str) -> icalendar.Calendar:
    """One VCALENDAR; ``MessageError`` with the parser's complaint otherwise."""
    try:
        component = icalendar.Calendar.from_ical(data)
    except Exception as error:  # icalendar raises ValueError, KeyError, IndexError... on bad input
        raise bad_ical(f"The calendar data is not valid iCalendar: {error}") from None
    if not isinstance(component, icalendar.Calendar) or component.name != "VCALENDAR":
        raise bad_ical("The calendar data is not a VCALENDAR.")
    return component


def new_calendar() -> icalendar.Calendar:
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//serversync//serversync//EN")
    calendar.add("version", "2.0")
    return calendar


def iana_zone(tzid: str) -> str | None:
    """The IANA zone a TZID names, or None when it names none we know."""
    for candidate in _candidates(tzid):
        try:
            zoneinfo.ZoneInfo(candidate)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            continue
        return candidate
    try:
        return iana_of(tzid)
    except MessageError:
        return None


def _candidates(tzid: str) -> list[str]:
    # The id itself, then the last two or three parts of a vendor-prefixed id (RFC 5545
    # 3.2.19's globally unique TZIDs), as Thunderbird and others write them.
    parts = tzid.strip().strip("/").split("/")
    return [tzid.strip()] + ["/".join(parts[-n:]) for n in (3, 2) if len(parts) > n]


def resolve(
    value: dt.date | dt.datetime,
    tzid: str | None,
    calendar: icalendar.Calendar,
    floating_zone: str,
) -> tuple[dt.datetime, str, bool]:
    """An iCalendar value as (aware date-time, IANA zone, was a date). Dates and floating
    times have no zone of their own: they are read in ``floating_zone``."""
    if not isinstance(value, dt.datetime):
        return _at(dt.datetime.combine(value, dt.time(0)), floating_zone), floating_zone, True
    wall = value.replace(tzinfo=None)
    if tzid:
        zone = iana_zone(tzid)
        if zone is not None:
            return _at(wall, zone), zone, False
        like, custom = _custom_zone(calendar, tzid)
        if like is not None:
            return _at(wall, like), like, False
        return wall.replace(tzinfo=custom).astimezone(dt.UTC), UTC, False
    if value.tzinfo is not None:  # "Z"
        return value.astimezone(dt.UTC), UTC, False
    return _at(wall, floating_zone), floating_zone, False


def _at(wall: dt.datetime, zone: str) -> dt.datetime:
    return wall.replace(tzinfo=dt.UTC if zone == UTC else zoneinfo.ZoneInfo(zone))


def _custom_zone(calendar: icalendar.Calendar, tzid: str) -> tuple[str | None, dt.tzinfo]:
    for vtimezone in calendar.walk("VTIMEZONE"):
        if isinstance(vtimezone, icalendar.Timezone) and str(vtimezone.get("TZID", "")) == tzid:
            return _zone_like(bytes(vtimezone.to_ical()).decode(), dt.datetime.now(dt.UTC).year)
    raise bad_ical(
        f"The time zone {tzid!r} is neither an IANA nor a Windows zone, and the calendar "
        "carries no VTIMEZONE for it."
    )


@functools.lru_cache(maxsize=256)
def _zone_like(vtimezone_text: str, year: int) -> tuple[str | None, dt.tzinfo]:
    """A VTIMEZONE as a zone, with the IANA zone that keeps its offsets every day of
    ``year`` and the next (at noon UTC), or None. Cached: a TZID is read per property."""
    try:
        vtimezone = icalendar.Timezone.from_ical(vtimezone_text)
        if not isinstance(vtimezone, icalendar.Timezone):
            raise TypeError("not a VTIMEZONE")
        custom: dt.tzinfo = vtimezone.to_tz(lookup_tzid=False)
    except Exception as error:  # a VTIMEZONE icalendar cannot turn into a zone
        raise bad_ical(f"A VTIMEZONE cannot be read: {error}") from None
    # Exactly (transition hours too) first, then day by day: a VTIMEZONE a little off
    # (a transition an hour late) still repeats a series better than UTC would.
    for exact in (True, False):
        instants = _samples(custom, dt.datetime(year, 1, 1, 12, tzinfo=dt.UTC), exact=exact)
        wanted = [instant.astimezone(custom).utcoffset() for instant in instants]
        for name in _cldr_zones():
            zone = zoneinfo.ZoneInfo(name)
            if all(i.astimezone(zone).utcoffset() == o for i, o in zip(instants, wanted, strict=True)):
                return name, custom
    return None, custom


def _samples(zone: dt.tzinfo, start: dt.datetime, *, exact: bool) -> list[dt.datetime]:
    """Noon UTC of every day for two years and, ``exact``, every hour of the day before a
    noon whose offset changed: zones that change on the same day at other hours (Havana
    at midnight, New York at 02:00) differ there."""
    days = [start + dt.timedelta(days=n) for n in range(2 * 365)]
    if not exact:
        return days
    hours = [
        day - dt.timedelta(hours=h)
        for before, day in itertools.pairwise(days)
        if before.astimezone(zone).utcoffset() != day.astimezone(zone).utcoffset()
        for h in range(1, 24)
    ]
    return days + hours


@functools.cache
def _cldr_zones() -> list[str]:
    # In the order of the Windows ids: among zones that agree (Berlin, Paris, ...) the
    # same one every time; any of them keeps the wall clock, none is "the" right city.
    return list(dict.fromkeys(str(MS_TIMEZONE_TO_IANA_MAP[w]) for w in sorted(MS_TIMEZONE_TO_IANA_MAP)))


def read_time(
    component: icalendar.cal.Component, name: str, calendar: icalendar.Calendar, floating_zone: str
) -> tuple[dt.datetime, str, bool] | None:
    """The property ``name`` of ``component`` resolved, or None when it is absent."""
    prop = component.get(name)
    if prop is None:
        return None
    if isinstance(prop, list):
        prop = prop[0]
    value = getattr(prop, "dt", None)
    if not isinstance(value, dt.date):
        raise bad_ical(f"{name} of {component.name} is not a date or date-time.")
    return resolve(value, _tzid(prop), calendar, floating_zone)


def read_times(
    component: icalendar.cal.Component, name: str, calendar: icalendar.Calendar, floating_zone: str
) -> list[dt.datetime]:
    """Every date-time of a list property given once or many times (EXDATE)."""
    found = component.get(name)
    if found is None:
        return []
    times = []
    for prop in found if isinstance(found, list) else [found]:
        tzid = _tzid(prop)
        for item in prop.dts:
            times.append(resolve(item.dt, _tzid(item) or tzid, calendar, floating_zone)[0])
    return times


def _tzid(prop: Any) -> str | None:
    params = getattr(prop, "params", None) or {}
    tzid = params.get("TZID")
    return str(tzid) if tzid else None


def local(value: dt.datetime, zone: str, all_day: bool) -> dt.date | dt.datetime:
    """What to write for ``value`` in ``zone``: a date, a UTC time ("Z") or a zoned time (TZID)."""
    moved = value.astimezone(dt.UTC if zone == UTC else zoneinfo.ZoneInfo(zone))
    return moved.date() if all_day else moved


def read_categories(component: icalendar.cal.Component) -> tuple[str, ...]:
    """CATEGORIES, given once with commas or many times."""
    found = component.get("CATEGORIES")
    values = found if isinstance(found, list) else [found] if found is not None else []
    return tuple(str(name) for value in values for name in value.cats)
