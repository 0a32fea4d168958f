"""Pytest fixtures for the EWS test server (registered from tests/conftest.py).

- ``ews_server`` (session, one per xdist worker): the running :class:`EwsServer`.
- ``ews_mailbox``: a fresh user of it, with the ServerSettings a profile would give the connector.
- ``ews_contract_stack``: the connector contract suite's stack for ``exchange_server``.

Every test checks, after it ran, that no body the server exchanged during it broke the EWS
schema (requests the server refused with ErrorSchemaValidation included): a mismatch fails it.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import pytest

from sync.connectors.base import ServerSettings
from tests.fakes.ews.server import EWS_PATH, EwsServer

if TYPE_CHECKING:
    from sync.connectors.registry import ServerKind

DOMAIN = "exchange.test"
# What the server speaks (its schema's newest RequestServerVersion); saves the version guessing.
SERVER_VERSION = "Exchange2013"

_started: list[EwsServer] = []


@pytest.fixture(scope="session")
def ews_server() -> Iterator[EwsServer]:
    server = EwsServer().start()
    _started.append(server)
    yield server
    server.stop()
    _started.remove(server)


@pytest.fixture(autouse=True)
def _ews_schema_checked() -> Iterator[None]:
    """Fails the test if a body exchanged with an EWS test server during it broke the schema."""
    seen = snapshot()
    yield
    check_since(seen)


Snapshot = dict[int, tuple[int, int, int]]


def snapshot() -> Snapshot:
    return {id(s): (len(s.request_violations), len(s.response_violations), len(s.failures)) for s in _started}


def check_since(seen: Snapshot) -> None:
    """pytest.fail if a running server recorded a schema violation or a crash of its own since ``seen``."""
    for server in _started:
        requests_seen, responses_seen, failures_seen = seen.get(id(server), (0, 0, 0))
        problems = server.request_violations[requests_seen:] + server.response_violations[responses_seen:]
        if problems:
            pytest.fail("EWS schema violations:\n" + "\n".join(problems))
        if server.failures[failures_seen:]:
            pytest.fail("The EWS test server failed:\n" + "\n".join(server.failures[failures_seen:]))


@dataclass(frozen=True)
class EwsMailbox:
    address: str
    password: str = field(repr=False)
    settings: ServerSettings


def new_mailbox(server: EwsServer, prefix: str = "user") -> EwsMailbox:
    address = f"{prefix}-{secrets.token_hex(4)}@{DOMAIN}"
    password = secrets.token_urlsafe(12)
    server.add_user(address, password)
    settings = ServerSettings(
        host=server.host,
        port=server.port,
        url=server.url,
        mailbox=address,
        username=address,
        password=password,
        ca_file=server.ca_file,
        timeout=10.0,
        auth="ntlm",
        server_version=SERVER_VERSION,
    )
    return EwsMailbox(address, password, settings)


@pytest.fixture
def ews_mailbox(ews_server: EwsServer) -> EwsMailbox:
    return new_mailbox(ews_server)


@dataclass
class EwsContractStack:
    """The contract suite's view of a mailbox on the EWS test server."""

    kind: ServerKind
    incoming: ServerSettings
    outgoing: ServerSettings
    address: str
    server: EwsServer
    closed_port: int

    def deliver_raw(self, raw: bytes, folder: str = "INBOX") -> None:
        self.server.deliver(self.address, raw, folder)

    def create_folder(self, path: str) -> None:
        self.server.create_folder(self.address, path)

    def delete_folder(self, path: str) -> None:
        self.server.delete_folder(self.address, path)

    def invalidate_cursors(self) -> None:
        self.server.invalidate_sync_states()

    def wrong_credentials(self, settings: ServerSettings) -> ServerSettings:
        return replace(settings, password=settings.password + "-wrong")

    def unreachable(self, settings: ServerSettings) -> ServerSettings:
        url = f"https://{self.server.host}:{self.closed_port}{EWS_PATH}"
        return replace(settings, port=self.closed_port, url=url)

    def received(self) -> list[bytes]:
        return self.server.messages(self.address, "INBOX")


@pytest.fixture
def ews_contract_stack(ews_server: EwsServer) -> Iterator[EwsContractStack]:
    # Looked up here, not at import: collection must not depend on the connector being registered.
    from sync.connectors import registry

    mailbox = new_mailbox(ews_server)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        yield EwsContractStack(
            kind=registry.KINDS["exchange_server"],
            incoming=mailbox.settings,
            outgoing=mailbox.settings,
            address=mailbox.address,
            server=ews_server,
            closed_port=closed.getsockname()[1],
        )
