"""Moving failed email to the Undeliverable folder (interfaces.Undeliverable): the Graph and EWS
connectors against their test servers, which check every body against Microsoft's schemas."""

from __future__ import annotations

from dataclasses import replace
from email.utils import make_msgid

import pytest

from sync.connectors.base import INBOX, ServerSettings
from sync.connectors.ews import EwsConnection
from sync.connectors.graph import GraphMailbox
from sync.connectors.imap import ImapConnection
from sync.connectors.interfaces import UNDELIVERABLE, Undeliverable
from sync.connectors.pop3 import Pop3Connection
from sync.errors import PermanentError, SyncError
from tests.fakes.ews.fixtures import EwsMailbox
from tests.fakes.ews.server import EwsServer
from tests.fakes.graph.fixtures import GraphMailbox as GraphUser
from tests.fakes.graph.fixtures import new_mailbox
from tests.fakes.graph.server import GraphServer

pytestmark = pytest.mark.slow


def mail(subject: str) -> bytes:
    return (
        f"From: Carl <carl@example.org>\r\nTo: someone@example.org\r\nSubject: {subject}\r\n"
        f"Message-ID: {make_msgid(domain='example.org')}\r\n\r\n{subject}, the body.\r\n"
    ).encode()


def subjects(raws: list[bytes] | None) -> list[str]:
    assert raws is not None
    return [
        next(line for line in r.split(b"\r\n") if line.startswith(b"Subject: "))[9:].decode() for r in raws
    ]


def test_exchange_connectors_can_move_failed_email_and_the_others_cannot():
    settings = ServerSettings(host="127.0.0.1", port=1)
    assert isinstance(GraphMailbox(settings), Undeliverable)
    assert isinstance(EwsConnection(settings), Undeliverable)
    assert not isinstance(ImapConnection(settings), Undeliverable)
    assert not isinstance(Pop3Connection(settings), Undeliverable)


# -- Microsoft Graph ------------------------------------------------------------------------


def graph_top_folders(server: GraphServer, address: str) -> list[str]:
    box = server.mailbox(address)
    with server.lock:
        return sorted(f.display_name for f in box.children(box.root.id))


def graph_ids(user: GraphUser) -> list[str]:
    with GraphMailbox(user.settings) as source:
        return [c.server_id for c in source.changes(INBOX, "")]


def test_graph_creates_undeliverable_beside_the_inbox_once_and_moves_there(graph_server, graph_mailbox):
    graph_mailbox.deliver(mail("Broken"))
    graph_mailbox.deliver(mail("Fine"))
    graph_mailbox.deliver(mail("Broken too"))
    broken, _, broken_too = graph_ids(graph_mailbox)
    with GraphMailbox(graph_mailbox.settings) as source:
        source.move_to_undeliverable(INBOX, [broken])
    with GraphMailbox(graph_mailbox.settings) as source:  # a later session finds the folder
        source.move_to_undeliverable(INBOX, [broken_too, broken])  # one already moved: no failure
    address = graph_mailbox.address
    assert subjects(graph_server.messages(address, UNDELIVERABLE)) == ["Broken", "Broken too"]
    assert subjects(graph_server.messages(address)) == ["Fine"]
    assert graph_top_folders(graph_server, address).count(UNDELIVERABLE) == 1


def test_graph_uses_a_folder_the_user_made_whatever_its_case(graph_server, graph_mailbox):
    graph_server.create_folder(graph_mailbox.address, "undeliverable")
    graph_mailbox.deliver(mail("Broken"))
    with GraphMailbox(graph_mailbox.settings) as source:
        source.move_to_undeliverable(INBOX, graph_ids(graph_mailbox))
    assert subjects(graph_server.messages(graph_mailbox.address, "undeliverable")) == ["Broken"]
    assert "Undeliverable" not in graph_top_folders(graph_server, graph_mailbox.address)


def test_graph_without_mail_readwrite_names_the_permission(graph_server):
    reader = new_mailbox(graph_server, permissions=("Mail.Read",))
    reader.deliver(mail("Broken"))
    with GraphMailbox(reader.settings) as source, pytest.raises(PermanentError) as raised:
        source.move_to_undeliverable(INBOX, graph_ids(reader))
    assert "Mail.ReadWrite" in raised.value.message
    assert subjects(graph_server.messages(reader.address)) == ["Broken"]


# -- EWS ----------------------------------------------------------------------------------------


def ews_ids(settings: ServerSettings) -> list[str]:
    with EwsConnection(settings) as source:
        return [c.server_id for c in source.changes(INBOX, "")]


def operations_since(server: EwsServer, start: int, address: str) -> list[str]:
    return [r.operation for r in server.requests[start:] if r.mailbox == address]


def test_ews_creates_undeliverable_beside_the_inbox_once_and_moves_there(ews_server, ews_mailbox):
    address, settings = ews_mailbox.address, ews_mailbox.settings
    for subject in ("Broken", "Fine", "Broken too"):
        ews_server.deliver(address, mail(subject))
    broken, _, broken_too = ews_ids(settings)
    start = len(ews_server.requests)
    with EwsConnection(settings) as source:
        source.move_to_undeliverable(INBOX, [broken])
    with EwsConnection(settings) as source:  # a later session finds the folder
        source.move_to_undeliverable(INBOX, [broken_too, broken])  # one already moved: no failure
    assert subjects(ews_server.top_folder_messages(address, UNDELIVERABLE)) == ["Broken", "Broken too"]
    assert subjects(ews_server.messages(address)) == ["Fine"]
    assert operations_since(ews_server, start, address).count("CreateFolder") == 1
    assert operations_since(ews_server, start, address).count("MoveItem") == 2


def test_ews_uses_a_folder_the_user_made_whatever_its_case(ews_server, ews_mailbox: EwsMailbox):
    address = ews_mailbox.address
    mailbox = ews_server.store.mailbox(address)
    assert mailbox is not None
    top = mailbox.by_distinguished("msgfolderroot")
    assert top is not None
    ews_server.store.create_folder(mailbox, top, "UNDELIVERABLE")
    ews_server.deliver(address, mail("Broken"))
    with EwsConnection(ews_mailbox.settings) as source:
        source.move_to_undeliverable(INBOX, ews_ids(ews_mailbox.settings))
    assert subjects(ews_server.top_folder_messages(address, "UNDELIVERABLE")) == ["Broken"]
    assert [f.name for f in mailbox.children(top.id)].count("UNDELIVERABLE") == 1
    assert "Undeliverable" not in [f.name for f in mailbox.children(top.id)]


def test_ews_a_mailbox_the_account_may_only_read_says_why(ews_server, ews_mailbox):
    address, settings = ews_mailbox.address, replace(ews_mailbox.settings)
    ews_server.deliver(address, mail("Broken"))
    ews_server.make_read_only(address)
    with EwsConnection(settings) as source, pytest.raises(SyncError) as raised:
        source.move_to_undeliverable(INBOX, ews_ids(settings))
    assert "ErrorAccessDenied" in raised.value.message or "denied" in raised.value.message.lower()
    assert subjects(ews_server.messages(address)) == ["Broken"]


def test_graph_two_sessions_creating_the_folder_at_once_share_one(graph_server, graph_mailbox):
    with GraphMailbox(graph_mailbox.settings) as first, GraphMailbox(graph_mailbox.settings) as second:
        made = second._create_top_folder(UNDELIVERABLE)
        # The first looked before the second made it: its POST answers 409, and it takes that one.
        assert first._create_top_folder(UNDELIVERABLE) == made
    assert graph_top_folders(graph_server, graph_mailbox.address).count(UNDELIVERABLE) == 1


def test_ews_two_sessions_creating_the_folder_at_once_share_one(ews_server, ews_mailbox):
    address, settings = ews_mailbox.address, ews_mailbox.settings
    ews_server.deliver(address, mail("Broken"))
    with EwsConnection(settings) as first, EwsConnection(settings) as second:
        second.move_to_undeliverable(INBOX, [])  # nothing to move: no folder made
        assert ews_server.top_folder_messages(address, UNDELIVERABLE) is None
        original, looks = first._top_folder, []

        def looking(root, name):
            # The first looks before the second makes it, then again after ErrorFolderExists.
            looks.append(name)
            return None if len(looks) == 1 else original(root, name)

        first._top_folder = looking  # type: ignore[method-assign]
        second._undeliverable()
        first.move_to_undeliverable(INBOX, ews_ids(settings))
        assert looks == [UNDELIVERABLE, UNDELIVERABLE]
    assert subjects(ews_server.top_folder_messages(address, UNDELIVERABLE)) == ["Broken"]
    mailbox = ews_server.store.mailbox(address)
    assert mailbox is not None
    top = mailbox.by_distinguished("msgfolderroot")
    assert top is not None
    assert [f.name for f in mailbox.children(top.id)].count(UNDELIVERABLE) == 1
