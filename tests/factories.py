"""Small factories: one obvious way to make each record in a test."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.files.base import ContentFile
from django.utils import timezone

from crm.models import (
    Account,
    ActivityParty,
    Appointment,
    AppointmentParty,
    Contact,
    CrmUser,
    EmailActivity,
    EmailAttachment,
    Lead,
    Queue,
    QueueItem,
    Task,
)
from crm.services import Party, appointment_save
from mailboxes.models import Mailbox, SyncFilter
from mailboxes.services import mailbox_create
from profiles.models import CredentialsSource, EmailServerProfile, ServerType
from profiles.server_types import facts
from sync.models import (
    AlertLevel,
    FolderCursor,
    MailboxAlert,
    MailboxSchedule,
    OutgoingClaim,
    QuarantinedMessage,
    Receipt,
    ReceiptOutcome,
    Rollout,
    SyncKind,
    SyncOutcome,
    SyncRun,
)
from sync.rollout import rollout_plan

_seq = itertools.count(1)


def login_user(username: str, *, administrator: bool = False, **extra: Any) -> User:
    user = User.objects.create_user(username=username, password="pw-" + username, **extra)
    if administrator:
        user.groups.add(Group.objects.get_or_create(name=settings.ADMINISTRATORS_GROUP)[0])
    return user


def crm_user(name: str = "", *, login: User | None = None, **extra: Any) -> CrmUser:
    # An unnamed user gets a unique address; a named one "first@example.test".
    name = name or f"User{next(_seq)} Anonymous"
    slug = name.split()[0].lower()
    extra.setdefault("email", f"{slug}@example.test")
    return CrmUser.objects.create(full_name=name, user=login, **extra)


def queue(name: str = "", **extra: Any) -> Queue:
    name = name or f"Queue {next(_seq)}"
    extra.setdefault("email", f"{name.split()[0].lower()}-q{next(_seq)}@example.test")
    return Queue.objects.create(name=name, **extra)


def profile(name: str = "", **extra: Any) -> EmailServerProfile:
    values: dict[str, Any] = {
        "name": name or f"Profile {next(_seq)}",
        "server_type": ServerType.IMAP_SMTP,
        "incoming_server_location": "imap.example.test",
        "outgoing_server_location": "smtp.example.test",
        **extra,
    }
    if facts(values["server_type"]).app_only:
        values.setdefault("credentials_source", CredentialsSource.OAUTH_CLIENT_CREDENTIALS)
    created = EmailServerProfile(**values)
    created.full_clean()
    created.save()
    return created


def mailbox(**data: Any) -> Mailbox:
    return mailbox_create(data=data)


def account(**extra: Any) -> Account:
    extra.setdefault("name", f"Account {next(_seq)}")
    return Account.objects.create(**extra)


def contact(**extra: Any) -> Contact:
    extra.setdefault("last_name", f"Contact{next(_seq)}")
    return Contact.objects.create(**extra)


def lead(**extra: Any) -> Lead:
    extra.setdefault("last_name", f"Lead{next(_seq)}")
    return Lead.objects.create(**extra)


def email(**extra: Any) -> EmailActivity:
    extra.setdefault("direction", EmailActivity.Direction.OUTGOING)
    extra.setdefault("subject", f"Subject {next(_seq)}")
    return EmailActivity.objects.create(**extra)


def party(*, email: EmailActivity, **extra: Any) -> ActivityParty:
    extra.setdefault("role", ActivityParty.Role.FROM)
    extra.setdefault("address", f"sender{next(_seq)}@example.test")
    return ActivityParty.objects.create(email=email, **extra)


def attachment(*, email: EmailActivity, **extra: Any) -> EmailAttachment:
    extra.setdefault("filename", f"file{next(_seq)}.pdf")
    extra.setdefault("size", 1024)
    return EmailAttachment.objects.create(email=email, **extra)


def queue_item(*, queue: Queue, email: EmailActivity, **extra: Any) -> QueueItem:
    return QueueItem.objects.create(queue=queue, email=email, **extra)


def appointment(*, organizer: Party | None = None, **extra: Any) -> Appointment:
    """An appointment saved through its rules; an hour tomorrow at 09:00 Berlin time unless
    told, organized by its owner (or organizer@example.test)."""
    extra.setdefault("subject", f"Meeting {next(_seq)}")
    extra.setdefault("start_time_zone", "Europe/Berlin")
    extra.setdefault("end_time_zone", extra["start_time_zone"])
    if not extra.get("all_day"):
        tomorrow = timezone.localdate() + dt.timedelta(days=1)
        extra.setdefault(
            "start", dt.datetime.combine(tomorrow, dt.time(9), ZoneInfo(extra["start_time_zone"]))
        )
        extra.setdefault("end", extra["start"] + dt.timedelta(hours=1))
    if organizer is None and extra.get("series_master") is None:
        owner = extra.get("owner")
        organizer = Party(record=owner) if owner is not None else Party(address="organizer@example.test")
    return appointment_save(Appointment(**extra), organizer=organizer)


def appointment_party(*, appointment: Appointment, **extra: Any) -> AppointmentParty:
    extra.setdefault("role", AppointmentParty.Role.REQUIRED)
    extra.setdefault("address", f"attendee{next(_seq)}@example.test")
    return AppointmentParty.objects.create(appointment=appointment, **extra)


def task(**extra: Any) -> Task:
    extra.setdefault("subject", f"Task {next(_seq)}")
    created = Task(**extra)
    created.full_clean()
    created.save()
    return created


def alert(**extra: Any) -> MailboxAlert:
    mailbox_ = extra.get("mailbox")
    profile_ = extra.get("profile")
    extra.setdefault("level", AlertLevel.ERROR)
    extra.setdefault("category", "incoming")
    extra.setdefault("code", f"code-{next(_seq)}")
    extra.setdefault("message", "Something went wrong.")
    extra.setdefault("subject_key", f"mailbox:{mailbox_.pk}" if mailbox_ else f"profile:{profile_.pk}")
    extra.setdefault("first_seen", timezone.now())
    extra.setdefault("last_seen", extra["first_seen"])
    return MailboxAlert.objects.create(**extra)


def receipt(*, mailbox: Mailbox, **extra: Any) -> Receipt:
    number = next(_seq)
    extra.setdefault("folder", "INBOX")
    extra.setdefault("server_id", f"1:{number}")
    extra.setdefault("message_identity", f"<m{number}@example.test>")
    extra.setdefault("message_id", extra["message_identity"])
    extra.setdefault("subject", f"Received {number}")
    extra.setdefault("sender", f"sender{number}@example.test")
    extra.setdefault("outcome", ReceiptOutcome.NOT_TRACKED_OPTION)
    return Receipt.objects.create(mailbox=mailbox, **extra)


def quarantined_message(*, mailbox: Mailbox, raw: bytes = b"", **extra: Any) -> QuarantinedMessage:
    number = next(_seq)
    extra.setdefault("folder", "INBOX")
    extra.setdefault("server_id", f"1:{number}")
    extra.setdefault("message_identity", f"sha256:{number:064x}")
    extra.setdefault("error_code", "parse_error")
    extra.setdefault("error_text", "The MIME structure is broken.")
    message = QuarantinedMessage(mailbox=mailbox, size=len(raw), **extra)
    if raw:
        message.raw.save(f"{number}.eml", ContentFile(raw), save=False)
    message.save()
    return message


def sync_run(*, mailbox: Mailbox, **extra: Any) -> SyncRun:
    extra.setdefault("kind", SyncKind.INCOMING)
    extra.setdefault("started_on", timezone.now())
    extra.setdefault("finished_on", extra["started_on"])
    extra.setdefault("outcome", SyncOutcome.SUCCESS)
    return SyncRun.objects.create(mailbox=mailbox, **extra)


def folder_cursor(*, mailbox: Mailbox, **extra: Any) -> FolderCursor:
    extra.setdefault("folder", "INBOX")
    extra.setdefault("generation", mailbox.configuration_generation)
    return FolderCursor.objects.create(mailbox=mailbox, **extra)


def schedule(*, mailbox: Mailbox, **extra: Any) -> MailboxSchedule:
    extra.setdefault("kind", SyncKind.INCOMING)
    extra.setdefault("next_due_on", timezone.now())
    return MailboxSchedule.objects.create(mailbox=mailbox, profile=mailbox.profile, **extra)


def outgoing_claim(*, email: EmailActivity, mailbox: Mailbox, **extra: Any) -> OutgoingClaim:
    extra.setdefault("expires_on", timezone.now())
    return OutgoingClaim.objects.create(email=email, mailbox=mailbox, **extra)


def rollout(*, mailboxes: list[Mailbox], created_by: User | None = None, **extra: Any) -> Rollout:
    return rollout_plan(mailbox_ids=[m.pk for m in mailboxes], created_by=created_by, **extra)


def sync_filter(*, mailbox: Mailbox, **extra: Any) -> SyncFilter:
    extra.setdefault("entity", "contact")
    extra.setdefault("name", f"Filter {next(_seq)}")
    extra.setdefault("criteria", {"owner": "mine"})
    created = SyncFilter(mailbox=mailbox, **extra)
    created.full_clean()
    created.save()
    return created
