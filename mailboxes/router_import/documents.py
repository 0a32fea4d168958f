"""Read one router's three parsed files into entries, thresholds and findings.

Nothing here decides what an entry becomes; it only says what the files hold
and lists, verbatim, every tag it did not understand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from xml.etree.ElementTree import Element

from mailboxes.router_import import xmlsafe
from mailboxes.router_import.errors import RouterImportError
from mailboxes.router_import.files import AGENT_FILE, KEY_FILE, STATE_FILE, RouterFiles
from mailboxes.router_import.tags import (
    BY_WRITTEN_NAME,
    CONFIRMED_SPELLINGS,
    REPEATABLE,
    STATE_BY_WRITTEN_NAME,
    local_name,
    verbatim,
)

_ID_SEPARATORS = re.compile(r"[;,\s]+")
_US_DATE_FORMATS = ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y")


@dataclass
class Finding:
    """Something in a file the importer did not understand (or read another way)."""

    router: str
    file: str
    where: str
    text: str

    def as_dict(self) -> dict[str, str]:
        return {"router": self.router, "file": self.file, "where": self.where, "text": self.text}


@dataclass
class Entry:
    """One ``ProviderConfiguration``: values by canonical tag name."""

    router: str
    number: int
    values: dict[str, list[str]] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.router}, provider entry {self.number}"

    def get(self, name: str) -> str:
        values = self.values.get(name)
        return values[0] if values else ""

    def ids(self, name: str) -> list[str]:
        """One or more GUIDs, in repeated tags or one tag split by ; , or spaces."""
        found = []
        for value in self.values.get(name, []):
            found += [normalize_id(part) for part in _ID_SEPARATORS.split(value) if part.strip("{} ")]
        return found


@dataclass
class Threshold:
    """The SystemState high-water mark of one mailbox."""

    router: str
    when: datetime
    addresses: list[str]
    ids: list[str]
    hashes: list[str] = field(default_factory=list)  # the IdentityHash of the entry it belongs to

    @property
    def names(self) -> list[str]:
        """How it names its mailbox, for the review."""
        return [*self.addresses, *self.ids, *(f"IdentityHash {value}" for value in self.hashes)]


@dataclass
class RouterDocuments:
    name: str
    position: int
    entries: list[Entry]
    thresholds: list[Threshold]
    findings: list[Finding]
    state_values_ignored: int = 0
    system_configuration: bool = False
    ignored_files: list[str] = field(default_factory=list)


def normalize_id(value: str) -> str:
    return value.strip().strip("{}").strip().lower()


def parse_date(text: str) -> datetime | None:
    """ISO 8601 (with .NET's seven fractional digits) or the US format the
    router's locale may have written; a date without a zone is taken as UTC."""
    text = text.strip()
    iso = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        parsed = None
        for pattern in _US_DATE_FORMATS:
            try:
                parsed = datetime.strptime(text, pattern)  # noqa: DTZ007 -- made aware just below
                break
            except ValueError:
                continue
    if parsed is None:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def read_router(router: RouterFiles) -> RouterDocuments:
    """Parse the key file first (the router reads the agent file only after it),
    then the state and agent files."""
    xmlsafe.parse(router.files[KEY_FILE])  # well-formed and safe; its key is never used
    state_root = xmlsafe.parse(router.files[STATE_FILE])
    agent_root = xmlsafe.parse(router.files[AGENT_FILE])
    findings: list[Finding] = []
    documents = RouterDocuments(
        name=router.name,
        position=router.position,
        entries=_entries(router.name, agent_root, findings),
        thresholds=[],
        findings=findings,
        system_configuration=any(local_name(child.tag) == "SystemConfiguration" for child in agent_root),
        ignored_files=router.ignored,
    )
    _read_state(documents, state_root)
    return documents


# --- the agent file ------------------------------------------------------------------------------


def _entries(router: str, root: Element, findings: list[Finding]) -> list[Entry]:
    if local_name(root.tag) != "Configuration":
        raise RouterImportError(
            f"{router}, {AGENT_FILE}: the root element is <{local_name(root.tag)}>, not <Configuration>; "
            "is this the Email Router's configuration file?"
        )
    entries: list[Entry] = []
    for child in root:
        name = local_name(child.tag)
        if name == "ProviderConfiguration":
            entries.append(_entry(router, len(entries) + 1, child, findings))
        elif name != "SystemConfiguration":
            hint = (
                " (the Email Router matches ProviderConfiguration case-sensitively, so it ignored this too)"
                if name.lower() == "providerconfiguration"
                else ""
            )
            findings.append(
                Finding(router, AGENT_FILE, "Configuration", f"{verbatim(child.tag)} ignored{hint}")
            )
        for nested in child.iter():
            if nested is not child and local_name(nested.tag) == "ProviderConfiguration":
                findings.append(
                    Finding(
                        router,
                        AGENT_FILE,
                        f"<{name}>",
                        "<ProviderConfiguration> nested inside another element ignored (the Email "
                        "Router reads only those directly under <Configuration>)",
                    )
                )
    return entries


def _entry(router: str, number: int, element: Element, findings: list[Finding]) -> Entry:
    entry = Entry(router=router, number=number)
    where = f"provider entry {number}"
    for child in element:
        written = local_name(child.tag)
        canonical = BY_WRITTEN_NAME.get(written.lower())
        if canonical is None:
            findings.append(Finding(router, AGENT_FILE, where, f"{verbatim(child.tag)} not understood"))
            continue
        if len(child):
            findings.append(Finding(router, AGENT_FILE, where, f"<{written}> has child elements; ignored"))
            continue
        if canonical in entry.values and canonical not in REPEATABLE:
            findings.append(
                Finding(router, AGENT_FILE, where, f"<{written}> given again; the first one is used")
            )
            continue
        if written.lower() not in CONFIRMED_SPELLINGS:
            entry.aliases.append(f"<{written}> read as {canonical}")
        entry.values.setdefault(canonical, []).append((child.text or "").strip())
    return entry


# --- the system state file -----------------------------------------------------------------------


def _read_state(documents: RouterDocuments, root: Element) -> None:
    """Every element holding a ThresholdDate is one mailbox's state; it names the
    mailbox by EmailAddress, UserId or QueueId among its children or attributes,
    or names its provider entry by that entry's IdentityHash. A StateXML value is
    the router's own, opaque state: counted, never read."""
    for element in _state_elements(root):
        if any(_state_name(child) == "ThresholdDate" for child in element):
            _read_one_state(documents, element)
        elif not len(element) and _state_name(element) is None:
            documents.findings.append(
                Finding(documents.name, STATE_FILE, "SystemState", f"{verbatim(element.tag)} not understood")
            )


def _state_elements(element: Element) -> list[Element]:
    found = []
    for child in element:
        found.append(child)
        if _state_name(child) != "StateXML":
            found += _state_elements(child)
    return found


def _read_one_state(documents: RouterDocuments, element: Element) -> None:
    where = f"<{local_name(element.tag)}>"
    values = {name: value for key, value in element.attrib.items() if (name := _state_name_of(key))}
    for child in element:
        name = _state_name(child)
        if name is not None:
            values.setdefault(name, (child.text or "").strip())
    if "StateXML" in values:
        documents.state_values_ignored += 1
    when = parse_date(values.get("ThresholdDate", ""))
    addresses = [values["EmailAddress"].lower()] if values.get("EmailAddress") else []
    ids = [normalize_id(values[key]) for key in ("UserId", "QueueId") if values.get(key)]
    hashes = [values["IdentityHash"].strip()] if values.get("IdentityHash", "").strip() else []
    if when is None:
        text = f"ThresholdDate {values.get('ThresholdDate', '')!r} not understood"
        documents.findings.append(Finding(documents.name, STATE_FILE, where, text))
    elif not (addresses or ids or hashes):
        text = "ThresholdDate without EmailAddress, UserId or QueueId; not used"
        documents.findings.append(Finding(documents.name, STATE_FILE, where, text))
    else:
        documents.thresholds.append(Threshold(documents.name, when, addresses, ids, hashes))


def _state_name(element: Element) -> str | None:
    return STATE_BY_WRITTEN_NAME.get(local_name(element.tag).lower())


def _state_name_of(attribute: str) -> str | None:
    return STATE_BY_WRITTEN_NAME.get(local_name(attribute).lower())
