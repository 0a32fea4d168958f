"""The Graph connector's folder cursor: a delta link, and what of its page is stored.

Graph hands out links, not positions: ``@odata.nextLink`` (the next page of a
round) and ``@odata.deltaLink`` (the round's end, where the next one starts).
The cursor saved after a message is the link that fetched the message's page
plus the (hashed) ids of that page's messages already stored; after a page's
last message, the link to the page after it. A crash mid-page reads that page
again and passes over what was stored; a crash between pages reads nothing twice.
Once a round was read to its end, its ``@odata.deltaLink`` alone (no stored ids)
is the folder's cursor (``GraphMailbox.caught_up``), even when no message of the
round carried it.

A cursor comes back from the database, so it is checked before it is followed:
the same mailbox and folder, and a link to this profile's Graph URL (a bearer
token is never sent to a host a stored string names). Anything else is
"unknown": the folder is read from the start, and the engine's message
identities keep that from creating anything twice.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

PREFIX = "graph1:"


@dataclass(frozen=True)
class DeltaCursor:
    mailbox: str
    folder_id: str
    link: str
    # Short digests of the ids of the link's page stored already.
    stored: frozenset[str] = field(default_factory=frozenset)

    def encode(self) -> str:
        state = {"m": self.mailbox, "f": self.folder_id, "l": self.link, "s": sorted(self.stored)}
        return PREFIX + json.dumps(state, separators=(",", ":"))


def digest(message_id: str) -> str:
    """16 hex digits of SHA-256: one page's ids never collide, and a page's cursor stays small."""
    return hashlib.sha256(message_id.encode()).hexdigest()[:16]


def decode(cursor: str, *, mailbox: str, folder_id: str, service_url: str) -> DeltaCursor | None:
    """The cursor when it is one of ours for this mailbox, folder and service; else None."""
    if not cursor.startswith(PREFIX):
        return None
    try:
        state = json.loads(cursor[len(PREFIX) :])
        found = DeltaCursor(
            mailbox=str(state["m"]),
            folder_id=str(state["f"]),
            link=str(state["l"]),
            stored=frozenset(str(s) for s in state.get("s", [])),
        )
    except (ValueError, KeyError, TypeError):
        return None
    if found.mailbox.lower() != mailbox.lower() or found.folder_id != folder_id:
        return None
    return found if is_delta_link(found.link, service_url) else None


def is_delta_link(link: str, service_url: str) -> bool:
    """Whether ``link`` is a messages/delta link of the Graph service at ``service_url``."""
    return is_graph_link(link, service_url, "/messages/delta")


def is_graph_link(link: str, service_url: str, suffix: str) -> bool:
    """Whether ``link`` is a Graph v1.0 link of the service at ``service_url`` whose path ends
    with ``suffix`` ("/contacts/delta"): a stored link never sends the token elsewhere."""
    try:
        target, service = urlsplit(link), urlsplit(service_url.rstrip("/"))
        same_origin = (target.scheme, target.hostname, target.port) == (
            service.scheme,
            service.hostname,
            service.port,
        )
    except ValueError:
        return False
    return (
        same_origin
        and target.scheme == "https"
        and not target.username
        and not target.password
        and target.path.startswith(f"{service.path}/v1.0/")
        and unquote(target.path).rstrip("/").lower().endswith(unquote(suffix).lower())
    )
