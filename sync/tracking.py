"""Which incoming mail becomes an activity, what it correlates to, and who its
parties are. The business rules of tracking live here and nowhere else; which
mail is tracked is decided by one function, ``decide_message``."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Protocol

from django.db import connection
from django.db.models import Model, Q

from crm.choices import TrackIncomingEmail
from crm.models import Account, Contact, CrmUser, EmailActivity, Lead, OrganizationSettings, Queue
from mailboxes.models import Mailbox
from sync import auto_replies, clock
from sync.auto_replies import DeliveryReport
from sync.models import EmailHash, ReceiptOutcome
from sync.parsing import ParsedMessage, identity_for
from sync.receipts import TEST_MESSAGE_HEADER
from sync.sql import quoted

# Resolution order when an address belongs to several kinds of record.
PARTY_MODELS: tuple[tuple[str, type[Model]], ...] = (
    ("user", CrmUser),
    ("queue", Queue),
    ("contact", Contact),
    ("account", Account),
    ("lead", Lead),
)
CUSTOMER_KINDS = {"contact", "account", "lead"}
# Outlook's Thread-Index: 1 reserved byte, a 5-byte FILETIME and a 16-byte GUID
# name the conversation; each reply appends 5 bytes.
THREAD_INDEX_HEADER_BYTES = 22
SMART_MATCHING_DAYS = 90


@dataclass(frozen=True)
class Correlation:
    email: EmailActivity | None
    method: str = EmailActivity.CorrelationMethod.NONE


@dataclass(frozen=True)
class Decision:
    track: bool
    outcome: str


def tracking_option(mailbox: Mailbox) -> str:
    """The owner's "track incoming email" option, or a queue's "convert incoming email"."""
    if mailbox.user_id:
        return mailbox.user.track_incoming_email  # type: ignore[union-attr]
    if mailbox.queue_id:
        return mailbox.queue.convert_incoming_email  # type: ignore[union-attr]
    return TrackIncomingEmail.ALL


def correlate(parsed: ParsedMessage, organization: OrganizationSettings) -> Correlation:
    """In order: In-Reply-To and References against CRM Message-IDs, the tracking
    token, the conversation (Thread-Index or the References root), smart matching."""
    if organization.correlation_enabled:
        found = _replied_to(parsed)
        if found is not None:
            return Correlation(found, EmailActivity.CorrelationMethod.IN_REPLY_TO)
    token = tracking_token_in(parsed.subject, organization)
    if token:
        found = EmailActivity.objects.filter(tracking_token=token).order_by("id").first()
        if found is not None:
            return Correlation(found, EmailActivity.CorrelationMethod.TRACKING_TOKEN)
    if organization.correlation_enabled:
        return _in_conversation(parsed) or _smart_match(parsed, organization) or Correlation(None)
    return Correlation(None)


def _replied_to(parsed: ParsedMessage) -> EmailActivity | None:
    """The CRM email this one answers: the nearest of In-Reply-To, then References
    from the newest back, in one query for all of them."""
    identities = replied_to_identities(parsed)
    if not identities:
        return None
    found = {
        email.message_identity: email
        for email in EmailActivity.objects.filter(message_identity__in=identities, copy_owner__isnull=True)
    }
    return next((found[identity] for identity in identities if identity in found), None)


def replied_to_identities(parsed: ParsedMessage) -> list[str]:
    """The identities of the messages this one answers, nearest first."""
    return [
        identity_for(message_id, b"")
        for message_id in [*reversed(parsed.in_reply_to), *reversed(parsed.references)]
    ]


def conversation_id_for(parsed: ParsedMessage) -> str:
    """The conversation a message belongs to: the first 22 bytes of its
    Thread-Index, else the root of its References chain, else itself."""
    header = thread_index_header(parsed)
    if header:
        return "thread-index:" + header.hex()
    root = (parsed.references or parsed.in_reply_to or [parsed.message_id or parsed.identity])[0]
    return f"root:{root}"[:255]


def conversation_of(parsed: ParsedMessage, correlated: EmailActivity | None) -> str:
    """A stored email's conversation: its own headers say it when they point
    anywhere, else the conversation of the email it correlated with."""
    own_headers = thread_index_header(parsed) or parsed.references or parsed.in_reply_to
    if not own_headers and correlated is not None and correlated.conversation_id:
        return correlated.conversation_id
    return conversation_id_for(parsed)


def thread_index_header(parsed: ParsedMessage) -> bytes:
    try:
        decoded = base64.b64decode(parsed.header("thread-index").strip(), validate=True)
    except (binascii.Error, ValueError):
        return b""
    return decoded[:THREAD_INDEX_HEADER_BYTES] if len(decoded) >= THREAD_INDEX_HEADER_BYTES else b""


def continues_conversation(parsed: ParsedMessage) -> bool:
    """Whether the message's headers point at an earlier one (a message that
    starts a conversation has nothing earlier to join)."""
    return bool(thread_index_header(parsed) or parsed.references or parsed.in_reply_to)


def _in_conversation(parsed: ParsedMessage) -> Correlation | None:
    if not continues_conversation(parsed):
        return None
    found = (
        EmailActivity.objects.filter(conversation_id=conversation_id_for(parsed), copy_owner__isnull=True)
        .exclude(message_identity=parsed.identity)
        .order_by("-created_on", "-id")
        .first()
    )
    return Correlation(found, EmailActivity.CorrelationMethod.CONVERSATION_INDEX) if found else None


# --- smart matching -------------------------------------------------------------------------------


def subject_keywords(subject: str, organization: OrganizationSettings) -> list[str]:
    """The subject's words, lower-cased, less the filter keywords, punctuation and
    the tracking token; at most the organization's maximum."""
    if organization.tracking_token_prefix:
        subject = re.sub(rf"{re.escape(organization.tracking_token_prefix)}:\d+", " ", subject)
    ignored = {word.strip().lower() for word in organization.smart_matching_filter_keywords.splitlines()}
    words = [word for word in re.findall(r"[^\W_]+", subject.lower()) if word not in ignored]
    return list(dict.fromkeys(words))[: organization.smart_matching_max_hash_count]


def recipient_addresses(parsed: ParsedMessage, organization: OrganizationSettings) -> list[str]:
    """Every address on the message, sender included, so a reply (which swaps
    sender and recipient) shares them; lower-cased, at most the maximum."""
    unique = sorted({a.address.lower() for a in parsed.addresses})
    return unique[: organization.smart_matching_max_hash_count]


def _hashes(parsed: ParsedMessage, organization: OrganizationSettings) -> list[tuple[EmailHash.Kind, str]]:
    def digest(value: str) -> str:
        return hashlib.sha256(value.encode()).hexdigest()

    return [(EmailHash.Kind.SUBJECT, digest(w)) for w in subject_keywords(parsed.subject, organization)] + [
        (EmailHash.Kind.RECIPIENT, digest(a)) for a in recipient_addresses(parsed, organization)
    ]


def remember_hashes(
    *, email: EmailActivity, parsed: ParsedMessage, organization: OrganizationSettings
) -> None:
    """Store an email's smart-matching fingerprints (whether or not smart matching
    is on now, so turning it on finds the last 90 days)."""
    EmailHash.objects.bulk_create(hashes_of(email=email, parsed=parsed, organization=organization))


def hashes_of(
    *, email: EmailActivity, parsed: ParsedMessage, organization: OrganizationSettings
) -> list[EmailHash]:
    """An email's smart-matching fingerprints as rows, not yet saved."""
    now = clock.now()
    return [
        EmailHash(email=email, kind=kind, value=value, created_on=now)
        for kind, value in _hashes(parsed, organization)
    ]


def _smart_match(parsed: ParsedMessage, organization: OrganizationSettings) -> Correlation | None:
    """The most recent email of the last 90 days whose subject keywords differ
    by at most the allowed delta and that shares enough recipients."""
    if not organization.smart_matching_enabled:
        return None
    hashes = _hashes(parsed, organization)
    subjects = {value for kind, value in hashes if kind == EmailHash.Kind.SUBJECT}
    recipients = {value for kind, value in hashes if kind == EmailHash.Kind.RECIPIENT}
    if not subjects or len(recipients) < organization.smart_matching_min_recipient_matches:
        return None
    since = clock.now() - timedelta(days=SMART_MATCHING_DAYS)
    # Each kind on its own, so the lookup uses the (kind, value, created_on) index.
    rows = EmailHash.objects.filter(
        Q(kind=EmailHash.Kind.SUBJECT, value__in=subjects)
        | Q(kind=EmailHash.Kind.RECIPIENT, value__in=recipients),
        created_on__gte=since,
    ).values_list("email_id", "kind")
    shared: dict[str, Counter[int]] = {EmailHash.Kind.SUBJECT: Counter(), EmailHash.Kind.RECIPIENT: Counter()}
    for email_id, kind in rows:
        shared[kind][email_id] += 1
    enough = organization.smart_matching_min_recipient_matches
    candidates = [
        email_id
        for email_id, count in shared[EmailHash.Kind.RECIPIENT].items()
        if count >= enough and shared[EmailHash.Kind.SUBJECT][email_id]
    ]
    totals = Counter(
        EmailHash.objects.filter(email_id__in=candidates, kind=EmailHash.Kind.SUBJECT).values_list(
            "email_id", flat=True
        )
    )
    delta = organization.smart_matching_subject_delta
    matching = [
        email_id
        for email_id in candidates
        # Keywords only one side has: the other's extra words plus ours it lacks.
        if (totals[email_id] - shared[EmailHash.Kind.SUBJECT][email_id])
        + (len(subjects) - shared[EmailHash.Kind.SUBJECT][email_id])
        <= delta
    ]
    found = (
        EmailActivity.objects.filter(pk__in=matching, copy_owner__isnull=True)
        .exclude(message_identity=parsed.identity)
        .order_by("-created_on", "-id")
        .first()
    )
    return Correlation(found, EmailActivity.CorrelationMethod.SMART_MATCHING) if found else None


def tracking_token_in(subject: str, organization: OrganizationSettings) -> str:
    if not organization.tracking_token_enabled:
        return ""
    match = re.search(rf"{re.escape(organization.tracking_token_prefix)}:\d+", subject)
    return match.group(0) if match else ""


Party = tuple[str, int]
"""A resolved address: the kind of record (``PARTY_MODELS``) and its primary key."""


class Parties:
    """Addresses -> CRM records: one query for all the addresses asked at once,
    each answer remembered for the run (so a sender seen on every message of a
    run is looked up once). Lookups compare ``LOWER(email)``, which the models'
    lower-case email indexes serve."""

    def __init__(self, organization: OrganizationSettings) -> None:
        self.organization = organization
        self._found: dict[str, Party | None] = {}

    def lookup(self, addresses: Iterable[str]) -> None:
        missing = {address.lower() for address in addresses} - self._found.keys()
        if missing:
            self._found.update(_resolve_all(missing, self.organization))

    def of(self, address: str) -> Party | None:
        """The record an address belongs to. Several records of the first kind
        that matches: the oldest, unless the organization leaves such parties unresolved."""
        self.lookup([address])
        return self._found[address.lower()]

    def remember(self, address: str, party: Party) -> None:
        """A record created during the run (a contact for a new sender)."""
        self._found[address.lower()] = party


def _resolve_all(addresses: set[str], organization: OrganizationSettings) -> dict[str, Party | None]:
    matches: dict[str, dict[str, list[int]]] = {address: {} for address in addresses}
    for kind, address, pk in _matching_rows(addresses, active_only=True):
        matches[address].setdefault(kind, []).append(pk)
    return {address: _first_kind(found, organization) for address, found in matches.items()}


def _first_kind(found: dict[str, list[int]], organization: OrganizationSettings) -> Party | None:
    for kind, _ in PARTY_MODELS:
        pks = sorted(found.get(kind, []))
        if len(pks) > 1 and organization.set_unresolved_when_multiple_matches:
            return None
        if pks:
            return kind, pks[0]
    return None


def _matching_rows(addresses: set[str], *, active_only: bool) -> list[tuple[str, str, int]]:
    """(kind, lower-case address, pk) of every record with one of the addresses,
    in one UNION ALL over the five kinds. Written as SQL: this runs for every
    message, and building the five querysets and their union cost several
    times the statement itself; ``LOWER(email) IN`` is what the lower-case
    email indexes serve."""
    placeholders = ", ".join(["%s"] * len(addresses))
    ordered = sorted(addresses)
    selects, params = [], []
    for kind, model in PARTY_MODELS:
        table, email, pk, is_active = quoted(model, "email", "id", "is_active")
        active = f" AND {is_active}" if active_only else ""
        # Only identifiers from the models' metadata (quoted) and the constant kinds
        # are written into the statement; the addresses are parameters.
        selects.append(
            f"SELECT '{kind}', LOWER({email}), {pk} FROM {table} "  # noqa: S608
            f"WHERE LOWER({email}) IN ({placeholders}){active}"
        )
        params += ordered
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(selects), params)
        return [(kind, address, pk) for kind, address, pk in cursor.fetchall()]


# --- which mail is tracked ------------------------------------------------------------------------


class Unknown(Enum):
    """A lookup's answer when only the database can tell (a batch's overlay of
    it, asked about smart matching or a second user's copy)."""

    UNKNOWN = "unknown"


UNKNOWN = Unknown.UNKNOWN


class Lookups(Protocol):
    """What the rules ask beyond the message and its mailbox, each only when the
    rules before it have not decided already: the one-message pipeline answers
    from the database (each answer a query), a batch from what it has read and
    added."""

    @property
    def organization(self) -> OrganizationSettings:
        """The organization's settings."""
        ...

    def sender(self, parsed: ParsedMessage) -> Party | None:
        """The CRM record the sender's address belongs to (``Parties.of``)."""
        ...

    def stored(self, parsed: ParsedMessage, copy_owner: CrmUser | None) -> EmailActivity | Unknown | None:
        """The activity already stored under the message's identity: ``copy_owner``'s
        own copy, or (None) the one activity everyone shares."""
        ...

    def correlation(self, parsed: ParsedMessage) -> Correlation | Unknown:
        """What ``correlate`` finds."""
        ...

    def stored_for_anyone(self, parsed: ParsedMessage) -> bool | Unknown:
        """Whether any activity, a copy or not, holds the message's identity."""
        ...


@dataclass(frozen=True, slots=True)
class NotTracked:
    """A receipt and nothing more; ``outcome`` says why: a serversync test
    message, the owner's option, no correlation, the sender not a CRM record."""

    outcome: str


@dataclass(frozen=True, slots=True)
class Automatic:
    """An auto-reply, bounce or read receipt: never tracked. ``report`` is a
    bounce's delivery report, whose failed recipients are to be marked on the
    CRM email it names (then the receipt is a bounce's, else an auto-reply's)."""

    report: DeliveryReport | None


@dataclass(frozen=True, slots=True)
class Link:
    """Already an activity in the CRM: the receipt links to it (and a queue's
    mailbox puts it in the queue)."""

    email: EmailActivity


@dataclass(frozen=True, slots=True)
class Track:
    """A new activity. ``copy_owner``: "two activities between users", the
    recipient's own copy of a CRM user's email. ``may_create_contact``: the
    owner's option makes a contact of the sender, unless the database knows the
    address (active or not; ``creates_contact``)."""

    correlation: Correlation
    copy_owner: CrmUser | None
    may_create_contact: bool


@dataclass(frozen=True, slots=True)
class NeedsDatabase:
    """A lookup answered ``UNKNOWN``: only the one-message pipeline, which asks
    the database, can decide this message."""


Verdict = NotTracked | Automatic | Link | Track | NeedsDatabase

_TEST_MESSAGE = NotTracked(ReceiptOutcome.TEST_MESSAGE)
_AUTO_REPLY = Automatic(None)
_NEEDS_DATABASE = NeedsDatabase()


def decide_message(parsed: ParsedMessage, raw: bytes, mailbox: Mailbox, lookups: Lookups) -> Verdict:
    """What an incoming message becomes in ``mailbox``, by every rule of tracking
    in order: serversync's test message, mail written by machines, the activity
    already stored, correlation, the owner's option and "two activities between
    users". It decides and writes nothing; the caller carries the verdict out.
    (Whether the mailbox saw the message before, and the identity it is stored
    under, are settled before: ``sync.identities``. "Process email from" is
    decided when the message is fetched, before it is parsed or given a receipt:
    ``fetch_cutoff`` below.)

    What the rules need beyond the message comes through ``lookups``, asked
    lazily and in the rules' order, rather than as values gathered beforehand:
    on the one-message path each answer is a query (pinned by
    tests/sync/test_incoming_queries.py), and the answers depend on the rules
    before them (the activity looked for depends on the copy owner; correlation
    is not asked of a message already stored). A batch answers from memory and
    says ``UNKNOWN`` where only the database can tell; the verdict is then
    ``NeedsDatabase``, and the message goes one by one. Nothing is written; the
    database is read only by the caller's lookups, and by Django when the
    mailbox's user or queue (its options) was not loaded with the mailbox.
    """
    if parsed.header(TEST_MESSAGE_HEADER):
        return _TEST_MESSAGE
    if auto_replies.is_automatic(parsed):
        report = auto_replies.delivery_report(parsed, raw)
        return Automatic(report) if report is not None else _AUTO_REPLY
    organization = lookups.organization
    sender = lookups.sender(parsed)
    copy_owner = copy_owner_for(mailbox, sender, organization)
    existing = lookups.stored(parsed, copy_owner)
    if isinstance(existing, Unknown):
        return _NEEDS_DATABASE
    if existing is not None:
        return Link(existing)
    correlation = lookups.correlation(parsed)
    if isinstance(correlation, Unknown):
        return _NEEDS_DATABASE
    decision = decide(tracking_option(mailbox), correlation, sender)
    if copy_owner is not None:
        sender_has_it = lookups.stored_for_anyone(parsed)
        if isinstance(sender_has_it, Unknown):
            return _NEEDS_DATABASE
        if sender_has_it:
            # The sender's email is in the CRM already; the recipient's copy is tracked beside it.
            decision = Decision(True, ReceiptOutcome.TRACKED)
    if not decision.track:
        return NotTracked(decision.outcome)
    return Track(correlation, copy_owner, may_create_contact(mailbox, parsed))


def decide(option: str, correlation: Correlation, sender: Party | tuple[str, Model] | None) -> Decision:
    """Track or not, per the owner's option. A reply to CRM email is tracked under
    every option but None, as the options add to tracking responses."""
    if option == TrackIncomingEmail.NONE:
        return Decision(False, ReceiptOutcome.NOT_TRACKED_OPTION)
    if option == TrackIncomingEmail.ALL or correlation.email is not None:
        return Decision(True, ReceiptOutcome.TRACKED)
    if option == TrackIncomingEmail.RESPONSES_TO_CRM:
        return Decision(False, ReceiptOutcome.NO_CORRELATION)
    if option == TrackIncomingEmail.FROM_CRM_RECORDS and sender is not None and sender[0] in CUSTOMER_KINDS:
        return Decision(True, ReceiptOutcome.TRACKED)
    if option == TrackIncomingEmail.FROM_EMAIL_ENABLED and sender is not None:
        return Decision(True, ReceiptOutcome.TRACKED)
    return Decision(False, ReceiptOutcome.SENDER_NOT_CRM)


def copy_owner_for(
    mailbox: Mailbox, sender: Party | tuple[str, Model] | None, organization: OrganizationSettings
) -> CrmUser | None:
    """With "track email sent between two users as two activities" on, mail from
    one CRM user to another becomes the recipient's own activity: its copy owner."""
    if not organization.track_email_between_users_as_two_activities or mailbox.user is None:
        return None
    if sender is None or sender[0] != "user" or _pk(sender[1]) == mailbox.user_id:
        return None
    return mailbox.user


def creates_contact(mailbox: Mailbox, parsed: ParsedMessage) -> bool:
    """The owner's personal option: an unknown sender of tracked mail becomes a
    contact. Queues have no such option; a known address (active or not) is never duplicated."""
    if not may_create_contact(mailbox, parsed) or parsed.sender is None:
        return False
    return not _matching_rows({parsed.sender.address.lower()}, active_only=False)


def may_create_contact(mailbox: Mailbox, parsed: ParsedMessage) -> bool:
    """Whether the owner's option could make a contact of the sender (without
    asking the database whether the sender is known)."""
    return mailbox.user is not None and mailbox.user.auto_create_contacts and parsed.sender is not None


def _pk(record: int | Model) -> int | None:
    return record if isinstance(record, int) else record.pk


def fetch_cutoff(mailbox: Mailbox) -> datetime | None:
    """ "Process email from": mail the server received before the later of the
    mailbox's and the profile's date is left alone, unparsed and without a
    receipt (as Dynamics 365 leaves it), so the engine asks this before fetching
    a message's body rather than ``decide_message`` after."""
    dates = [
        d
        for d in (
            mailbox.process_email_received_after,
            mailbox.profile and mailbox.profile.process_email_from,
        )
        if d
    ]
    return max(dates) if dates else None
