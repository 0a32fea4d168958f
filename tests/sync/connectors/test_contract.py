"""The connector contract (sync.connectors.interfaces), run against every server
type in the registry with its real test server (Dovecot and the SMTP relay; the
Graph and EWS test servers of tests/fakes/): each must pass the same cases.

Each server type is set up by a ``ContractStack``: how to put mail in, make
folders, spoil cursors and credentials, and the settings its connectors take.
The cases only use the interfaces and that stack.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, replace
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Protocol

import pytest

from profiles.models import ServerType
from sync.connectors import registry
from sync.connectors.base import INBOX, ServerSettings, Tls
from sync.connectors.interfaces import Change
from sync.errors import MessageError, PermanentError, TransientError
from tests.harness.dovecot import Dovecot
from tests.harness.fixtures import MailUser
from tests.sync.connectors.conftest import server_settings

pytestmark = pytest.mark.slow

PROTOCOLS = {"imap_smtp": "imap", "pop3_smtp": "pop3"}
# The fixture that sets up each server type's stack (tests/fakes/*/fixtures.py for Exchange).
STACK_FIXTURES = {"exchange_online": "graph_contract_stack", "exchange_server": "ews_contract_stack"}
# SMTP refuses recipients one by one; Graph and EWS refuse a message with a bad recipient whole.
REFUSES_SINGLE_RECIPIENTS = {"imap_smtp", "pop3_smtp"}
# Servers that hand out a newer cursor on every poll (Graph's delta link, EWS's sync state), which
# a quiet folder's cursor must move on to; a UID or a UIDL never needs to.
MOVES_ON_WHEN_QUIET = {"exchange_online", "exchange_server"}


class ContractStack(Protocol):
    kind: registry.ServerKind
    incoming: ServerSettings
    outgoing: ServerSettings
    address: str

    def deliver_raw(self, raw: bytes, folder: str = INBOX) -> None: ...
    def create_folder(self, path: str) -> None: ...
    def delete_folder(self, path: str) -> None: ...
    def invalidate_cursors(self) -> None: ...
    def wrong_credentials(self, settings: ServerSettings) -> ServerSettings: ...
    def unreachable(self, settings: ServerSettings) -> ServerSettings: ...
    def received(self) -> list[bytes]: ...


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class DovecotStack:
    """IMAP or POP3 on the test Dovecot, SMTP through the test relay."""

    kind: registry.ServerKind
    dovecot: Dovecot
    user: MailUser
    incoming: ServerSettings
    outgoing: ServerSettings

    @property
    def address(self) -> str:
        return self.user.address

    def deliver_raw(self, raw: bytes, folder: str = INBOX) -> None:
        assert folder == INBOX, "LMTP delivers to the inbox"
        self.dovecot.deliver(self.user.address, raw)

    def create_folder(self, path: str) -> None:
        self.dovecot.create_folder(self.user.address, path)

    def delete_folder(self, path: str) -> None:
        self.dovecot.doveadm("mailbox", "delete", "-u", self.user.address, path)

    def invalidate_cursors(self) -> None:
        self.dovecot.set_uidvalidity(self.user.address, INBOX, 4242)

    def wrong_credentials(self, settings: ServerSettings) -> ServerSettings:
        return replace(settings, password="wrong")

    def unreachable(self, settings: ServerSettings) -> ServerSettings:
        return replace(settings, port=closed_port(), timeout=3.0)

    def received(self) -> list[bytes]:
        with self.kind.incoming(self.incoming) as source:
            return [c.raw or b"" for c in source.changes(INBOX, "")]


@pytest.fixture(params=sorted(registry.KINDS))
def server_type(request) -> str:
    return str(request.param)


@pytest.fixture
def stack(request, server_type: str) -> ContractStack:
    if server_type in STACK_FIXTURES:
        found: ContractStack = request.getfixturevalue(STACK_FIXTURES[server_type])
        return found
    dovecot, smtp_relay = request.getfixturevalue("dovecot"), request.getfixturevalue("smtp_relay")
    user = request.getfixturevalue("mail_user")("contract")
    incoming = server_settings(dovecot, user, protocol=PROTOCOLS[server_type])
    outgoing = smtp_relay.server_settings(tls=Tls.STARTTLS, username=user.address, password=user.password)
    return DovecotStack(registry.KINDS[server_type], dovecot, user, incoming, outgoing)


def deliver(stack: ContractStack, subject: str) -> bytes:
    message = EmailMessage()
    message["From"] = "Carl <carl@example.org>"
    message["To"] = stack.address
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="example.org")
    message.set_content(f"{subject}: Grüße, with a line long enough to be folded " + "x" * 200)
    raw = message.as_bytes().replace(b"\n", b"\r\n")
    stack.deliver_raw(raw)
    return raw


def read(stack: ContractStack, cursor: str, folder: str = INBOX) -> list[Change]:
    with stack.kind.incoming(stack.incoming) as source:
        return list(source.changes(folder, cursor))


def subjects(changes: list[Change]) -> list[str]:
    return [
        next(line for line in c.raw.split(b"\r\n") if line.startswith(b"Subject:")).decode() for c in changes
    ]


def test_every_registered_type_is_a_profile_server_type():
    assert set(registry.supported_types()) <= set(ServerType.values)


def test_first_sync_nothing_new_then_new_mail(stack):
    first = [deliver(stack, f"Message {n}") for n in range(3)]

    changes = read(stack, "")
    # Byte for byte as delivered (below the trace fields delivery adds), oldest first.
    assert [c.raw.endswith(raw) for c, raw in zip(changes, first, strict=True)] == [True] * 3
    assert len({c.server_id for c in changes}) == 3
    assert all(c.size == len(c.raw) for c in changes)

    assert read(stack, changes[-1].cursor) == []  # nothing new

    deliver(stack, "Message 3")
    newer = read(stack, changes[-1].cursor)
    assert subjects(newer) == ["Subject: Message 3"]
    # A cursor saved part-way (after the second message) resumes there.
    assert subjects(read(stack, changes[1].cursor)) == ["Subject: Message 2", "Subject: Message 3"]


def test_a_folder_read_to_its_end_is_caught_up_past_everything_seen(stack, server_type):
    deliver(stack, "Seen")
    (seen,) = read(stack, "")

    with stack.kind.incoming(stack.incoming) as source:
        assert list(source.changes(INBOX, seen.cursor)) == []  # a quiet poll: no message to carry a cursor
        newest = source.caught_up(INBOX)

    assert (newest is not None) == (server_type in MOVES_ON_WHEN_QUIET)
    if newest is None:
        return  # nothing newer than the last message's cursor
    assert newest != seen.cursor
    assert read(stack, newest) == []
    deliver(stack, "After the quiet poll")
    assert subjects(read(stack, newest)) == ["Subject: After the quiet poll"]


def test_a_read_not_run_to_its_end_is_not_caught_up(stack):
    for n in range(2):
        deliver(stack, f"Message {n}")
    with stack.kind.incoming(stack.incoming) as source:
        assert len(list(source.changes(INBOX, ""))) == 2
        partial = source.changes(INBOX, "")
        next(partial)
        partial.close()  # as the engine stops when the run's budget is spent
        assert source.caught_up(INBOX) is None


def test_messages_over_the_size_cap_come_without_their_bytes(stack):
    deliver(stack, "Small")
    big = deliver(stack, "Big " + "y" * 5000)
    with stack.kind.incoming(stack.incoming) as source:
        changes = list(source.changes("INBOX", "", max_size=2000))
    assert [c.raw is None for c in changes] == [False, True]
    assert changes[1].size > len(big)  # the server's size: trace fields included


def test_a_cursor_the_connector_does_not_know_starts_the_folder_again(stack):
    deliver(stack, "Kept")
    assert subjects(read(stack, "not a cursor of ours")) == ["Subject: Kept"]


def test_folders_created_and_deleted(stack):
    with stack.kind.incoming(stack.incoming) as source:
        assert source.folders(include_subfolders=False) == ["INBOX"]
    stack.create_folder("INBOX/Projects")
    with stack.kind.incoming(stack.incoming) as source:
        listed = source.folders(include_subfolders=True)
    assert listed == (["INBOX", "INBOX/Projects"] if stack.kind.has_folders else ["INBOX"])

    stack.delete_folder("INBOX/Projects")
    with stack.kind.incoming(stack.incoming) as source:
        assert source.folders(include_subfolders=True) == ["INBOX"]


# Only where the server can renumber a folder or forget a sync state (a POP3 maildrop has neither).
@pytest.mark.parametrize(
    "server_type", [k for k, kind in sorted(registry.KINDS.items()) if kind.has_folders], indirect=True
)
def test_a_cursor_the_server_no_longer_honours_reads_the_folder_again(stack):
    deliver(stack, "Before")
    (change,) = read(stack, "")
    stack.invalidate_cursors()  # a new UIDVALIDITY, an expired delta token, an invalid sync state
    assert subjects(read(stack, change.cursor)) == ["Subject: Before"]


def test_removed_messages_are_gone(stack):
    deliver(stack, "Processed")
    deliver(stack, "Also processed")
    with stack.kind.incoming(stack.incoming) as source:
        changes = list(source.changes("INBOX", ""))
        source.remove("INBOX", [c.server_id for c in changes])
    assert read(stack, "") == []


def test_send_then_find_by_message_id(stack, server_type):
    message = EmailMessage()
    message["From"] = message["To"] = stack.address
    message["Subject"] = "Sent by the contract"
    message["Message-ID"] = message_id = make_msgid(domain="example.test")
    message.set_content("Hello.")
    raw = message.as_bytes().replace(b"\n", b"\r\n")

    with stack.kind.outgoing(stack.outgoing) as sending:
        result = sending.send(raw, mail_from=stack.address, rcpt_to=[stack.address])
        # Submitted, its verdict read later (after the engine has recorded the one before).
        verdict = sending.submit(raw, mail_from=stack.address, rcpt_to=[stack.address, "nobody@"])
        if server_type in REFUSES_SINGLE_RECIPIENTS:
            assert verdict.result().refused.keys() == {"nobody@"}
        else:
            with pytest.raises(MessageError, match="nobody@"):
                verdict.result()
    assert result.refused == {}
    assert any(r == raw or b"Sent by the contract" in r for r in stack.received())

    if stack.kind.sent_items is None:
        return  # this type keeps no Sent folder: nothing to find or save
    with stack.kind.sent_items(stack.incoming) as sent:
        # Where sending keeps its own copy, it is there already; the engine saves none.
        assert sent.find_sent(message_id) == stack.kind.saves_sent_copies
        other = replace_message_id(raw, make_msgid(domain="example.test"))
        sent.save_to_sent([other])
        assert sent.find_sent(other_id(other))
        assert not sent.find_sent(make_msgid(domain="example.test"))


def replace_message_id(raw: bytes, message_id: str) -> bytes:
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = [
        b"Message-ID: " + message_id.encode() if line.lower().startswith(b"message-id:") else line
        for line in head.split(b"\r\n")
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def other_id(raw: bytes) -> str:
    line = next(line for line in raw.split(b"\r\n") if line.lower().startswith(b"message-id:"))
    return line.split(b":", 1)[1].strip().decode()


@pytest.mark.parametrize("direction", ["incoming", "outgoing"])
def test_wrong_credentials_are_a_permanent_error(stack, direction):
    settings = stack.wrong_credentials(getattr(stack, direction))
    with pytest.raises(PermanentError) as raised, getattr(stack.kind, direction)(settings):
        pass
    assert raised.value.code == "authentication_failed"
    assert stack.address in raised.value.message or settings.host in raised.value.message


@pytest.mark.parametrize("direction", ["incoming", "outgoing"])
def test_a_server_gone_is_a_transient_error(stack, direction):
    settings = stack.unreachable(getattr(stack, direction))
    with pytest.raises(TransientError), getattr(stack.kind, direction)(settings):
        pass


def test_the_probe_finds_and_removes_a_marked_message(stack):
    since = stack.kind.probe.position(stack.incoming)
    deliver(stack, "Unmarked")
    assert not stack.kind.probe.take_marked(stack.incoming, "X-Serversync-Test", "token-1", since)
    marked = deliver(stack, "Marked").replace(b"\r\n\r\n", b"\r\nX-Serversync-Test: token-1\r\n\r\n", 1)
    stack.deliver_raw(marked)

    assert stack.kind.probe.take_marked(stack.incoming, "X-Serversync-Test", "token-1", since)
    assert b"token-1" not in b"".join(c.raw or b"" for c in read(stack, ""))
    stack.kind.probe.check_incoming(stack.incoming, include_subfolders=True)
