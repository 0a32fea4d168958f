"""Pytest fixtures for the Graph test server (registered from tests/conftest.py).

- ``graph_server`` (session; one per xdist worker): the server (``server.GraphServer``).
- ``graph_mailbox``: a fresh user and app registration, with the connector's settings.
- ``graph_contract_stack``: the connector contract suite's stack for "exchange_online".

Every test that ran while the server was up fails if the server recorded a metadata
violation during it (``_graph_violations``, autouse: one look at a global when no
server was started).
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import pytest

from sync.connectors.base import INBOX, OAuthApp, ServerSettings
from tests.fakes.graph.entra import App
from tests.fakes.graph.server import GraphServer, closed_port

if TYPE_CHECKING:
    from sync.connectors.registry import ServerKind

_started: list[GraphServer] = []
_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def graph_server() -> Iterator[GraphServer]:
    server = GraphServer()
    _started.append(server)
    yield server
    _started.remove(server)
    server.stop()


@pytest.fixture(autouse=True)
def _graph_violations() -> Iterator[None]:
    """Fail the test during which the Graph test server saw a body Graph v1.0 would not have."""
    before = len(_started[0].violations) if _started else 0
    yield
    if _started and len(_started[0].violations) > before:
        found = _started[0].take_violations()[before:]
        pytest.fail("The Graph test server saw bodies that do not fit Graph v1.0:\n" + "\n".join(found))


def graph_path(path: str) -> str:
    """The connector's folder names ("INBOX", "INBOX/Projects") as the server's fixtures take them."""
    head, _, rest = path.partition("/")
    return "Inbox" + (f"/{rest}" if rest else "") if head.upper() == INBOX else path


@dataclass
class GraphMailbox:
    """A user of the test tenant with an app that may read and send its mail."""

    server: GraphServer
    address: str
    app: App
    settings: ServerSettings

    def deliver(self, raw: bytes, folder: str = "Inbox") -> str:
        return self.server.deliver(self.address, raw, graph_path(folder))

    def messages(self, folder: str = "Inbox") -> list[bytes]:
        return self.server.messages(self.address, graph_path(folder))


def new_mailbox(server: GraphServer, prefix: str = "user", **app_options: object) -> GraphMailbox:
    address = f"{prefix}{next(_numbers)}@contoso.onmicrosoft.com"
    server.add_user(address)
    app = server.register_app(**app_options)  # type: ignore[arg-type]
    return GraphMailbox(server, address, app, settings_for(server, address, app))


def settings_for(server: GraphServer, address: str, app: App) -> ServerSettings:
    return ServerSettings(
        host="127.0.0.1",
        port=server.port,
        url=server.url,
        mailbox=address,
        ca_file=server.ca_file,
        timeout=10.0,
        oauth=OAuthApp(
            server.tenant_id,
            app.client_id,
            client_secret=app.secret or "",
            certificate_pem=app.certificate_pem,
            authority=server.authority,
        ),
    )


@pytest.fixture
def graph_mailbox(graph_server: GraphServer) -> GraphMailbox:
    return new_mailbox(graph_server)


@dataclass
class GraphContractStack:
    """The contract suite's stack (tests/sync/connectors/test_contract.py) on the Graph test server."""

    kind: ServerKind
    server: GraphServer
    mailbox: GraphMailbox
    incoming: ServerSettings
    outgoing: ServerSettings
    address: str
    _closed: list[socket.socket] = field(default_factory=list)

    def deliver_raw(self, raw: bytes, folder: str = INBOX) -> None:
        self.mailbox.deliver(raw, folder)

    def create_folder(self, path: str) -> None:
        self.server.create_folder(self.address, graph_path(path))

    def delete_folder(self, path: str) -> None:
        self.server.delete_folder(self.address, graph_path(path))

    def invalidate_cursors(self) -> None:
        self.server.expire_delta_tokens()

    def wrong_credentials(self, settings: ServerSettings) -> ServerSettings:
        assert settings.oauth is not None
        return replace(settings, oauth=replace(settings.oauth, client_secret="not-the-secret"))

    def unreachable(self, settings: ServerSettings) -> ServerSettings:
        sock = closed_port()
        self._closed.append(sock)
        port = sock.getsockname()[1]
        gone = f"https://127.0.0.1:{port}"
        assert settings.oauth is not None
        return replace(settings, port=port, url=gone, oauth=replace(settings.oauth, authority=gone))

    def received(self) -> list[bytes]:
        return self.server.messages(self.address, "Inbox")

    def close(self) -> None:
        for sock in self._closed:
            sock.close()


@pytest.fixture
def graph_contract_stack(graph_server: GraphServer) -> Iterator[GraphContractStack]:
    # Looked up here, not at import: collection must not depend on the connector being registered.
    from sync.connectors import registry

    mailbox = new_mailbox(graph_server, "contract")
    stack = GraphContractStack(
        registry.KINDS["exchange_online"],
        graph_server,
        mailbox,
        mailbox.settings,
        mailbox.settings,
        mailbox.address,
    )
    yield stack
    stack.close()
