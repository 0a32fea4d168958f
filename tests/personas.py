"""The people every permission test uses (after healthchecks' Alice/Bob/Charlie).

- ``admin``: member of the Administrators group; manages everything.
- ``alice`` and ``bob``: CRM users, each with a mailbox and records they own.
- ``quinn``: a queue owner (also a CRM user with a mailbox) — sees the queue's mailbox.
- ``oscar``: an outsider: a login with no CRM user; sees nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import User

from crm.models import Account, Contact, CrmUser, EmailActivity, Lead, Queue
from mailboxes.models import Mailbox
from profiles.models import EmailServerProfile
from sync.models import (
    ActItemProblem,
    ActLink,
    ActProblemKind,
    MailboxAlert,
    QuarantinedMessage,
    Receipt,
    Rollout,
    SyncRun,
)
from tests import factories

PERSONA_NAMES = ("admin", "alice", "bob", "quinn", "oscar", "anonymous")
# In every quarantined message of the world; no page or API answer may show it.
RAW_MARKER = "RAW-QUARANTINED-BYTES-4d1f"


@dataclass
class MailboxRecords:
    """The engine's rows about one mailbox: one of each."""

    alert: MailboxAlert
    receipt: Receipt
    quarantined: QuarantinedMessage
    sync_run: SyncRun
    # Appointments, contacts and tasks: a contact linked to a server item, and a conflict on it.
    act_link: ActLink | None = None
    act_problem: ActItemProblem | None = None


@dataclass
class Persona:
    name: str
    login: User | None
    crm_user: CrmUser | None = None
    mailbox: Mailbox | None = None
    account: Account | None = None
    contact: Contact | None = None
    lead: Lead | None = None
    email: EmailActivity | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    sync: MailboxRecords | None = None


@dataclass
class World:
    personas: dict[str, Persona]
    profile: EmailServerProfile
    queue: Queue
    queue_mailbox: Mailbox
    queue_sync: MailboxRecords | None = None
    profile_alert: MailboxAlert | None = None  # about the profile, not a mailbox
    rollout: Rollout | None = None  # of every mailbox; administrators only

    def __getitem__(self, name: str) -> Persona:
        return self.personas[name]


def _member(name: str, profile: EmailServerProfile, *, administrator: bool = False) -> Persona:
    login = factories.login_user(name, administrator=administrator)
    crm_user = factories.crm_user(name.capitalize(), login=login)
    persona = Persona(name=name, login=login, crm_user=crm_user)
    persona.mailbox = factories.mailbox(user=crm_user, profile=profile)
    persona.account = factories.account(name=f"{name} Ltd", owner=crm_user)
    persona.contact = factories.contact(last_name=f"{name}-contact", owner=crm_user)
    persona.lead = factories.lead(last_name=f"{name}-lead", owner=crm_user)
    persona.email = factories.email(subject=f"{name}'s email", owner=crm_user)
    persona.sync = _mailbox_records(persona.mailbox)
    return persona


def _mailbox_records(mailbox: Mailbox) -> MailboxRecords:
    raw = f"Subject: broken\r\nContent-Type: multipart/mixed\r\n\r\n{RAW_MARKER}\r\n".encode()
    quarantined = factories.quarantined_message(mailbox=mailbox, raw=raw)
    return MailboxRecords(
        alert=factories.alert(mailbox=mailbox, profile=mailbox.profile),
        receipt=factories.receipt(mailbox=mailbox),
        quarantined=quarantined,
        sync_run=factories.sync_run(mailbox=mailbox),
        **_act_records(mailbox),
    )


def _act_records(mailbox: Mailbox) -> dict[str, Any]:
    # The mailbox user's own contact (made just before), so no record is added to the world's lists.
    contact = Contact.objects.filter(owner=mailbox.user).first() if mailbox.user_id else None
    link = ActLink.objects.create(
        mailbox=mailbox,
        entity="contact",
        contact=contact,
        item_id=f"/contacts/{mailbox.pk}.vcf",
        uid=f"persona-{mailbox.pk}",
    )
    problem = ActItemProblem.objects.create(
        mailbox=mailbox,
        entity="contact",
        link=link,
        kind=ActProblemKind.CONFLICT,
        item_id=link.item_id,
        record_id=link.record_id,
        title=str(contact or ""),
        field="job_title",
        dropped_side="server",
        dropped_value=f"server title {mailbox.pk}",
        kept_value=f"CRM title {mailbox.pk}",
        message="Job title changed on both sides; the server's change was dropped (both ways).",
    )
    return {"act_link": link, "act_problem": problem}


def build_world() -> World:
    profile = factories.profile("Personas IMAP")
    personas = {
        "admin": _member("admin", profile, administrator=True),
        "alice": _member("alice", profile),
        "bob": _member("bob", profile),
        "quinn": _member("quinn", profile),
        "oscar": Persona(name="oscar", login=factories.login_user("oscar")),
        "anonymous": Persona(name="anonymous", login=None),
    }
    owned_queue = factories.queue("Support", owner=personas["quinn"].crm_user)
    queue_mailbox = factories.mailbox(
        queue=owned_queue, profile=profile, email_address="support@example.test"
    )
    mailboxes = [p.mailbox for p in personas.values() if p.mailbox] + [queue_mailbox]
    return World(
        personas=personas,
        profile=profile,
        queue=owned_queue,
        queue_mailbox=queue_mailbox,
        queue_sync=_mailbox_records(queue_mailbox),
        profile_alert=factories.alert(profile=profile, category="profile", code="profile-test-failed"),
        rollout=factories.rollout(mailboxes=mailboxes, created_by=personas["admin"].login),
    )
