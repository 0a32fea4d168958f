"""POP3 connector (poplib): messages told apart by UIDL, deleted only when asked.

POP3 applies deletions only when the session ends with QUIT, so a run that
fails half-way deletes nothing: :meth:`Pop3Connection.quit` is the one place
that commits, and leaving the context without it drops the connection unsaid.
"""

from __future__ import annotations

import json
import poplib
import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from functools import partial
from types import TracebackType
from typing import Any

from sync.connectors import network, sasl
from sync.connectors.base import INBOX, Pop3Message, ServerSettings, Tls, carries
from sync.connectors.interfaces import Change
from sync.errors import MessageError, PermanentError, SyncError, TransientError

PROTOCOL = "POP3"
# poplib refuses lines over 2048 bytes, but real mail (HTML on one line) has
# longer ones; far beyond this the session is more likely broken than the mail.
MAX_LINE = 4 * 1024 * 1024
# Dovecot's master-user login: "<mailbox><separator><master user>".
MASTER_SEPARATOR = "*"


class _LongLines:
    def _getline(self: Any) -> tuple[bytes, int]:
        line = self.file.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise poplib.error_proto("-ERR line too long")
        if not line:
            raise poplib.error_proto("-ERR EOF")
        octets = len(line)
        # Same ending rules as poplib's own _getline.
        if line[-2:] == b"\r\n":
            return line[:-2], octets
        if line[:1] == b"\r":
            return line[1:-1], octets
        return line[:-1], octets


class _POP3(_LongLines, poplib.POP3):
    pass


class _POP3_SSL(_LongLines, poplib.POP3_SSL):
    pass


def _bearer_login(pop: poplib.POP3, settings: ServerSettings) -> None:
    """RFC 5034 AUTH with the response after the "+ " continuation, never as an initial
    response: a bearer token (Google's are 200 characters and more) would take the command
    past the 255 octets RFC 5034 allows. A refused token gets an error challenge ("+ "
    again) first, answered as the mechanism says; the -ERR after it raises ``error_proto``."""
    # poplib's _shortcmd (not in typeshed): one command, its one-line answer, -ERR raised.
    command = pop._shortcmd  # type: ignore[attr-defined]
    command(f"AUTH {settings.sasl_mechanism}")
    if command(sasl.initial_response(settings)).startswith(b"+OK"):
        return
    command(sasl.abort_response(settings))
    raise poplib.error_proto("-ERR the server answered the token with a challenge, not +OK")


class Pop3Connection:
    """One logged-in POP3 session; use as a context manager and call quit() to commit deletes."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self._pop: poplib.POP3 | None = None
        self._logged_in = False
        self._numbers: dict[str, int] = {}  # UIDL -> message number, from the last listing

    def __enter__(self) -> Pop3Connection:
        self.connect()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- session ------------------------------------------------------------

    def connect(self) -> None:
        try:
            with self._translated():
                self._pop = self._open()
                self._login(self._pop)
        except SyncError:
            self.close()
            raise

    def _open(self) -> poplib.POP3:
        s = self.settings
        if s.tls is Tls.IMPLICIT:
            return _POP3_SSL(s.host, s.port, timeout=s.timeout, context=network.verifying_context(s))
        pop = _POP3(s.host, s.port, timeout=s.timeout)
        self._pop = pop  # closed by connect() if STLS fails
        if s.tls is Tls.STARTTLS:
            pop.stls(context=network.verifying_context(s))
        return pop

    def _login(self, pop: poplib.POP3) -> None:
        s = self.settings
        if s.sasl_mechanism:
            _bearer_login(pop, s)
            self._logged_in = True
            return
        pop.user(f"{s.act_as}{MASTER_SEPARATOR}{s.username}" if s.act_as else s.username)
        pop.pass_(s.password)
        self._logged_in = True

    def quit(self) -> None:
        """End the session; only now does the server carry out the deletions asked for."""
        with self._translated():
            self._connected.quit()
        self._pop = None

    def close(self) -> None:
        """Drop the connection without QUIT: the server deletes nothing."""
        pop, self._pop = self._pop, None
        if pop is not None:
            with suppress(OSError):
                pop.close()

    @property
    def _connected(self) -> poplib.POP3:
        if self._pop is None:
            raise RuntimeError("Pop3Connection is not connected; use it as a context manager")
        return self._pop

    # -- messages -----------------------------------------------------------

    def list_messages(self) -> list[Pop3Message]:
        """Every message in the maildrop, with its UIDL and size (UIDL + LIST)."""
        with self._translated():
            _, uidl_lines, _ = self._connected.uidl()
            _, list_lines, _ = self._connected.list()
        sizes = dict(_pair(line) for line in list_lines)
        uidls = map(_pair, uidl_lines)
        return [Pop3Message(number, uidl, int(sizes.get(number, 0))) for number, uidl in uidls]

    def retrieve(self, number: int) -> bytes:
        """The whole message, CRLF line ends, dot-stuffing undone by poplib."""
        with self._translated(number):
            _, lines, _ = self._connected.retr(number)
        return b"\r\n".join(lines) + b"\r\n"

    def delete(self, number: int) -> None:
        """Mark for deletion; the server deletes at quit()."""
        with self._translated(number):
            self._connected.dele(number)

    # -- the connector interfaces (sync.connectors.interfaces) -----------------

    def folders(self, *, include_subfolders: bool) -> list[str]:
        return [INBOX]  # POP3 has one maildrop and no folders

    def changes(self, folder: str, cursor: str, *, max_size: int | None = None) -> Iterator[Change]:
        """Messages whose UIDL the cursor does not hold, in the server's order.
        The cursor is the JSON list of UIDLs taken, kept to those still on the server."""
        listed = self.list_messages()
        self._numbers = {message.uidl: message.number for message in listed}
        seen = _uidl_cursor(cursor)
        kept = [message.uidl for message in listed if message.uidl in seen]
        for message in listed:
            if message.uidl in seen:
                continue
            raw = None if max_size is not None and message.size > max_size else self.retrieve(message.number)
            kept.append(message.uidl)
            # ``kept`` only grows: its first n UIDLs are the cursor after this message.
            yield Change(message.uidl, message.size, None, raw, partial(_dump_prefix, kept, len(kept)))

    def caught_up(self, folder: str) -> str | None:
        # Nothing newer than the last message's cursor: UIDLs do not expire. (The engine
        # reads POP3 through its own loop anyway, its UIDLs in a typed column.)
        return None

    def remove(self, folder: str, server_ids: Sequence[str]) -> None:
        """Delete these messages and end the session: POP3 deletes only at QUIT."""
        numbers = self._numbers or {m.uidl: m.number for m in self.list_messages()}
        for uidl in server_ids:
            if uidl in numbers:
                self.delete(numbers[uidl])
        self.quit()

    # -- errors -------------------------------------------------------------

    @contextmanager
    def _translated(self, number: int | None = None) -> Iterator[None]:
        """Every failure leaves as a SyncError that says what to do."""
        try:
            yield
        except poplib.error_proto as error:
            raise self._refused(_reply(error), number) from error
        except OSError as error:
            raise network.translate(
                error, self.settings, protocol=PROTOCOL, fetch_certificate=self._fetch_certificate
            ) from error

    def _refused(self, text: str, number: int | None) -> SyncError:
        s, where = self.settings, network.where(self.settings)
        if network.looks_busy(text):
            return network.server_busy(s, protocol=PROTOCOL, detail=text)
        if text in ("-ERR EOF", "-ERR line too long") or not text.startswith("-ERR"):
            self.close()  # the reply stream is out of step: nothing more can be read from it
            return network.connection_lost(s, protocol=PROTOCOL, detail=text)
        if not self._logged_in:
            return self._login_failure(text)
        if number is not None:
            return MessageError(
                f"{PROTOCOL} server {where} would not hand out or delete message {number} of {self._account} "
                f"({text}). It is set aside; the others go on.",
                code="fetch_failed",
            )
        # An unexplained -ERR is most often passing (a server fault, a lock); it is retried.
        return TransientError(f"{PROTOCOL} server {where} refused a command: {text}.", code="server_error")

    def _login_failure(self, text: str) -> PermanentError:
        s, where = self.settings, network.where(self.settings)
        if "STLS" in text.upper():
            return PermanentError(
                f"{PROTOCOL} server {where} does not offer STLS ({text}). Choose SSL/TLS in the profile "
                "or a server that offers STARTTLS.",
                code="tls_failed",
            )
        if s.act_as and "authoriz" in text.lower():
            return PermanentError(
                f"{PROTOCOL} server {where} accepted {s.username} but does not let it act for {s.act_as} "
                f"({text}). Grant {s.username} access to that mailbox on the mail server (master user), "
                "or give the mailbox its own credentials.",
                code="impersonation_denied",
            )
        if s.sasl_mechanism:
            return sasl.token_refused(s, protocol=PROTOCOL, detail=text)
        acting = f" acting for {s.act_as}" if s.act_as else ""
        return PermanentError(
            f"{PROTOCOL} server {where} rejected the sign-in of {s.username}{acting} ({text}). "
            "Correct the user name and password in the email server profile or mailbox.",
            code="authentication_failed",
        )

    @property
    def _account(self) -> str:
        return self.settings.act_as or self.settings.username

    def _fetch_certificate(self, context: ssl.SSLContext) -> bytes | None:
        s = self.settings
        if s.tls is Tls.IMPLICIT:
            return network.fetch_implicit_certificate(s)(context)
        try:
            pop = poplib.POP3(s.host, s.port, timeout=s.timeout)
        except poplib.error_proto:
            return None
        try:
            pop.stls(context=context)
            return network.peer_certificate(pop.sock)
        except poplib.error_proto:
            return None
        finally:
            with suppress(OSError):
                pop.close()


def _reply(error: poplib.error_proto) -> str:
    reply = error.args[0] if error.args else ""
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)


def _pair(line: bytes) -> tuple[int, str]:
    number, value = line.decode("ascii", errors="replace").split(None, 1)
    return int(number), value.strip()


def _dump_prefix(uidls: list[str], length: int) -> str:
    return json.dumps(uidls[:length])


def _uidl_cursor(cursor: str) -> set[str]:
    if not cursor:
        return set()
    try:
        taken = json.loads(cursor)
    except ValueError:
        return set()  # not ours: start again (identities keep it from doubling anything)
    return {uidl for uidl in taken if isinstance(uidl, str)} if isinstance(taken, list) else set()


class Pop3Probe:
    """Test & enable over POP3 (sync.connectors.interfaces.Probe): the round trip
    looks for the marked message among the UIDLs that were not there before."""

    def check_incoming(self, settings: ServerSettings, *, include_subfolders: bool) -> None:
        with Pop3Connection(settings) as pop:
            pop.list_messages()

    def position(self, settings: ServerSettings) -> object:
        with Pop3Connection(settings) as pop:
            return frozenset(message.uidl for message in pop.list_messages())

    def take_marked(self, settings: ServerSettings, header: str, token: str, since: object) -> bool:
        if not isinstance(since, frozenset):
            raise TypeError("a POP3 position is the set of UIDLs seen")
        with Pop3Connection(settings) as pop:
            for message in pop.list_messages():
                if message.uidl not in since and carries(pop.retrieve(message.number), header, token):
                    pop.delete(message.number)
                    pop.quit()
                    return True
        return False
