"""Write-side functions for mailboxes: every create and change goes through here."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from crm.choices import ActMethod, SyncStatus
from crm.models import OrganizationSettings
from mailboxes.models import DIRECTION_FIELDS, ApprovalStatus, Mailbox
from mailboxes.sync_filters import create_default_filters
from profiles.models import EmailServerProfile
from profiles.server_types import facts

# A change of these makes every saved folder cursor and test result stale.
CONFIGURATION_FIELDS = ("email_address", "profile")


def mailbox_defaults() -> dict[str, Any]:
    """The organization's defaults for a new mailbox ("Apply default email settings")."""
    organization = OrganizationSettings.load()
    return {
        "incoming_method": organization.default_incoming_method,
        "outgoing_method": organization.default_outgoing_method,
        "act_method": organization.default_act_method,
        "profile": EmailServerProfile.objects.filter(is_default=True, is_active=True).first(),
    }


def mailbox_create(*, data: dict[str, Any]) -> Mailbox:
    """Create a mailbox; sync methods and profile not given come from the organization's defaults,
    and a user's mailbox gets the organization's default sync filters."""
    values = {**mailbox_defaults(), **data}
    owner = values.get("user") or values.get("queue")
    if owner and not values.get("email_address"):
        values["email_address"] = owner.email
    if not values.get("name"):
        values["name"] = str(owner) if owner else values.get("email_address", "")
    mailbox = Mailbox(**values)
    mailbox.full_clean()
    with transaction.atomic():
        mailbox.save()
        create_default_filters(mailbox)
    return mailbox


@transaction.atomic
def mailbox_update(*, mailbox: Mailbox, data: dict[str, Any]) -> Mailbox:
    """Change a mailbox. A new address or profile starts a new configuration
    generation: statuses and enabled flags reset, and a new address needs approval again."""
    locked = Mailbox.objects.select_for_update().get(pk=mailbox.pk)
    before = {field: _value(locked, field) for field in CONFIGURATION_FIELDS}
    for field, value in data.items():
        setattr(mailbox, field, value)
    if data.get("password"):
        # A password entered is what a migration that could not bring one over asked for.
        mailbox.needs_credentials = False
    mailbox.configuration_generation = locked.configuration_generation
    changed = [field for field in CONFIGURATION_FIELDS if _value(mailbox, field) != before[field]]
    if changed:
        _start_new_generation(mailbox, address_changed="email_address" in changed)
    mailbox.full_clean()
    mailbox.save()
    return mailbox


def _value(mailbox: Mailbox, field: str) -> Any:
    if field == "email_address":
        return mailbox.email_address.strip().lower()
    return mailbox.profile_id


def _start_new_generation(mailbox: Mailbox, *, address_changed: bool) -> None:
    mailbox.configuration_generation += 1
    for fields in DIRECTION_FIELDS.values():
        setattr(mailbox, fields.status, SyncStatus.NOT_RUN)
        setattr(mailbox, fields.enabled, False)
        setattr(mailbox, fields.transient_failures, 0)
        setattr(mailbox, fields.postponed_until, None)
    mailbox.test_completed_on = None
    mailbox.disabled_reason = ""
    if address_changed:
        mailbox.approval_status = ApprovalStatus.EMPTY
        mailbox.approval_changed_by = None
        mailbox.approval_changed_on = None


def mailbox_set_approval(*, mailbox: Mailbox, status: str, by: Any) -> Mailbox:
    """Approve or reject a mailbox's email address, recording who did it and when.
    Callers check the ``mailboxes.approve_email`` permission."""
    if status not in (ApprovalStatus.APPROVED, ApprovalStatus.REJECTED, ApprovalStatus.PENDING_APPROVAL):
        raise ValueError(f"Not an approval decision: {status!r}")
    mailbox.approval_status = status
    mailbox.approval_changed_by = by
    mailbox.approval_changed_on = timezone.now()
    mailbox.save(
        update_fields=["approval_status", "approval_changed_by", "approval_changed_on", "modified_on"]
    )
    return mailbox


def apply_default_email_settings(*, mailboxes: Iterable[Mailbox]) -> list[Mailbox]:
    """ "Apply default email settings": the organization's default profile and sync
    methods on each mailbox (a new profile starts a new configuration generation).
    The default profile is left out where there is none; appointments, contacts
    and tasks stay off where the mailbox cannot sync them (queues, POP3 profiles)."""
    defaults = mailbox_defaults()
    if defaults["profile"] is None:
        del defaults["profile"]
    changed = []
    for mailbox in mailboxes:
        data = dict(defaults)
        if data.get("act_method") != ActMethod.NONE and _cannot_sync_act(mailbox, data.get("profile")):
            data["act_method"] = ActMethod.NONE
        changed.append(mailbox_update(mailbox=mailbox, data=data))
    return changed


def _cannot_sync_act(mailbox: Mailbox, profile: EmailServerProfile | None) -> bool:
    profile = profile or mailbox.profile
    return bool(mailbox.queue_id) or (profile is not None and not facts(profile.server_type).syncs_act)
