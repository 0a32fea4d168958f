"""Write-side functions for CRM records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction

from crm.models import (
    Account,
    ActivityParty,
    Appointment,
    AppointmentParty,
    Contact,
    CrmUser,
    EmailActivity,
    Lead,
    Queue,
)


@transaction.atomic
def email_create(
    *,
    owner: CrmUser | None,
    subject: str = "",
    body_text: str = "",
    body_html: str = "",
    status: str = EmailActivity.Status.DRAFT,
    sender_queue: Queue | None = None,
    to: Sequence[str] = (),
    cc: Sequence[str] = (),
    bcc: Sequence[str] = (),
    regarding_account: Account | None = None,
    regarding_contact: Contact | None = None,
    regarding_lead: Lead | None = None,
    reply_to: EmailActivity | None = None,
) -> EmailActivity:
    """A new outgoing email, as a draft or pending send. The sender is the
    queue when one is given, else the owner; the engine fixes Message-ID and
    tracking token when it claims the email for sending."""
    sender_address = sender_queue.email if sender_queue is not None else (owner.email if owner else "")
    if not sender_address:
        field = "sender_queue" if sender_queue is not None else "owner"
        raise ValidationError({field: ["The sender has no email address to send from."]})
    if reply_to is not None and not (regarding_account or regarding_contact or regarding_lead):
        regarding_account = reply_to.regarding_account
        regarding_contact = reply_to.regarding_contact
        regarding_lead = reply_to.regarding_lead
    email = EmailActivity(
        direction=EmailActivity.Direction.OUTGOING,
        status=status,
        owner=owner,
        subject=subject,
        body_text=body_text,
        body_html=body_html,
        regarding_account=regarding_account,
        regarding_contact=regarding_contact,
        regarding_lead=regarding_lead,
        correlated_email=reply_to,
        conversation_id=reply_to.conversation_id if reply_to else "",
    )
    email.full_clean()
    email.save()
    sender = ActivityParty(email=email, role=ActivityParty.Role.FROM, address=sender_address)
    if sender_queue is not None:
        sender.queue = sender_queue
    else:
        sender.user = owner
    parties = [sender]
    for role, addresses in (
        (ActivityParty.Role.TO, to),
        (ActivityParty.Role.CC, cc),
        (ActivityParty.Role.BCC, bcc),
    ):
        parties += [ActivityParty(email=email, role=role, address=address) for address in addresses]
    ActivityParty.objects.bulk_create(parties)
    return email


@dataclass(frozen=True)
class Party:
    """An appointment's organizer or attendee as given: an address, a record, or both."""

    address: str = ""
    display_name: str = ""
    record: CrmUser | Contact | Account | Lead | None = None


ORGANIZER_REQUIRED = "An appointment needs an organizer."

# Where a party's problems are reported: the API field that gave it.
ROLE_FIELDS = {
    AppointmentParty.Role.ORGANIZER: "organizer",
    AppointmentParty.Role.REQUIRED: "required_attendees",
    AppointmentParty.Role.OPTIONAL: "optional_attendees",
}


PARTY_RECORD_FIELD: dict[type[CrmUser | Contact | Account | Lead], str] = {
    CrmUser: "user",
    Contact: "contact",
    Account: "account",
    Lead: "lead",
}


@transaction.atomic
def appointment_save(
    appointment: Appointment,
    *,
    organizer: Party | None = None,
    required_attendees: Sequence[Party] | None = None,
    optional_attendees: Sequence[Party] | None = None,
) -> Appointment:
    """Save an appointment through its rules, with its parties: each list given replaces
    the parties of its role, one not given keeps them. Every appointment has an
    organizer; an exception of a series without one of its own takes its master's."""
    appointment.full_clean()
    appointment.save()
    if organizer is None and not appointment.parties.filter(role=AppointmentParty.Role.ORGANIZER).exists():
        organizer = _master_organizer(appointment)
        if organizer is None:
            raise ValidationError({"organizer": [ORGANIZER_REQUIRED]})
    for role, parties in (
        (AppointmentParty.Role.ORGANIZER, None if organizer is None else [organizer]),
        (AppointmentParty.Role.REQUIRED, required_attendees),
        (AppointmentParty.Role.OPTIONAL, optional_attendees),
    ):
        if parties is not None:
            _replace_parties(appointment, role, parties)
    return appointment


def _master_organizer(appointment: Appointment) -> Party | None:
    master = appointment.series_master
    found = master.parties.filter(role=AppointmentParty.Role.ORGANIZER).first() if master else None
    if found is None:
        return None
    return Party(address=found.address, display_name=found.display_name, record=found.record)


def _replace_parties(appointment: Appointment, role: str, parties: Sequence[Party]) -> None:
    appointment.parties.filter(role=role).delete()
    for party in parties:
        row = AppointmentParty(
            appointment=appointment, role=role, address=party.address, display_name=party.display_name
        )
        if party.record is not None:
            setattr(row, PARTY_RECORD_FIELD[type(party.record)], party.record)
        try:
            row.full_clean(exclude=["appointment"])
        except ValidationError as error:
            raise ValidationError({ROLE_FIELDS[AppointmentParty.Role(role)]: error.messages}) from None
        row.save()
