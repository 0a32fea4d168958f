"""The connector contract (sync.connectors.interfaces), run against every server
type in the registry with its real test server: a later connector (Graph, EWS)
joins the parametrization and must pass the same cases.

Each server type is set up by a ``Stack`` here: how to put mail in, and the
settings its connectors take. The cases only use the interfaces.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from profiles.models import ServerType
from sync.connectors import registry
from sync.connectors.base import ServerSettings, Tls
from sync.connectors.interfaces import Change
from sync.errors import PermanentError, TransientError
from tests.harness.dovecot import Dovecot
from tests.harness.fixtures import MailUser
from tests.sync.connectors.conftest import server_settings

pytestmark = pytest.mark.slow

PROTOCOLS = {"imap_smtp": "imap", "pop3_smtp": "pop3"}


@dataclass
class Stack:
    kind: registry.ServerKind
    dovecot: Dovecot
    user: MailUser
    incoming: ServerSettings
    outgoing: ServerSettings

    def deliver(self, subject: str) -> bytes:
        message = EmailMessage()
        message["From"] = "Carl <carl@example.org>"
        message["To"] = self.user.address
        message["Subject"] = subject
        message["Message-ID"] = make_msgid(domain="example.org")
        message.set_content(f"{subject}: Grüße, with a line long enough to be folded " + "x" * 200)
        raw = message.as_bytes().replace(b"\n", b"\r\n")
        self.dovecot.deliver(self.user.address, raw)
        return raw

    def read(self, cursor: str, folder: str = "INBOX") -> list[Change]:
        with self.kind.incoming(self.incoming) as source:
            return list(source.changes(folder, cursor))


@pytest.fixture(params=sorted(registry.KINDS))
def stack(request, dovecot, smtp_relay, mail_user) -> Stack:
    user = mail_user("contract")
    incoming = server_settings(dovecot, user, protocol=PROTOCOLS[request.param])
    outgoing = smtp_relay.server_settings(tls=Tls.STARTTLS, username=user.address, password=user.password)
    return Stack(registry.KINDS[request.param], dovecot, user, incoming, outgoing)


def subjects(changes: list[Change]) -> list[str]:
    return [
        next(line for line in c.raw.split(b"\r\n") if line.startswith(b"Subject:")).decode() for c in changes
    ]


def test_every_registered_type_is_a_profile_server_type():
    assert set(registry.supported_types()) <= set(ServerType.values)


def test_first_sync_nothing_new_then_new_mail(stack):
    first = [stack.deliver(f"Message {n}") for n in range(3)]

    changes = stack.read("")
    # Byte for byte as delivered (below the trace fields delivery adds), oldest first.
    assert [c.raw.endswith(raw) for c, raw in zip(changes, first, strict=True)] == [True] * 3
    assert len({c.server_id for c in changes}) == 3
    assert all(c.size == len(c.raw) for c in changes)

    assert stack.read(changes[-1].cursor) == []  # nothing new

    stack.deliver("Message 3")
    newer = stack.read(changes[-1].cursor)
    assert subjects(newer) == ["Subject: Message 3"]
    # A cursor saved part-way (after the second message) resumes there.
    assert subjects(stack.read(changes[1].cursor)) == ["Subject: Message 2", "Subject: Message 3"]


def test_messages_over_the_size_cap_come_without_their_bytes(stack):
    stack.deliver("Small")
    big = stack.deliver("Big " + "y" * 5000)
    with stack.kind.incoming(stack.incoming) as source:
        changes = list(source.changes("INBOX", "", max_size=2000))
    assert [c.raw is None for c in changes] == [False, True]
    assert changes[1].size > len(big)  # the server's size: trace fields included


def test_a_cursor_the_connector_does_not_know_starts_the_folder_again(stack):
    stack.deliver("Kept")
    assert subjects(stack.read("not a cursor of ours")) == ["Subject: Kept"]


def test_folders_created_and_deleted(stack):
    with stack.kind.incoming(stack.incoming) as source:
        assert source.folders(include_subfolders=False) == ["INBOX"]
    stack.dovecot.create_folder(stack.user.address, "INBOX/Projects")
    with stack.kind.incoming(stack.incoming) as source:
        listed = source.folders(include_subfolders=True)
    assert listed == (["INBOX", "INBOX/Projects"] if stack.kind.has_folders else ["INBOX"])

    stack.dovecot.doveadm("mailbox", "delete", "-u", stack.user.address, "INBOX/Projects")
    with stack.kind.incoming(stack.incoming) as source:
        assert source.folders(include_subfolders=True) == ["INBOX"]


# Only where the protocol numbers a folder's messages (a POP3 maildrop has no UIDVALIDITY).
@pytest.mark.parametrize(
    "stack", [k for k, kind in sorted(registry.KINDS.items()) if kind.has_folders], indirect=True
)
def test_a_new_uidvalidity_reads_the_folder_again(stack):
    stack.deliver("Before")
    (change,) = stack.read("")
    stack.dovecot.set_uidvalidity(stack.user.address, "INBOX", 4242)
    assert subjects(stack.read(change.cursor)) == ["Subject: Before"]


def test_removed_messages_are_gone(stack):
    stack.deliver("Processed")
    stack.deliver("Also processed")
    with stack.kind.incoming(stack.incoming) as source:
        changes = list(source.changes("INBOX", ""))
        source.remove("INBOX", [c.server_id for c in changes])
    assert stack.read("") == []


def test_send_then_find_by_message_id(stack):
    message = EmailMessage()
    message["From"] = message["To"] = stack.user.address
    message["Subject"] = "Sent by the contract"
    message["Message-ID"] = message_id = make_msgid(domain="example.test")
    message.set_content("Hello.")
    raw = message.as_bytes().replace(b"\n", b"\r\n")

    with stack.kind.outgoing(stack.outgoing) as sending:
        result = sending.send(raw, mail_from=stack.user.address, rcpt_to=[stack.user.address])
        # Submitted, its verdict read later (after the engine has recorded the one before).
        verdict = sending.submit(raw, mail_from=stack.user.address, rcpt_to=[stack.user.address, "nobody@"])
        assert verdict.result().refused.keys() == {"nobody@"}
    assert result.refused == {}
    assert any(c.raw == raw or b"Sent by the contract" in (c.raw or b"") for c in stack.read(""))

    if stack.kind.sent_items is None:
        return  # this type keeps no Sent folder: nothing to find or save
    with stack.kind.sent_items(stack.incoming) as sent:
        assert not sent.find_sent(message_id)
        sent.save_to_sent([raw])
        assert sent.find_sent(message_id)
        assert not sent.find_sent(make_msgid(domain="example.test"))


WRONG: dict[str, Callable[[Stack], ServerSettings]] = {
    "incoming": lambda s: replace(s.incoming, password="wrong"),
    "outgoing": lambda s: replace(s.outgoing, password="wrong"),
}


@pytest.mark.parametrize("direction", ["incoming", "outgoing"])
def test_wrong_credentials_are_a_permanent_error(stack, direction):
    settings = WRONG[direction](stack)
    with pytest.raises(PermanentError) as raised, getattr(stack.kind, direction)(settings):
        pass
    assert raised.value.code == "authentication_failed"
    assert stack.user.address in raised.value.message or settings.host in raised.value.message


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("direction", ["incoming", "outgoing"])
def test_a_server_gone_is_a_transient_error(stack, direction):
    settings = replace(getattr(stack, direction), port=closed_port(), timeout=3.0)
    with pytest.raises(TransientError), getattr(stack.kind, direction)(settings):
        pass


def test_the_probe_finds_and_removes_a_marked_message(stack):
    since = stack.kind.probe.position(stack.incoming)
    stack.deliver("Unmarked")
    assert not stack.kind.probe.take_marked(stack.incoming, "X-Serversync-Test", "token-1", since)
    marked = stack.deliver("Marked").replace(b"\r\n\r\n", b"\r\nX-Serversync-Test: token-1\r\n\r\n", 1)
    stack.dovecot.deliver(stack.user.address, marked)

    assert stack.kind.probe.take_marked(stack.incoming, "X-Serversync-Test", "token-1", since)
    assert b"token-1" not in b"".join(c.raw or b"" for c in stack.read(""))
    stack.kind.probe.check_incoming(stack.incoming, include_subfolders=True)
