"""The fixtures' helpers do what the contract suite relies on, checked with plain HTTP."""

from __future__ import annotations

import pytest
import requests

from sync.connectors import registry
from tests.fakes.graph.client import session, token


def test_the_contract_stack(graph_contract_stack, graph_server):
    stack = graph_contract_stack
    assert stack.kind is registry.KINDS["exchange_online"]
    assert stack.incoming.mailbox == stack.address
    assert stack.incoming.oauth is not None
    assert stack.incoming.oauth.authority == graph_server.authority

    stack.create_folder("INBOX/Projects")
    stack.deliver_raw(b"Subject: one\r\n\r\nBody\r\n")
    stack.deliver_raw(b"Subject: two\r\n\r\nBody\r\n", "INBOX/Projects")
    assert [m.endswith(b"Subject: one\r\n\r\nBody\r\n") for m in stack.received()] == [True]
    assert len(graph_server.messages(stack.address, "Inbox/Projects")) == 1
    stack.delete_folder("INBOX/Projects")
    with pytest.raises(StopIteration):
        graph_server.messages(stack.address, "Inbox/Projects")


def test_wrong_credentials_and_an_unreachable_server(graph_contract_stack, graph_server):
    stack = graph_contract_stack
    app = graph_server.tenant.apps[stack.incoming.oauth.client_id]
    wrong = stack.wrong_credentials(stack.incoming).oauth
    assert wrong.client_secret != app.secret
    assert "access_token" not in token(graph_server, app, client_credential=wrong.client_secret)

    gone = stack.unreachable(stack.incoming)
    with pytest.raises(requests.ConnectionError):
        session(graph_server).get(f"{gone.url}/v1.0/users/{stack.address}", timeout=5)
    assert gone.oauth.authority == gone.url
