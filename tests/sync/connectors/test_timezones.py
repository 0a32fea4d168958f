"""Windows <-> IANA time zones through CLDR's mapping: a meeting keeps its local time across DST."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, available_timezones

import pytest
from exchangelib.winzone import MS_TIMEZONE_TO_IANA_MAP

from sync.connectors.timezones import iana_of, windows_of
from sync.errors import MessageError


def test_gmt_standard_time_is_london_with_its_summer_time_not_utc():
    assert iana_of("GMT Standard Time") == "Europe/London"
    london = ZoneInfo(iana_of("GMT Standard Time"))
    # 09:00 in London is 09:00 UTC in January and 08:00 UTC in July.
    assert datetime(2027, 1, 12, 9, tzinfo=london).utcoffset().total_seconds() == 0
    assert datetime(2027, 7, 13, 9, tzinfo=london).utcoffset().total_seconds() == 3600
    assert iana_of("UTC") == "Etc/UTC"


@pytest.mark.parametrize(
    ("windows", "iana"),
    [
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("Eastern Standard Time", "America/New_York"),
        ("Pacific Standard Time", "America/Los_Angeles"),
        ("Tokyo Standard Time", "Asia/Tokyo"),
        ("AUS Eastern Standard Time", "Australia/Sydney"),
    ],
)
def test_common_zones_both_ways(windows, iana):
    assert iana_of(windows) == iana
    assert windows_of(iana) == windows


def test_every_windows_zone_maps_to_a_zone_python_knows_and_back():
    known = available_timezones()
    for windows in MS_TIMEZONE_TO_IANA_MAP:
        assert iana_of(windows) in known
        # Several Windows ids can share one zone ("UTC", "tzone://Microsoft/Utc"): back to one
        # whose zone keeps the same clock, winter and summer.
        there, back = ZoneInfo(iana_of(windows)), ZoneInfo(iana_of(windows_of(iana_of(windows))))
        for month in (1, 7):
            offsets = {datetime(2027, month, 15, 12, tzinfo=zone).utcoffset() for zone in (there, back)}
            assert len(offsets) == 1, windows


def test_an_alias_maps_too_and_unknown_names_are_refused():
    assert windows_of("Europe/Kiev") == windows_of("Europe/Kyiv") == "FLE Standard Time"
    with pytest.raises(MessageError, match="not one of Windows'"):
        iana_of("Middle Earth Standard Time")
    with pytest.raises(MessageError, match="not an IANA zone"):
        windows_of("Mars/Olympus_Mons")
