"""Fixtures the engine's tests share."""

from __future__ import annotations

import pytest

from tests.sync.exchange_stack import EwsStack, ExchangeStack, GraphStack
from tests.sync.received_mail import ReceivedMail, deliver_and_sync
from tests.sync.stack import Stack


@pytest.fixture
def mail(stack: Stack) -> ReceivedMail:
    """A morning's mail delivered to the test Dovecot and synchronized for real."""
    return deliver_and_sync(stack)


@pytest.fixture(params=["graph", "ews"])
def exchange(request: pytest.FixtureRequest, settings: object) -> ExchangeStack:
    """An organization on Exchange Online (the Graph test server) or Exchange Server (the EWS
    one): tests/sync/exchange_stack.py."""
    if request.param == "graph":
        return GraphStack.build(settings, request.getfixturevalue("graph_server"))
    return EwsStack.build(settings, request.getfixturevalue("ews_server"))
