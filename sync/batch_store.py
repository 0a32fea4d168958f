"""Storing a batch of incoming messages with a few statements for all of them.

``one_message.receipt_for`` decides and stores one message at a time: a dozen
statements a message, most of an initial sync's time. Here the same rules
(``tracking``, ``identities``, ``activity_store``, ``receipts``) run over a
batch: what the database holds about all of its messages is read first, one
statement per kind of fact; each message is decided in memory by
``tracking.decide_message``, its lookups answered from what was read and what
the messages before it in the batch add (a reply to one a moment earlier, a
second message reusing a Message-ID); and the rows are written with one
INSERT per table.

The uncommon cases go through the one-message pipeline (``one_by_one``), in
their place: a message seen before, a delivery report, a second user's copy,
a contact to create, smart matching. What
the batch decided before such a message is written first, and what comes after
it is read again. If writing fails (a message another mailbox stored a moment
ago, a value the database refuses, a statement over the time limit), the
batch's savepoint rolls back and each of its messages goes one by one, where
such failures are handled per message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import DatabaseError, transaction
from django.db.models import F, OrderBy, QuerySet, Window
from django.db.models.functions import RowNumber

from crm.models import CrmUser, EmailActivity, OrganizationSettings, QueueItem
from sync import activity_store, identities, tracking
from sync.models import Receipt, ReceiptOutcome
from sync.parsing import ParsedMessage
from sync.receipts import Source, build_receipt

# What correlation reads of an email it may correlate with (its regarding records by key).
_CORRELATED_FIELDS = (
    "id",
    "message_identity",
    "content_fingerprint",
    "conversation_id",
    "tracking_token",
    "regarding_account_id",
    "regarding_contact_id",
    "regarding_lead_id",
)


@dataclass
class Pending:
    """A parsed message waiting for its batch to be stored."""

    source: Source
    raw: bytes
    parsed: ParsedMessage
    # The identity parsing gave it: deciding may turn it into a variant's, which a
    # message sent one by one after all must not carry in.
    base_identity: str = field(init=False)

    def __post_init__(self) -> None:
        self.base_identity = self.parsed.identity


OneByOne = Callable[[Pending], Receipt]


def store_batch(items: list[Pending], *, parties: tracking.Parties, one_by_one: OneByOne) -> list[Receipt]:
    """The receipts of ``items``, in their order, stored inside the caller's transaction."""
    receipts: list[Receipt] = []
    rest = items
    while rest:
        batch = _Batch(_Known.read(rest, parties), parties)
        taken = batch.take_while(rest)
        receipts += batch.write(one_by_one)
        if taken < len(rest):
            receipts.append(_one(one_by_one, rest[taken]))
            taken += 1
        rest = rest[taken:]
    return receipts


def _one(one_by_one: OneByOne, item: Pending) -> Receipt:
    item.parsed.identity = item.base_identity
    return one_by_one(item)


@dataclass
class _Known:
    """What the database holds about a batch's messages."""

    # identity -> (mailbox, content fingerprint) of every receipt under it
    receipts: dict[str, list[tuple[int, str]]]
    # identity -> the email activity under it (not a second user's copy)
    emails: dict[str, EmailActivity]
    # tracking token -> the first email carrying it
    tokens: dict[str, EmailActivity]
    # conversation -> its newest email
    conversations: dict[str, EmailActivity]

    @classmethod
    def read(cls, items: list[Pending], parties: tracking.Parties) -> _Known:
        organization = parties.organization
        messages = [item.parsed for item in items]
        parties.lookup(address.address for parsed in messages for address in parsed.addresses)
        own = {parsed.identity for parsed in messages} | {
            identities.variant_of(parsed) for parsed in messages if identities.can_vary(parsed)
        }
        answered = (
            {i for parsed in messages for i in tracking.replied_to_identities(parsed)}
            if organization.correlation_enabled
            else set()
        )
        return cls(
            receipts=_receipts(own),
            emails={
                e.message_identity or "": e
                for e in _correlatable().filter(message_identity__in=own | answered)
            },
            tokens=_first_by_token(messages, organization),
            conversations=_newest_by_conversation(messages, organization),
        )


def _correlatable() -> QuerySet[EmailActivity]:
    return EmailActivity.objects.filter(copy_owner__isnull=True).only(*_CORRELATED_FIELDS)


def _receipts(identities_: set[str]) -> dict[str, list[tuple[int, str]]]:
    found: dict[str, list[tuple[int, str]]] = {}
    rows = Receipt.objects.filter(message_identity__in=identities_).values_list(
        "message_identity", "mailbox_id", "content_fingerprint"
    )
    for identity, mailbox_id, fingerprint in rows:
        found.setdefault(identity, []).append((mailbox_id, fingerprint))
    return found


def _first_by_token(
    messages: list[ParsedMessage], organization: OrganizationSettings
) -> dict[str, EmailActivity]:
    tokens = {tracking.tracking_token_in(parsed.subject, organization) for parsed in messages} - {""}
    if not tokens:
        return {}
    # As tracking.correlate: the first email with the token, whoever's copy it is.
    emails = EmailActivity.objects.filter(tracking_token__in=tokens)
    return {email.tracking_token: email for email in _first_of_each(emails, "tracking_token", "id")}


def _newest_by_conversation(
    messages: list[ParsedMessage], organization: OrganizationSettings
) -> dict[str, EmailActivity]:
    if not organization.correlation_enabled:
        return {}
    conversations = {
        tracking.conversation_id_for(parsed) for parsed in messages if tracking.continues_conversation(parsed)
    }
    if not conversations:
        return {}
    emails = EmailActivity.objects.filter(conversation_id__in=conversations, copy_owner__isnull=True)
    newest = _first_of_each(emails, "conversation_id", "-created_on", "-id")
    return {email.conversation_id: email for email in newest}


def _first_of_each(emails: QuerySet[EmailActivity], group: str, *order: str) -> QuerySet[EmailActivity]:
    """The first email of each ``group`` value in ``order``, in one statement (a
    window function: PostgreSQL and SQLite alike)."""
    ranked = emails.annotate(
        rank=Window(RowNumber(), partition_by=[F(group)], order_by=[_ordering(field) for field in order])
    )
    return ranked.filter(rank=1).only(*_CORRELATED_FIELDS, "created_on")


def _ordering(field: str) -> OrderBy:
    return F(field[1:]).desc() if field.startswith("-") else F(field).asc()


class _Batch:
    """The messages decided so far and the rows they become; ``known`` grows
    with each, so a later message of the batch sees what an earlier one adds."""

    def __init__(self, known: _Known, parties: tracking.Parties) -> None:
        self.known, self.parties = known, parties
        self.organization = parties.organization
        self.items: list[Pending] = []
        self.receipts: list[Receipt] = []
        self.activities: list[activity_store.NewActivity] = []
        self.queue_items: list[QueueItem] = []

    def take_while(self, items: list[Pending]) -> int:
        """Decide messages in order until one must go one by one; how many were taken."""
        for count, item in enumerate(items):
            if not self._take(item):
                return count
        return len(items)

    def _take(self, item: Pending) -> bool:
        """``tracking.decide_message``'s verdict, carried out in the batch; False
        (one by one) for what only the one-message pipeline can carry out."""
        parsed, mailbox = item.parsed, item.source.mailbox
        parsed.identity = self._identity(parsed)
        if any(owner == mailbox.pk for owner, _ in self.known.receipts.get(parsed.identity, [])):
            return False  # seen before: its receipt follows it, one by one
        verdict = tracking.decide_message(parsed, item.raw, mailbox, self)
        if isinstance(verdict, tracking.NotTracked):
            self._add(item, verdict.outcome, None)
            return True
        if isinstance(verdict, tracking.Automatic):
            # A bounce of CRM email marks its failed recipients: one by one.
            if verdict.report is not None:
                return False
            self._add(item, ReceiptOutcome.AUTO_REPLY, None)
            return True
        if isinstance(verdict, tracking.Link):
            if mailbox.queue_id:
                self.queue_items.append(QueueItem(queue_id=mailbox.queue_id, email=verdict.email))
            self._add(item, ReceiptOutcome.LINKED, verdict.email)
            return True
        if isinstance(verdict, tracking.NeedsDatabase):
            return False  # smart matching, a second user's copy: one by one
        if verdict.may_create_contact or verdict.copy_owner is not None:
            return False  # a contact to create (unless the database knows the sender), a copy: one by one
        self._add(item, ReceiptOutcome.TRACKED, self._new_activity(item, verdict.correlation))
        return True

    def _identity(self, parsed: ParsedMessage) -> str:
        """As ``identities.distinct_identity``, from what is known."""
        if not identities.can_vary(parsed):
            return parsed.identity
        base = parsed.identity
        holders = [fingerprint for _, fingerprint in self.known.receipts.get(base, [])]
        email = self.known.emails.get(base)
        if email is not None:
            holders.append(email.content_fingerprint)
        if any(identities.holds_other_content(fingerprint, parsed) for fingerprint in holders):
            return identities.variant_of(parsed)
        return base

    # tracking.Lookups, answered from what is known.

    def sender(self, parsed: ParsedMessage) -> tracking.Party | None:
        return self.parties.of(parsed.sender.address) if parsed.sender else None  # looked up with the batch

    def stored(
        self, parsed: ParsedMessage, copy_owner: CrmUser | None
    ) -> EmailActivity | tracking.Unknown | None:
        """The batch knows the activities everyone shares, not users' own copies."""
        return self.known.emails.get(parsed.identity) if copy_owner is None else tracking.UNKNOWN

    def stored_for_anyone(self, parsed: ParsedMessage) -> bool | tracking.Unknown:
        return tracking.UNKNOWN  # users' own copies are not read

    def correlation(self, parsed: ParsedMessage) -> tracking.Correlation | tracking.Unknown:
        """As ``tracking.correlate``, from what is known; unknown where smart matching
        would be asked."""
        methods = EmailActivity.CorrelationMethod
        enabled = self.organization.correlation_enabled
        if enabled:
            for identity in tracking.replied_to_identities(parsed):
                if identity in self.known.emails:
                    return tracking.Correlation(self.known.emails[identity], methods.IN_REPLY_TO)
        token = tracking.tracking_token_in(parsed.subject, self.organization)
        if token and token in self.known.tokens:
            return tracking.Correlation(self.known.tokens[token], methods.TRACKING_TOKEN)
        if not enabled:
            return tracking.Correlation(None)
        if tracking.continues_conversation(parsed):
            # The newest email of the conversation. tracking excludes the message's own
            # identity there, which no email holds yet, or this one would have linked to it.
            found = self.known.conversations.get(tracking.conversation_id_for(parsed))
            if found is not None:
                return tracking.Correlation(found, methods.CONVERSATION_INDEX)
        if self.organization.smart_matching_enabled:
            return tracking.UNKNOWN
        return tracking.Correlation(None)

    def _new_activity(self, item: Pending, correlation: tracking.Correlation) -> EmailActivity:
        new = activity_store.build_incoming_activity(
            mailbox=item.source.mailbox,
            parsed=item.parsed,
            raw=item.raw,
            correlation=correlation,
            server_received_on=item.source.server_received_on,
            parties=self.parties,
        )
        self.activities.append(new)
        email = new.email
        self.known.emails[item.parsed.identity] = email
        if email.tracking_token:
            self.known.tokens.setdefault(email.tracking_token, email)  # the first one stays first
        self.known.conversations[email.conversation_id] = email  # the newest
        return email

    def _add(self, item: Pending, outcome: str, email: EmailActivity | None) -> None:
        parsed = item.parsed
        self.items.append(item)
        self.receipts.append(build_receipt(item.source, parsed, outcome, email=email))
        self.known.receipts.setdefault(parsed.identity, []).append(
            (item.source.mailbox.pk, parsed.fingerprint)
        )

    def write(self, one_by_one: OneByOne) -> list[Receipt]:
        """Insert the batch's rows; if the database refuses any, each message one by one."""
        if not self.items:
            return []
        try:
            with transaction.atomic():
                self._insert()
        except DatabaseError:
            return [_one(one_by_one, item) for item in self.items]
        return self.receipts

    def _insert(self) -> None:
        emails = [new.email for new in self.activities]
        # An email answering another of the same batch names it once both have keys.
        answering = [
            (e, e.correlated_email) for e in emails if e.correlated_email and e.correlated_email.pk is None
        ]
        for email, _ in answering:
            email.correlated_email = None
        EmailActivity.objects.bulk_create(emails)
        for email, answered in answering:
            email.correlated_email = answered
        EmailActivity.objects.bulk_update([email for email, _ in answering], ["correlated_email"])
        activity_store.save_all(self.activities)
        QueueItem.objects.bulk_create(self.queue_items, ignore_conflicts=True)
        Receipt.objects.bulk_create(self.receipts)
