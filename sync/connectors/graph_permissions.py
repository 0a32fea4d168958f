"""Whether the app may reach a mailbox's appointments, contacts and tasks: test & enable
asks before anything syncs them, so that an administrator grants what is missing once.

Each is one read, with the application permission the sync will need named in the
error when Graph refuses it (sync.connectors.graph_errors): ``Calendars.ReadWrite``,
``Contacts.ReadWrite``, ``Tasks.ReadWrite.All``.
"""

from __future__ import annotations

from sync.connectors.base import ServerSettings
from sync.connectors.graph_http import GraphClient

# (resource below the user, query, the permission that sync needs, what it is, for messages)
RESOURCES: tuple[tuple[str, dict[str, str], str, str], ...] = (
    ("calendar", {}, "Calendars.ReadWrite", "opening the calendar"),
    ("contacts", {"$top": "1"}, "Contacts.ReadWrite", "listing the contacts"),
    ("todo/lists", {"$top": "1"}, "Tasks.ReadWrite.All", "listing the task lists"),
)


def check_act(settings: ServerSettings) -> None:
    """Open the calendar, the contacts and the task lists; the first refusal is raised."""
    for path, query, permission, what in RESOURCES:
        client = GraphClient(settings, permission=permission)
        client.open()
        try:
            client.json("GET", client.url(path), what=what, params=query)
        finally:
            client.close()
