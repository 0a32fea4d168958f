"""The review: the plan as plain JSON, kept with the migration and shown by the
wizard, the API and the command. No password, and no value of a tag the
importer did not understand, is ever part of it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from crm.choices import IncomingMethod, OutgoingMethod
from mailboxes.models import Mailbox
from mailboxes.router_import.plan import CREATE, SKIP, UNCHANGED, UPDATE, MailboxPlan, Plan, ProfilePlan
from profiles.models import AuthProtocol, CredentialsSource, ServerType
from profiles.server_types import facts


def as_review(plan: Plan) -> dict[str, Any]:
    mailboxes = [_mailbox(mailbox) for mailbox in plan.mailboxes if mailbox.action != SKIP]
    profiles = [_profile(profile, plan) for profile in plan.profiles]
    return {
        "crm_urls": plan.crm_urls,
        "process_email_from": _utc(plan.cutoff),
        "counts": {
            "profiles_to_create": sum(1 for p in plan.profiles if p.migrate and p.existing is None),
            "profiles_reused": sum(1 for p in plan.profiles if p.migrate and p.existing is not None),
            "mailboxes_to_create": _count(mailboxes, CREATE, forward=False),
            "mailboxes_to_update": _count(mailboxes, UPDATE, forward=False),
            "forward_mailboxes_to_create": _count(mailboxes, CREATE, forward=True),
            "forward_mailboxes_to_update": _count(mailboxes, UPDATE, forward=True),
            "mailboxes_unchanged": sum(1 for m in mailboxes if m["action"] == UNCHANGED),
            "needing_credentials": sum(
                1 for m in mailboxes if m["needs_credentials"] and m["action"] != UNCHANGED
            ),
            "not_migrated": len(plan.not_migrated),
            "people_skipped": len(plan.skipped_people),
            "not_understood": len(plan.findings),
        },
        "profiles": profiles,
        "mailboxes": sorted(mailboxes, key=_mailbox_order),
        "warnings": plan.warnings,
        "not_migrated": [{"what": what, "reason": reason} for what, reason in plan.not_migrated],
        "people_skipped": plan.skipped_people,
        "not_understood": [finding.as_dict() for finding in plan.findings],
        "notes": plan.notes,
    }


def _count(mailboxes: list[dict[str, Any]], action: str, *, forward: bool) -> int:
    return sum(1 for m in mailboxes if m["action"] == action and (m["owner_kind"] == "forward") == forward)


def _mailbox_order(mailbox: dict[str, Any]) -> tuple[int, str]:
    # Queue mailboxes first, then users, then forward mailboxes: the order to test them in.
    return ({"queue": 0, "user": 1}.get(mailbox["owner_kind"], 2), mailbox["email_address"])


def _profile(profile: ProfilePlan, plan: Plan) -> dict[str, Any]:
    spec = profile.spec
    exchange = facts(spec.server_type).exchange
    return {
        "key": profile.key,
        "name": profile.name,
        "existing_profile": profile.existing.pk if profile.existing else None,
        "migrate": profile.migrate,
        "server_type": spec.server_type,
        "server_type_label": ServerType(spec.server_type).label,
        "incoming": _direction(
            spec.incoming_server_location,
            spec.incoming_port,
            spec.incoming_use_ssl,
            spec.incoming_auth_protocol,
            exchange,
            spec.auto_discover_server_location,
        ),
        "outgoing": _direction(
            spec.outgoing_server_location,
            spec.outgoing_port,
            spec.outgoing_use_ssl,
            spec.outgoing_auth_protocol,
            exchange,
            spec.auto_discover_server_location,
        ),
        "credentials": _credentials(profile),
        "incoming_sources": profile.incoming_sources,
        "outgoing_sources": profile.outgoing_sources,
        "warnings": profile.warnings,
        "mailboxes": sum(1 for m in plan.mailboxes if m.profile is profile and m.action != SKIP),
    }


def _direction(location: str, port: int, ssl: bool, auth: str, exchange: bool, autodiscover: bool) -> str:
    where = (location or "Autodiscover") if exchange else f"{location}:{port}"
    return f"{where}, {'SSL' if ssl else 'no SSL'}, {AuthProtocol(auth).label}"


def _credentials(profile: ProfilePlan) -> str:
    spec = profile.spec
    if spec.credentials_source != CredentialsSource.PROFILE:
        return CredentialsSource(spec.credentials_source).label
    users = (
        spec.username
        if spec.use_same_settings_for_outgoing
        else f"{spec.username}, outgoing {spec.outgoing_username}"
    )
    password = "password kept" if not profile.lacks_password else "no password (enter it on the profile)"
    return f"{CredentialsSource.PROFILE.label}: {users}; {password}"


def _mailbox(mailbox: MailboxPlan) -> dict[str, Any]:
    profile = mailbox.profile
    assert profile is not None  # noqa: S101 -- every planned mailbox has one
    if mailbox.action == UNCHANGED and mailbox.existing is not None:
        return _unchanged(mailbox, profile.key)
    return {
        "key": mailbox.key,
        "owner_kind": mailbox.owner.kind,
        "owner": mailbox.owner.name,
        "email_address": mailbox.email_address,
        "mailbox": mailbox.existing.pk if mailbox.existing else None,
        "action": mailbox.action,
        "profile": profile.key,
        "profile_name": profile.name,
        "incoming": _incoming(mailbox),
        "outgoing": _method(mailbox, mailbox.outgoing, OutgoingMethod.SERVER_SIDE_SYNC.label),
        "process_email_from": _utc(mailbox.process_email_from),
        "threshold_kept": bool(mailbox.threshold and mailbox.process_email_from == mailbox.threshold),
        "needs_credentials": mailbox.needs_credentials,
        "delete_email_after_processing": mailbox.delete_emails,
        # The folders it will read: the router's inbox and sub-folders, or unchanged (None).
        "folders": mailbox.folders.label if mailbox.folders else None,
        "changes": mailbox.changes,
    }


def _unchanged(mailbox: MailboxPlan, profile_key: str) -> dict[str, Any]:
    """A mailbox already set up as the router's: left alone, so the review says
    what the database holds (its date, credentials, folders, whether it is
    enabled), not what a new migration would set."""
    existing = mailbox.existing
    assert existing is not None  # noqa: S101 -- only existing mailboxes are unchanged
    since = existing.process_email_received_after
    return {
        "key": mailbox.key,
        "owner_kind": mailbox.owner.kind,
        "owner": mailbox.owner.name,
        "email_address": existing.email_address,
        "mailbox": existing.pk,
        "action": UNCHANGED,
        "profile": profile_key,
        "profile_name": str(existing.profile or ""),
        "incoming": _held(existing.get_incoming_method_display(), existing.incoming_method, existing),
        "outgoing": existing.get_outgoing_method_display(),
        "process_email_from": _utc(since),
        "threshold_kept": bool(mailbox.threshold and since == mailbox.threshold),
        "needs_credentials": existing.needs_credentials,
        "delete_email_after_processing": existing.delete_email_after_processing,
        "folders": existing.get_folders_display() if mailbox.folders else None,
        "changes": [],
        "enabled": [
            label
            for label, on in (
                ("incoming", existing.incoming_enabled),
                ("outgoing", existing.outgoing_enabled),
                ("appointments, contacts and tasks", existing.act_enabled),
            )
            if on
        ],
    }


def _held(label: str, method: str, existing: Mailbox) -> str:
    if method != IncomingMethod.SERVER_SIDE_SYNC:
        return label
    return f"{label}, {existing.get_folders_display().lower()}"


def _incoming(mailbox: MailboxPlan) -> str:
    method = _method(mailbox, mailbox.incoming, IncomingMethod.SERVER_SIDE_SYNC.label)
    # Said where the wizard, the API and the command show the method: which folders it reads.
    return f"{method}, {mailbox.folders.label.lower()}" if mailbox.folders else method


def _method(mailbox: MailboxPlan, handled: bool, label: str) -> str:
    """What a direction becomes: the router handled it, or a new mailbox leaves it off."""
    if handled:
        return label
    return "unchanged" if mailbox.existing else IncomingMethod.NONE.label


def _utc(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None
