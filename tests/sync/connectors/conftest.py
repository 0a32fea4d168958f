"""Connector tests run against the real test Dovecot; these build their settings."""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import trustme

from sync.connectors.base import ServerSettings, Tls
from sync.errors import TransientError
from tests.harness.dovecot import Dovecot
from tests.harness.fixtures import MailUser

PORTS = {
    "imap": {Tls.IMPLICIT: "imaps_port", Tls.STARTTLS: "imap_port", Tls.NONE: "imap_port"},
    "pop3": {Tls.IMPLICIT: "pop3s_port", Tls.STARTTLS: "pop3_port", Tls.NONE: "pop3_port"},
}


def server_settings(
    dovecot: Dovecot, user: MailUser | None, *, protocol: str, tls: Tls = Tls.IMPLICIT, **overrides
) -> ServerSettings:
    """Settings for ``user`` on ``dovecot``, trusting only the test CA; None user = the master user."""
    values = {
        "host": dovecot.host,
        "port": getattr(dovecot, PORTS[protocol][tls]),
        "tls": tls,
        "timeout": 10.0,
        "ca_file": str(dovecot.ca_pem_path),
        "username": user.address if user else dovecot.master_user,
        "password": user.password if user else dovecot.master_password,
    }
    return ServerSettings(**{**values, **overrides})


def message(subject: str, body: str = "Hello.") -> bytes:
    return (
        f"From: sender@example.test\r\nTo: someone@example.test\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@example.test>\r\n\r\n{body}\r\n"
    ).encode()


BAD_CERTIFICATES: dict[str, Callable[[trustme.CA], trustme.LeafCert]] = {
    "wrong name": lambda ca: ca.issue_cert("wrong.example"),
    "expired": lambda ca: ca.issue_cert(
        "localhost",
        "127.0.0.1",
        not_before=datetime.now(UTC) - timedelta(days=30),
        not_after=datetime.now(UTC) - timedelta(days=1),
    ),
    "untrusted issuer": lambda _ca: trustme.CA().issue_cert("localhost", "127.0.0.1"),
}


@pytest.fixture(scope="session")
def dovecot_with_bad_certificate(dovecot: Dovecot) -> Iterator[Callable[[str], Dovecot]]:
    """A second Dovecot per kind of bad certificate; clients trust the main one's CA."""
    started: dict[str, Dovecot] = {}

    def get(kind: str) -> Dovecot:
        if kind not in started:
            started[kind] = Dovecot(ca=dovecot.ca, cert=BAD_CERTIFICATES[kind](dovecot.ca)).start()
        return started[kind]

    yield get
    for server in started.values():
        server.close()


@pytest.fixture(scope="session")
def one_session_dovecot() -> Iterator[Dovecot]:
    """A Dovecot that allows each user one session per protocol, to meet its limit."""
    server = Dovecot(extra_config="mail_max_userip_connections = 1\n").start()
    yield server
    server.close()


def add_user(server: Dovecot) -> MailUser:
    password = secrets.token_hex(8)
    return MailUser(server.add_user(f"user-{secrets.token_hex(5)}", password), password)


def refusal_while_busy(connection: Callable[[], Any]) -> TransientError:
    """The error for an extra session. Dovecot counts a session a moment after
    its login (anvil is told asynchronously), so an early try may still get in."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with connection():
                pass
        except TransientError as error:
            return error
        time.sleep(0.1)
    raise AssertionError("the server never refused the extra session")


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) but never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]
