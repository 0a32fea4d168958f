"""SMTP submission (smtplib): one connection sends a batch of messages.

``with SmtpConnection(settings) as smtp: smtp.send(raw, mail_from=..., rcpt_to=[...])``

or, to work while the server delivers, ``submission = smtp.submit(...)``, other
work, then ``submission.result()``.

- TLS as the settings say: implicit (SMTPS), STARTTLS (required: a server
  that does not offer it is refused) or none; the certificate is always
  verified (``ca_file`` replaces the system's CAs, never switches checks off).
- AUTH PLAIN or LOGIN (UTF-8) when a user name is set. SMTP has no standard
  for impersonation, so with ``act_as`` the connector still logs in as the
  service account; the envelope sender is whatever ``mail_from`` says (the
  mailbox's address) and the server decides whether that account may use it.
- A connection the server closed while idle is reopened once, before MAIL
  FROM. Once the whole message has gone out, nothing is retried: a lost reply
  raises ``TransientError(code="outcome_unknown")``, because the server may
  have accepted the message and a resend could deliver it twice.
- Bytes in, bytes out: ``raw`` goes into DATA unchanged (only dot-stuffed, and
  given a final CRLF if it has none), so it is exactly what the caller stores.
  A message with a bare CR or LF, or a line over 1000 octets, is refused
  before MAIL FROM (``MessageError``) instead of being rewritten on the way.
- Every failure is a ``TransientError``, ``PermanentError`` or
  ``MessageError`` with a stable ``code`` and a message naming the server,
  the cause and the fix.
"""

from __future__ import annotations

import base64
import re
import smtplib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

from sync.connectors import network, sasl
from sync.connectors.base import SendResult, ServerSettings, Tls
from sync.errors import MessageError, PermanentError, SyncError, TransientError

# RFC 5321 4.5.3.2.6 allows a server ten minutes to answer the end of the data
# (virus scanning, a slow queue); giving up early turns a sent message into
# "outcome unknown", so the reply gets at least this long.
DATA_REPLY_TIMEOUT = 300.0

PROTOCOL = "SMTP"
_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)
# RFC 5321 2.3.8: CR and LF only together, as a line's end. A line is at most
# 998 characters and its CRLF (RFC 5322 2.1.1; RFC 5321 4.5.3.1.6: 1000 octets,
# the dot doubled for transparency not counted).
MAX_LINE_OCTETS = 1000
_BARE_CR_OR_LF = re.compile(rb"\r(?!\n)|(?<!\r)\n")


class SmtpConnection:
    """One authenticated SMTP connection, reused for every message sent through it."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self._client: smtplib.SMTP | None = None
        self._awaiting: Submission | None = None  # a message whose final reply is unread

    def __enter__(self) -> SmtpConnection:
        self.open()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def server(self) -> str:
        return f"{PROTOCOL} server {network.where(self.settings)}"

    # -- connection ---------------------------------------------------------------

    def open(self) -> None:
        """Connect, secure and authenticate; raises a SyncError saying what failed."""
        self.close()
        with self._failures():
            self._client = self._connect()

    def close(self) -> None:
        """QUIT politely; a connection that is already gone is just dropped."""
        client, self._client = self._client, None
        self._awaiting = None  # its reply, if any, is lost with the connection: outcome unknown
        if client is None:
            return
        try:
            client.quit()
        except OSError:  # smtplib's errors are OSErrors: the server went away first
            pass
        finally:
            client.close()

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        client: smtplib.SMTP
        if s.tls is Tls.IMPLICIT:
            client = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=self._tls_context())
        else:
            client = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        try:
            client.ehlo_or_helo_if_needed()
            if s.tls is Tls.STARTTLS:
                self._starttls(client)
            if s.username:
                self._login(client)
        except BaseException:
            client.close()
            raise
        return client

    def _tls_context(self) -> ssl.SSLContext:
        try:
            return network.verifying_context(self.settings)
        except (OSError, ssl.SSLError) as error:
            raise PermanentError(
                f"The CA file {self.settings.ca_file!r} for the {self.server} cannot be read ({error}). "
                "Point it at a PEM file holding the certificate authority that signed the server's "
                "certificate.",
                code="ca_file_invalid",
            ) from error

    def _starttls(self, client: smtplib.SMTP) -> None:
        if not client.has_extn("starttls"):
            raise PermanentError(
                f"The {self.server} does not offer STARTTLS, and mail is never sent in cleartext when "
                "SSL is on. Use the server's submission port (587 with STARTTLS, 465 with SSL), or "
                "enable STARTTLS on the server.",
                code="starttls_unavailable",
            )
        code, reply = client.starttls(context=self._tls_context())
        if code != 220:
            if 400 <= code < 500:
                raise self._temporary(code, reply, "refused STARTTLS for now")
            raise PermanentError(
                f"The {self.server} refused STARTTLS ({_reply(code, reply)}). "
                "Enable TLS on the server or use its SSL port (465).",
                code="starttls_unavailable",
            )
        client.ehlo()

    def _login(self, client: smtplib.SMTP) -> None:
        if self.settings.sasl_mechanism:
            self._bearer_login(client)
            return
        user, password = self.settings.username.encode(), self.settings.password.encode()
        mechanisms = client.esmtp_features.get("auth", "").upper().split()
        if "PLAIN" in mechanisms:
            code, reply = client.docmd("AUTH", "PLAIN " + _b64(b"\0" + user + b"\0" + password))
        elif "LOGIN" in mechanisms:
            code, reply = client.docmd("AUTH", "LOGIN " + _b64(user))
            if code == 334:
                code, reply = client.docmd(_b64(password))
        else:
            raise PermanentError(
                f"The {self.server} offers no password login (AUTH PLAIN or LOGIN) on this connection"
                + (" without TLS" if self.settings.tls is Tls.NONE else "")
                + ". Turn SSL on in the profile, or remove the user name if the server needs no login.",
                code="authentication_unavailable",
            )
        if code == 235:
            return
        if 400 <= code < 500:
            raise self._temporary(code, reply, "could not check the password now")
        raise PermanentError(
            f"The {self.server} rejected the login for {self.settings.username!r} ({_reply(code, reply)}). "
            "Correct the user name and password in the email server profile or the mailbox.",
            code="authentication_failed",
        )

    def _bearer_login(self, client: smtplib.SMTP) -> None:
        s = self.settings
        mechanisms = client.esmtp_features.get("auth", "").upper().split()
        if s.sasl_mechanism not in mechanisms:
            raise PermanentError(
                f"The {self.server} offers no {s.sasl_mechanism} sign-in on this connection (it offers "
                f"{' '.join(mechanisms) or 'none'}). Choose the mechanism the server offers in the profile.",
                code="authentication_unavailable",
            )
        # RFC 4954 allows an AUTH line of 12288 octets: the token goes in the initial response.
        code, reply = client.docmd("AUTH", f"{s.sasl_mechanism} {sasl.initial_response(s)}")
        if code == 334:  # the error challenge: answered, then the server says why not
            code, reply = client.docmd(sasl.abort_response(s))
        if code == 235:
            return
        if 400 <= code < 500:
            raise self._temporary(code, reply, "could not check the access token now")
        raise sasl.token_refused(s, protocol="SMTP", detail=_reply(code, reply))

    # -- sending ------------------------------------------------------------------

    def send(self, raw: bytes, *, mail_from: str, rcpt_to: list[str]) -> SendResult:
        """Send ``raw`` unchanged to ``rcpt_to``; recipients the server refused are in
        the result as long as it took at least one."""
        return self.submit(raw, mail_from=mail_from, rcpt_to=rcpt_to).result()

    def submit(self, raw: bytes, *, mail_from: str, rcpt_to: list[str]) -> Submission:
        """``send`` up to the end of the data, without waiting for the server's verdict:
        a server delivers before it answers (tens of milliseconds), and the caller
        may spend that time on other work before it reads the verdict with
        ``Submission.result()``. The connection takes no other command until then."""
        if self._awaiting is not None:
            raise RuntimeError("The previous message's reply has not been read yet.")
        if not rcpt_to:
            raise MessageError("The message has no recipients.", code="no_recipients")
        _check_lines(raw)
        with self._failures():
            client = self._mail_from(raw, mail_from, rcpt_to)
            refused = self._rcpt_to(client, rcpt_to)
        self._data(client, raw)
        self._awaiting = Submission(self, client, refused)
        return self._awaiting

    def _mail_from(self, raw: bytes, mail_from: str, rcpt_to: list[str]) -> smtplib.SMTP:
        """MAIL FROM, on a fresh connection if the server dropped the idle one."""
        client = self._client or self._reopen()
        options = self._mail_options(client, raw, [mail_from, *rcpt_to])
        try:
            code, reply = client.mail(mail_from, options)
        except smtplib.SMTPServerDisconnected as error:
            if isinstance(error.__context__, TimeoutError):
                raise
            code, reply = 421, b""
        if code == 421:  # closed, or closing: nothing of this message has been sent yet
            client = self._reopen()
            code, reply = client.mail(mail_from, self._mail_options(client, raw, [mail_from, *rcpt_to]))
        if code != 250:
            self._reset(client)
            raise self._sender_refused(code, reply, mail_from)
        return client

    def _reopen(self) -> smtplib.SMTP:
        self.close()
        self._client = self._connect()
        return self._client

    def _mail_options(self, client: smtplib.SMTP, raw: bytes, addresses: list[str]) -> list[str]:
        options = []
        if client.has_extn("size"):
            options.append(f"SIZE={len(raw)}")
        if not raw.isascii() and client.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        if not all(address.isascii() for address in addresses):
            if not client.has_extn("smtputf8"):
                raise MessageError(
                    f"The {self.server} does not accept addresses with non-ASCII characters (no SMTPUTF8): "
                    f"{', '.join(a for a in addresses if not a.isascii())}.",
                    code="smtputf8_unavailable",
                )
            options.append("SMTPUTF8")
        return options

    def _rcpt_to(self, client: smtplib.SMTP, rcpt_to: list[str]) -> dict[str, str]:
        refused: dict[str, str] = {}
        for address in rcpt_to:
            code, reply = client.rcpt(address)
            if code == 421:
                raise self._temporary(code, reply, "closed the connection")
            if code not in (250, 251):
                refused[address] = _reply(code, reply)
        if len(refused) == len(rcpt_to):
            self._reset(client)
            raise self._all_refused(refused)
        return refused

    def _data(self, client: smtplib.SMTP, raw: bytes) -> None:
        with self._failures():
            code, reply = client.docmd("DATA")
            if code == 354:
                # A failure while sending means the end-of-data mark never reached
                # the server, so it cannot have accepted the message: safe to retry.
                client.send(_dot_stuffed(raw))
        if code != 354:
            self._reset(client)
            raise self._message_refused(code, reply)

    def _verdict(self, submission: Submission) -> SendResult:
        self._awaiting = None
        code, reply = self._final_reply(submission.client)
        if code != 250:
            raise self._message_refused(code, reply)
        return SendResult(refused=submission.refused)

    def _final_reply(self, client: smtplib.SMTP) -> tuple[int, bytes]:
        """The reply to the end of the data: from here on the message may be delivered."""
        try:
            if client.sock is not None:
                client.sock.settimeout(max(self.settings.timeout, DATA_REPLY_TIMEOUT))
            code, reply = client.getreply()
            if client.sock is not None:
                client.sock.settimeout(self.settings.timeout)
        except OSError as error:  # smtplib's errors are OSErrors too
            self.close()
            raise TransientError(
                f"The connection to the {self.server} was lost after the whole message was sent and "
                f"before the server confirmed it ({error}). The server may have accepted it, so it is not "
                "sent again automatically: check the recipient's mailbox, then resend or cancel it.",
                code="outcome_unknown",
            ) from error
        return code, reply

    def _reset(self, client: smtplib.SMTP) -> None:
        """RSET after a refusal so the next message can use the connection."""
        try:
            client.rset()
        except OSError:
            self.close()  # the next message reconnects

    # -- failures -------------------------------------------------------------------

    def _sender_refused(self, code: int, reply: bytes, mail_from: str) -> SyncError:
        if 400 <= code < 500:
            return self._temporary(code, reply, f"refused the sender {mail_from!r} for now")
        if code == 552:  # SIZE over the server's limit: this message, not the mailbox
            return self._message_refused(code, reply)
        if code == 530:
            return PermanentError(
                f"The {self.server} requires a login ({_reply(code, reply)}). "
                "Enter a user name and password in the email server profile.",
                code="authentication_required",
            )
        return PermanentError(
            f"The {self.server} refused {mail_from!r} as the sender ({_reply(code, reply)}). "
            f"Allow the account {self.settings.username!r} to send as that address on the server, "
            "or change the mailbox's email address.",
            code="sender_refused",
        )

    def _all_refused(self, refused: dict[str, str]) -> SyncError:
        replies = "; ".join(f"{address}: {reply}" for address, reply in refused.items())
        if all(reply.startswith("4") for reply in refused.values()):
            return TransientError(
                f"The {self.server} refused every recipient for now ({replies}); "
                "serversync tries again later.",
                code="temporary_failure",
            )
        # A bad address fails this email, not the mailbox: the next email may be fine.
        return MessageError(
            f"The {self.server} refused every recipient ({replies}). Correct the addresses and send again.",
            code="all_recipients_refused",
        )

    def _message_refused(self, code: int, reply: bytes) -> SyncError:
        if 400 <= code < 500:
            return self._temporary(code, reply, "did not take the message for now")
        return MessageError(
            f"The {self.server} refused the message ({_reply(code, reply)}). "
            "Change the message (for example its size or attachments) and send it again.",
            code="message_refused",
        )

    def _temporary(self, code: int, reply: bytes | str, what: str) -> TransientError:
        if code == 421:  # "service not available, closing transmission channel"
            return network.server_busy(
                self.settings, protocol=PROTOCOL, detail=f"{what}: {_reply(code, reply)}"
            )
        return TransientError(
            f"The {self.server} {what} ({_reply(code, reply)}); serversync tries again later.",
            code="temporary_failure",
        )

    @contextmanager
    def _failures(self) -> Iterator[None]:
        """Network, TLS and protocol errors as SyncErrors (only before any message data is sent)."""
        try:
            yield
        except OSError as error:  # socket, ssl and smtplib errors are all OSErrors
            self.close()
            raise self._translate(error) from error

    def _translate(self, error: OSError) -> SyncError:
        if isinstance(error, smtplib.SMTPResponseException):  # the greeting or EHLO refused
            if 400 <= error.smtp_code < 500:
                return self._temporary(error.smtp_code, error.smtp_error, "turned the connection down")
            reply = _reply(error.smtp_code, error.smtp_error)
            return PermanentError(
                f"The {self.server} turned the connection down ({reply}). "
                "Check the server name and port in the email server profile.",
                code="connection_rejected",
            )
        if isinstance(error, smtplib.SMTPServerDisconnected):
            # smtplib turns a timed-out read into "connection unexpectedly closed".
            if isinstance(error.__context__, TimeoutError):
                return network.timeout(self.settings, protocol=PROTOCOL)
            return network.connection_lost(self.settings, protocol=PROTOCOL, detail=str(error))
        return network.translate(
            error, self.settings, protocol=PROTOCOL, fetch_certificate=self._fetch_certificate
        )

    def _fetch_certificate(self, context: ssl.SSLContext) -> bytes | None:
        """The certificate the server shows, read again without checking it, to say why it
        fails. Nothing but EHLO and STARTTLS is sent."""
        s = self.settings
        if s.tls is Tls.IMPLICIT:
            return network.fetch_implicit_certificate(s)(context)
        with smtplib.SMTP(s.host, s.port, timeout=s.timeout) as client:
            client.starttls(context=context)
            return network.peer_certificate(client.sock) if client.sock is not None else None


class Submission:
    """A message sent up to the end of its data, its verdict not read yet."""

    def __init__(self, connection: SmtpConnection, client: smtplib.SMTP, refused: dict[str, str]) -> None:
        self._connection = connection
        self.client = client
        self.refused = refused

    def result(self) -> SendResult:
        """The server's verdict: a SendResult when it took the message; MessageError or
        TransientError when it refused it; TransientError(code="outcome_unknown") when
        the connection was lost before it answered."""
        return self._connection._verdict(self)


def _check_lines(raw: bytes) -> None:
    """Refuse, before MAIL FROM, what RFC 5321 does not allow in the data: a CR
    or LF that is not part of a CRLF, or a line over 1000 octets. The message is
    never rewritten here: what is sent is exactly what the caller stores."""
    # Counting is a fast scan in C; the regular expression only says where.
    crlf = raw.count(b"\r\n")
    bare = _BARE_CR_OR_LF.search(raw) if raw.count(b"\r") != crlf or raw.count(b"\n") != crlf else None
    if bare is not None:
        what, number = ("CR" if bare.group() == b"\r" else "LF"), raw.count(b"\n", 0, bare.start()) + 1
        raise MessageError(
            f"Line {number} of the message has a bare {what} (not part of "
            "a CRLF); SMTP requires every line to end in CRLF (RFC 5321 2.3.8), and strict servers "
            "refuse such mail.",
            code="bare_line_ending",
        )
    lines = raw.split(b"\r\n")
    if max(map(len, lines)) > MAX_LINE_OCTETS - 2:
        number = next(n for n, line in enumerate(lines, 1) if len(line) > MAX_LINE_OCTETS - 2)
        raise MessageError(
            f"Line {number} of the message is longer than {MAX_LINE_OCTETS} octets with its CRLF, "
            "the limit of RFC 5322 2.1.1 and RFC 5321 4.5.3.1.6; long text must be sent "
            "quoted-printable or base64.",
            code="line_too_long",
        )


def _dot_stuffed(raw: bytes) -> bytes:
    """The DATA payload: the message as is, lines starting with "." doubled (RFC 5321 4.5.2)."""
    body = _LEADING_DOT.sub(b"..", raw)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body + b".\r\n"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _reply(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return f"{code} {' '.join(text.split())}".rstrip()
