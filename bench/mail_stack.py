"""The test harness's mail servers for the email benchmark: Dovecot (mail on tmpfs)
and the aiosmtpd relay, plus the raw clients the engine is measured against.

No Django here: the stack starts before Django is set up, because the settings
need its CA file.
"""

from __future__ import annotations

import os
import secrets
import smtplib
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from imapclient import IMAPClient

from tests.harness.dovecot import Dovecot, DovecotError
from tests.harness.smtp_relay import SmtpRelay, doveadm_authenticator

# LMTP's envelope sender for what the benchmark delivers; Dovecot writes it into Return-Path.
ENVELOPE_SENDER = "bounces@mail.example.test"


@dataclass(frozen=True)
class MailUser:
    address: str
    password: str


@dataclass(frozen=True)
class Delivered:
    messages: int
    bytes: int
    seconds: float


class MailStack:
    """Dovecot under ``workdir`` (a tmpfs, so disk I/O stays out of the figures) and the
    relay delivering into it; a context manager that stops both."""

    def __init__(self, workdir: Path) -> None:
        self.dovecot = Dovecot(parent=workdir)
        self.relay = SmtpRelay(
            lmtp_host=self.dovecot.host,
            lmtp_port=self.dovecot.lmtp_port,
            authenticate=doveadm_authenticator(self.dovecot.config_path),
            ca=self.dovecot.ca,
            workdir=workdir / "relay",
        )
        self._context = self.dovecot.ssl_context()

    def __enter__(self) -> MailStack:
        try:
            self.dovecot.start()
            self.relay.start()
        except (DovecotError, OSError, RuntimeError):
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.relay.stop()
        self.dovecot.close()

    @property
    def ca_file(self) -> str:
        return str(self.dovecot.ca_pem_path)

    def add_user(self, localpart: str, password: str | None = None) -> MailUser:
        password = password or secrets.token_hex(8)
        return MailUser(self.dovecot.add_user(localpart, password), password)

    def write_maildir(self, address: str, messages: Iterable[bytes]) -> Delivered:
        """Every message straight into ``address``'s INBOX as Maildir files (unseen, in ``cur``),
        for mailboxes too large to deliver over LMTP in a benchmark's time: Dovecot indexes them
        on the first access, which the caller makes untimed. No Return-Path or Received header
        is added, and INTERNALDATE is the file's time."""
        maildir = self.dovecot.dir / "mail" / address.lower() / "Maildir"
        owner = self.dovecot.mail_uid
        count = size = 0
        started = time.perf_counter()
        for sub in ("", "cur", "new", "tmp"):
            (maildir / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        for folder in (maildir.parent, maildir, maildir / "cur", maildir / "new", maildir / "tmp"):
            os.chown(folder, owner.pw_uid, owner.pw_gid)
        stamp = int(time.time())
        for raw in messages:
            count, size = count + 1, size + len(raw)
            path = maildir / "cur" / f"{stamp}.M{count}P{os.getpid()}.bench,S={len(raw)}:2,"
            path.write_bytes(raw)
            os.chown(path, owner.pw_uid, owner.pw_gid)
        return Delivered(count, size, time.perf_counter() - started)

    def deliver(self, address: str, messages: Iterable[bytes]) -> Delivered:
        """Every message into ``address``'s INBOX over one LMTP session, as an MTA would."""
        count = size = 0
        started = time.perf_counter()
        with smtplib.LMTP(self.dovecot.host, self.dovecot.lmtp_port, timeout=120) as lmtp:
            for raw in messages:
                refused = lmtp.sendmail(ENVELOPE_SENDER, [address], raw)
                if refused:
                    raise DovecotError(f"LMTP refused {address}: {refused}")
                count, size = count + 1, size + len(raw)
        return Delivered(count, size, time.perf_counter() - started)

    # -- the raw side -------------------------------------------------------------------------

    def imap(self, user: MailUser) -> IMAPClient:
        """A logged-in imapclient session over implicit TLS, the port the engine's profile uses."""
        client = IMAPClient(self.dovecot.host, port=self.dovecot.imaps_port, ssl_context=self._context)
        # The raw side does the least the job needs: without imaplib's protocol trace,
        # which imapclient switches on and which formats every fetched message (the
        # engine's connector switches it off the same way).
        client._imap.debug = 0
        client.login(user.address, user.password)
        return client

    def smtp(self, user: MailUser) -> smtplib.SMTP:
        """An authenticated smtplib connection to the relay with STARTTLS, as the engine's profile sends."""
        client = smtplib.SMTP(self.relay.host, self.relay.port, timeout=60)
        client.starttls(context=ssl.create_default_context(cafile=str(self.relay.ca_file)))
        client.login(user.address, user.password)
        return client
