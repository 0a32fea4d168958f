"""What changed in a collection since a cursor: WebDAV sync-collection (RFC 6578), or,
on a server without it, the collection's ctag and a listing of its ETags.

A cursor is JSON naming its collection (a cursor for another collection, after the
user's default calendar changed, starts again), and either the sync-token
(``{"c": href, "t": token}``) or the ctag and every member's ETag
(``{"c": href, "g": ctag, "e": {href: etag}}``): diffing the listing against the
ETags kept is how a server without sync tokens is read incrementally.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from xml.sax.saxutils import escape

import httpx
from defusedxml import ElementTree

from sync.connectors.dav_discovery import Collection
from sync.connectors.dav_http import CALSERVER, DAV, NAMESPACES, DavHttp, Entry, entries, propfind_body

# How a server says it no longer knows a sync-token (RFC 6578 3.2: 403 with this precondition;
# some answer 409 or 412).
INVALID_TOKEN_STATUS = frozenset({400, 403, 409, 412})
TRUNCATED = 507


@dataclass(frozen=True)
class Found:
    """A member created or changed (``etag`` set) or deleted (``etag`` None)."""

    href: str
    etag: str | None


@dataclass(frozen=True)
class Report:
    """The members that changed since a cursor, and the cursor each leaves behind."""

    found: list[Found]
    # The cursor to save once found[: i + 1] are stored.
    cursor_after: Callable[[int], str]
    # The cursor past everything found.
    final: str


def changes_since(http: DavHttp, collection: Collection, cursor: str) -> Report:
    state = _parse(cursor, collection)
    if collection.sync_reports:
        token = state.get("t")
        report = _by_token(http, collection, token if isinstance(token, str) else "")
        if report is None:  # the server forgot the token: from the start
            report = _by_token(http, collection, "")
        if report is None:
            raise TypeError("an empty sync-token is never refused as unknown")
        return report
    etags = state.get("e")
    if not isinstance(etags, dict):
        return _by_etags(http, collection, None, {})
    return _by_etags(http, collection, state.get("g"), {str(k): str(v) for k, v in etags.items()})


def _parse(cursor: str, collection: Collection) -> dict[str, object]:
    if not cursor:
        return {}
    try:
        state = json.loads(cursor)
    except ValueError:
        return {}
    if not isinstance(state, dict) or state.get("c") != collection.href:
        return {}
    return state


# -- sync-collection --------------------------------------------------------------------


def _sync_body(token: str) -> str:
    token_element = f"<D:sync-token>{escape(token)}</D:sync-token>" if token else "<D:sync-token/>"
    return (
        f'<?xml version="1.0" encoding="utf-8"?><D:sync-collection {NAMESPACES}>{token_element}'
        "<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"
    )


def _by_token(http: DavHttp, collection: Collection, token: str) -> Report | None:
    """None when the server does not know ``token``."""
    start = token
    found: dict[str, Found] = {}
    while True:
        response = http.request(
            "REPORT", collection.href, body=_sync_body(token), allow=INVALID_TOKEN_STATUS, depth="0"
        )
        if response.status_code in INVALID_TOKEN_STATUS:
            if token and b"valid-sync-token" in response.content:
                return None
            raise http.failure(response, "REPORT", http.url(collection.href))
        members = entries(response.content, http.root)
        token = _new_token(response.content) or token
        truncated = False
        for entry in members:
            if entry.href.rstrip("/") == collection.href.rstrip("/"):
                truncated = truncated or entry.status == TRUNCATED
                continue
            etag = entry.text(f"{DAV}getetag") if entry.status == httpx.codes.OK else None
            found.pop(entry.href, None)  # a later page's word is the newest
            found[entry.href] = Found(entry.href, etag)
        if not truncated:
            break
    final = json.dumps({"c": collection.href, "t": token})
    before = json.dumps({"c": collection.href, "t": start}) if start else ""
    items = list(found.values())

    def cursor_after(index: int) -> str:
        # A token stands for the whole report: only the last change may carry it.
        return final if index >= len(items) - 1 else before

    return Report(items, cursor_after, final)


def _new_token(content: bytes) -> str | None:
    return ElementTree.fromstring(content).findtext(f"{DAV}sync-token")


# -- ctag and ETags ---------------------------------------------------------------------


def _by_etags(http: DavHttp, collection: Collection, ctag: object, known: dict[str, str]) -> Report:
    now = _ctag(http, collection)
    if ctag is not None and now is not None and ctag == now:
        unchanged = json.dumps({"c": collection.href, "g": now, "e": known})
        return Report([], lambda _index: unchanged, unchanged)
    listing = _etags(http, collection)
    found = [Found(href, etag) for href, etag in listing.items() if known.get(href) != etag]
    found += [Found(href, None) for href in known if href not in listing]

    def cursor_after(index: int) -> str:
        if index >= len(found) - 1:
            return final
        # Part-way: what was stored so far, and no ctag (the next read lists again).
        stored = dict(known)
        for change in found[: index + 1]:
            if change.etag is None:
                stored.pop(change.href, None)
            else:
                stored[change.href] = change.etag
        return json.dumps({"c": collection.href, "g": None, "e": stored})

    final = json.dumps({"c": collection.href, "g": now, "e": listing})
    return Report(found, cursor_after, final)


def _ctag(http: DavHttp, collection: Collection) -> str | None:
    body = propfind_body(f"{CALSERVER}getctag", f"{DAV}sync-token")
    for entry in http.multistatus("PROPFIND", collection.href, body, depth="0"):
        return entry.text(f"{CALSERVER}getctag") or entry.text(f"{DAV}sync-token")
    return None


def _etags(http: DavHttp, collection: Collection) -> dict[str, str]:
    body = propfind_body(f"{DAV}getetag", f"{DAV}resourcetype")
    listing: dict[str, str] = {}
    for entry in http.multistatus("PROPFIND", collection.href, body, depth="1"):
        if _is_member(entry, collection):
            listing[entry.href] = entry.text(f"{DAV}getetag") or ""
    return listing


def _is_member(entry: Entry, collection: Collection) -> bool:
    if entry.href.rstrip("/") == collection.href.rstrip("/"):
        return False
    kind = entry.element(f"{DAV}resourcetype")
    return entry.status == httpx.codes.OK and (kind is None or kind.find(f"{DAV}collection") is None)
