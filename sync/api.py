"""REST API for the engine's records: alerts, receipts, quarantined messages, sync
runs, and the links and item problems of appointments, contacts and tasks. Read-only
lists scoped by role (web.api_base); the few actions call one service each.
Administrators see everything; a user sees the rows of the mailboxes they own (a queue
owner also the queue's), and acts on those. The field directions of appointments,
contacts and tasks are the organization's: everyone reads them, administrators set them."""

from __future__ import annotations

from typing import Any, TypeVar

from django.db.models import Count, Model, QuerySet
from django.http import Http404
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from mailboxes.api import MailboxViewSet
from mailboxes.models import OWNER_TYPES, Mailbox, MailboxQuerySet
from sync import act_fields, serializers
from sync.alerts import alert_acknowledge, alert_resolve
from sync.errors import MessageError
from sync.incoming import reprocess_quarantined
from sync.models import (
    ActItemProblem,
    ActLink,
    FieldDirection,
    MailboxAlert,
    QuarantinedMessage,
    Receipt,
    Rollout,
    SyncRun,
)
from sync.rollout import RolloutError, rollout_cancel, rollout_plan
from web.api_base import (
    ApiConventions,
    ApiErrorSerializer,
    IsAdministrator,
    IsCrmMember,
    RoleScopedMixin,
)
from web.api_filters import ApiFilterSet

_M = TypeVar("_M", bound=Model)


class ReadOnlyScopedViewSet(
    RoleScopedMixin[_M], mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[_M]
):
    # Actions are open to whoever sees the row: administrators, and the mailbox's owner.
    admin_actions = frozenset()


def _no_body(request: Request) -> None:
    serializers.NoBodySerializer(data=request.data).is_valid(raise_exception=True)


class MailboxRowsFilter(ApiFilterSet):
    """Rows of one mailbox, among those the requester may see (``ApiFilterSet`` scopes
    ``mailbox`` and ``profile`` as every other related filter)."""


class AlertFilter(MailboxRowsFilter):
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


class ReceiptFilter(MailboxRowsFilter):
    class Meta:
        model = Receipt
        fields = ("mailbox", "outcome", "folder")


class ReceiptViewSet(ReadOnlyScopedViewSet[Receipt]):
    """What became of every message a mailbox saw."""

    queryset = Receipt.objects.all()
    serializer_class = serializers.ReceiptSerializer
    filterset_class = ReceiptFilter
    search_fields = ("subject", "sender", "message_id")
    ordering_fields = ("created_on", "server_received_on")


class QuarantinedMessageFilter(MailboxRowsFilter):
    class Meta:
        model = QuarantinedMessage
        fields = ("mailbox", "state", "error_code")


class QuarantinedMessageViewSet(ReadOnlyScopedViewSet[QuarantinedMessage]):
    """Messages that could not be processed, kept as received until reprocessed."""

    queryset = QuarantinedMessage.objects.all()
    serializer_class = serializers.QuarantinedMessageSerializer
    filterset_class = QuarantinedMessageFilter
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


class SyncRunFilter(MailboxRowsFilter):
    class Meta:
        model = SyncRun
        fields = ("mailbox", "kind", "outcome")


class SyncRunViewSet(ReadOnlyScopedViewSet[SyncRun]):
    """One row per run of one kind for one mailbox."""

    queryset = SyncRun.objects.all()
    serializer_class = serializers.SyncRunSerializer
    filterset_class = SyncRunFilter
    ordering_fields = ("started_on", "finished_on")


class MailboxSelection(ApiFilterSet):
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
    ApiConventions,
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


# --- appointments, contacts and tasks --------------------------------------------------------

DENIED = {
    401: OpenApiResponse(ApiErrorSerializer, description="Not signed in."),
    403: OpenApiResponse(ApiErrorSerializer, description="The login is not linked to an active CRM user."),
}
BAD_FILTER = {
    400: OpenApiResponse(
        ApiErrorSerializer,
        description="A filter's value is not valid; a mailbox the requester cannot see answers "
        "as one that does not exist.",
    )
}
NOT_FOUND = {
    404: OpenApiResponse(ApiErrorSerializer, description="No such row among those the requester may see.")
}


class ActItemProblemFilter(MailboxRowsFilter):
    class Meta:
        model = ActItemProblem
        fields = ("mailbox", "entity", "kind")


class ActLinkFilter(MailboxRowsFilter):
    class Meta:
        model = ActLink
        fields = ("mailbox", "entity")


@extend_schema_view(
    list=extend_schema(
        responses={200: serializers.ActItemProblemSerializer(many=True), **BAD_FILTER, **DENIED}
    ),
    retrieve=extend_schema(responses={200: serializers.ActItemProblemSerializer, **DENIED, **NOT_FOUND}),
)
class ActItemProblemViewSet(ReadOnlyScopedViewSet[ActItemProblem]):
    """What the engine could not do for an appointment, contact or task, newest first: a
    change dropped in a conflict (the field, whose change, the value dropped and the one
    kept), or an item one side refused, could not read, or found twice."""

    queryset = ActItemProblem.objects.order_by("-created_on", "-id")
    serializer_class = serializers.ActItemProblemSerializer
    filterset_class = ActItemProblemFilter
    search_fields = ("title", "message", "field")
    ordering_fields = ("created_on",)


SYNCED_PARAMETER = OpenApiParameter(
    "synced",
    OpenApiTypes.BOOL,
    description="true: each link also has ``crm_synced`` and ``server_synced``, the item as each "
    "side held it when they were last reconciled.",
)


@extend_schema_view(
    list=extend_schema(
        parameters=[SYNCED_PARAMETER],
        responses={200: serializers.ActLinkWithSyncedSerializer(many=True), **BAD_FILTER, **DENIED},
    ),
    retrieve=extend_schema(
        parameters=[SYNCED_PARAMETER],
        responses={200: serializers.ActLinkWithSyncedSerializer, **DENIED, **NOT_FOUND},
    ),
)
class ActLinkViewSet(ReadOnlyScopedViewSet[ActLink]):
    """CRM records and the server items they sync with, per mailbox (each side's copy of
    the item only when asked for, ``?synced=true``: they are whole items)."""

    queryset = ActLink.objects.order_by("-created_on", "-id")
    serializer_class = serializers.ActLinkSerializer
    filterset_class = ActLinkFilter
    search_fields = ("uid", "item_id")
    ordering_fields = ("created_on", "synced_on")

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        if getattr(self, "swagger_fake_view", False):  # the schema documents the fuller shape
            return serializers.ActLinkWithSyncedSerializer
        wanted = serializers.SyncedQuerySerializer(data=self.request.query_params)
        wanted.is_valid(raise_exception=True)
        if wanted.validated_data["synced"]:
            return serializers.ActLinkWithSyncedSerializer
        return serializers.ActLinkSerializer


def field_states() -> list[serializers.FieldState]:
    """Every synced field of every entity, in ``sync.act_fields`` order, with its direction now."""
    states = []
    for entity, fields in act_fields.FIELDS.items():
        now = act_fields.directions(entity)
        states += [
            serializers.FieldState(
                entity=entity,
                field=synced.name,
                label=synced.label,
                direction=now[synced.name],
                default=synced.default,
                fixed=synced.fixed,
            )
            for synced in fields
        ]
    return states


FIELD_KEY = OpenApiParameter(
    "key", str, OpenApiParameter.PATH, description="entity.field, e.g. appointment.location"
)


class ActFieldDirectionViewSet(ApiConventions, viewsets.ViewSet):
    """Which way each field of appointments, contacts and tasks syncs, for every mailbox.
    Everyone who may use the API reads them; administrators change a field's direction.
    A field is addressed as ``entity.field`` (``/act-field-settings/appointment.location/``)."""

    lookup_field = "key"
    lookup_value_regex = r"[a-z_]+\.[a-z_]+"
    filter_backends = ()  # a fixed list, not a queryset: nothing to filter, search or order

    def get_permissions(self) -> list[Any]:
        if self.action in ("update", "partial_update"):
            return [IsAuthenticated(), IsAdministrator()]
        return [IsAuthenticated(), IsCrmMember()]

    @extend_schema(responses={200: serializers.ActFieldDirectionSerializer(many=True), **DENIED})
    def list(self, request: Request) -> Response:
        # many=True: a list serializer (built in __new__), which the stubs do not model.
        states: Any = field_states()
        return Response(serializers.ActFieldDirectionSerializer(states, many=True).data)

    @extend_schema(
        parameters=[FIELD_KEY],
        responses={200: serializers.ActFieldDirectionSerializer, **DENIED, **NOT_FOUND},
    )
    def retrieve(self, request: Request, key: str) -> Response:
        return Response(serializers.ActFieldDirectionSerializer(_field_state(key)).data)

    @extend_schema(
        parameters=[FIELD_KEY],
        request=serializers.ActFieldDirectionUpdateSerializer,
        responses={
            200: serializers.ActFieldDirectionSerializer,
            400: OpenApiResponse(
                ApiErrorSerializer,
                description="A fixed field, or not a direction: ``direction`` says why.",
            ),
            401: DENIED[401],
            403: OpenApiResponse(ApiErrorSerializer, description="Administrators only."),
            **NOT_FOUND,
        },
    )
    def update(self, request: Request, key: str) -> Response:
        state = _field_state(key)
        given = serializers.ActFieldDirectionUpdateSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        direction = given.validated_data["direction"]
        errors = act_fields.setting_errors(state.entity, state.field, direction)
        if errors:
            raise ValidationError({"direction": errors})
        act_fields.store_direction(state.entity, state.field, FieldDirection(direction))
        return Response(serializers.ActFieldDirectionSerializer(_field_state(key)).data)

    @extend_schema(
        parameters=[FIELD_KEY],
        request=serializers.ActFieldDirectionUpdateSerializer,
        responses={
            200: serializers.ActFieldDirectionSerializer,
            400: OpenApiResponse(
                ApiErrorSerializer,
                description="A fixed field, or not a direction: ``direction`` says why.",
            ),
            401: DENIED[401],
            403: OpenApiResponse(ApiErrorSerializer, description="Administrators only."),
            **NOT_FOUND,
        },
    )
    def partial_update(self, request: Request, key: str) -> Response:
        # One field is written: a PATCH and a PUT say the same.
        return self.update(request, key)


def _field_state(key: str) -> serializers.FieldState:
    for state in field_states():
        if state.key == key:
            return state
    raise Http404(f"No synced field {key!r}.")
