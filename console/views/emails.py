"""The item-level view (/emails/): every message the viewer's mailboxes received,
tracked or not and why, how it was correlated, what it is regarding, and which
mailboxes received it. Filters pick messages; each row then lists every
receiving mailbox the viewer may see."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django import forms
from django.db.models import Q, QuerySet
from django.db.models.lookups import GreaterThanOrEqual, LessThan
from django.http import HttpResponse, QueryDict
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET
from django_filters import rest_framework as filters

from console.received import (
    RECEIVED,
    MessagePaginator,
    message_identities,
    outcome_counts,
    received_messages,
    with_received,
)
from console.views.access import HtmxHttpRequest, member_required
from console.views.querystring import query_without
from sync.models import Receipt, ReceiptOutcome
from web.roles import visible

PAGE_SIZE = 50
DEFAULT_WINDOW_DAYS = 7
DATE_INPUT = forms.DateInput(attrs={"type": "date"})


class ReceiptFilter(filters.FilterSet):  # type: ignore[misc]  # django-filter has no type information
    q = filters.CharFilter(method="search", label="Search subject or sender")
    outcome = filters.ChoiceFilter(choices=ReceiptOutcome.choices, label="Outcome")
    # An address, part of one, or a mailbox id; not a list to choose from, as an administrator
    # may have thousands. Only the viewer's own receipts are searched either way.
    mailbox = filters.CharFilter(method="filter_mailbox", label="Mailbox address")
    received_from = filters.DateFilter(method="filter_from", label="Received from", widget=DATE_INPUT)
    received_until = filters.DateFilter(method="filter_until", label="Received until", widget=DATE_INPUT)

    class Meta:
        model = Receipt
        fields: list[str] = []

    def filter_mailbox(self, queryset: QuerySet[Receipt], name: str, value: str) -> QuerySet[Receipt]:
        value = value.strip()
        if value.isascii() and value.isdigit():
            # Beyond the database's 64 bits no mailbox has the id.
            return queryset.filter(mailbox_id=int(value)) if int(value) < 2**63 else queryset.none()
        if "@" in value:
            return queryset.filter(mailbox__email_address__iexact=value)
        return queryset.filter(mailbox__email_address__icontains=value)

    # Whole local days, as datetime bounds on the received time, so its index serves them.
    def filter_from(self, queryset: QuerySet[Receipt], name: str, value: date) -> QuerySet[Receipt]:
        return queryset.filter(GreaterThanOrEqual(RECEIVED, _start_of(value)))

    def filter_until(self, queryset: QuerySet[Receipt], name: str, value: date) -> QuerySet[Receipt]:
        if value >= date.max - timedelta(days=1):
            return queryset  # the last days there are: everything is before them
        return queryset.filter(LessThan(RECEIVED, _start_of(value + timedelta(days=1))))

    def search(self, queryset: QuerySet[Receipt], name: str, value: str) -> QuerySet[Receipt]:
        return queryset.filter(Q(subject__icontains=value) | Q(sender__icontains=value))


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


def _with_default_window(query: QueryDict) -> QueryDict:
    """Unless the viewer chose (or cleared) "received from", the last
    DEFAULT_WINDOW_DAYS: grouping every receipt ever kept would take seconds."""
    if "received_from" in query:
        return query
    query = query.copy()
    query["received_from"] = (timezone.localdate() - timedelta(days=DEFAULT_WINDOW_DAYS - 1)).isoformat()
    return query


@require_GET
@member_required
def email_list(request: HtmxHttpRequest) -> HttpResponse:
    receipts = with_received(visible(Receipt.objects.all(), request.user))
    filterset = ReceiptFilter(_with_default_window(request.GET), queryset=receipts)
    matching = filterset.qs
    page = MessagePaginator(message_identities(matching), PAGE_SIZE).get_page(request.GET.get("page"))
    identities = [row["message_identity"] for row in page]
    return render(
        request,
        "console/emails.html",
        {
            "filter": filterset,
            "page": page,
            "messages_shown": received_messages(receipts, identities),
            "outcomes": outcome_counts(matching),
            "query": query_without(request, "page"),
            "query_without_outcome": query_without(request, "page", "outcome"),
        },
    )
