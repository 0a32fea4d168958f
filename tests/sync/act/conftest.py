from __future__ import annotations

import secrets

import pytest

from profiles.models import CredentialsSource
from tests import factories
from tests.fakes.ews.fixtures import DOMAIN
from tests.sync.act.backends import ActStack
from tests.sync.exchange_stack import EwsStack, GraphStack


def dav_stack(radicale, settings) -> ActStack:
    settings.SYNC_CA_FILE = str(radicale.ca_pem_path)
    profile = factories.profile(
        "Test DAV",
        incoming_server_location="imap.example.test",
        outgoing_server_location="smtp.example.test",
        dav_server_url=radicale.url,
        credentials_source=CredentialsSource.USER_OR_QUEUE,
        connection_timeout_seconds=10,
    )

    def account(name: str) -> tuple[str, str, str]:
        password = secrets.token_hex(8)
        user = radicale.add_user(f"{name}-{secrets.token_hex(4)}", password)
        radicale.make_calendar(user, "calendar")
        radicale.make_address_book(user, "contacts")
        return f"{user}@serversync.test", user, password

    return ActStack("dav", profile, account)


def graph_stack(server, settings) -> ActStack:
    """Exchange Online: the app registration holds the ACT permissions server-side sync asks for."""
    exchange = GraphStack.build(settings, server, permissions=GRAPH_PERMISSIONS)

    def account(name: str) -> tuple[str, str, str]:
        address = f"{name}-{secrets.token_hex(4)}@contoso.onmicrosoft.com"
        server.add_user(address)
        return address, "", ""

    return ActStack("graph", exchange.profile, account, task_dates_only=True)


def ews_stack(server, settings) -> ActStack:
    exchange = EwsStack.build(settings, server)

    def account(name: str) -> tuple[str, str, str]:
        address = f"{name}-{secrets.token_hex(4)}@{DOMAIN}"
        password = secrets.token_urlsafe(12)
        server.add_user(address, password)
        return address, address, password

    return ActStack("ews", exchange.profile, account)


GRAPH_PERMISSIONS = (
    "Mail.ReadWrite",
    "Mail.Send",
    "Calendars.ReadWrite",
    "Contacts.ReadWrite",
    "Tasks.ReadWrite.All",
)


def build(request, backend: str, settings) -> ActStack:
    if backend == "dav":
        return dav_stack(request.getfixturevalue("radicale"), settings)
    if backend == "graph":
        return graph_stack(request.getfixturevalue("graph_server"), settings)
    return ews_stack(request.getfixturevalue("ews_server"), settings)


@pytest.fixture(params=["dav", "graph", "ews"])
def act_stack(request, db, settings) -> ActStack:
    """The same organization on each backend: CalDAV / CardDAV (Radicale), Exchange Online
    (the Graph test server), Exchange Server (the EWS test server)."""
    return build(request, request.param, settings)


@pytest.fixture(params=["graph", "ews"])
def exchange_act_stack(request, db, settings) -> ActStack:
    """Exchange's two backends, for what only Exchange's patterns refuse."""
    return build(request, request.param, settings)
