"""Time zones between the names Exchange uses and the ones everything else uses.

Microsoft Graph and EWS name zones by Windows ids ("W. Europe Standard Time"); the
CRM, CalDAV and Python's ``zoneinfo`` by IANA ids ("Europe/Berlin"). The mapping is
Unicode CLDR's ``windowsZones.xml`` as exchangelib ships it (``exchangelib.winzone``),
never a table of our own: "GMT Standard Time" is Europe/London with its summer time,
not UTC — the slip that moves recurring meetings by an hour at DST.
"""

from __future__ import annotations

import zoneinfo

from exchangelib.winzone import IANA_TO_MS_TIMEZONE_MAP, MS_TIMEZONE_TO_IANA_MAP

from sync.errors import MessageError


def iana_of(windows_id: str) -> str:
    """The IANA zone for a Windows time zone id (CLDR's territory "001" choice)."""
    try:
        return str(MS_TIMEZONE_TO_IANA_MAP[windows_id])
    except KeyError:
        raise MessageError(
            f"The time zone {windows_id!r} is not one of Windows' (CLDR windowsZones).",
            code="time_zone_unknown",
        ) from None


def windows_of(iana_id: str) -> str:
    """The Windows time zone id for an IANA zone, aliases ("Europe/Kiev", "Europe/Kyiv") included."""
    found = IANA_TO_MS_TIMEZONE_MAP.get(iana_id)
    if found is None:
        try:
            zoneinfo.ZoneInfo(iana_id)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise MessageError(
                f"The time zone {iana_id!r} is not an IANA zone.", code="time_zone_unknown"
            ) from None
        raise MessageError(
            f"The time zone {iana_id!r} has no Windows counterpart in CLDR's windowsZones.",
            code="time_zone_unknown",
        )
    return str(found[0])
