"""Meeting requests and cancellations the EWS test server sends, as Exchange does when a
calendar item with attendees is created, updated or deleted with
``SendMeetingInvitations`` / ``SendMeetingInvitationsOrCancellations`` /
``SendMeetingCancellations`` other than ``SendToNone``.

Each is one iMIP message (RFC 6047: a ``text/calendar`` part with METHOD:REQUEST or
CANCEL) from the organizer (the mailbox) to the item's required and optional attendees,
handed to the server's mail: its own users' inboxes, everyone else to ``outbound``, where
tests read them. "Changed" modes send to everyone: the server does not diff attendee lists.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import icalendar
from lxml import etree

from tests.fakes.ews.store import Item
from tests.fakes.ews.xsd import T

NONE = "SendToNone"
SENDING = frozenset(
    {"SendOnlyToAll", "SendToAllAndSaveCopy", "SendOnlyToChanged", "SendToChangedAndSaveCopy"}
)


class Mail:
    """What the server hands a message to (``operations.Mail``)."""

    def submit(self, sender: str, recipients: list[str], raw: bytes) -> None: ...


def is_known(mode: str) -> bool:
    return mode == NONE or mode in SENDING


def attendees(props: etree._Element) -> list[str]:
    found = []
    for kind in ("RequiredAttendees", "OptionalAttendees"):
        found += [
            a.text.strip()
            for a in props.iterfind(f"{{{T}}}{kind}/{{{T}}}Attendee/{{{T}}}Mailbox/{{{T}}}EmailAddress")
            if a.text and a.text.strip()
        ]
    return found


def send(mail: Mail, organizer: str, item: Item, method: str, *, series: Item | None = None) -> list[str]:
    """Send ``method`` (REQUEST or CANCEL) for ``item`` (an exception of ``series``: its own
    times under the series' UID and attendees) to its attendees; returns who was sent it."""
    owner = series or item
    assert owner.props is not None
    assert item.props is not None
    to = attendees(owner.props)
    if not to:
        return []
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//serversync//EWS test server//EN")
    calendar.add("version", "2.0")
    calendar.add("method", method)
    event = icalendar.Event()
    event.add("uid", owner.props.findtext(f"{{{T}}}UID") or owner.id)
    event.add(
        "summary", item.props.findtext(f"{{{T}}}Subject") or owner.props.findtext(f"{{{T}}}Subject") or ""
    )
    for name, element in (("dtstart", "Start"), ("dtend", "End")):
        text = item.props.findtext(f"{{{T}}}{element}")
        if text:
            event.add(name, _instant(text))
    if series is not None and item.original_start is not None:
        event.add("recurrence-id", item.original_start.astimezone(UTC))
    event.add("dtstamp", datetime.now(UTC))
    event.add("organizer", f"mailto:{organizer}")
    for address in to:
        event.add("attendee", f"mailto:{address}", parameters={"ROLE": "REQ-PARTICIPANT", "RSVP": "TRUE"})
    if method == "CANCEL":
        event.add("status", "CANCELLED")
    calendar.add_component(event)
    message = EmailMessage()
    message["From"] = organizer
    message["To"] = ", ".join(to)
    subject = str(event.get("summary"))
    message["Subject"] = f"Canceled: {subject}" if method == "CANCEL" else subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain="ews.test")
    message.set_content(calendar.to_ical(), maintype="text", subtype="calendar", params={"method": method})
    mail.submit(organizer, to, message.as_bytes())
    return to


def _instant(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)
