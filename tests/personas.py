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
from tests import factories

PERSONA_NAMES = ("admin", "alice", "bob", "quinn", "oscar", "anonymous")


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


@dataclass
class World:
    personas: dict[str, Persona]
    profile: EmailServerProfile
    queue: Queue
    queue_mailbox: Mailbox

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
    return persona


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
    return World(personas=personas, profile=profile, queue=owned_queue, queue_mailbox=queue_mailbox)
