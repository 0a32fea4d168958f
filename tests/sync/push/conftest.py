"""Listeners in tests stop within a second (watchers look at their stop flag that often)."""

from __future__ import annotations

import pytest

from sync import listener_imap


@pytest.fixture(autouse=True)
def _quick_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listener_imap, "STOP_CHECK_SECONDS", 1.0)
