"""Which connectors serve which server type: the one place that knows.

The engine, test & enable, the scheduler ("which types can run"), the outgoing
side's Sent copies and the console ask here; a new protocol is one new module
implementing :mod:`sync.connectors.interfaces` and one entry below. Keys are the
profile's server type values (``profiles.server_types.ServerType``; a test
checks they match): connectors know nothing of Django, so the names are plain
strings. What a type means for a profile's settings and its mailboxes (ports,
Exchange-only fields, ACT) is the profiles' business: ``profiles/server_types.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sync.connectors import dav, ews_permissions, graph_permissions
from sync.connectors.base import ServerSettings
from sync.connectors.dav import DavItems
from sync.connectors.ews import EwsConnection, EwsProbe, discovered_url
from sync.connectors.ews_items import EwsItems
from sync.connectors.graph import GraphMailbox, GraphProbe, GraphSender
from sync.connectors.graph_items import GraphItems
from sync.connectors.imap import ImapConnection, ImapProbe
from sync.connectors.interfaces import ActItems, Incoming, Outgoing, Probe, SentItems
from sync.connectors.pop3 import Pop3Connection, Pop3Probe
from sync.connectors.smtp import SmtpConnection


@dataclass(frozen=True)
class ServerKind:
    """The connectors of one server type."""

    # The incoming protocol's name, for people ("POP3 has no other folders").
    protocol: str
    incoming: Callable[[ServerSettings], Incoming]
    outgoing: Callable[[ServerSettings], Outgoing]
    probe: Probe
    # Where copies of sent mail go, reached with the incoming settings; None: nowhere
    # (a POP3 maildrop has no Sent folder).
    sent_items: Callable[[ServerSettings], SentItems] | None
    # Whether the mailbox's "inbox and sub-folders" choice means anything.
    has_folders: bool
    # Sending keeps its own copy in Sent Items (Graph's sendMail, EWS SendAndSaveCopy):
    # the engine saves none, and settles an interrupted send by finding it there.
    saves_sent_copies: bool = False
    # Finds the service's URL from the mailbox's address (EWS Autodiscover), for the
    # profile to keep; None: the profile names its server.
    discover: Callable[[ServerSettings], str] | None = None
    # Opens the mailbox's calendar, contacts and tasks (test & enable, before they
    # sync), raising what is missing; None: the type reaches none of them.
    check_act: Callable[[ServerSettings], None] | None = None
    # Reads and writes the mailbox's appointments, tasks and contacts; None: the type
    # syncs none of them (POP3: Dynamics has no ACT over it).
    act_items: Callable[[ServerSettings], ActItems] | None = None


KINDS: dict[str, ServerKind] = {
    "imap_smtp": ServerKind(
        protocol="IMAP",
        incoming=ImapConnection,
        outgoing=SmtpConnection,
        probe=ImapProbe(),
        sent_items=ImapConnection,
        has_folders=True,
        # CalDAV / CardDAV at the profile's DAV URL.
        act_items=DavItems,
        check_act=dav.check_act,
    ),
    "pop3_smtp": ServerKind(
        protocol="POP3",
        incoming=Pop3Connection,
        outgoing=SmtpConnection,
        probe=Pop3Probe(),
        sent_items=None,
        has_folders=False,
    ),
    "exchange_online": ServerKind(
        protocol="Microsoft Graph",
        incoming=GraphMailbox,
        outgoing=GraphSender,
        probe=GraphProbe(),
        sent_items=GraphMailbox,
        has_folders=True,
        # sendMail keeps its own copy in Sent Items.
        saves_sent_copies=True,
        check_act=graph_permissions.check_act,
        act_items=GraphItems,
    ),
    "exchange_server": ServerKind(
        protocol="EWS",
        incoming=EwsConnection,
        outgoing=EwsConnection,
        probe=EwsProbe(),
        sent_items=EwsConnection,
        has_folders=True,
        # CreateItem SendAndSaveCopy keeps its own copy in Sent Items (and save_to_sent stores
        # only a message Sent Items does not hold yet).
        saves_sent_copies=True,
        discover=discovered_url,
        check_act=ews_permissions.check_act,
        act_items=EwsItems,
    ),
}


def kind_of(server_type: str) -> ServerKind | None:
    """The connectors for ``server_type``; None while serversync has none ("not supported yet")."""
    return KINDS.get(server_type)


def supported_types() -> tuple[str, ...]:
    return tuple(KINDS)


def act_types() -> tuple[str, ...]:
    """The server types whose appointments, contacts and tasks serversync syncs."""
    return tuple(name for name, kind in KINDS.items() if kind.act_items is not None)
