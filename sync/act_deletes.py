"""What a deletion on one side does on the other, as Dynamics 365 does it.

- A CRM delete removes the server item only when the syncing user organizes the
  appointment and it has not started yet; otherwise the item stays and is only unlinked.
  A deleted task or contact is removed from the server.
- A server delete does not delete a completed, canceled or past CRM appointment, nor one
  the syncing user does not organize: those are only unlinked. A task deleted on the server
  is deleted in the CRM; a contact deleted there stays in the CRM (it is the
  organization's, not the user's address book's).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from crm.models import Appointment
from sync import clock
from sync.act_records import Context, organized_by_user
from sync.connectors.interfaces import ActItems, ItemRef
from sync.errors import MessageError
from sync.models import ActLink


@dataclass(frozen=True)
class Effect:
    """How many records (``crm``) and server items (``server``) a deletion removed."""

    crm: int = 0
    server: int = 0


def server_deleted(link: ActLink, context: Context) -> Effect:
    """The server item of ``link`` is gone: delete its record where the rules say so."""
    if link.entity == "task" and link.task is not None:
        link.task.delete()
        return Effect(crm=1)
    if (
        link.entity == "appointment"
        and link.appointment is not None
        and _deletable(link.appointment, context)
    ):
        link.appointment.delete()
        return Effect(crm=1)
    return Effect()


def _deletable(appointment: Appointment, context: Context) -> bool:
    if appointment.status in (Appointment.Status.COMPLETED, Appointment.Status.CANCELED):
        return False
    return not _past(appointment) and organized_by_user(appointment, context)


def _past(appointment: Appointment) -> bool:
    if appointment.recurrence_rule:
        return appointment.rule().after(clock.now()) is None
    return appointment.end < clock.now()


def crm_deleted(link: ActLink, server: ActItems, context: Context) -> Effect:
    """The record of ``link`` is gone: remove its server item where the rules say so. An item
    changed on the server meanwhile is left (its link goes; the user's change stays)."""
    if not link.item_id or (link.entity == "appointment" and not _organized_and_future(link, context)):
        return Effect()
    try:
        server.delete(link.entity, ItemRef(link.item_id, link.version))
    except MessageError:
        return Effect()
    return Effect(server=1)


def _organized_and_future(link: ActLink, context: Context) -> bool:
    """From what was last synced (the record is gone): organized by the user, not started yet."""
    organizer = link.crm_synced.get("organizer")
    if organizer and str(organizer.get("address", "")).strip().lower() != context.address:
        return False
    start = link.crm_synced.get("start")
    return bool(start) and datetime.fromisoformat(start) > clock.now()
