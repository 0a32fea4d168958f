"""The item-level view (/emails/): every message the viewer's mailboxes received,
tracked or not and why, how it was correlated, what it is regarding, and which
mailboxes received it. Filters pick messages; each row then lists every
receiving mailbox the viewer may see."""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django_filters import rest_framework as filters

from crm.api_base import visible
from sync.models import Receipt, ReceiptOutcome
from sync.received import message_identities, outcome_counts, received_messages, with_received
from sync.views.access import HtmxHttpRequest, member_required

PAGE_SIZE = 50
DATE_INPUT = forms.DateInput(attrs={"type": "date"})


class ReceiptFilter(filters.FilterSet):
    q = filters.CharFilter(method="search", label="Search subject or sender")
    outcome = filters.ChoiceFilter(choices=ReceiptOutcome.choices, label="Outcome")
    # An address, part of one, or a mailbox id; not a list to choose from, as an administrator
    # may have thousands. Only the viewer's own receipts are searched either way.
    mailbox = filters.CharFilter(method="filter_mailbox", label="Mailbox address")
    received_from = filters.DateFilter(
        field_name="received", lookup_expr="date__gte", label="Received from", widget=DATE_INPUT
    )
    received_until = filters.DateFilter(
        field_name="received", lookup_expr="date__lte", label="Received until", widget=DATE_INPUT
    )

    class Meta:
        model = Receipt
        fields: list[str] = []

    def filter_mailbox(self, queryset: QuerySet[Receipt], name: str, value: str) -> QuerySet[Receipt]:
        value = value.strip()
        if value.isdigit():
            return queryset.filter(mailbox_id=int(value))
        if "@" in value:
            return queryset.filter(mailbox__email_address__iexact=value)
        return queryset.filter(mailbox__email_address__icontains=value)

    def search(self, queryset: QuerySet[Receipt], name: str, value: str) -> QuerySet[Receipt]:
        return queryset.filter(Q(subject__icontains=value) | Q(sender__icontains=value))


@require_GET
@member_required
def email_list(request: HtmxHttpRequest) -> HttpResponse:
    receipts = with_received(visible(Receipt.objects.all(), request.user))
    filterset = ReceiptFilter(request.GET, queryset=receipts)
    matching = filterset.qs
    page = Paginator(message_identities(matching), PAGE_SIZE).get_page(request.GET.get("page"))
    identities = [row["message_identity"] for row in page]
    query = [(k, v) for k, v in request.GET.items() if k != "page" and v]
    return render(
        request,
        "sync/emails.html",
        {
            "filter": filterset,
            "page": page,
            "messages_shown": received_messages(receipts, identities),
            "outcomes": outcome_counts(matching),
            "query": urlencode(query),
            "query_without_outcome": urlencode([(k, v) for k, v in query if k != "outcome"]),
        },
    )
