from __future__ import annotations

import pytest
from exchangelib.protocol import BaseProtocol

from tests.fakes.ews.client import trusting_adapter
from tests.fakes.ews.server import EwsServer


@pytest.fixture(autouse=True)
def _trust_test_ca(monkeypatch: pytest.MonkeyPatch, ews_server: EwsServer) -> None:
    # exchangelib takes one adapter class for the whole process; set for these tests only.
    monkeypatch.setattr(BaseProtocol, "HTTP_ADAPTER_CLS", trusting_adapter(ews_server.ca_file))
