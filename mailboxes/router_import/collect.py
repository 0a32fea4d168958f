"""Gather every entry of this organization under the owner it belongs to.

An entry for another organization, for a person serversync does not know, or
that cannot be read as a server is set aside with its reason; an outgoing
entry with no owner is its deployment's default outgoing server, used by every
owner of that CRM URL without an outgoing entry of its own.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from mailboxes.router_import.documents import Entry, RouterDocuments, Threshold, parse_date
from mailboxes.router_import.endpoints import INCOMING, OUTGOING, Reading, read_endpoint
from mailboxes.router_import.owners import Owner, OwnerIndex
from mailboxes.router_import.tags import ROUTER_ONLY

_TRUE = {"true", "1", "yes", "on"}


def normalize_url(url: str) -> str:
    """Compare CRM URLs without case, default ports or a trailing slash."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    return f"{scheme}://{host}{parts.path.rstrip('/').lower()}"


@dataclass
class OwnerConfig:
    owner: Owner
    incoming: list[Reading] = field(default_factory=list)
    outgoing: list[Reading] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    addresses: set[str] = field(default_factory=set)  # the router's address(es) for this mailbox
    ids: set[str] = field(default_factory=set)
    hashes: set[str] = field(default_factory=set)  # the IdentityHash of each of its entries
    crm_urls: set[str] = field(default_factory=set)
    thresholds: list[datetime] = field(default_factory=list)
    delete_emails: bool | None = None


@dataclass
class Collected:
    configs: dict[str, OwnerConfig] = field(default_factory=dict)
    defaults: dict[str, list[Reading]] = field(default_factory=dict)  # CRM URL -> ownerless outgoing
    not_migrated: list[tuple[str, str]] = field(default_factory=list)
    skipped_people: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    router_only: Counter[str] = field(default_factory=Counter)
    unmatched_thresholds: list[Threshold] = field(default_factory=list)


def collect(documents: list[RouterDocuments], *, index: OwnerIndex, crm_urls: list[str]) -> Collected:
    collected = Collected()
    wanted = {normalize_url(url) for url in crm_urls}
    for router in documents:
        for entry in router.entries:
            _add_entry(collected, entry, index=index, wanted=wanted)
    for router in documents:
        for threshold in router.thresholds:
            _add_threshold(collected, threshold)
    return collected


def _add_entry(collected: Collected, entry: Entry, *, index: OwnerIndex, wanted: set[str]) -> None:
    for tag in ROUTER_ONLY:
        if tag in entry.values:
            collected.router_only[tag] += 1
    url = entry.get("CrmServerUrl")
    if not wanted:
        collected.not_migrated.append((entry.label, "the organization's CRM URLs are not set (Settings)"))
        return
    if not url:
        collected.not_migrated.append((entry.label, "no CrmServerUrl: the organization it serves is unknown"))
        return
    if normalize_url(url) not in wanted:
        collected.not_migrated.append((entry.label, f"for another organization ({url})"))
        return
    reading = read_endpoint(entry)
    collected.notes += [f"{reading.source}: {note}" for note in reading.notes]
    owners = _owners(collected, entry, reading, index)
    for owner in owners:
        _attach(collected.configs.setdefault(owner.key, OwnerConfig(owner)), entry, reading, len(owners) == 1)
        collected.configs[owner.key].crm_urls.add(normalize_url(url))


def _owners(collected: Collected, entry: Entry, reading: Reading, index: OwnerIndex) -> list[Owner]:
    address = entry.get("EmailAddress").lower()
    if entry.get("IsForwardMailbox").lower() in _TRUE:
        if not address:
            collected.not_migrated.append((entry.label, "a forward mailbox without an EmailAddress"))
            return []
        return [Owner("forward", address=address)]
    ownerless = not (entry.ids("UserId") or entry.ids("QueueId") or address)
    if ownerless and reading.direction == OUTGOING:
        url = normalize_url(entry.get("CrmServerUrl"))
        collected.defaults.setdefault(url, []).append(reading)
        return []
    resolution = index.resolve(entry)
    collected.skipped_people += resolution.skipped
    collected.notes += resolution.notes
    if not resolution.owners and reading.refusal:
        # Whoever it belongs to, the server cannot be migrated (WebDAV, a custom
        # provider): said here too, so that adding the person later is no surprise.
        collected.not_migrated.append((reading.source, reading.refusal))
    return resolution.owners


def _attach(config: OwnerConfig, entry: Entry, reading: Reading, only_owner: bool) -> None:
    if reading.refusal:
        config.refusals.append(f"{reading.source}: {reading.refusal}")
    elif reading.direction == INCOMING:
        config.incoming.append(reading)
        if only_owner and entry.get("EmailAddress"):
            config.addresses.add(entry.get("EmailAddress").lower())
    else:
        config.outgoing.append(reading)
    config.ids |= set(entry.ids("UserId")) | set(entry.ids("QueueId"))
    if entry.get("IdentityHash"):
        config.hashes.add(entry.get("IdentityHash"))
    if entry.get("ThresholdDateTime") and (when := parse_date(entry.get("ThresholdDateTime"))):
        config.thresholds.append(when)
    if entry.get("DeleteEmails"):
        config.delete_emails = entry.get("DeleteEmails").lower() in _TRUE


def _add_threshold(collected: Collected, threshold: Threshold) -> None:
    matched = False
    for config in collected.configs.values():
        mine = (config.addresses | {config.owner.email}) if config.owner.email else config.addresses
        if (
            set(threshold.addresses) & mine
            or set(threshold.ids) & config.ids
            or set(threshold.hashes) & config.hashes
        ):
            config.thresholds.append(threshold.when)
            matched = True
    if not matched:
        collected.unmatched_thresholds.append(threshold)
