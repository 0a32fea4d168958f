from datetime import UTC, datetime

import time_machine

from sync import clock


def test_engine_time_follows_a_moved_clock():
    with time_machine.travel(datetime(2030, 1, 2, 3, 4, tzinfo=UTC), tick=False):
        assert clock.now() == datetime(2030, 1, 2, 3, 4, tzinfo=UTC)
        assert clock.now().tzinfo is not None
