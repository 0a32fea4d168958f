"""The migration plan: which profiles to create (or reuse), which mailboxes to
create or update and how, and everything that will not be migrated and why.
The review shows it; apply carries it out. Built fresh from the files and the
database each time, so what is applied matches the database it is applied to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings

from crm.choices import IncomingMethod, OutgoingMethod
from crm.models import OrganizationSettings
from mailboxes.models import FolderScope, Mailbox
from mailboxes.router_import.collect import Collected, OwnerConfig, collect
from mailboxes.router_import.documents import Finding, RouterDocuments
from mailboxes.router_import.endpoints import Protocol, Reading
from mailboxes.router_import.merge import ProfileSpec, merge
from mailboxes.router_import.owners import Owner, OwnerIndex
from mailboxes.router_import.tags import ROUTER_ONLY
from profiles.models import EmailServerProfile, ServerType
from profiles.server_types import facts

CREATE, UPDATE, UNCHANGED, SKIP = "create", "update", "unchanged", "skip"
SSS_IN, SSS_OUT = IncomingMethod.SERVER_SIDE_SYNC, OutgoingMethod.SERVER_SIDE_SYNC
# The Email Router crawled the inbox and every folder below it; server-side sync
# reads the root inbox only unless told otherwise, so a mailbox whose incoming
# email the router read keeps reading its sub-folders.
ROUTER_FOLDERS = FolderScope.INBOX_AND_SUBFOLDERS


@dataclass
class ProfilePlan:
    spec: ProfileSpec
    name: str
    existing: EmailServerProfile | None
    incoming_sources: list[str] = field(default_factory=list)
    outgoing_sources: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    password_stored: bool = False
    migrate: bool = True

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def lacks_password(self) -> bool:
        """The profile holds the credentials and has (or will have) no password or app registration."""
        return self.spec.holds_credentials and (self.existing is None or self.existing.lacks_credentials)


@dataclass
class MailboxPlan:
    owner: Owner
    email_address: str
    existing: Mailbox | None
    profile: ProfilePlan | None
    incoming: bool
    outgoing: bool
    process_email_from: datetime | None = None
    threshold: datetime | None = None
    needs_credentials: bool = False
    delete_emails: bool | None = None
    folders: FolderScope | None = None  # None: the router did not read its mail; left as it is
    action: str = CREATE
    reason: str = ""
    changes: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.owner.key


@dataclass
class Plan:
    cutoff: datetime
    crm_urls: list[str]
    profiles: list[ProfilePlan]
    mailboxes: list[MailboxPlan]
    warnings: list[str]
    not_migrated: list[tuple[str, str]]
    skipped_people: list[str]
    notes: list[str]
    findings: list[Finding]


def build_plan(documents: list[RouterDocuments], *, selection: dict[str, bool], now: datetime) -> Plan:
    # Read without creating the settings row: a dry run writes nothing.
    organization = OrganizationSettings.objects.filter().first() or OrganizationSettings()
    cutoff = now - timedelta(hours=settings.ROUTER_MIGRATION_PROCESS_EMAIL_HOURS)
    index = OwnerIndex()
    collected = collect(documents, index=index, crm_urls=organization.crm_url_list)
    plan = Plan(
        cutoff=cutoff,
        crm_urls=organization.crm_url_list,
        profiles=[],
        mailboxes=[],
        warnings=[],
        not_migrated=list(collected.not_migrated),
        skipped_people=list(collected.skipped_people),
        notes=list(collected.notes),
        findings=[finding for router in documents for finding in router.findings],
    )
    if not organization.crm_url_list:
        plan.warnings.append(
            "The organization's CRM URLs are not set, so no router entry can be told to be this "
            "organization's: set them in System Settings > Email, then review again."
        )
    defaults = _deployment_defaults(collected, plan)
    profiles = _ProfileBook(list(EmailServerProfile.objects.all()))
    for config in collected.configs.values():
        _plan_owner(plan, config, defaults, profiles, index)
    plan.profiles = profiles.plans()
    for profile in plan.profiles:
        profile.migrate = selection.get(profile.key, True)
    _finish_mailboxes(plan, taken=set(index.mailbox_by_address))
    _router_notes(plan, documents, collected)
    return plan


# --- owners ---------------------------------------------------------------------------------------


def _deployment_defaults(collected: Collected, plan: Plan) -> dict[str, Reading]:
    """Per CRM URL, its one ownerless outgoing entry (several, or a refused one: none)."""
    chosen = {}
    for url, readings in collected.defaults.items():
        usable = [reading for reading in readings if reading.endpoint is not None]
        for reading in readings:
            if reading.refusal:
                plan.not_migrated.append((reading.source, reading.refusal))
        if len({reading.endpoint for reading in usable}) > 1:
            sources = "; ".join(reading.source for reading in usable)
            reason = f"several outgoing entries without an owner for {url}: which sends for whom is unknown"
            plan.not_migrated.append((sources, reason))
        elif usable:
            chosen[url] = usable[0]
    return chosen


def _plan_owner(
    plan: Plan, config: OwnerConfig, defaults: dict[str, Reading], profiles: _ProfileBook, index: OwnerIndex
) -> None:
    owner = config.owner
    if config.refusals:
        plan.not_migrated.append((owner.name, "; ".join(config.refusals)))
        return
    agreed_in, incoming = _one(config.incoming, "incoming", plan, owner)
    agreed_out, outgoing = _one(config.outgoing, "outgoing", plan, owner)
    if not (agreed_in and agreed_out):
        return
    if outgoing is None and _may_use_default(owner, incoming):
        outgoing = next((defaults[url] for url in sorted(config.crm_urls) if url in defaults), None)
    if incoming is None and outgoing is None:
        return
    merged = merge(incoming.endpoint if incoming else None, outgoing.endpoint if outgoing else None)
    if merged.spec is None:
        plan.not_migrated.append((owner.name, merged.refusal))
        return
    profile = profiles.plan_for(merged.spec)
    profile.password_stored |= merged.password_stored
    _add_unique(profile.warnings, merged.warnings)
    _add_unique(profile.incoming_sources, [_source(incoming)] if incoming else [])
    _add_unique(profile.outgoing_sources, [_source(outgoing)] if outgoing else [])
    mailbox = _mailbox_plan(
        plan, config, profile, index, incoming=incoming is not None, outgoing=outgoing is not None
    )
    if mailbox is not None:
        plan.mailboxes.append(mailbox)


def _may_use_default(owner: Owner, incoming: Reading | None) -> bool:
    """A forward mailbox never sends: it needs an SMTP server only to make a valid POP3/SMTP profile."""
    if owner.kind != "forward" or incoming is None or incoming.endpoint is None:
        return True
    return incoming.endpoint.protocol is Protocol.POP3


def _one(readings: list[Reading], direction: str, plan: Plan, owner: Owner) -> tuple[bool, Reading | None]:
    """The owner's one endpoint in a direction (or none); not agreed when entries differ."""
    distinct = {reading.endpoint: reading for reading in readings}
    if len(distinct) > 1:
        sources = "; ".join(reading.source for reading in readings)
        plan.not_migrated.append((owner.name, f"different {direction} servers in {sources}"))
        return False, None
    return True, next(iter(distinct.values()), None)


def _source(reading: Reading) -> str:
    endpoint = reading.endpoint
    assert endpoint is not None  # noqa: S101 -- only readings with an endpoint get here
    return f"{reading.source}: {endpoint.describe()}"


def _add_unique(target: list[str], items: list[str]) -> None:
    target += [item for item in items if item not in target]


# --- mailboxes ------------------------------------------------------------------------------------


def _mailbox_plan(
    plan: Plan,
    config: OwnerConfig,
    profile: ProfilePlan,
    index: OwnerIndex,
    *,
    incoming: bool,
    outgoing: bool,
) -> MailboxPlan | None:
    owner = config.owner
    forward = owner.kind == "forward"
    existing = (
        index.mailbox_by_address.get(owner.address) if forward else index.mailbox_by_owner.get(owner.key)
    )
    if forward and existing is not None and not existing.is_forward_mailbox:
        plan.not_migrated.append(
            (owner.name, f"the address belongs to the mailbox {existing}, not a forward mailbox")
        )
        return None
    address = _address(plan, config, existing)
    if not address:
        plan.not_migrated.append((owner.name, "no email address for a new mailbox"))
        return None
    threshold = max(config.thresholds, default=None)
    return MailboxPlan(
        owner=owner,
        email_address=address,
        existing=existing,
        profile=profile,
        incoming=incoming,
        outgoing=outgoing and not forward,
        threshold=threshold,
        process_email_from=max(plan.cutoff, threshold) if threshold else plan.cutoff,
        delete_emails=config.delete_emails if owner.kind != "user" else None,
        folders=ROUTER_FOLDERS if incoming else None,
    )


def _address(plan: Plan, config: OwnerConfig, existing: Mailbox | None) -> str:
    routed = sorted(config.addresses)
    if existing is not None:
        if routed and routed != [existing.email_address.lower()]:
            plan.warnings.append(
                f"{config.owner.name}: the router read {', '.join(routed)}; the mailbox keeps its address "
                f"{existing.email_address}."
            )
        return existing.email_address
    return routed[0] if len(routed) == 1 else config.owner.email


def _finish_mailboxes(plan: Plan, *, taken: set[str]) -> None:
    """Decide each mailbox's action once every profile and address is known;
    ``taken`` holds the (lower-case) addresses of the mailboxes there are."""
    for mailbox in plan.mailboxes:
        profile = mailbox.profile
        assert profile is not None  # noqa: S101 -- every planned mailbox has one
        if not profile.migrate:
            _skip(mailbox, f"its profile {profile.name} is not selected for migration")
        elif mailbox.existing is None and mailbox.email_address.lower() in taken:
            _skip(mailbox, f"{mailbox.email_address} is already another mailbox's address")
        else:
            if mailbox.existing is None:
                taken.add(mailbox.email_address.lower())
            mailbox.needs_credentials = _needs_credentials(mailbox, profile)
            mailbox.action, mailbox.changes = _action(mailbox, profile)
        if mailbox.action == SKIP:
            plan.not_migrated.append((f"{mailbox.owner.name} <{mailbox.email_address}>", mailbox.reason))


def _skip(mailbox: MailboxPlan, reason: str) -> None:
    mailbox.action, mailbox.reason = SKIP, reason


def _needs_credentials(mailbox: MailboxPlan, profile: ProfilePlan) -> bool:
    if profile.spec.holds_credentials:
        return profile.lacks_password
    return not (mailbox.existing and mailbox.existing.password)


def _action(mailbox: MailboxPlan, profile: ProfilePlan) -> tuple[str, list[str]]:
    existing = mailbox.existing
    if existing is None:
        return CREATE, []
    changes = []
    if existing.profile_id != (profile.existing.pk if profile.existing else None):
        changes.append(f"profile {existing.profile or '(none)'} → {profile.name}")
    if mailbox.incoming and existing.incoming_method != SSS_IN:
        changes.append(f"incoming {existing.get_incoming_method_display()} → {SSS_IN.label}")
    if mailbox.outgoing and existing.outgoing_method != SSS_OUT:
        changes.append(f"outgoing {existing.get_outgoing_method_display()} → {SSS_OUT.label}")
    if mailbox.folders and existing.folders != mailbox.folders:
        changes.append(f"folders {existing.get_folders_display()} → {mailbox.folders.label}")
    if not changes:
        return UNCHANGED, []
    if existing.incoming_enabled or existing.outgoing_enabled or existing.act_enabled:
        changes.append("switched off until tested")
    return UPDATE, changes


# --- profiles -------------------------------------------------------------------------------------


class _ProfileBook:
    """One plan per distinct spec: an existing active profile with the same
    settings is reused; a new one gets a name no other profile has."""

    def __init__(self, existing: list[EmailServerProfile]) -> None:
        self.existing = existing
        self.names = {profile.name.lower() for profile in existing}
        self.by_key: dict[str, ProfilePlan] = {}

    def plan_for(self, spec: ProfileSpec) -> ProfilePlan:
        if spec.key not in self.by_key:
            match = next(
                (p for p in self.existing if p.is_active and _same(p, spec)),
                None,
            )
            self.by_key[spec.key] = ProfilePlan(
                spec=spec, name=match.name if match else self._name(spec), existing=match
            )
        return self.by_key[spec.key]

    def plans(self) -> list[ProfilePlan]:
        return sorted(self.by_key.values(), key=lambda plan: plan.name.lower())

    def _name(self, spec: ProfileSpec) -> str:
        label = ServerType(spec.server_type).label
        hosts = [_host(spec.incoming_server_location) or "Autodiscover"]
        if facts(spec.server_type).separate_outgoing_server:
            hosts.append(_host(spec.outgoing_server_location))
        name = f"{label}: {' + '.join(hosts)}"
        if spec.username:
            name += f" ({spec.username})"
        candidate, number = name[:190], 1
        while candidate.lower() in self.names:
            number += 1
            candidate = f"{name[:190]} ({number})"
        self.names.add(candidate.lower())
        return candidate


def _host(location: str) -> str:
    return (urlsplit(location).hostname or "") if "://" in location else location


def _same(profile: EmailServerProfile, spec: ProfileSpec) -> bool:
    return all(getattr(profile, name) == value for name, value in spec.fields().items())


# --- what the files hold that is not migrated ----------------------------------------------------


def _router_notes(plan: Plan, documents: list[RouterDocuments], collected: Collected) -> None:
    for tag, count in sorted(collected.router_only.items()):
        plan.not_migrated.append(
            (f"{tag} ({count} {'entry' if count == 1 else 'entries'})", ROUTER_ONLY[tag])
        )
    for router in documents:
        if router.system_configuration:
            plan.not_migrated.append(
                (f"{router.name}: SystemConfiguration", "the router's own threads, polling and log settings")
            )
        if router.state_values_ignored:
            plan.not_migrated.append(
                (
                    f"{router.name}: StateXML ({router.state_values_ignored} of them)",
                    "the router's own position in each mailbox; server-side synchronization starts from "
                    "“process email from”",
                )
            )
        if any({"EmailPassword", "CrmPassword"} & entry.values.keys() for entry in router.entries):
            plan.not_migrated.append(
                (
                    f"{router.name}: passwords",
                    "the Email Router's cipher is undocumented, so none is decrypted",
                )
            )
    for threshold in collected.unmatched_thresholds:
        names = ", ".join(threshold.names)
        plan.notes.append(
            f"{threshold.router}: the SystemState threshold for {names} matched no migrated mailbox"
        )
    for profile in plan.profiles:
        if profile.lacks_password and profile.spec.signs_in_as_app:
            where = "The existing profile has" if profile.existing else "The profile is created with"
            profile.warnings.append(
                f"{where} no app registration yet. Exchange Online is reached through Microsoft Graph: "
                "register an app in Microsoft Entra ID (application permissions Mail.ReadWrite and "
                "Mail.Send, with admin consent) and enter its tenant id, client id and client secret or "
                "certificate on the profile. Its mailboxes are marked as needing credentials."
            )
        elif profile.lacks_password and profile.existing is not None:
            # Used as it is: say what the database holds, not what a new profile would get.
            profile.warnings.append(
                f"The existing profile has no password for {profile.spec.username} yet: enter it on the "
                "profile. Its mailboxes are marked as needing credentials."
            )
        elif profile.lacks_password:
            stored = "could not be decrypted" if profile.password_stored else "was not in the files"
            profile.warnings.append(
                f"The password for {profile.spec.username} {stored}: the profile is created without it; "
                "enter it on the profile. Its mailboxes are marked as needing credentials."
            )
        elif not profile.spec.holds_credentials:
            profile.warnings.append(
                "Each mailbox signs in with its own credentials (the router's “user specified” ones live in "
                "the CRM); mailboxes without them are marked as needing credentials."
            )
