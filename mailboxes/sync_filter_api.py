"""Sync filters over the REST API: a mailbox's filters (its user edits their own, administrators
any), the organization's defaults (administrators only), and the live count of what they select."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.request import Request
from rest_framework.response import Response

from mailboxes.filter_criteria import SyncEntity
from mailboxes.models import Mailbox, SyncFilter, SyncFilterTemplate
from mailboxes.sync_filters import criteria_matching, matching
from web.api_base import (
    ApiErrorSerializer,
    CleanModelSerializer,
    ScopedModelViewSet,
    ScopedRelatedField,
)
from web.roles import visible

CRITERIA_HELP = (
    'An object: "owner" ("mine" or "all"), "states" (the entity\'s state values), "window" '
    '({"field", "days_ago", "days_ahead"}, relative to now) and "conditions" (a list of '
    '{"field", "op": equals | in | before | after | contains, "value"}), all AND-ed.'
)


class SyncFilterTemplateSerializer(CleanModelSerializer[SyncFilterTemplate]):
    criteria = serializers.JSONField(help_text=CRITERIA_HELP)

    class Meta:
        model = SyncFilterTemplate
        fields = ("id", "entity", "name", "criteria", "created_on", "modified_on")
        read_only_fields = ("created_on", "modified_on")


class SyncFilterSerializer(CleanModelSerializer[SyncFilter]):
    mailbox = ScopedRelatedField(queryset=Mailbox.objects.all())
    criteria = serializers.JSONField(help_text=CRITERIA_HELP)
    matching_count = serializers.SerializerMethodField(
        help_text="How many CRM records this filter selects now (the mailbox's total: /sync-filters/count/)."
    )

    class Meta:
        model = SyncFilter
        fields = (
            "id",
            "mailbox",
            "entity",
            "name",
            "criteria",
            "matching_count",
            "created_on",
            "modified_on",
        )
        read_only_fields = ("created_on", "modified_on")

    def get_matching_count(self, sync_filter: SyncFilter) -> int:
        return criteria_matching(sync_filter.mailbox, sync_filter.entity, sync_filter.criteria).count()


class SyncFilterCountSerializer(serializers.Serializer[dict[str, Any]]):
    mailbox = serializers.IntegerField()
    entity = serializers.ChoiceField(choices=SyncEntity.choices)
    count = serializers.IntegerField(read_only=True, help_text="Records the mailbox's filters select, OR-ed.")


class SyncFilterTemplateViewSet(ScopedModelViewSet[SyncFilterTemplate]):
    """The organization's default sync filters, copied onto every new user's mailbox.
    Administrators only; editing one changes the copies made afterwards, not existing ones."""

    queryset = SyncFilterTemplate.objects.all()
    serializer_class = SyncFilterTemplateSerializer
    filterset_fields = ("entity",)
    admin_actions = frozenset({"list", "retrieve", "create", "update", "partial_update", "destroy"})


class SyncFilterViewSet(ScopedModelViewSet[SyncFilter]):
    """Mailboxes' sync filters: which CRM records each entity syncs to the mail server (a
    mailbox's filters of one entity are OR-ed; none: nothing syncs). A user sees and edits
    their own mailbox's; administrators all. Queue mailboxes take none."""

    queryset = SyncFilter.objects.select_related("mailbox")
    serializer_class = SyncFilterSerializer
    filterset_fields = ("mailbox", "entity")
    ordering_fields = ("name", "created_on")
    admin_actions = frozenset()

    @extend_schema(
        parameters=[
            OpenApiParameter("mailbox", int, required=True),
            OpenApiParameter("entity", str, required=True, enum=SyncEntity.values),
        ],
        responses={
            200: SyncFilterCountSerializer,
            404: OpenApiResponse(
                ApiErrorSerializer, description="No such mailbox among those the requester may see."
            ),
        },
    )
    @action(detail=False, methods=["get"])
    def count(self, request: Request) -> Response:
        """The live number of CRM records a mailbox's filters of one entity select."""
        query = SyncFilterCountSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        mailboxes = visible(Mailbox.objects.all(), request.user)
        mailbox = get_object_or_404(mailboxes, pk=query.validated_data["mailbox"])
        entity = query.validated_data["entity"]
        total = matching(mailbox, entity).count()
        return Response({"mailbox": mailbox.pk, "entity": entity, "count": total})
