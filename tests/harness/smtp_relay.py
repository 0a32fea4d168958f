"""An SMTP submission server for tests that delivers into Dovecot over LMTP.

Two aiosmtpd listeners on free loopback ports, run in a thread of the test
worker process: ``port`` offers STARTTLS (required before AUTH), ``smtps_port``
speaks TLS from the first byte. Both require AUTH (PLAIN or LOGIN), checked
by an ``authenticate(username, password)`` callable (the fixture asks
Dovecot's auth service, so the relay knows exactly Dovecot's users). Every recipient is
checked against the LMTP server at RCPT time and every message is delivered
over LMTP before the reply to DATA, so the client sees the mailbox server's
refusals and the message can be read back over IMAP once ``send`` returns.

Strict about line endings by default (``SmtpRelay(strict=True)``), so every test
that sends through it proves its mail is on the wire as RFC 5321 wants it:

- A bare LF or bare CR anywhere in the DATA payload (RFC 5321 2.3.8: CR and LF
  only as CRLF) is refused with ``550 5.5.2 <host> Error: bare <LF> received``
  (``<CR>`` for a CR) and nothing is delivered. That is Postfix's
  ``smtpd_forbid_bare_newline = reject`` (3.9 and later): the data is read up
  to the end-of-data mark, refused with ``smtpd_forbid_bare_newline_reject_code``
  (550), and the session goes on. When the setting came in (3.5.23, 3.6.13,
  3.7.9, 3.8.4) ``yes`` refused the same mail with 521 and hung up at once;
  since 3.9 ``yes`` is an alias of ``normalize``, which accepts it. Postfix
  lets a bare CR through; this relay does not. Only CRLF.CRLF ends the data.
- A line over 1000 octets with its CRLF (RFC 5321 4.5.3.1.6), the dot doubled
  for transparency not counted, is refused with ``500 5.5.2 ... line too long``.

aiosmtpd on its own (``strict=False``) reads DATA up to each CRLF with a
1001-octet limit: a message with LF line endings is then one long "line", so
below that size it is taken in with its bare LFs and above it is refused with
"500 Line too long" - the symptom, not the cause. Its limit also lets a
1001-octet line through when it does not start with a dot.

With ``check_token(token, username)`` (the fixture asks the harness's OAuth
issuer, tests/harness/oauth_issuer.py), AUTH XOAUTH2 and OAUTHBEARER (RFC 7628)
are offered too, and a refused token gets the mechanisms' error challenge
(``334`` with a base64 JSON status) before the ``535``, as Gmail answers.

Tests inspect what happened (:meth:`SmtpRelay.transactions`,
:meth:`SmtpRelay.accepted_count`, :attr:`SmtpRelay.connection_count`) and
inject faults (:meth:`SmtpRelay.fail_next`, :meth:`SmtpRelay.drop_next`,
:meth:`SmtpRelay.drop_connections`, :meth:`SmtpRelay.stop` /
:meth:`SmtpRelay.start`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
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
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session

from sync.connectors.base import ServerSettings, Tls

Stage = Literal["MAIL", "RCPT", "DATA"]
Authenticate = Callable[[str, str], bool]
CheckToken = Callable[[str, str], bool]  # (bearer token, user name) -> signs in

# RFC 5321 4.5.3.1.6: a text line is at most 1000 octets with its CRLF.
MAX_LINE_OCTETS = 1000
END_OF_DATA = b".\r\n"
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
    data: bytes  # b"" when the strict DATA reader refused it (see ``reply``)
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


async def _line(reader: asyncio.StreamReader) -> bytes:
    """The next line up to and including its LF, however long (a test server:
    no bound but what the client sends). The reader's limit bounds one read, not
    a line; aiosmtpd's own DATA reader splits at CRLF instead, which is why an
    LF-only message looked like one overlong line to it."""
    pieces = []
    while True:
        try:
            pieces.append(await reader.readuntil(b"\n"))
            return b"".join(pieces)
        except asyncio.LimitOverrunError as error:  # no LF within the limit yet
            pieces.append(await reader.readexactly(error.consumed))


def _line_refusal(line: bytes, hostname: str) -> str:
    """Why one DATA line (dot-stuffing undone) is refused; '' when it is fine."""
    if not line.endswith(b"\r\n"):
        return f"550 5.5.2 {hostname} Error: bare <LF> received"
    if b"\r" in line[:-2]:
        return f"550 5.5.2 {hostname} Error: bare <CR> received"
    if len(line) > MAX_LINE_OCTETS:
        return f"500 5.5.2 {hostname} Error: line too long (RFC 5321 4.5.3.1.6)"
    return ""


async def _read_data_strictly(
    reader: asyncio.StreamReader, *, hostname: str, size_limit: int | None
) -> tuple[bytes, str]:
    """The DATA payload up to CRLF.CRLF with dot-stuffing undone, and the reply
    refusing it ('' when it is fine). Everything up to the end of the data is
    read before a refusal, as Postfix does, so the session can go on."""
    lines: list[bytes] = []
    refusal, size, after_crlf = "", 0, True
    while True:
        line = await _line(reader)
        if line == END_OF_DATA and after_crlf:
            return b"".join(lines), refusal
        after_crlf = line.endswith(b"\r\n")
        if line.startswith(b"."):
            line = line[1:]  # RFC 5321 4.5.2: the transparency dot
        size += len(line)
        if not refusal and size_limit and size > size_limit:
            refusal = "552 5.3.4 Error: too much mail data"
        refusal = refusal or _line_refusal(line, hostname)
        if refusal:
            lines.clear()  # keep nothing of a refused message
        else:
            lines.append(line)


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

    # SASL bearer token mechanisms (aiosmtpd finds ``auth_*`` methods by name; on the
    # server class they get the server twice, hence the unused argument).

    async def auth_XOAUTH2(self, _: SMTP, args: list[str]) -> AuthResult:
        return await self._bearer(args, _xoauth2_fields)

    async def auth_OAUTHBEARER(self, _: SMTP, args: list[str]) -> AuthResult:
        return await self._bearer(args, _oauthbearer_fields)

    async def _bearer(self, args: list[str], fields: Callable[[bytes], tuple[str, str]]) -> AuthResult:
        if len(args) > 1:
            try:
                blob = base64.b64decode(args[1], validate=True)
            except binascii.Error:
                return AuthResult(success=False, handled=False, message="501 5.5.2 Can't decode base64")
        else:
            answer = await self.challenge_auth("")
            if not isinstance(answer, bytes):
                return AuthResult(success=False, handled=True)
            blob = answer
        username, token = fields(blob)
        check = self.relay.check_token
        if check is not None and username and token and check(token, username):
            login = LoginPassword(username.encode(), b"")
            return AuthResult(success=True, handled=False, auth_data=login)
        # RFC 7628 3.2.2: an error challenge, the client's dummy answer, then the failure.
        status = json.dumps({"status": "invalid_token", "schemes": "bearer", "scope": "mail"})
        await self.challenge_auth(status)  # whatever the client answers, the answer is no
        return AuthResult(success=False, handled=False)

    async def smtp_DATA(self, arg: str) -> None:
        if not self.relay.strict:
            await super().smtp_DATA(arg)
            return
        # aiosmtpd's own checks before the data, in its order and words.
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        content, refusal = await _read_data_strictly(
            self._reader, hostname=self.hostname, size_limit=self.data_size_limit
        )
        if refusal:
            self._record_refusal(refusal)
            # aiosmtpd leaves its private hooks unannotated (here and below).
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            await self.push(refusal)
            return
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push("250 OK" if status is MISSING else status)

    def _record_refusal(self, reply: str) -> None:
        assert self.envelope is not None
        assert self.session is not None
        self.relay._record(
            Transaction(
                listener=self.listener,
                login=_login(self.session),
                mail_from=self.envelope.mail_from or "",
                rcpt_to=tuple(self.envelope.rcpt_tos),
                data=b"",
                received_at=datetime.now(tz=UTC),
                delivered=(),
                lmtp_refused={},
                reply=reply,
            )
        )


def _xoauth2_fields(blob: bytes) -> tuple[str, str]:
    """``user=<u>^Aauth=Bearer <t>^A^A`` (Google's XOAUTH2) -> (user, token)."""
    parts = dict(p.split("=", 1) for p in blob.decode("utf-8", "replace").split("\x01") if "=" in p)
    return parts.get("user", ""), parts.get("auth", "").removeprefix("Bearer ")


def _oauthbearer_fields(blob: bytes) -> tuple[str, str]:
    """RFC 7628: ``n,a=<u>,^Ahost=..^Aport=..^Aauth=Bearer <t>^A^A`` -> (user, token)."""
    text = blob.decode("utf-8", "replace")
    header, _, rest = text.partition("\x01")
    user = next((p[2:] for p in header.split(",") if p.startswith("a=")), "")
    parts = dict(p.split("=", 1) for p in rest.split("\x01") if "=" in p)
    return user.replace("=2C", ",").replace("=3D", "="), parts.get("auth", "").removeprefix("Bearer ")


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
        super()._trigger_server()  # type: ignore[no-untyped-call]  # aiosmtpd's, unannotated


class SmtpRelay:
    """STARTTLS and SMTPS listeners with AUTH that deliver through LMTP.

    ``ca`` signs the relay's certificate for ``tls_names`` (pass Dovecot's CA
    so that one CA file verifies every test server); ``cert`` overrides it with
    a ready-made leaf certificate. ``ca_file`` is the PEM to trust. ``strict``
    (the default) refuses bare CR / LF and overlong lines in DATA (see the
    module's docstring); ``strict=False`` leaves DATA to aiosmtpd.
    """

    def __init__(
        self,
        *,
        lmtp_host: str,
        lmtp_port: int,
        authenticate: Authenticate,
        workdir: Path,
        check_token: CheckToken | None = None,
        ca: trustme.CA | None = None,
        cert: trustme.LeafCert | None = None,
        tls_names: tuple[str, ...] = ("localhost", "127.0.0.1"),
        host: str = "127.0.0.1",
        strict: bool = True,
    ) -> None:
        self.host = host
        self.strict = strict
        self.authenticate = authenticate
        self.check_token = check_token
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
