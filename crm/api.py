"""REST API for CRM records (thin: scoping in web.api_base, rules in models and services)."""

from __future__ import annotations

from typing import Any, TypeVar

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, mixins, permissions, viewsets
from rest_framework.serializers import BaseSerializer

from crm import serializers
from crm.models import (
    Account,
    Appointment,
    Contact,
    CrmUser,
    EmailActivity,
    Lead,
    OrganizationSettings,
    Queue,
    Task,
)
from crm.models.records import OwnedRecord
from web.api_base import ApiConventions, IsAdministrator, RoleScopedMixin, ScopedModelViewSet

_Owned = TypeVar("_Owned", bound=OwnedRecord)


class OrganizationSettingsView(ApiConventions, generics.RetrieveUpdateAPIView[OrganizationSettings]):
    """The organization's email settings (System Settings > Email). Administrators only."""

    serializer_class = serializers.OrganizationSettingsSerializer
    permission_classes = [permissions.IsAuthenticated, IsAdministrator]

    def get_object(self) -> OrganizationSettings:
        return OrganizationSettings.load()


class CrmUserViewSet(ScopedModelViewSet[CrmUser]):
    """CRM users. Users see their own record and may change their personal options."""

    queryset = CrmUser.objects.select_related("user")
    filterset_fields = ("is_active", "track_incoming_email")
    search_fields = ("full_name", "email", "external_id")
    ordering_fields = ("full_name", "email", "created_on")
    admin_actions = frozenset({"create", "update", "destroy"})

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        if self.is_admin:
            return serializers.CrmUserSerializer
        return serializers.PersonalOptionsSerializer


class QueueViewSet(ScopedModelViewSet[Queue]):
    queryset = Queue.objects.select_related("owner")
    serializer_class = serializers.QueueSerializer
    filterset_fields = ("is_active", "owner", "convert_incoming_email")
    search_fields = ("name", "email", "external_id")
    ordering_fields = ("name", "email", "created_on")


class OwnedRecordViewSet(ScopedModelViewSet[_Owned]):
    """Users create and change the records they own; administrators all."""

    admin_actions = frozenset()
    filterset_fields: tuple[str, ...] = ("owner", "is_active")
    ordering_fields: tuple[str, ...] = ("created_on", "modified_on")


class AccountViewSet(OwnedRecordViewSet[Account]):
    queryset = Account.objects.select_related("owner")
    serializer_class = serializers.AccountSerializer
    search_fields = ("name", "email")


class ContactViewSet(OwnedRecordViewSet[Contact]):
    queryset = Contact.objects.select_related("owner", "account")
    serializer_class = serializers.ContactSerializer
    filterset_fields = ("owner", "is_active", "account")
    search_fields = ("first_name", "last_name", "nickname", "company_name", "email", "email2", "email3")
    ordering_fields = ("last_name", "first_name", "company_name", "created_on", "modified_on")


class LeadViewSet(OwnedRecordViewSet[Lead]):
    queryset = Lead.objects.select_related("owner")
    serializer_class = serializers.LeadSerializer
    filterset_fields = ("owner", "is_active", "status")
    search_fields = ("first_name", "last_name", "company_name", "email")


REMOTE_IMAGES_PARAMETER = OpenApiParameter(
    serializers.REMOTE_IMAGES,
    OpenApiTypes.BOOL,
    OpenApiParameter.QUERY,
    required=False,
    default=False,
    description="true: keep remote (http/https) images in body_html_sanitized. They are removed by default, "
    "since loading one tells the sender the email was read.",
)


# Every operation that answers with emails, so each documents how to ask for remote images.
@extend_schema_view(
    list=extend_schema(parameters=[REMOTE_IMAGES_PARAMETER]),
    retrieve=extend_schema(parameters=[REMOTE_IMAGES_PARAMETER]),
    create=extend_schema(parameters=[REMOTE_IMAGES_PARAMETER]),
)
class EmailViewSet(
    RoleScopedMixin[EmailActivity],
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet[EmailActivity],
):
    """Email activities: read them, or create an outgoing draft or pending send."""

    queryset = EmailActivity.objects.select_related("owner").prefetch_related(
        "parties__user",
        "parties__queue",
        "parties__contact",
        "parties__account",
        "parties__lead",
        "attachments",
    )
    serializer_class = serializers.EmailSerializer
    filterset_fields = (
        "direction",
        "status",
        "owner",
        "regarding_account",
        "regarding_contact",
        "regarding_lead",
    )
    search_fields = ("subject", "message_id")
    ordering_fields = ("created_on", "received_on", "sent_on")
    admin_actions = frozenset()


REGARDING_FILTERS = ("regarding_account", "regarding_contact", "regarding_lead")
# Time windows: ?start__lt=...&end__gt=... asks for what overlaps a window.
WINDOW = ["exact", "gte", "gt", "lte", "lt"]


class AppointmentViewSet(ScopedModelViewSet[Appointment]):
    """Appointments: a user creates and changes their own; administrators all. A series is
    its master (with recurrence_rule); its exceptions are rows with series_master set."""

    queryset = Appointment.objects.select_related("owner").prefetch_related(
        "parties__user", "parties__contact", "parties__account", "parties__lead"
    )
    serializer_class = serializers.AppointmentSerializer
    admin_actions = frozenset()
    filterset_fields = {
        "owner": ["exact"],
        "status": ["exact"],
        "show_as": ["exact"],
        "all_day": ["exact"],
        "series_master": ["exact", "isnull"],
        **{name: ["exact"] for name in REGARDING_FILTERS},
        "start": WINDOW,
        "end": WINDOW,
    }
    search_fields = ("subject", "location")
    ordering_fields = ("start", "end", "subject", "created_on", "modified_on")


class TaskViewSet(ScopedModelViewSet[Task]):
    """Tasks: a user creates and changes their own; administrators all."""

    queryset = Task.objects.select_related("owner")
    serializer_class = serializers.TaskSerializer
    admin_actions = frozenset()
    filterset_fields = {
        "owner": ["exact"],
        "status": ["exact", "in"],
        "priority": ["exact"],
        **{name: ["exact"] for name in REGARDING_FILTERS},
        "due": WINDOW,
    }
    search_fields = ("subject",)
    ordering_fields = ("due", "start", "subject", "completed_on", "created_on", "modified_on")
