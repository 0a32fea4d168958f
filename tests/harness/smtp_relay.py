"""An SMTP submission server for tests that delivers into Dovecot over LMTP.

Two aiosmtpd listeners on free loopback ports, run in a thread of the test
worker process: ``port`` offers STARTTLS (required before AUTH), ``smtps_port``
speaks TLS from the first byte. Both require AUTH (PLAIN or LOGIN), checked
by an ``authenticate(username, password)`` callable (the fixture asks
Dovecot's auth service, so the relay knows exactly Dovecot's users). Every recipient is
checked against the LMTP server at RCPT time and every message is delivered
over LMTP before the reply to DATA, so the client sees the mailbox server's
refusals and the message can be read back over IMAP once ``send`` returns.

Tests inspect what happened (:meth:`SmtpRelay.transactions`,
:meth:`SmtpRelay.accepted_count`, :attr:`SmtpRelay.connection_count`) and
inject faults (:meth:`SmtpRelay.fail_next`, :meth:`SmtpRelay.drop_next`,
:meth:`SmtpRelay.drop_connections`, :meth:`SmtpRelay.stop` /
:meth:`SmtpRelay.start`).
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import subprocess
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any, Literal

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from sync.connectors.base import ServerSettings, Tls

Stage = Literal["MAIL", "RCPT", "DATA"]
Authenticate = Callable[[str, str], bool]

LMTP_UNAVAILABLE = "451 4.4.1 Mailbox server (LMTP) unavailable, try again later"
AUTH_UNAVAILABLE = "454 4.7.0 Temporary authentication failure"
LMTP_TIMEOUT = 10.0


def doveadm_authenticator(config_path: Path) -> Authenticate:
    """Check passwords with Dovecot's own auth service (``doveadm auth test``), as
    an MTA using Dovecot SASL does. Unlike an IMAP login it carries no client IP,
    so wrong passwords tried here add no auth penalty to other tests' logins.

    Raises OSError when Dovecot's auth service is unreachable: the relay answers 454.
    """

    def authenticate(username: str, password: str) -> bool:
        command = ["doveadm", "-c", str(config_path), "auth", "test", "-x", "service=smtp"]
        result = subprocess.run(
            [*command, username, password], capture_output=True, text=True, timeout=LMTP_TIMEOUT, check=False
        )
        if result.returncode == 0:
            return True
        if "auth failed" in result.stdout:
            return False
        raise OSError(f"doveadm auth test failed ({result.returncode}): {result.stderr.strip()}")

    return authenticate


def _one_line(code: int, reply: bytes | str) -> str:
    """An LMTP reply as one SMTP reply line (multi-line replies keep their first line)."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    first = text.splitlines()[0] if text else ""
    return f"{code} {first}".rstrip()


def _message_id(data: bytes) -> str:
    header = BytesHeaderParser(policy=default_policy).parsebytes(data).get("Message-ID", "")
    return str(header).strip()


def _normalized_id(message_id: str) -> str:
    return message_id.strip().strip("<>").strip()


@dataclass(frozen=True)
class Transaction:
    """One message the relay took in (after the client sent the data)."""

    listener: str  # "starttls" or "smtps"
    login: str  # the AUTH user
    mail_from: str
    rcpt_to: tuple[str, ...]  # recipients accepted at RCPT time
    data: bytes
    received_at: datetime
    delivered: tuple[str, ...]  # recipients the LMTP server took the message for
    lmtp_refused: dict[str, str]  # recipients LMTP refused after DATA -> its reply
    reply: str  # what the client was told; "" when the connection was dropped instead

    @property
    def message_id(self) -> str:
        return _message_id(self.data)


@dataclass(frozen=True)
class _Fault:
    code: int | None  # None: close the connection without a reply
    message: str = ""

    def reply(self) -> str:
        return f"{self.code} {self.message}".rstrip()


@dataclass
class _Faults:
    lock: threading.Lock = field(default_factory=threading.Lock)
    pending: dict[str, deque[_Fault]] = field(default_factory=dict)

    def add(self, stage: Stage, fault: _Fault) -> None:
        with self.lock:
            self.pending.setdefault(stage, deque()).append(fault)

    def take(self, stage: Stage) -> _Fault | None:
        with self.lock:
            queue = self.pending.get(stage)
            return queue.popleft() if queue else None

    def clear(self) -> None:
        with self.lock:
            self.pending.clear()


class _LmtpClient:
    """Blocking LMTP calls; the handler runs them in a thread off the event loop."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    def _open(self) -> smtplib.LMTP:
        lmtp = smtplib.LMTP(self.host, self.port, timeout=LMTP_TIMEOUT)
        lmtp.ehlo()
        return lmtp

    def check_recipient(self, mail_from: str, rcpt: str) -> str | None:
        """None when the mailbox server would take mail for ``rcpt``; else the reply to give."""
        try:
            with self._open() as lmtp:
                code, reply = lmtp.mail(mail_from)
                if code != 250:
                    return _one_line(code, reply)
                code, reply = lmtp.rcpt(rcpt)
                return None if code in (250, 251) else _one_line(code, reply)
        except (OSError, smtplib.SMTPException):
            return LMTP_UNAVAILABLE

    def deliver(self, mail_from: str, rcpt_to: list[str], data: bytes) -> dict[str, str]:
        """Deliver one message; LMTP answers DATA once per accepted recipient."""
        replies: dict[str, str] = {}
        with self._open() as lmtp:
            options = ["BODY=8BITMIME"] if lmtp.has_extn("8bitmime") else []
            code, reply = lmtp.mail(mail_from, options)
            if code != 250:
                return dict.fromkeys(rcpt_to, _one_line(code, reply))
            accepted = []
            for rcpt in rcpt_to:
                code, reply = lmtp.rcpt(rcpt)
                if code in (250, 251):
                    accepted.append(rcpt)
                else:
                    replies[rcpt] = _one_line(code, reply)
            if not accepted:
                return replies
            try:
                code, reply = lmtp.data(data)
            except smtplib.SMTPDataError as refused:  # DATA itself refused: no per-recipient replies
                return replies | dict.fromkeys(accepted, _one_line(refused.smtp_code, refused.smtp_error))
            replies[accepted[0]] = _one_line(code, reply)
            for rcpt in accepted[1:]:
                code, reply = lmtp.getreply()
                replies[rcpt] = _one_line(code, reply)
        return replies


class _Handler:
    def __init__(self, relay: SmtpRelay) -> None:
        self.relay = relay

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        fault = self.relay._faults.take("MAIL")
        if fault is not None:
            return await _answer(server, fault)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        fault = self.relay._faults.take("RCPT")
        if fault is not None:
            return await _answer(server, fault)
        refusal = await asyncio.to_thread(self.relay._lmtp.check_recipient, envelope.mail_from or "", address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        fault = self.relay._faults.take("DATA")
        if fault is not None and fault.code is not None:
            return fault.reply()
        data = envelope.original_content or b""
        try:
            replies = await asyncio.to_thread(
                self.relay._lmtp.deliver, envelope.mail_from or "", list(envelope.rcpt_tos), data
            )
        except (OSError, smtplib.SMTPException):
            replies = {}
            reply = LMTP_UNAVAILABLE
        else:
            reply = _data_reply(replies)
        delivered = tuple(rcpt for rcpt, text in replies.items() if text.startswith("2"))
        self.relay._record(
            Transaction(
                listener=getattr(server, "listener", "?"),
                login=_login(session),
                mail_from=envelope.mail_from or "",
                rcpt_to=tuple(envelope.rcpt_tos),
                data=data,
                received_at=datetime.now(tz=UTC),
                delivered=delivered,
                lmtp_refused={rcpt: text for rcpt, text in replies.items() if rcpt not in delivered},
                reply="" if fault is not None else reply,
            )
        )
        if fault is not None:
            return await _answer(server, fault)
        return reply


def _login(session: Session) -> str:
    auth = session.auth_data
    return auth.login.decode("utf-8", "replace") if isinstance(auth, LoginPassword) else ""


def _data_reply(replies: dict[str, str]) -> str:
    """250 when the message reached at least one mailbox, else the first refusal."""
    if any(text.startswith("2") for text in replies.values()):
        return "250 OK"
    return next(iter(replies.values()), LMTP_UNAVAILABLE)


async def _answer(server: SMTP, fault: _Fault) -> str:
    if fault.code is not None:
        return fault.reply()
    # Drop the connection without a reply; the task is cancelled once the
    # connection is gone, so nothing is ever written back.
    assert isinstance(server.transport, asyncio.WriteTransport)
    server.transport.abort()
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


class _RelaySMTP(SMTP):
    def __init__(self, handler: _Handler, *, listener: str, **kwargs: Any) -> None:
        super().__init__(handler, auth_require_tls=True, **kwargs)
        self.listener = listener
        self.relay = handler.relay
        if listener == "smtps":
            # aiosmtpd counts only STARTTLS as TLS; on the SMTPS port the whole
            # connection is, so AUTH is offered at once (a constructor argument
            # would warn about AUTH without TLS on every connection).
            self._auth_require_tls = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Called again with the TLS transport after STARTTLS: that is the same connection.
        if self._original_transport is None:
            self.relay._connected(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self.relay._disconnected(self)
        super().connection_lost(error)


class _Listener(Controller):
    """An aiosmtpd controller on a given port (0: a free one, read back after binding)."""

    def __init__(self, relay: SmtpRelay, *, listener: str, port: int, **kwargs: Any) -> None:
        super().__init__(_Handler(relay), hostname=relay.host, port=port, **kwargs)
        self.listener = listener

    def factory(self) -> SMTP:
        return _RelaySMTP(self.handler, listener=self.listener, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpRelay:
    """STARTTLS and SMTPS listeners with AUTH that deliver through LMTP.

    ``ca`` signs the relay's certificate for ``tls_names`` (pass Dovecot's CA
    so that one CA file verifies every test server); ``cert`` overrides it with
    a ready-made leaf certificate. ``ca_file`` is the PEM to trust.
    """

    def __init__(
        self,
        *,
        lmtp_host: str,
        lmtp_port: int,
        authenticate: Authenticate,
        workdir: Path,
        ca: trustme.CA | None = None,
        cert: trustme.LeafCert | None = None,
        tls_names: tuple[str, ...] = ("localhost", "127.0.0.1"),
        host: str = "127.0.0.1",
    ) -> None:
        self.host = host
        self.authenticate = authenticate
        self.ca = ca or trustme.CA()
        self.cert = cert or self.ca.issue_cert(*tls_names)
        workdir.mkdir(parents=True, exist_ok=True)
        self.ca_file = workdir / "smtp-relay-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.port = 0
        self.smtps_port = 0
        self._lmtp = _LmtpClient(lmtp_host, lmtp_port)
        self._faults = _Faults()
        self._lock = threading.Lock()
        self._transactions: list[Transaction] = []
        self._connections = 0
        self._live: set[_RelaySMTP] = set()
        self._listeners: list[_Listener] = []

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> SmtpRelay:
        """Listen (again, on the same ports after :meth:`stop`)."""
        if self._listeners:
            return self
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.cert.configure_cert(context)
        common = {
            "authenticator": self._authenticator,
            "auth_required": True,
            "server_hostname": "relay.serversync.test",
            "ready_timeout": 10.0,
        }
        starttls = _Listener(self, listener="starttls", port=self.port, tls_context=context, **common)
        smtps = _Listener(self, listener="smtps", port=self.smtps_port, ssl_context=context, **common)
        try:
            for listener in (starttls, smtps):
                listener.start()
                self._listeners.append(listener)
        except BaseException:
            self.stop()
            raise
        self.port, self.smtps_port = starttls.port, smtps.port
        with self._lock:
            self._connections = 0  # the controllers' own start-up probes
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection (clients see the server go away)."""
        for listener in self._listeners:
            self._close_live(listener, abort=True)
            listener.stop()
        self._listeners.clear()

    def drop_connections(self) -> None:
        """Close every open client connection, as a server does with idle ones."""
        for listener in self._listeners:
            self._close_live(listener, abort=False)

    def _close_live(self, listener: _Listener, *, abort: bool) -> None:
        async def close() -> None:
            with self._lock:
                sessions = [s for s in self._live if s.listener == listener.listener]
            for session in sessions:
                transport = session.transport
                if not isinstance(transport, asyncio.WriteTransport):
                    continue
                if abort:
                    transport.abort()
                else:
                    transport.close()

        asyncio.run_coroutine_threadsafe(close(), listener.loop).result(timeout=10)

    # -- faults ---------------------------------------------------------------------

    def fail_next(self, code: int, message: str, *, stage: Stage = "DATA") -> None:
        """Answer the next MAIL / RCPT / DATA (after the message data) with ``code message``.

        A DATA failure is a refusal: nothing is delivered. Calls queue up, one per command.
        """
        self._faults.add(stage, _Fault(code, message))

    def drop_next(self, *, stage: Stage = "DATA") -> None:
        """Close the connection instead of answering the next MAIL / RCPT / DATA.

        At DATA the message is delivered first, so the client cannot know that it
        was: the case a sender must not resend blindly.
        """
        self._faults.add(stage, _Fault(None))

    def clear_faults(self) -> None:
        self._faults.clear()

    # -- what happened ---------------------------------------------------------------

    @property
    def connection_count(self) -> int:
        """Client connections opened since start (STARTTLS upgrades are not new ones)."""
        with self._lock:
            return self._connections

    def transactions(self) -> list[Transaction]:
        with self._lock:
            return list(self._transactions)

    def accepted_count(self, message_id: str) -> int:
        """How many times a message with this Message-ID reached at least one mailbox,
        whether or not the client got the 250 for it (``<>`` optional)."""
        wanted = _normalized_id(message_id)
        found = [t for t in self.transactions() if _normalized_id(t.message_id) == wanted]
        return sum(1 for t in found if t.delivered)

    def server_settings(
        self, *, tls: Tls = Tls.STARTTLS, username: str = "", password: str = ""
    ) -> ServerSettings:
        """Connector settings for this relay (``Tls.IMPLICIT`` for the SMTPS port)."""
        port = self.smtps_port if tls is Tls.IMPLICIT else self.port
        return ServerSettings(
            host=self.host,
            port=port,
            tls=tls,
            timeout=10.0,
            ca_file=str(self.ca_file),
            username=username,
            password=password,
        )

    # -- called from the server thread ------------------------------------------------

    def _authenticator(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        try:
            success = self.authenticate(login, password)
        except OSError:
            return AuthResult(success=False, handled=False, message=AUTH_UNAVAILABLE)
        return AuthResult(success=success, handled=False, auth_data=auth_data)

    def _connected(self, session: _RelaySMTP) -> None:
        with self._lock:
            self._connections += 1
            self._live.add(session)

    def _disconnected(self, session: _RelaySMTP) -> None:
        with self._lock:
            self._live.discard(session)

    def _record(self, transaction: Transaction) -> None:
        with self._lock:
            self._transactions.append(transaction)
