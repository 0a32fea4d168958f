"""Mailboxes whose appointments, contacts and tasks live on one of the backends, for the
scenario suite that runs the same story against each (``act_stack`` in conftest.py).

``other_client(mailbox)`` is "the user's phone or Outlook": a second session of the same
connector with the same settings, changing items on the server as any other client would.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from crm.choices import ActMethod
from crm.models import CrmUser
from mailboxes.models import ApprovalStatus, Mailbox
from profiles.models import EmailServerProfile
from sync.connectors.interfaces import ActItems, Item, ItemChange
from sync.connectors.registry import kind_of
from sync.server_settings import act_settings
from tests import factories


@dataclass
class ActStack:
    backend: str
    profile: EmailServerProfile
    # name -> (address, user name, password) of a new account on the server
    make_account: Any
    # The server keeps a task's start and due days, not their times, nor its percent complete (To Do).
    task_dates_only: bool = False
    users: dict[str, CrmUser] = field(default_factory=dict)

    def mailbox(self, name: str = "") -> Mailbox:
        name = name or f"user{secrets.token_hex(3)}"
        address, username, password = self.make_account(name)
        user = factories.crm_user(name.capitalize(), email=address)
        self.users[name] = user
        mailbox = factories.mailbox(
            email_address=address,
            profile=self.profile,
            user=user,
            allow_credentials_for_email_processing=True,
            username=username,
            password=password,
        )
        # As test & enable leaves a mailbox that passed.
        Mailbox.objects.filter(pk=mailbox.pk).update(
            approval_status=ApprovalStatus.APPROVED, act_method=ActMethod.SERVER_SIDE_SYNC, act_enabled=True
        )
        mailbox.refresh_from_db()
        return mailbox

    @contextmanager
    def other_client(self, mailbox: Mailbox) -> Iterator[ActItems]:
        kind = kind_of(self.profile.server_type)
        assert kind is not None
        assert kind.act_items is not None
        with kind.act_items(act_settings(mailbox)) as items:
            yield items


def read_all(items: ActItems, entity: str) -> dict[str, ItemChange]:
    """Every item of the entity on the server now, by UID."""
    found = {}
    for change in items.changes(entity, ""):
        if change.item is not None:
            found[change.item.uid] = change
    return found


def only(items: ActItems, entity: str) -> Item:
    found = read_all(items, entity)
    assert len(found) == 1, found
    (change,) = found.values()
    assert change.item is not None
    return change.item
