"""Small factories: one obvious way to make each record in a test."""

from __future__ import annotations

import itertools
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User

from crm.models import (
    Account,
    ActivityParty,
    Contact,
    CrmUser,
    EmailActivity,
    EmailAttachment,
    Lead,
    Queue,
    QueueItem,
)
from mailboxes.models import Mailbox
from mailboxes.services import mailbox_create
from profiles.models import EmailServerProfile, ServerType

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
