"""REST API for the engine's records: alerts, receipts, quarantined messages and
sync runs. Read-only lists scoped by role (web.api_base); the few actions call
one service each. Administrators see everything; a user sees the rows of the
mailboxes they own (a queue owner also the queue's), and acts on those."""

from __future__ import annotations

from typing import Any, TypeVar

from django.db.models import Count, Model, QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from mailboxes.api import MailboxViewSet
from mailboxes.models import OWNER_TYPES, Mailbox, MailboxQuerySet
from sync import serializers
from sync.alerts import alert_acknowledge, alert_resolve
from sync.errors import MessageError
from sync.incoming import reprocess_quarantined
from sync.models import MailboxAlert, QuarantinedMessage, Receipt, Rollout, SyncRun
from sync.rollout import RolloutError, rollout_cancel, rollout_plan
from web.api_base import IsAdministrator, RoleScopedMixin

_M = TypeVar("_M", bound=Model)


class ReadOnlyScopedViewSet(
    RoleScopedMixin[_M], mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[_M]
):
    # Actions are open to whoever sees the row: administrators, and the mailbox's owner.
    admin_actions = frozenset()


def _no_body(request: Request) -> None:
    serializers.NoBodySerializer(data=request.data).is_valid(raise_exception=True)


class AlertFilter(filters.FilterSet):  # type: ignore[misc]  # django-filter has no type information
    resolved = filters.BooleanFilter(field_name="resolved_on", lookup_expr="isnull", exclude=True)
    acknowledged = filters.BooleanFilter(field_name="acknowledged_on", lookup_expr="isnull", exclude=True)

    class Meta:
        model = MailboxAlert
        fields = ("level", "category", "code", "mailbox", "profile")


class AlertViewSet(ReadOnlyScopedViewSet[MailboxAlert]):
    """Alerts about mailboxes and profiles: repeats counted on one open row."""

    queryset = MailboxAlert.objects.select_related("acknowledged_by", "resolved_by")
    serializer_class = serializers.AlertSerializer
    filterset_class = AlertFilter
    search_fields = ("message", "code")
    ordering_fields = ("last_seen", "count")

    @extend_schema(request=None, responses=serializers.AlertSerializer)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk: Any = None) -> Response:
        _no_body(request)
        alert = alert_acknowledge(alert=self.get_object(), by=request.user)
        return Response(self.get_serializer(alert).data)

    @extend_schema(request=None, responses=serializers.AlertSerializer)
    @action(detail=True, methods=["post"])
    def resolve(self, request: Request, pk: Any = None) -> Response:
        _no_body(request)
        alert = alert_resolve(alert=self.get_object(), by=request.user)
        return Response(self.get_serializer(alert).data)


class ReceiptViewSet(ReadOnlyScopedViewSet[Receipt]):
    """What became of every message a mailbox saw."""

    queryset = Receipt.objects.all()
    serializer_class = serializers.ReceiptSerializer
    filterset_fields = ("mailbox", "outcome", "folder")
    search_fields = ("subject", "sender", "message_id")
    ordering_fields = ("created_on", "server_received_on")


class QuarantinedMessageViewSet(ReadOnlyScopedViewSet[QuarantinedMessage]):
    """Messages that could not be processed, kept as received until reprocessed."""

    queryset = QuarantinedMessage.objects.all()
    serializer_class = serializers.QuarantinedMessageSerializer
    filterset_fields = ("mailbox", "state", "error_code")
    search_fields = ("error_code", "error_text")
    ordering_fields = ("created_on", "server_received_on")

    @extend_schema(
        request=None,
        responses={200: serializers.ReceiptSerializer, 409: serializers.SyncErrorSerializer},
    )
    @action(detail=True, methods=["post"])
    def reprocess(self, request: Request, pk: Any = None) -> Response:
        """Run the message through the incoming pipeline again; its receipt says what it became."""
        _no_body(request)
        message = self.get_object()
        try:
            receipt = reprocess_quarantined(quarantined_id=message.pk)
        except MessageError as error:
            # Still not processable (or never downloaded): it stays quarantined with the new reason.
            body = {"detail": error.message, "code": error.code}
            return Response(body, status=status.HTTP_409_CONFLICT)
        return Response(serializers.ReceiptSerializer(receipt).data)


class SyncRunViewSet(ReadOnlyScopedViewSet[SyncRun]):
    """One row per run of one kind for one mailbox."""

    queryset = SyncRun.objects.all()
    serializer_class = serializers.SyncRunSerializer
    filterset_fields = ("mailbox", "kind", "outcome")
    ordering_fields = ("started_on", "finished_on")


class MailboxSelection(filters.FilterSet):  # type: ignore[misc]  # django-filter has no type information
    """A rollout of "all matching" mailboxes: the mailbox list's filters, search and owner type."""

    search = filters.CharFilter(method="filter_search")
    owner_type = filters.ChoiceFilter(choices=OWNER_TYPES, method="filter_owner_type")

    class Meta:
        model = Mailbox
        fields = MailboxViewSet.filterset_fields

    def filter_search(self, queryset: MailboxQuerySet, name: str, value: str) -> QuerySet[Mailbox]:
        return queryset.search(value)

    def filter_owner_type(self, queryset: MailboxQuerySet, name: str, value: str) -> QuerySet[Mailbox]:
        return queryset.of_owner_type(value)


class RolloutViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet[Rollout],
):
    """Paced test & enable of many mailboxes (administrators only): planned queue
    mailboxes first, then users, in batches per window; progress per batch."""

    queryset = (
        Rollout.objects.select_related("created_by")
        .annotate(mailbox_count=Count("items"))
        .order_by("-created_on", "-id")
    )
    permission_classes = [IsAuthenticated, IsAdministrator]
    filterset_fields = ("state",)
    ordering_fields = ("created_on",)

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        if self.action == "list":
            return serializers.RolloutSerializer
        return serializers.RolloutDetailSerializer

    @extend_schema(
        request=serializers.RolloutCreateSerializer, responses={201: serializers.RolloutDetailSerializer}
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        given = serializers.RolloutCreateSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        if "all_matching" in data:
            selection = MailboxSelection(data["all_matching"], queryset=Mailbox.objects.all())
            if not selection.is_valid():
                raise ValidationError({"all_matching": selection.errors})
            mailbox_ids = list(selection.qs.values_list("pk", flat=True))
        else:
            mailbox_ids = data["mailboxes"]
            missing = set(mailbox_ids) - set(
                Mailbox.objects.filter(pk__in=mailbox_ids).values_list("pk", flat=True)
            )
            if missing:
                raise ValidationError({"mailboxes": [f"No mailbox with id {pk}." for pk in sorted(missing)]})
        try:
            rollout = rollout_plan(
                mailbox_ids=mailbox_ids, created_by=request.user, round_trip=data["round_trip"]
            )
        except RolloutError as error:
            raise ValidationError({"detail": str(error)}) from error
        return Response(self.get_serializer(self.get_queryset().get(pk=rollout.pk)).data, status=201)

    @extend_schema(
        request=None,
        responses={200: serializers.RolloutDetailSerializer, 409: serializers.SyncErrorSerializer},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: Any = None) -> Response:
        """Cancel the queued tests and the batches not started; tests already running finish."""
        _no_body(request)
        try:
            rollout_cancel(rollout=self.get_object())
        except RolloutError as error:
            return Response(
                {"detail": str(error), "code": "rollout_finished"}, status=status.HTTP_409_CONFLICT
            )
        return Response(self.get_serializer(self.get_object()).data)
