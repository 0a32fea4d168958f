"""Admin for the engine's records. The engine writes them, so the pages only show
them; what an administrator does here is acknowledge or resolve alerts (who and when
recorded by sync.alerts) and choose the field directions of appointments, contacts and
tasks (checked as the console and the API check them: ``act_fields.setting_errors``)."""

from __future__ import annotations

from typing import Any, TypeVar

from django import forms
from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from sync import act_fields
from sync.alerts import alert_acknowledge, alert_resolve
from sync.models import (
    ActFieldSetting,
    ActItemProblem,
    ActLink,
    FolderCursor,
    MailboxAlert,
    MailboxSchedule,
    OutgoingClaim,
    QuarantinedMessage,
    Receipt,
    SyncRun,
)
from web.admin_site import AdministratorModelAdmin

_M = TypeVar("_M", bound=Model)


class EngineRecordAdmin(AdministratorModelAdmin[_M]):
    """Read-only: a hand-edited cursor, lease or receipt would break the engine's guarantees."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class SetListFilter(admin.SimpleListFilter):
    """Yes / No on whether a date field is set (resolved, acknowledged)."""

    field_name = ""

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in ("yes", "no"):
            return queryset.filter(**{f"{self.field_name}__isnull": self.value() == "no"})
        return queryset


class ResolvedFilter(SetListFilter):
    title = "resolved"
    parameter_name = "resolved"
    field_name = "resolved_on"


class AcknowledgedFilter(SetListFilter):
    title = "acknowledged"
    parameter_name = "acknowledged"
    field_name = "acknowledged_on"


@admin.register(MailboxAlert)
class MailboxAlertAdmin(EngineRecordAdmin[MailboxAlert]):
    list_display = [
        "level",
        "category",
        "code",
        "mailbox",
        "profile",
        "count",
        "first_seen",
        "last_seen",
        "is_acknowledged",
        "is_resolved",
    ]
    list_filter = ["level", "category", ResolvedFilter, AcknowledgedFilter]
    list_select_related = ["mailbox", "profile"]
    search_fields = ["message", "code", "subject_key", "mailbox__email_address", "profile__name"]
    date_hierarchy = "last_seen"
    actions = ["acknowledge", "resolve"]

    @admin.display(description="Acknowledged", boolean=True)
    def is_acknowledged(self, alert: MailboxAlert) -> bool:
        return alert.acknowledged_on is not None

    @admin.display(description="Resolved", boolean=True)
    def is_resolved(self, alert: MailboxAlert) -> bool:
        return alert.resolved_on is not None

    def has_alert_action_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    @admin.action(description="Acknowledge selected alerts", permissions=["alert_action"])
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[MailboxAlert]) -> None:
        alerts = list(queryset)
        for alert in alerts:
            alert_acknowledge(alert=alert, by=request.user)
        self.message_user(request, f"Acknowledged: {len(alerts)} alert(s).", messages.SUCCESS)

    @admin.action(description="Resolve selected alerts", permissions=["alert_action"])
    def resolve(self, request: HttpRequest, queryset: QuerySet[MailboxAlert]) -> None:
        alerts = list(queryset)
        for alert in alerts:
            alert_resolve(alert=alert, by=request.user)
        self.message_user(request, f"Resolved: {len(alerts)} alert(s).", messages.SUCCESS)


@admin.register(Receipt)
class ReceiptAdmin(EngineRecordAdmin[Receipt]):
    list_display = ["subject", "sender", "mailbox", "folder", "outcome", "server_received_on", "created_on"]
    list_filter = ["outcome"]
    list_select_related = ["mailbox"]
    search_fields = ["subject", "sender", "=message_id", "=message_identity", "mailbox__email_address"]
    date_hierarchy = "created_on"


@admin.register(QuarantinedMessage)
class QuarantinedMessageAdmin(EngineRecordAdmin[QuarantinedMessage]):
    list_display = ["server_id", "mailbox", "folder", "error_code", "state", "size", "attempts", "created_on"]
    list_filter = ["state", "error_code"]
    list_select_related = ["mailbox"]
    search_fields = ["error_code", "error_text", "=message_identity", "mailbox__email_address"]
    date_hierarchy = "created_on"
    # The raw message is never rendered (it may hold anything, scripts included).
    exclude = ["raw"]
    readonly_fields = ["raw_stored"]

    @admin.display(description="Raw message stored", boolean=True)
    def raw_stored(self, message: QuarantinedMessage) -> bool:
        return bool(message.raw)


@admin.register(SyncRun)
class SyncRunAdmin(EngineRecordAdmin[SyncRun]):
    list_display = [
        "mailbox",
        "kind",
        "started_on",
        "finished_on",
        "outcome",
        "received",
        "tracked",
        "quarantined",
        "sent",
        "failed",
        "error_code",
    ]
    list_filter = ["kind", "outcome"]
    list_select_related = ["mailbox"]
    search_fields = ["mailbox__email_address", "error_code", "error_text"]
    date_hierarchy = "started_on"


@admin.register(FolderCursor)
class FolderCursorAdmin(EngineRecordAdmin[FolderCursor]):
    list_display = ["mailbox", "folder", "generation", "uidvalidity", "last_uid", "updated_on"]
    list_select_related = ["mailbox"]
    search_fields = ["mailbox__email_address", "folder"]


@admin.register(MailboxSchedule)
class MailboxScheduleAdmin(EngineRecordAdmin[MailboxSchedule]):
    list_display = ["mailbox", "kind", "next_due_on", "lease_expires_on", "idle_runs", "last_run_on"]
    list_filter = ["kind"]
    list_select_related = ["mailbox"]
    search_fields = ["mailbox__email_address"]


@admin.register(OutgoingClaim)
class OutgoingClaimAdmin(EngineRecordAdmin[OutgoingClaim]):
    list_display = ["email", "mailbox", "expires_on", "attempts", "next_attempt_on"]
    list_select_related = ["email", "mailbox"]
    search_fields = ["mailbox__email_address", "email__subject", "=email__message_id"]


@admin.register(ActLink)
class ActLinkAdmin(EngineRecordAdmin[ActLink]):
    list_display = ["mailbox", "entity", "record", "item_id", "tracked_on_server", "synced_on"]
    list_filter = ["entity", "tracked_on_server"]
    list_select_related = ["mailbox"]
    search_fields = ["mailbox__email_address", "=uid", "=item_id"]
    date_hierarchy = "created_on"
    # A link names one record; the three record fields as raw ids, not selects of every record.
    raw_id_fields = ["appointment", "task", "contact"]

    @admin.display(description="CRM record")
    def record(self, link: ActLink) -> str:
        return f"{link.entity} #{link.record_id}" if link.record_id is not None else "(deleted)"


@admin.register(ActItemProblem)
class ActItemProblemAdmin(EngineRecordAdmin[ActItemProblem]):
    list_display = ["created_on", "mailbox", "entity", "kind", "title", "field", "dropped_side", "message"]
    list_filter = ["kind", "entity", "dropped_side"]
    list_select_related = ["mailbox"]
    search_fields = ["mailbox__email_address", "title", "message", "=item_id"]
    date_hierarchy = "created_on"
    raw_id_fields = ["link"]


class ActFieldSettingForm(forms.ModelForm[ActFieldSetting]):
    """The field is chosen by name; ``setting_errors`` says why a choice cannot be saved
    (an unknown or fixed field, a direction that is none of the four)."""

    class Meta:
        model = ActFieldSetting
        fields = ["entity", "field", "direction"]
        help_texts = {
            "field": "A synced field's name, as the field directions page lists them "
            "(appointment: location, body, ...; contact: job_title, ...)."
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        entity, name, direction = (cleaned.get(key) for key in ("entity", "field", "direction"))
        if entity and name and direction:
            # Entity and direction are choices the form checked already: what is left is the field.
            for error in act_fields.setting_errors(entity, name, direction):
                self.add_error("field", error)
        return cleaned


@admin.register(ActFieldSetting)
class ActFieldSettingAdmin(AdministratorModelAdmin[ActFieldSetting]):
    form = ActFieldSettingForm
    list_display = ["entity", "field", "label", "direction", "modified_on"]
    list_filter = ["entity", "direction"]
    search_fields = ["field"]

    @admin.display(description="Label")
    def label(self, setting: ActFieldSetting) -> str:
        try:
            return act_fields.field(setting.entity, setting.field).label
        except KeyError:  # a row for a field no longer synced: it has no effect
            return "(not a synced field)"
