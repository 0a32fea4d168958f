"""Microsoft Graph connector (Exchange Online): httpx for HTTP, msal for app-only sign-in.

Why not the official msgraph-sdk (measured for issue 13 on this machine, Python
3.11, against a loopback server): its kiota client is async only, and an
``httpx.AsyncClient`` belongs to the event loop it first ran on, so the
``asyncio.run`` per call that a synchronous Celery task would use fails on the
second call ("Event loop is closed") unless every call builds a new client
(25 ms a call); one loop per run gives 4.6 ms a call against 0.42 ms for plain
httpx, and the first call takes 0.8 s (the generated models load) against
0.04 s. Its request builders send ``sendMail`` only as JSON (MIME needs a
hand-built request), read ``$value`` whole instead of streaming it, and its
retry handler sleeps through 429s on its own (6 s for three Retry-After: 2),
where serversync's scheduler owns waiting. It installs 390 MB. httpx + msal
are the same HTTP stack and the same sign-in library the SDK uses underneath.

The engine's folders are "INBOX" and "INBOX/<child>/<grandchild>"; each maps to
a folder id per session. New mail comes from ``messages/delta`` per folder
(cursors: :mod:`sync.connectors.graph_delta`), each message's MIME from
``$value``. Sending is ``sendMail`` with the MIME message, which keeps its own
copy in Sent Items.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from sync.connectors.base import INBOX, SendResult, ServerSettings
from sync.connectors.graph_delta import DeltaCursor, decode, digest, is_delta_link
from sync.connectors.graph_errors import GRAPH, READ_PERMISSION, SEND_PERMISSION, invalid_recipients
from sync.connectors.graph_http import GraphClient, GraphRefused
from sync.connectors.graph_mime import for_send_mail
from sync.connectors.interfaces import UNDELIVERABLE, Change
from sync.errors import MessageError, PermanentError, SyncError, TransientError

# PidTagMessageSize, the size Exchange reports for an item (MS-OXPROPS), asked for with each message.
SIZE_PROPERTY = "Integer 0x0E08"
# Messages per delta page: a page's cursor lists the ids stored of it, so pages stay modest.
PAGE_SIZE = 50
FOLDER_PAGE = 100
DOWNLOAD_CHUNK = 64 * 1024


class GraphMailbox:
    """One mailbox's session for reading (Incoming) and its Sent Items (SentItems)."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.client = GraphClient(settings, permission=READ_PERMISSION)
        self._folders: dict[str, str] = {}  # engine path -> Graph folder id
        # engine path -> the cursor of the delta link that ended the folder's last round read whole
        self._caught_up: dict[str, str] = {}
        self._undeliverable: str | None = None  # the Undeliverable folder's id, once found

    def __enter__(self) -> GraphMailbox:
        try:
            self.client.open()
            # Opening the Inbox checks the mailbox and the app's access to it at once.
            inbox = self.client.json(
                "GET",
                self.client.url("mailFolders/inbox"),
                what="opening the Inbox",
                params={"$select": "id,displayName,childFolderCount"},
            )
            self._folders[INBOX] = str(inbox["id"])
        except (SyncError, KeyError):
            self.client.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.client.close()

    # -- folders ---------------------------------------------------------------------

    def folders(self, *, include_subfolders: bool) -> list[str]:
        if not include_subfolders:
            return [INBOX]
        self._folders = {INBOX: self._folders[INBOX]}
        self._add_children(self._folders[INBOX], INBOX)
        return [INBOX, *sorted(path for path in self._folders if path != INBOX)]

    def _add_children(self, parent_id: str, parent_path: str) -> None:
        url: str | None = self.client.url(f"mailFolders/{quote(parent_id, safe='')}/childFolders")
        params: dict[str, str] | None = {
            "$select": "id,displayName,childFolderCount",
            "$top": str(FOLDER_PAGE),
        }
        while url:
            page = self.client.json("GET", url, what=f"listing the folders in {parent_path}", params=params)
            for folder in page.get("value", []):
                path = f"{parent_path}/{folder['displayName']}"
                self._folders[path] = str(folder["id"])
                if folder.get("childFolderCount", 1):
                    self._add_children(str(folder["id"]), path)
            url, params = self.next_page(page.get("@odata.nextLink")), None

    def _folder_id(self, path: str) -> str:
        if path not in self._folders:
            self.folders(include_subfolders=True)
        if path not in self._folders:
            raise PermanentError(
                f"The folder {path!r} does not exist in the mailbox {self.settings.mailbox} in Exchange "
                "Online. Create the folder under the Inbox, or change the mailbox's folder settings.",
                code="folder_not_found",
            )
        return self._folders[path]

    # -- new mail ----------------------------------------------------------------------

    def changes(self, folder: str, cursor: str, *, max_size: int | None = None) -> Iterator[Change]:
        """What the folder's delta says was created since the cursor's link, page by page."""
        self._caught_up.pop(folder, None)
        folder_id = self._folder_id(folder)
        start = DeltaCursor(self.settings.mailbox, folder_id, self._first_link(folder_id))
        position = decode(
            cursor, mailbox=self.settings.mailbox, folder_id=folder_id, service_url=self.client.root
        )
        reader = _DeltaReader(self, start, position or start, max_size)
        yield from reader.read()
        if reader.delta_link:
            self._caught_up[folder] = DeltaCursor(
                self.settings.mailbox, folder_id, reader.delta_link
            ).encode()

    def caught_up(self, folder: str) -> str | None:
        """The delta link that ended the round ``changes`` read to its end: the next
        round starts there, however quiet the folder was (an empty round, or one of
        removals only, carries no message and so no cursor)."""
        return self._caught_up.get(folder)

    def _first_link(self, folder_id: str) -> str:
        params = {
            "changeType": "created",
            "$select": "id,receivedDateTime",
            "$expand": f"singleValueExtendedProperties($filter=id eq '{SIZE_PROPERTY}')",
        }
        url = self.client.url(f"mailFolders/{quote(folder_id, safe='')}/messages/delta")
        return str(httpx.URL(url, params=params))

    def delta_page(self, link: str) -> dict[str, Any]:
        """One page of a delta round; GraphRefused when Graph no longer knows the round."""
        return self.client.json(
            "GET",
            link,
            what="reading new mail",
            headers={"Prefer": f"odata.maxpagesize={PAGE_SIZE}"},
            expect=frozenset({400, 404, 410}),
        )

    def download(self, message_id: str, max_size: int | None) -> tuple[bytes | None, int]:
        """The message's MIME and its length; (None, bytes seen) when it outgrew ``max_size``
        while arriving, ``(b"", 0)`` when it was deleted meanwhile."""
        url = self.client.url(f"messages/{quote(message_id, safe='')}/$value")
        chunks, size = [], 0
        try:
            with self.client.stream(url, what="downloading a message", expect=frozenset({404})) as response:
                for chunk in response.iter_bytes(DOWNLOAD_CHUNK):
                    size += len(chunk)
                    if max_size is not None and size > max_size:
                        return None, size
                    chunks.append(chunk)
        except GraphRefused:
            return b"", 0
        return b"".join(chunks), size

    def remove(self, folder: str, server_ids: Sequence[str]) -> None:
        """Delete these messages (to Deleted Items, as Outlook deletes); one already gone is fine."""
        for message_id in server_ids:
            url = self.client.url(f"messages/{quote(message_id, safe='')}")
            try:
                self.client.call(
                    "DELETE", url, what=f"deleting a processed message in {folder}", expect=frozenset({404})
                )
            except GraphRefused:
                continue

    # -- Undeliverable -----------------------------------------------------------------

    def move_to_undeliverable(self, folder: str, server_ids: Sequence[str]) -> None:
        """``messages/{id}/move`` to the top-level Undeliverable folder; a message already
        gone (moved or deleted by its user meanwhile) is no failure."""
        if not server_ids:
            return
        target = json.dumps({"destinationId": self._undeliverable_id()}).encode()
        for message_id in server_ids:
            try:
                self.client.call(
                    "POST",
                    self.client.url(f"messages/{quote(message_id, safe='')}/move"),
                    what=f"moving a message of {folder} to the {UNDELIVERABLE} folder",
                    headers={"Content-Type": "application/json"},
                    content=target,
                    expect=frozenset({404}),
                )
            except GraphRefused:
                continue

    def _undeliverable_id(self) -> str:
        """The folder named Undeliverable beside the Inbox (Exchange compares folder names
        without case), created under the top of the mailbox when missing."""
        if self._undeliverable is None:
            self._undeliverable = self._top_folder(UNDELIVERABLE) or self._create_top_folder(UNDELIVERABLE)
        return self._undeliverable

    def _top_folder(self, name: str) -> str | None:
        url: str | None = self.client.url("mailFolders")
        params: dict[str, str] | None = {"$select": "id,displayName", "$top": str(FOLDER_PAGE)}
        while url:
            page = self.client.json("GET", url, what="listing the mailbox's folders", params=params)
            for found in page.get("value", []):
                if str(found.get("displayName", "")).lower() == name.lower():
                    return str(found["id"])
            url, params = self.next_page(page.get("@odata.nextLink")), None
        return None

    def _create_top_folder(self, name: str) -> str:
        try:
            response = self.client.call(
                "POST",
                self.client.url("mailFolders"),
                what=f"creating the {name} folder",
                headers={"Content-Type": "application/json"},
                content=json.dumps({"displayName": name}).encode(),
                expect=frozenset({409}),
            )
        except GraphRefused:
            # Created meanwhile (another session of the mailbox): use that one.
            found = self._top_folder(name)
            if found is None:
                raise PermanentError(
                    f"{GRAPH} did not create the folder {name} in {self.settings.mailbox}: one of that name "
                    "exists at the top of the mailbox but is hidden. Unhide it (or rename it) in Exchange "
                    "Online, so that failed email can be moved there.",
                    code="folder_hidden",
                ) from None
            return found
        try:
            return str(response.json()["id"])
        except (ValueError, KeyError, TypeError) as error:
            raise TransientError(
                f"{GRAPH} answered creating the folder {name} in {self.settings.mailbox} without the "
                "folder's id. serversync tries again later.",
                code="server_error",
            ) from error

    # -- Sent Items --------------------------------------------------------------------

    def find_sent(self, message_id: str) -> bool:
        wanted = "<" + message_id.strip().strip("<>") + ">"
        page = self.client.json(
            "GET",
            self.client.url("mailFolders/sentitems/messages"),
            what="looking for a sent message in Sent Items",
            params={
                "$filter": f"internetMessageId eq '{_odata_string(wanted)}'",
                "$select": "id",
                "$top": "1",
            },
        )
        return bool(page.get("value"))

    def save_to_sent(self, raws: Iterable[bytes]) -> None:
        """Copies in Sent Items, each from its MIME (Graph creates it flagged as a draft:
        it makes no other kind from MIME). sendMail keeps its own copy, so the engine
        never asks for one after a send (registry: saves_sent_copies); a message whose
        Message-ID Sent Items holds already is not stored twice."""
        for raw in raws:
            message_id = _message_id(raw)
            if message_id and self.find_sent(message_id):
                continue
            self.client.call(
                "POST",
                self.client.url("mailFolders/sentitems/messages"),
                what="saving a copy in Sent Items",
                headers={"Content-Type": "text/plain"},
                content=base64.b64encode(raw),
            )

    def next_page(self, link: object) -> str | None:
        """A listing's ``@odata.nextLink``, followed only on this profile's Graph URL."""
        if not link:
            return None
        text = str(link)
        if not text.startswith(self.client.root + "/"):
            raise TransientError(
                f"{GRAPH} answered with a next page on another server ({text.split('?')[0]}); serversync "
                "does not follow it. It tries again later.",
                code="server_error",
            )
        return text


@dataclass
class _Position:
    """The cursor after one message: mutable only while no message follows it, so an
    empty page after it moves it on (to the round's delta link at the end)."""

    cursor: DeltaCursor

    def encode(self) -> str:
        return self.cursor.encode()


@dataclass
class _DeltaReader:
    mailbox: GraphMailbox
    start: DeltaCursor
    position: DeltaCursor
    max_size: int | None
    restarted: bool = False
    # The round's @odata.deltaLink once its last page was read (checked as every link is).
    delta_link: str | None = None
    _last: _Position | None = field(default=None)

    def read(self) -> Iterator[Change]:
        link: str | None = self.position.link
        stored = self.position.stored
        while link:
            page = self._page(link)
            if page is None:  # the round is gone: the folder from the start
                link, stored = self.start.link, frozenset()
                continue
            following = page.get("@odata.nextLink") or page.get("@odata.deltaLink")
            if following and not is_delta_link(str(following), self.mailbox.client.root):
                raise TransientError(
                    f"{GRAPH} answered with a delta link serversync does not follow ({str(following)[:80]}). "
                    "serversync tries again later.",
                    code="server_error",
                )
            after = DeltaCursor(self.start.mailbox, self.start.folder_id, str(following or link))
            items = [m for m in _messages(page) if digest(str(m["id"])) not in stored]
            if not items and self._last is not None:
                self._last.cursor = after  # nothing stored in between: the cursor may move on
            yield from self._changes(link, stored, items, after)
            if not page.get("@odata.nextLink") and page.get("@odata.deltaLink"):
                self.delta_link = str(page["@odata.deltaLink"])
            link, stored = (
                (str(page["@odata.nextLink"]) if page.get("@odata.nextLink") else None),
                frozenset(),
            )

    def _page(self, link: str) -> dict[str, Any] | None:
        try:
            return self.mailbox.delta_page(link)
        except GraphRefused as refused:
            if refused.found.needs_resync and not self.restarted:
                self.restarted = True
                return None
            if refused.found.status in (400, 404) and link != self.start.link and not self.restarted:
                # A link Graph cannot read (a folder recreated, a token of another round).
                self.restarted = True
                return None
            raise TransientError(
                f"{GRAPH} refused to read new mail in {self.mailbox.settings.mailbox} (HTTP "
                f"{refused.found.status}: {refused.found.code} {refused.found.message}). serversync tries "
                "again later.",
                code="server_error",
            ) from refused

    def _changes(
        self, link: str, stored: frozenset[str], items: list[dict[str, Any]], after: DeltaCursor
    ) -> Iterator[Change]:
        done = set(stored)
        for index, item in enumerate(items):
            message_id = str(item["id"])
            done.add(digest(message_id))
            if index == len(items) - 1:
                position = _Position(after)
                self._last = position
            else:
                position = _Position(
                    DeltaCursor(self.start.mailbox, self.start.folder_id, link, frozenset(done))
                )
            change = self._change(item, position)
            if change is not None:
                yield change

    def _change(self, item: dict[str, Any], position: _Position) -> Change | None:
        message_id = str(item["id"])
        reported = _reported_size(item)
        received = _received(item)
        if self.max_size is not None and reported is not None and reported > self.max_size:
            return Change(message_id, reported, received, None, position.encode)
        raw, size = self.mailbox.download(message_id, self.max_size)
        if raw is None:
            return Change(message_id, max(size, reported or 0), received, None, position.encode)
        if not raw:
            return None  # deleted since the page was read: nothing to import
        return Change(message_id, size, received, raw, position.encode)


def _messages(page: dict[str, Any]) -> list[dict[str, Any]]:
    """The page's messages, removals left out, oldest first within the page."""
    found = [m for m in page.get("value", []) if isinstance(m, dict) and "@removed" not in m and m.get("id")]
    return sorted(found, key=lambda m: str(m.get("receivedDateTime") or ""))


def _reported_size(item: dict[str, Any]) -> int | None:
    for prop in item.get("singleValueExtendedProperties") or []:
        if _property_tag(str(prop.get("id", ""))) == _property_tag(SIZE_PROPERTY):
            try:
                return int(prop.get("value"))
            except (TypeError, ValueError):
                return None
    return None


def _property_tag(property_id: str) -> tuple[str, int] | None:
    """("integer", 0x0E08) for "Integer 0x0E08": Graph answers with the tag as "0xe08"."""
    kind, _, tag = property_id.strip().partition(" ")
    try:
        return kind.lower(), int(tag, 16)
    except ValueError:
        return None


def _received(item: dict[str, Any]) -> datetime | None:
    value = item.get("receivedDateTime")
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _odata_string(value: str) -> str:
    """A value inside an OData string literal: a quote is written twice."""
    return value.replace("'", "''")


def _message_id(raw: bytes) -> str:
    from email.parser import BytesHeaderParser
    from email.policy import compat32

    return str(BytesHeaderParser(policy=compat32).parsebytes(raw).get("Message-ID", "")).strip()


# -- sending --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Answered:
    """A verdict Graph gave at once (sendMail answers 202 or an error, synchronously)."""

    outcome: SendResult | MessageError

    def result(self) -> SendResult:
        if isinstance(self.outcome, MessageError):
            raise self.outcome
        return self.outcome


class GraphSender:
    """Sending as one mailbox with sendMail (Outgoing)."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.client = GraphClient(settings, permission=SEND_PERMISSION)

    def __enter__(self) -> GraphSender:
        # Signing in is all a sender can check: Mail.Send alone may read nothing of the mailbox.
        self.client.open()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.client.close()

    def send(self, raw: bytes, *, mail_from: str, rcpt_to: list[str]) -> SendResult:
        """The MIME message as it is, its recipients the envelope's; Graph keeps a copy in Sent Items."""
        message = for_send_mail(raw, rcpt_to)
        try:
            self.client.call(
                "POST",
                self.client.url("sendMail"),
                what="sending a message",
                headers={"Content-Type": "text/plain"},
                content=base64.b64encode(message),
                expect=frozenset({400, 413}),
                unsure=True,
            )
        except GraphRefused as refused:
            raise _refusal(refused, rcpt_to) from refused
        return SendResult()

    def submit(self, raw: bytes, *, mail_from: str, rcpt_to: list[str]) -> _Answered:
        try:
            return _Answered(self.send(raw, mail_from=mail_from, rcpt_to=rcpt_to))
        except MessageError as error:
            return _Answered(error)


def _refusal(refused: GraphRefused, rcpt_to: list[str]) -> MessageError:
    found = refused.found
    if found.code == "ErrorInvalidRecipients" or "recipient" in found.message.lower():
        return invalid_recipients(found, rcpt_to)
    if found.status == 413 or "size" in found.code.lower():
        return MessageError(
            f"Exchange Online refused the message as too large ({found.code}: {found.message}). Remove or "
            "shrink attachments, or raise the mailbox's maximum send size in Exchange Online.",
            code="too_large",
        )
    return MessageError(
        f"Exchange Online refused the message (HTTP {found.status}: {found.code} {found.message}). Correct "
        "the message and send it again.",
        code="message_refused",
    )


# -- test & enable --------------------------------------------------------------------


class GraphProbe:
    """Test & enable over Graph (sync.connectors.interfaces.Probe). The round trip's
    position is the newest message's receivedDateTime in the Inbox; the marked message
    is looked for among those received since, by its headers."""

    def check_incoming(self, settings: ServerSettings, *, include_subfolders: bool) -> None:
        with GraphMailbox(settings) as mailbox:
            mailbox.folders(include_subfolders=include_subfolders)

    def position(self, settings: ServerSettings) -> object:
        with GraphMailbox(settings) as mailbox:
            page = mailbox.client.json(
                "GET",
                mailbox.client.url("mailFolders/inbox/messages"),
                what="reading the Inbox",
                params={"$select": "id,receivedDateTime", "$orderby": "receivedDateTime desc", "$top": "1"},
            )
        newest = page.get("value") or [{}]
        return str(newest[0].get("receivedDateTime") or "")

    def take_marked(self, settings: ServerSettings, header: str, token: str, since: object) -> bool:
        if not isinstance(since, str):
            raise TypeError("a Graph position is the newest receivedDateTime seen")
        with GraphMailbox(settings) as mailbox:
            for message in _received_since(mailbox, since):
                if _carries(message, header, token):
                    mailbox.remove(INBOX, [str(message["id"])])
                    return True
        return False


def _received_since(mailbox: GraphMailbox, since: str) -> Iterator[dict[str, Any]]:
    """The Inbox's messages newest first, down to those received at ``since`` (ISO 8601 text
    in Graph's one format sorts as time does)."""
    url: str | None = mailbox.client.url("mailFolders/inbox/messages")
    params: dict[str, str] | None = {
        "$select": "id,receivedDateTime,internetMessageHeaders",
        "$orderby": "receivedDateTime desc",
        "$top": "25",
    }
    while url:
        page = mailbox.client.json("GET", url, what="looking for the test message", params=params)
        for message in page.get("value", []):
            if since and str(message.get("receivedDateTime") or "") < since:
                return
            yield message
        url, params = mailbox.next_page(page.get("@odata.nextLink")), None


def _carries(message: dict[str, Any], header: str, token: str) -> bool:
    return any(
        str(h.get("name", "")).lower() == header.lower() and str(h.get("value", "")).strip() == token
        for h in message.get("internetMessageHeaders") or []
    )
