"""The one-message pipeline: what one parsed message becomes (``receipt_for``:
seen before, a test message, an auto-reply or bounce, linked to an activity the
CRM has, tracked as a new one, or not tracked), and ``quarantine`` for one that
cannot be processed.

Beneath ``sync.incoming`` (which runs it for the rare messages of a batch and
for reprocessing) and ``sync.forwarding`` (which runs it for a forwarded
original). What a message becomes is decided by ``tracking.decide_message``,
with the database answering its lookups; ``sync.batch_store`` asks the same
function for the common cases of a batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from contextvars import ContextVar

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction

from crm.models import CrmUser, EmailActivity, OrganizationSettings, QueueItem
from sync import activity_store, identities, parsing, tracking
from sync.auto_replies import DeliveryReport
from sync.errors import SyncError
from sync.models import QuarantinedMessage, Receipt, ReceiptOutcome, SyncRun
from sync.receipts import Source, build_receipt


class RunScope:
    """What the messages of one run share: the organization's settings, read
    once (and only when a message needs them: an idle poll never does), and the
    addresses resolved so far."""

    def __init__(self, on_progress: Callable[[SyncRun], None] | None = None) -> None:
        self.on_progress = on_progress
        self._parties: tracking.Parties | None = None

    @property
    def parties(self) -> tracking.Parties:
        if self._parties is None:
            self._parties = tracking.Parties(OrganizationSettings.load())
        return self._parties

    @property
    def organization(self) -> OrganizationSettings:
        return self.parties.organization


# Set for one run by sync.incoming.sync_incoming; a message stored outside a run
# (reprocessing, a forward mailbox's original) gets a scope of its own.
run_scope: ContextVar[RunScope | None] = ContextVar("incoming_run_scope", default=None)


def current_scope() -> RunScope:
    scope = run_scope.get()
    return scope if scope is not None else RunScope()


def receipt_for(source: Source, parsed: parsing.ParsedMessage, raw: bytes) -> Receipt:
    mailbox = source.mailbox
    parsed.identity = identities.distinct_identity(parsed)
    known = Receipt.objects.filter(mailbox=mailbox, message_identity=parsed.identity).first()
    if known is not None:
        return seen_again(known, source)
    scope = current_scope()
    verdict = tracking.decide_message(parsed, raw, mailbox, _Database(scope))
    if isinstance(verdict, tracking.NotTracked):
        return new_receipt(source, parsed, verdict.outcome)
    if isinstance(verdict, tracking.Automatic):
        return _automatic_receipt(source, parsed, verdict.report)
    if isinstance(verdict, tracking.Link):
        return _link(source, parsed, verdict.email)
    if isinstance(verdict, tracking.Track):
        return _track(source, parsed, raw, verdict, scope.parties)
    raise AssertionError("The database answers every lookup; no message is left to it.")


class _Database:
    """``tracking.Lookups`` answered by the database, a query each (the parties
    one query for all of the message's addresses, remembered for the run)."""

    def __init__(self, scope: RunScope) -> None:
        self.scope = scope

    @property
    def organization(self) -> OrganizationSettings:
        return self.scope.organization

    def sender(self, parsed: parsing.ParsedMessage) -> tracking.Party | None:
        parties = self.scope.parties
        parties.lookup(a.address for a in parsed.addresses)  # the sender and the parties, in one query
        return parties.of(parsed.sender.address) if parsed.sender else None

    def stored(self, parsed: parsing.ParsedMessage, copy_owner: CrmUser | None) -> EmailActivity | None:
        return EmailActivity.objects.filter(message_identity=parsed.identity, copy_owner=copy_owner).first()

    def correlation(self, parsed: parsing.ParsedMessage) -> tracking.Correlation:
        return tracking.correlate(parsed, self.organization)

    def stored_for_anyone(self, parsed: parsing.ParsedMessage) -> bool:
        return EmailActivity.objects.filter(message_identity=parsed.identity).exists()


def _track(
    source: Source,
    parsed: parsing.ParsedMessage,
    raw: bytes,
    verdict: tracking.Track,
    parties: tracking.Parties,
) -> Receipt:
    mailbox, copy_owner = source.mailbox, verdict.copy_owner
    try:
        with transaction.atomic():
            if verdict.may_create_contact:
                activity_store.remember_new_sender(mailbox=mailbox, parsed=parsed, parties=parties)
            email = activity_store.build_incoming_activity(
                mailbox=mailbox,
                parsed=parsed,
                raw=raw,
                correlation=verdict.correlation,
                server_received_on=source.server_received_on,
                parties=parties,
                copy_owner=copy_owner,
            ).save()
    except IntegrityError:
        # Another mailbox stored the same message a moment ago: link to theirs.
        existing = EmailActivity.objects.get(message_identity=parsed.identity, copy_owner=copy_owner)
        return _link(source, parsed, existing)
    return new_receipt(source, parsed, ReceiptOutcome.TRACKED, email=email)


def seen_again(known: Receipt, source: Source) -> Receipt:
    """The same message again (another UID after UIDVALIDITY changed, another
    folder, a second delivery): its receipt follows it, nothing new is made, and
    the run counts it as linked."""
    if (known.folder, known.server_id) != (source.folder, source.server_id):
        Receipt.objects.filter(pk=known.pk).update(folder=source.folder, server_id=source.server_id)
        known.folder, known.server_id = source.folder, source.server_id
    known.seen_before = True
    return known


def _automatic_receipt(
    source: Source, parsed: parsing.ParsedMessage, report: DeliveryReport | None
) -> Receipt:
    """A bounce of CRM email marks its failed recipients."""
    original = activity_store.record_delivery_failure(report=report) if report is not None else None
    if original is not None:
        return new_receipt(source, parsed, ReceiptOutcome.BOUNCE, email=original)
    return new_receipt(source, parsed, ReceiptOutcome.AUTO_REPLY)


def _link(source: Source, parsed: parsing.ParsedMessage, email: EmailActivity) -> Receipt:
    if source.mailbox.queue_id:
        QueueItem.objects.get_or_create(queue_id=source.mailbox.queue_id, email=email)
    return new_receipt(source, parsed, ReceiptOutcome.LINKED, email=email)


def new_receipt(
    source: Source, parsed: parsing.ParsedMessage, outcome: str, *, email: EmailActivity | None = None
) -> Receipt:
    receipt = build_receipt(source, parsed, outcome, email=email)
    receipt.save()
    return receipt


def quarantine(
    *, source: Source, raw: bytes | None, error: SyncError, advance: Callable[[], None]
) -> Receipt:
    """Keep a message that cannot be processed, with the reason; the mailbox goes on."""
    identity = parsing.identity_for("", raw) if raw is not None else _not_downloaded_identity(source)
    with transaction.atomic():
        held, created = QuarantinedMessage.objects.get_or_create(
            mailbox=source.mailbox,
            message_identity=identity,
            defaults={
                "folder": source.folder,
                "server_id": source.server_id,
                "size": len(raw or b""),
                "error_code": error.code,
                "error_text": error.message,
                "server_received_on": source.server_received_on,
            },
        )
        if created and raw is not None:
            held.raw.save("message.eml", ContentFile(raw), save=True)
        receipt, _ = Receipt.objects.get_or_create(
            mailbox=source.mailbox,
            message_identity=identity,
            defaults={
                "folder": source.folder,
                "server_id": source.server_id,
                "outcome": ReceiptOutcome.QUARANTINED,
                "quarantined": held,
                "server_received_on": source.server_received_on,
            },
        )
        advance()
        return receipt


def _not_downloaded_identity(source: Source) -> str:
    """A message never downloaded is known by where it is (hashed when a long
    folder name would not fit the identity column)."""
    identity = f"oversize:{source.folder}:{source.server_id}"
    if len(identity) <= identities.IDENTITY_MAX_LENGTH:
        return identity
    return "oversize:" + hashlib.sha256(identity.encode()).hexdigest()
