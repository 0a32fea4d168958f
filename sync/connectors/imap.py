"""IMAP connector (imapclient): new messages by UID, never by \\Seen.

The cursor is the folder's UIDVALIDITY plus the last UID stored; a fetch asks
only for UIDs above it and reads bodies with ``BODY.PEEK[]``, so the mailbox's
read state is never touched. ``SEARCH`` is used only by :meth:`uids_present`,
for the rare relist after a UIDVALIDITY change.
"""

from __future__ import annotations

import logging
import re
import select
import ssl
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from types import TracebackType
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import (
    CapabilityError,
    IMAPClientAbortError,
    IMAPClientError,
    IMAPClientReadOnlyError,
    LoginError,
)
from imapclient.response_parser import parse_fetch_response

from sync.connectors import network, sasl
from sync.connectors.base import INBOX, FetchedMessage, FolderState, ServerSettings, Tls, carries
from sync.connectors.interfaces import Change
from sync.errors import MessageError, PermanentError, SyncError, TransientError

PROTOCOL = "IMAP"
# Bodies are read in batches of at most this many bytes as well as messages.
BATCH_BYTES = 16 * 1024 * 1024
# Where imapclient sends imaplib's protocol trace.
IMAPLIB_LOGGER = "imapclient.imaplib"
SENT_NAMES = ("sent", "sent items", "sent messages", "sent mail")
APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]", re.IGNORECASE)
MISSING_FOLDER = re.compile(r"NONEXISTENT|TRYCREATE|doesn't exist|does not exist|not found", re.IGNORECASE)
BYTES_REPR = re.compile(r"""\bb(['"])(.*?)\1""")
NO_PERMISSION = re.compile(r"NOPERM", re.IGNORECASE)


class UnfetchableMessage(MessageError):
    """The server would not hand out this one message. Messages with lower UIDs
    were all yielded first, so quarantining ``uid`` and fetching again after it
    goes on with the rest."""

    def __init__(self, message: str, *, uid: int) -> None:
        super().__init__(message, code="fetch_failed")
        self.uid = uid


class ImapConnection:
    """One logged-in IMAP session; use as a context manager."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self._client: IMAPClient | None = None
        self._folder = ""
        self._condstore = False

    def __enter__(self) -> ImapConnection:
        self.connect()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(logout=exc_type is None)

    # -- session ------------------------------------------------------------

    def connect(self) -> None:
        try:
            with self._translated():
                self._client = self._open()
                self._authenticate(self._client)
                # Read now, from the login's answer (RFC 3501 lets it carry the capabilities,
                # and Dovecot and most servers do): SELECT drops that answer.
                self._condstore = self._client.has_capability("CONDSTORE")
        except SyncError:
            self.close(logout=False)
            raise

    def _open(self) -> IMAPClient:
        s = self.settings
        implicit = s.tls is Tls.IMPLICIT
        context = network.verifying_context(s) if implicit else None
        client = IMAPClient(s.host, port=s.port, ssl=implicit, ssl_context=context, timeout=s.timeout)
        self._client = client  # closed by connect() if what follows fails
        if not logging.getLogger(IMAPLIB_LOGGER).isEnabledFor(logging.DEBUG):
            # imapclient sets imaplib's debug level to 5 and hands its output to a
            # logger; imaplib formats every line first, a fetched message's repr
            # included (a second copy of the message, and its time), for the
            # logger to drop. Only when that logger would print it is it kept on.
            client._imap.debug = 0
        client.normalise_times = False  # INTERNALDATE with its time zone, not naive local time
        if s.tls is Tls.STARTTLS:
            client.starttls(network.verifying_context(s))
        return client

    def _authenticate(self, client: IMAPClient) -> None:
        s = self.settings
        if s.sasl_mechanism == sasl.XOAUTH2:
            client.oauth2_login(s.username, s.access_token)
        elif s.sasl_mechanism == sasl.OAUTHBEARER:
            client.oauthbearer_login(s.username, s.access_token)
        elif s.act_as:
            # SASL PLAIN: authenticate as the service account, act as the mailbox.
            client.plain_login(s.username, s.password, authorization_identity=s.act_as)
        else:
            client.login(s.username, s.password)

    def close(self, *, logout: bool = True) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        if logout:
            with suppress(IMAPClientError, OSError):
                client.logout()
                return
        # After a failure the server may not answer; do not wait for it.
        with suppress(IMAPClientError, OSError):
            client.shutdown()

    def noop(self) -> None:
        with self._translated():
            self._imap.noop()

    # -- push: IDLE (RFC 2177) for sync/listener_imap.py ---------------------

    def offers_idle(self) -> bool:
        with self._translated():
            return bool(self._imap.has_capability("IDLE"))

    def idle(self) -> None:
        with self._translated(self._folder):
            self._imap.idle()

    def idle_wait(self, timeout: float, count: int) -> int | None:
        """Wait up to ``timeout`` seconds in IDLE: the folder's message count after
        what the server said (EXISTS, EXPUNGE; ``count`` when it said nothing), None
        when the socket had something to read but no answer came of it (a closed
        connection reads as this: imapclient swallows the EOF), for the caller to
        end IDLE and see. New mail is a count above the last one: RECENT is not
        (another session, a sync run's EXAMINE, changes it), nor is an EXISTS that
        only restates the count."""
        with self._translated(self._folder):
            responses = self._imap.idle_check(timeout)
            if not responses:
                # Nothing parsed: a quiet timeout, or an EOF (the socket stays readable).
                return None if _readable(self._imap) else count
        return _counted(responses, count)

    def idle_done(self) -> None:
        with self._translated(self._folder):
            self._imap.idle_done()

    def noop_count(self, count: int) -> int:
        """NOOP (for servers without IDLE): the folder's message count after its answer."""
        with self._translated(self._folder):
            _text, responses = self._imap.noop()
        return _counted(responses, count)

    @property
    def _imap(self) -> IMAPClient:
        if self._client is None:
            raise RuntimeError("ImapConnection is not connected; use it as a context manager")
        return self._client

    # -- the connector interfaces (sync.connectors.interfaces) -----------------

    def folders(self, *, include_subfolders: bool) -> list[str]:
        return self.list_folders(include_subfolders)

    def changes(self, folder: str, cursor: str, *, max_size: int | None = None) -> Iterator[Change]:
        """Messages above the cursor's UID; the whole folder again when its
        UIDVALIDITY changed (every UID did). The cursor is ``UIDVALIDITY:UID``."""
        state = self.select(folder)
        uidvalidity, last_uid = _uid_cursor(cursor)
        if uidvalidity != state.uidvalidity:
            last_uid = 0
        if state.uidnext is not None and state.uidnext <= last_uid + 1:
            return  # UIDNEXT says nothing arrived since: no need to ask
        for message in self.fetch_new(last_uid, max_size=max_size):
            after = f"{state.uidvalidity}:{message.uid}"
            yield Change(str(message.uid), message.size, message.internaldate, message.raw, after.__str__)

    def caught_up(self, folder: str) -> str | None:
        # Nothing newer than the last message's cursor: a UID does not expire while the
        # UIDVALIDITY stands. (The engine reads IMAP through its own loop anyway, its
        # cursor in typed columns, not through this interface.)
        return None

    def remove(self, folder: str, server_ids: Sequence[str]) -> None:
        self.select(folder, readonly=False)
        self.delete([int(uid) for uid in server_ids])

    def find_sent(self, message_id: str) -> bool:
        self.select(self.find_sent_folder())
        with self._translated(self._folder):
            return bool(self._imap.search(["HEADER", "Message-ID", message_id]))

    def save_to_sent(self, raws: Iterable[bytes]) -> None:
        self.append_all(self.find_sent_folder(), raws)

    # -- folders ------------------------------------------------------------

    def list_folders(self, include_subfolders: bool) -> list[str]:
        """INBOX, and with sub-folders every selectable folder below it."""
        if not include_subfolders:
            return [INBOX]
        with self._translated():
            listed = self._imap.list_folders()
        below = [
            name
            for flags, delimiter, name in listed
            if delimiter and _selectable(flags) and name.upper().startswith(INBOX + _text(delimiter))
        ]
        return [INBOX, *sorted(below)]

    def select(self, folder: str, readonly: bool = True) -> FolderState:
        """SELECT, or EXAMINE when ``readonly`` (nothing can change by accident)."""
        with self._translated(folder):
            info = self._select_folder(folder, readonly)
        self._folder = folder
        return FolderState(
            name=folder,
            uidvalidity=int(info[b"UIDVALIDITY"]),
            uidnext=_optional_int(info.get(b"UIDNEXT")),
            highestmodseq=_optional_int(info.get(b"HIGHESTMODSEQ")),
            exists=int(info.get(b"EXISTS", 0)),
        )

    def _select_folder(self, folder: str, readonly: bool) -> dict[bytes, Any]:
        client = self._imap
        if not self._condstore:
            selected: dict[bytes, Any] = client.select_folder(folder, readonly=readonly)
            return selected
        # Without CONDSTORE enabled the server leaves HIGHESTMODSEQ out of the answer.
        # The SELECT / EXAMINE parameter enables it (RFC 7162 3.1.8) in the same round
        # trip, where ENABLE CONDSTORE would cost one of its own on every connection.
        # imapclient's select_folder takes no parameters, so this is what it does, with one.
        mailbox = client._normalise_folder(folder) + b" (CONDSTORE)"
        typ, data = client._imap.select(mailbox, readonly)
        client._checkok("select", typ, data)
        return dict(client._process_select_response(client._imap.untagged_responses))

    def find_sent_folder(self) -> str:
        """The folder flagged ``\\Sent`` (RFC 6154), else one named like a Sent folder."""
        with self._translated():
            listed = self._imap.list_folders()
        for flags, _delimiter, name in listed:
            if any(flag.lower() == b"\\sent" for flag in flags):
                return str(name)
        for flags, delimiter, name in listed:
            last = name.rsplit(_text(delimiter), 1)[-1] if delimiter else name
            if _selectable(flags) and last.lower() in SENT_NAMES:
                return str(name)
        raise PermanentError(
            f"The mailbox {self._account} on {network.where(self.settings)} has no Sent folder (none "
            "is flagged \\Sent and none is named Sent or Sent Items). Create one on the mail server.",
            code="folder_not_found",
        )

    # -- messages -----------------------------------------------------------

    def fetch_new(
        self, after_uid: int, *, batch_size: int = 50, max_size: int | None = None
    ) -> Iterator[FetchedMessage]:
        """Messages of the selected folder with a UID above ``after_uid``, in UID order.

        Those over ``max_size`` bytes come with ``raw=None`` and are not downloaded.
        """
        listed = self._list_after(after_uid)
        for batch in _batches(listed, batch_size, max_size):
            bodies = self._bodies([m.uid for m in batch if _fits(m, max_size)])
            for meta in batch:
                if not _fits(meta, max_size):
                    yield meta
                    continue
                body = bodies.get(meta.uid)
                if isinstance(body, UnfetchableMessage):
                    raise body
                if body is not None:  # None: expunged meanwhile, nothing left to import
                    yield FetchedMessage(meta.uid, meta.size, meta.internaldate, body)

    def _list_after(self, after_uid: int) -> list[FetchedMessage]:
        with self._translated(self._folder):
            found = self._fetch_range(after_uid + 1, "(UID RFC822.SIZE INTERNALDATE)")
        # "n:*" always matches the last message, even when its UID is below n.
        listed = [_metadata(uid, data) for uid, data in found.items() if uid > after_uid]
        return sorted(listed, key=lambda m: m.uid)

    def _fetch_range(self, first_uid: int, items: str) -> dict[int, dict[bytes, Any]]:
        # imapclient's fetch() accepts only listed UIDs (it drops answers for any
        # other), so the open range "first:*" goes through imaplib as imapclient does.
        typ, data = self._imap._imap.uid("FETCH", f"{first_uid}:*", items)
        if typ != "OK":
            raise IMAPClientError(f"fetch failed: {data[0]!r}")
        return dict(parse_fetch_response(data, normalise_times=False, uid_is_key=True))

    def _bodies(self, uids: list[int]) -> dict[int, bytes | UnfetchableMessage]:
        if not uids:
            return {}
        with self._translated(self._folder):
            try:
                found = self._imap.fetch(uids, [b"BODY.PEEK[]"])
            except IMAPClientAbortError:
                raise
            except IMAPClientError as error:
                if len(uids) == 1:
                    return {uids[0]: self._unfetchable(uids[0], error)}
                # One bad message fails the whole batch: take them one by one.
                return {uid: body for one in uids for uid, body in self._bodies([one]).items()}
        return {uid: data[b"BODY[]"] for uid, data in found.items() if b"BODY[]" in data}

    def _unfetchable(self, uid: int, error: IMAPClientError) -> UnfetchableMessage:
        return UnfetchableMessage(
            f"The server would not return message UID {uid} in {self._folder!r} of {self._account} "
            f"on {network.where(self.settings)}: {error}. It is set aside; the others go on.",
            uid=uid,
        )

    def uids_present(self) -> set[int]:
        """Every UID in the selected folder (relisting after a UIDVALIDITY change only)."""
        with self._translated(self._folder):
            return set(self._imap.search("ALL"))

    def append(
        self,
        folder: str,
        raw: bytes,
        flags: Sequence[str] = ("\\Seen",),
        msg_time: datetime | None = None,
    ) -> int | None:
        """Store a message (a sent copy); its new UID when the server says (UIDPLUS)."""
        with self._translated(folder):
            response = self._imap.append(folder, raw, flags=tuple(flags), msg_time=msg_time)
        match = APPENDUID.search(response if isinstance(response, bytes) else str(response).encode())
        return int(match.group(2)) if match else None

    def append_all(self, folder: str, raws: Iterable[bytes], flags: Sequence[str] = ("\\Seen",)) -> None:
        """Store several messages (sent copies): with MULTIAPPEND (RFC 3502) in one
        command per BATCH_BYTES of messages instead of a round trip each."""
        if not self._imap.has_capability("MULTIAPPEND"):
            for raw in raws:
                self.append(folder, raw, flags)
            return
        batch: list[dict[str, Any]] = []
        size = 0
        for raw in raws:
            if batch and size + len(raw) > BATCH_BYTES:
                self._multiappend(folder, batch)
                batch, size = [], 0
            batch.append({"msg": raw, "flags": list(flags)})
            size += len(raw)
        if batch:
            self._multiappend(folder, batch)

    def _multiappend(self, folder: str, batch: list[dict[str, Any]]) -> None:
        with self._translated(folder):
            self._imap.multiappend(folder, batch)

    def delete(self, uids: Sequence[int]) -> None:
        """Remove these messages from the folder selected read-write; nothing else."""
        if not uids:
            return
        with self._translated(self._folder):
            self._imap.delete_messages(list(uids))
            if self._imap.has_capability("UIDPLUS"):
                self._imap.uid_expunge(list(uids))
            else:
                # Without UID EXPUNGE this also removes others' \Deleted messages; RFC 3501 has no other way.
                self._imap.expunge()

    # -- errors -------------------------------------------------------------

    @property
    def _account(self) -> str:
        return self.settings.act_as or self.settings.username

    @contextmanager
    def _translated(self, folder: str = "") -> Iterator[None]:
        """Every failure leaves as a SyncError that says what to do."""
        try:
            yield
        except IMAPClientReadOnlyError:
            raise  # our own misuse (delete after EXAMINE), not the server's doing
        except LoginError as error:
            raise self._login_failure(_reply(error)) from error
        except IMAPClientAbortError as error:
            raise self._aborted(_reply(error)) from error
        except CapabilityError as error:
            raise PermanentError(
                f"{PROTOCOL} server {network.where(self.settings)} does not offer what serversync needs "
                f"({error}). For STARTTLS, choose SSL/TLS in the profile or a server that offers STARTTLS.",
                code="tls_failed" if "STARTTLS" in str(error) else "unsupported",
            ) from error
        except IMAPClientError as error:
            raise self._refused(_reply(error), folder) from error
        except OSError as error:
            raise network.translate(
                error, self.settings, protocol=PROTOCOL, fetch_certificate=self._fetch_certificate
            ) from error

    def _login_failure(self, text: str) -> SyncError:
        s, where = self.settings, network.where(self.settings)
        if network.looks_busy(text):
            return network.server_busy(s, protocol=PROTOCOL, detail=text)
        if "AUTHORIZATIONFAILED" in text.upper():
            return PermanentError(
                f"{PROTOCOL} server {where} accepted {s.username} but does not let it act for {s.act_as} "
                f"({text}). Grant {s.username} access to that mailbox on the mail server (master user / "
                "impersonation rights), or give the mailbox its own credentials.",
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

    def _aborted(self, text: str) -> TransientError:
        if network.looks_busy(text):
            return network.server_busy(self.settings, protocol=PROTOCOL, detail=text)
        if "timed out" in text:
            return network.timeout(self.settings, protocol=PROTOCOL)
        return network.connection_lost(self.settings, protocol=PROTOCOL, detail=text)

    def _refused(self, text: str, folder: str) -> SyncError:
        where = network.where(self.settings)
        if network.looks_busy(text):
            return network.server_busy(self.settings, protocol=PROTOCOL, detail=text)
        if folder and MISSING_FOLDER.search(text):
            return PermanentError(
                f"The folder {folder!r} does not exist in the mailbox {self._account} on {where}, or the "
                f"server's access rules hide it from this account ({text}). Create the folder or grant "
                "the account its rights on the mail server, or change the mailbox's folder settings.",
                code="folder_not_found",
            )
        if NO_PERMISSION.search(text):
            return PermanentError(
                f"{self._account} may not do this on {where}{f' in {folder!r}' if folder else ''} ({text}). "
                "Grant the account the rights on the mail server.",
                code="permission_denied",
            )
        # An unexplained NO is most often passing (a server fault, a lock); it is retried.
        return TransientError(f"{PROTOCOL} server {where} refused a command: {text}.", code="server_error")

    def _fetch_certificate(self, context: ssl.SSLContext) -> bytes | None:
        s = self.settings
        if s.tls is Tls.IMPLICIT:
            return network.fetch_implicit_certificate(s)(context)
        try:
            client = IMAPClient(s.host, port=s.port, ssl=False, timeout=s.timeout)
        except IMAPClientError:
            return None
        try:
            client.starttls(context)
            return network.peer_certificate(client.socket())
        except IMAPClientError:
            return None
        finally:
            with suppress(OSError):
                client.shutdown()


def _counted(responses: Sequence[Any], count: int) -> int:
    """The folder's message count after untagged answers: EXISTS says it, EXPUNGE lowers it."""
    for response in responses:
        if isinstance(response, tuple) and len(response) > 1 and isinstance(response[0], int):
            if response[1] == b"EXISTS":
                count = response[0]
            elif response[1] == b"EXPUNGE":
                count -= 1
    return count


def _readable(client: IMAPClient) -> bool:
    """Whether the socket has something to read now (an EOF included). poll(), not
    select(): a listener's sockets go past select()'s 1024 descriptors."""
    poller = select.poll()
    poller.register(client.socket(), select.POLLIN)
    return bool(poller.poll(0))


def _reply(error: IMAPClientError) -> str:
    """The server's words, without the b'...' that imaplib's bytes leave in the text."""
    reply = error.args[0] if error.args else ""
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    return BYTES_REPR.sub(r"\2", text)


def _selectable(flags: Sequence[bytes]) -> bool:
    return not {flag.lower() for flag in flags} & {b"\\noselect", b"\\nonexistent"}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _optional_int(value: object) -> int | None:
    return None if value is None else int(str(value))


def _metadata(uid: int, data: dict[bytes, Any]) -> FetchedMessage:
    return FetchedMessage(
        uid=uid, size=int(data[b"RFC822.SIZE"]), internaldate=data.get(b"INTERNALDATE"), raw=None
    )


def _fits(message: FetchedMessage, max_size: int | None) -> bool:
    return max_size is None or message.size <= max_size


def _batches(
    listed: list[FetchedMessage], batch_size: int, max_size: int | None
) -> Iterator[list[FetchedMessage]]:
    """Consecutive runs of at most ``batch_size`` messages and about BATCH_BYTES to download."""
    batch: list[FetchedMessage] = []
    size = 0
    for message in listed:
        cost = message.size if _fits(message, max_size) else 0
        if batch and (len(batch) >= batch_size or size + cost > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(message)
        size += cost
    if batch:
        yield batch


def _uid_cursor(cursor: str) -> tuple[int | None, int]:
    """``UIDVALIDITY:UID`` as numbers; ``""`` (or anything else) is the start."""
    uidvalidity, _, uid = cursor.partition(":")
    if not (uidvalidity.isdecimal() and uid.isdecimal()):
        return None, 0
    return int(uidvalidity), int(uid)


class ImapProbe:
    """Test & enable over IMAP (sync.connectors.interfaces.Probe); the round trip
    looks in the inbox for the marked message above the UID it started from."""

    def check_incoming(self, settings: ServerSettings, *, include_subfolders: bool) -> None:
        with ImapConnection(settings) as imap:
            for folder in imap.folders(include_subfolders=include_subfolders):
                imap.select(folder)

    def position(self, settings: ServerSettings) -> object:
        with ImapConnection(settings) as imap:
            return (imap.select(INBOX).uidnext or 1) - 1

    def take_marked(self, settings: ServerSettings, header: str, token: str, since: object) -> bool:
        if not isinstance(since, int):
            raise TypeError("an IMAP position is the last UID seen")
        with ImapConnection(settings) as imap:
            imap.select(INBOX, readonly=False)
            for message in imap.fetch_new(since):
                if message.raw is not None and carries(message.raw, header, token):
                    imap.delete([message.uid])
                    return True
        return False
