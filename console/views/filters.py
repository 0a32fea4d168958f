"""The mailbox page's filters and search, read from the query string (or, for
"all matching", from the action form that repeats it)."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django_filters import rest_framework as filters

from crm.choices import SyncStatus
from mailboxes.models import OWNER_TYPES, ApprovalStatus, Mailbox, MailboxQuerySet
from profiles.models import EmailServerProfile
from sync import clock

YES_NO = (("yes", "Yes"), ("no", "No"))


class MailboxFilter(filters.FilterSet):  # type: ignore[misc]  # django-filter has no type information
    q = filters.CharFilter(method="search", label="Search")
    incoming_status = filters.ChoiceFilter(choices=SyncStatus.choices, label="Incoming")
    outgoing_status = filters.ChoiceFilter(choices=SyncStatus.choices, label="Outgoing")
    act_status = filters.ChoiceFilter(choices=SyncStatus.choices, label="Appointments, contacts, tasks")
    disabled = filters.ChoiceFilter(choices=YES_NO, method="filter_disabled", label="Disabled")
    backoff = filters.ChoiceFilter(choices=YES_NO, method="filter_backoff", label="In backoff")
    approval_status = filters.ChoiceFilter(choices=ApprovalStatus.choices, label="Approval")
    profile = filters.ModelChoiceFilter(queryset=EmailServerProfile.objects.none(), label="Profile")
    owner = filters.ChoiceFilter(choices=OWNER_TYPES, method="filter_owner", label="Owner type")

    class Meta:
        model = Mailbox
        fields: list[str] = []

    def __init__(self, data: Any, queryset: QuerySet[Mailbox], **kwargs: Any) -> None:
        super().__init__(data, queryset=queryset, **kwargs)
        # Only the profiles of mailboxes this viewer sees: no names leak to a user.
        profile_field: Any = self.filters["profile"]
        profile_field.queryset = EmailServerProfile.objects.filter(
            pk__in=queryset.exclude(profile=None).values("profile")
        )

    def search(self, queryset: MailboxQuerySet, name: str, value: str) -> QuerySet[Mailbox]:
        return queryset.search(value)

    def filter_disabled(self, queryset: QuerySet[Mailbox], name: str, value: str) -> QuerySet[Mailbox]:
        # Disabled means the engine switched a direction off and said why.
        return queryset.exclude(disabled_reason="") if value == "yes" else queryset.filter(disabled_reason="")

    def filter_backoff(self, queryset: QuerySet[Mailbox], name: str, value: str) -> QuerySet[Mailbox]:
        now = clock.now()
        waiting = (
            Q(incoming_postponed_until__gt=now)
            | Q(outgoing_postponed_until__gt=now)
            | Q(act_postponed_until__gt=now)
        )
        return queryset.filter(waiting) if value == "yes" else queryset.exclude(waiting)

    def filter_owner(self, queryset: MailboxQuerySet, name: str, value: str) -> QuerySet[Mailbox]:
        return queryset.of_owner_type(value)
