"""Carry out a plan: create the selected profiles, then create or update the
mailboxes. The caller holds the transaction, so a failure anywhere changes nothing."""

from __future__ import annotations

from typing import Any

from crm.choices import ActMethod, IncomingMethod, OutgoingMethod, SyncStatus
from mailboxes.models import DIRECTION_FIELDS, Mailbox
from mailboxes.router_import.plan import CREATE, UPDATE, MailboxPlan, Plan, ProfilePlan
from mailboxes.services import mailbox_create, mailbox_update
from profiles.models import EmailServerProfile
from profiles.server_types import facts

PROFILE_DESCRIPTION = "Created by Email Router migration {migration}."


def apply_plan(plan: Plan, *, migration_id: int) -> dict[str, Any]:
    profiles = {
        profile.key: _profile(profile, plan, migration_id) for profile in plan.profiles if profile.migrate
    }
    result: dict[str, Any] = {
        "profiles_created": [
            {"id": profiles[p.key].pk, "name": p.name}
            for p in plan.profiles
            if p.migrate and p.existing is None
        ],
        "profiles_reused": [
            {"id": p.existing.pk, "name": p.name} for p in plan.profiles if p.migrate and p.existing
        ],
        "mailboxes_created": [],
        "mailboxes_updated": [],
        "forward_mailboxes_created": [],
        "forward_mailboxes_updated": [],
        "mailboxes_unchanged": [],
    }
    for mailbox in plan.mailboxes:
        if mailbox.action in (CREATE, UPDATE):
            assert mailbox.profile is not None  # noqa: S101 -- planned mailboxes have one
            done = _mailbox(mailbox, profiles[mailbox.profile.key])
            kind = "forward_mailboxes" if mailbox.owner.kind == "forward" else "mailboxes"
            verb = "created" if mailbox.action == CREATE else "updated"
            result[f"{kind}_{verb}"].append(_row(done))
        elif mailbox.existing is not None and mailbox.action != "skip":
            result["mailboxes_unchanged"].append(_row(mailbox.existing))
    return result


def _row(mailbox: Mailbox) -> dict[str, Any]:
    return {
        "id": mailbox.pk,
        "email_address": mailbox.email_address,
        "owner_kind": mailbox.owner_kind,
        "profile": mailbox.profile_id,
        "needs_credentials": mailbox.needs_credentials,
        "enabled": mailbox.incoming_enabled or mailbox.outgoing_enabled or mailbox.act_enabled,
    }


def _profile(plan: ProfilePlan, whole: Plan, migration_id: int) -> EmailServerProfile:
    if plan.existing is not None:
        return plan.existing
    profile = EmailServerProfile(
        name=plan.name,
        description=PROFILE_DESCRIPTION.format(migration=migration_id),
        process_email_from=whole.cutoff,
        **plan.spec.fields(),
    )
    profile.full_clean()
    profile.save()
    return profile


def _mailbox(plan: MailboxPlan, profile: EmailServerProfile) -> Mailbox:
    data: dict[str, Any] = {
        "profile": profile,
        "process_email_received_after": plan.process_email_from,
        "needs_credentials": plan.needs_credentials,
    }
    if plan.incoming:
        data["incoming_method"] = IncomingMethod.SERVER_SIDE_SYNC
    if plan.outgoing:
        data["outgoing_method"] = OutgoingMethod.SERVER_SIDE_SYNC
    if plan.delete_emails is not None:
        data["delete_email_after_processing"] = plan.delete_emails
    if plan.folders is not None:
        data["folders"] = plan.folders
    if plan.owner.kind == "queue" or not facts(profile.server_type).syncs_act:
        data["act_method"] = ActMethod.NONE
    if plan.existing is not None:
        # Nothing runs on the new settings until test & enable has passed.
        for fields in DIRECTION_FIELDS.values():
            data[fields.enabled] = False
            data[fields.status] = SyncStatus.NOT_RUN
        return mailbox_update(mailbox=plan.existing, data=data)
    return mailbox_create(data={**data, **_new_mailbox(plan)})


def _new_mailbox(plan: MailboxPlan) -> dict[str, Any]:
    owner = plan.owner
    values: dict[str, Any] = {
        "email_address": plan.email_address,
        "name": plan.email_address if owner.kind == "forward" else owner.name,
        "incoming_method": IncomingMethod.SERVER_SIDE_SYNC if plan.incoming else IncomingMethod.NONE,
        "outgoing_method": OutgoingMethod.SERVER_SIDE_SYNC if plan.outgoing else OutgoingMethod.NONE,
        "act_method": ActMethod.NONE,
    }
    if owner.kind == "forward":
        values["is_forward_mailbox"] = True
    else:
        values[owner.kind] = owner.user or owner.queue
    return values
