"""Fixtures the engine's page tests share."""

from __future__ import annotations

import pytest

from tests.sync.received_mail import ReceivedMail, deliver_and_sync
from tests.sync.stack import Stack


@pytest.fixture
def mail(stack: Stack) -> ReceivedMail:
    """A morning's mail delivered to the test Dovecot and synchronized for real."""
    return deliver_and_sync(stack)
