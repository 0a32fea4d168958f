"""Received messages as the item-level view (/emails/) shows them: a mailbox's
receipts, grouped by message identity, so one message that several mailboxes
received is one row listing each of them and what became of it there."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import Count, Max, QuerySet, Window
from django.db.models.functions import Coalesce

from sync.models import Receipt, ReceiptOutcome

# When the mail server received the message (IMAP INTERNALDATE); POP3 does not
# say, so then when serversync first saw it.
RECEIVED = Coalesce("server_received_on", "created_on")
RECEIPT_RELATED = (
    "mailbox",
    "quarantined",
    "email",
    "email__regarding_account",
    "email__regarding_contact",
    "email__regarding_lead",
)


@dataclass
class ReceivedMessage:
    identity: str
    receipts: list[Receipt]

    @property
    def subject(self) -> str:
        return next((r.subject for r in self.receipts if r.subject), "")

    @property
    def sender(self) -> str:
        return next((r.sender for r in self.receipts if r.sender), "")

    @property
    def received(self) -> datetime:
        return min(r.server_received_on or r.created_on for r in self.receipts)

    @property
    def tracked(self) -> bool:
        return any(r.tracked_activity is not None for r in self.receipts)


def with_received(receipts: QuerySet[Receipt]) -> QuerySet[Receipt]:
    """Receipts with ``received`` to filter and sort on."""
    return receipts.annotate(received=RECEIVED)


def message_identities(receipts: QuerySet[Receipt]) -> QuerySet[Any]:
    """One row per message among these receipts, newest first: what a page counts and slices."""
    return (
        receipts.order_by()
        .values("message_identity")
        .annotate(latest=Max(RECEIVED))
        .order_by("-latest", "message_identity")
    )


class MessagePaginator(Paginator[dict[str, Any]]):
    """Pages of ``message_identities()`` that count the messages with the page's own rows.

    Counting the messages groups the receipts by identity as the page does (over the
    default window, some 90,000 receipts on the page benchmark's organization: most of
    the page's time is these groupings). ``COUNT(*) OVER ()`` on the grouped rows
    gives the number with the page, so a page within range groups them once. A page
    past the last one has no row to carry the number: that one is counted apart and
    served as Paginator serves it (the last page). Not a number: the first page, as
    Paginator.get_page.
    """

    def __init__(self, messages: QuerySet[Any], per_page: int) -> None:
        super().__init__(messages, per_page)
        self.messages = messages

    def get_page(self, number: Any) -> Page[dict[str, Any]]:
        try:
            index = 1 if number is None else int(number)
        except (TypeError, ValueError):
            index = 1  # as Paginator: not a number -> the first page
        if "count" not in self.__dict__ and index >= 1:
            bottom = (index - 1) * self.per_page
            rows = list(self.messages.annotate(total=Window(Count("*")))[bottom : bottom + self.per_page])
            if rows:
                self.__dict__["count"] = rows[0]["total"]  # Paginator.count is a cached_property
                return Page(rows, index, self)
        return super().get_page(number)


def received_messages(receipts: QuerySet[Receipt], identities: list[str]) -> list[ReceivedMessage]:
    """These messages, each with every receipt of it among ``receipts``, in the given order."""
    rows = receipts.filter(message_identity__in=identities).select_related(*RECEIPT_RELATED)
    grouped: dict[str, list[Receipt]] = {identity: [] for identity in identities}
    for receipt in rows.order_by("mailbox__email_address", "pk"):
        grouped[receipt.message_identity].append(receipt)
    return [ReceivedMessage(identity, found) for identity, found in grouped.items() if found]


def outcome_counts(receipts: QuerySet[Receipt]) -> list[tuple[str, str, int]]:
    """(outcome, label, receipts) for each outcome present, in the outcomes' own order."""
    counts = dict(receipts.order_by().values("outcome").annotate(n=Count("pk")).values_list("outcome", "n"))
    return [(value, label, counts[value]) for value, label in ReceiptOutcome.choices if counts.get(value)]
