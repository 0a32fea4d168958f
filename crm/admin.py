"""Admin for the CRM records and the organization's email settings."""

from __future__ import annotations

from typing import Any, TypeVar

from django.contrib import admin
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import models
from django.db.models import Model, Prefetch, QuerySet
from django.forms import BaseInlineFormSet, ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from rest_framework.authtoken.admin import TokenAdmin
from rest_framework.authtoken.models import TokenProxy

from crm.html import sanitize_email_html
from crm.models import (
    EMAIL_SETTINGS_SECTIONS,
    Account,
    ActivityParty,
    Appointment,
    AppointmentParty,
    Contact,
    CrmUser,
    EmailActivity,
    EmailAttachment,
    Lead,
    OrganizationSettings,
    Queue,
    QueueItem,
    Task,
)
from crm.models.records import ADDRESS_KINDS, ADDRESS_PARTS, OwnedRecord
from crm.services import ORGANIZER_REQUIRED
from web.admin_site import AdministratorModelAdmin, AdministratorPermissions

_Owned = TypeVar("_Owned", bound=OwnedRecord)

RECORD_INFO: tuple[str, Any] = (
    "Record information",
    {"classes": ["collapse"], "fields": ["created_on", "modified_on"]},
)


@admin.display(description="Mailbox")
def mailbox_address(self: Any, owner: CrmUser | Queue) -> str:
    # The reverse one-to-one raises when there is no mailbox (select_related caches that, no query).
    try:
        return owner.mailbox.email_address
    except ObjectDoesNotExist:
        return ""


def html_preview(body_html: str) -> SafeString | str:
    if not body_html:
        return "—"
    # Sanitized, and then framed as well: a sandboxed srcdoc frame (no scripts, an origin of
    # its own) keeps even the allowed styles from restyling the admin around it. Remote
    # images stay blocked; links may open in a new tab.
    return format_html(
        '<iframe class="email-preview" title="HTML body, sanitized" srcdoc="{}" '
        'sandbox="allow-popups allow-popups-to-escape-sandbox" referrerpolicy="no-referrer" '
        'style="width: 100%; min-width: 40em; height: 30em; border: 1px solid #ccc; '
        'background: #fff"></iframe>',
        sanitize_email_html(body_html),
    )


@admin.register(OrganizationSettings)
class OrganizationSettingsAdmin(AdministratorModelAdmin[OrganizationSettings]):
    """One row ("System Settings > Email"): the list page opens it directly."""

    readonly_fields = ["created_on", "modified_on"]
    fieldsets = [(title, {"fields": list(names)}) for title, names in EMAIL_SETTINGS_SECTIONS] + [RECORD_INFO]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and not OrganizationSettings.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            return super().changelist_view(request, extra_context)  # answers 403 as usual
        row = OrganizationSettings.load()
        return HttpResponseRedirect(reverse("admin:crm_organizationsettings_change", args=[row.pk]))


@admin.register(CrmUser)
class CrmUserAdmin(AdministratorModelAdmin[CrmUser]):
    list_display = ["full_name", "email", "user", "mailbox_address", "track_incoming_email", "is_active"]
    list_filter = ["is_active", "track_incoming_email", "auto_create_contacts"]
    list_select_related = ["user", "mailbox"]
    search_fields = ["full_name", "email", "external_id", "user__username"]
    autocomplete_fields = ["user"]
    mailbox_address = mailbox_address
    readonly_fields = ["created_on", "modified_on"]
    fieldsets = [
        ("General", {"fields": ["full_name", "email", "user", "is_active", "external_id"]}),
        ("Email options", {"fields": ["track_incoming_email", "auto_create_contacts", "time_zone"]}),
        RECORD_INFO,
    ]


@admin.register(Queue)
class QueueAdmin(AdministratorModelAdmin[Queue]):
    list_display = ["name", "email", "owner", "mailbox_address", "convert_incoming_email", "is_active"]
    list_filter = ["is_active", "convert_incoming_email"]
    list_select_related = ["owner", "mailbox"]
    search_fields = ["name", "email", "external_id", "owner__full_name"]
    autocomplete_fields = ["owner"]
    mailbox_address = mailbox_address
    readonly_fields = ["created_on", "modified_on"]
    fieldsets = [
        ("General", {"fields": ["name", "email", "owner", "is_active", "external_id"]}),
        ("Email settings", {"fields": ["convert_incoming_email"]}),
        RECORD_INFO,
    ]


class OwnedRecordAdmin(AdministratorModelAdmin[_Owned]):
    list_filter = ["is_active"]
    list_select_related = ["owner"]
    autocomplete_fields = ["owner"]
    readonly_fields = ["created_on", "modified_on"]


@admin.register(Account)
class AccountAdmin(OwnedRecordAdmin[Account]):
    list_display = ["name", "email", "phone", "owner", "is_active"]
    search_fields = ["name", "email", "website"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}  # Django 6's default already


ADDRESS_FIELDSETS: list[tuple[str, Any]] = [
    (f"{kind.capitalize()} address", {"fields": [f"{kind}_{part}" for part in ADDRESS_PARTS]})
    for kind in ADDRESS_KINDS
]


@admin.register(Contact)
class ContactAdmin(OwnedRecordAdmin[Contact]):
    list_display = ["__str__", "email", "account", "company_name", "job_title", "owner", "is_active"]
    list_select_related = ["owner", "account"]
    search_fields = ["first_name", "last_name", "nickname", "email", "email2", "email3", "account__name"]
    autocomplete_fields = ["owner", "account"]
    fieldsets = [
        (
            "General",
            {"fields": ["first_name", "middle_name", "last_name", "nickname", "owner", "is_active"]},
        ),
        ("Company", {"fields": ["account", "company_name", "job_title", "department"]}),
        ("Email", {"fields": ["email", "email2", "email3"]}),
        ("Phones", {"fields": ["phone", "mobile_phone", "home_phone", "business_fax"]}),
        *ADDRESS_FIELDSETS,
        ("Personal", {"fields": ["birthday", "notes"]}),
        RECORD_INFO,
    ]


@admin.register(Lead)
class LeadAdmin(OwnedRecordAdmin[Lead]):
    list_display = ["__str__", "company_name", "email", "topic", "status", "owner", "is_active"]
    list_filter = ["status", "is_active"]
    search_fields = ["first_name", "last_name", "email", "company_name", "topic"]


PARTY_RECORDS = ["user", "queue", "contact", "account", "lead"]
REGARDING_FIELDS = ["regarding_account", "regarding_contact", "regarding_lead"]


class ActivityPartyInline(AdministratorPermissions, admin.TabularInline[ActivityParty, EmailActivity]):
    model = ActivityParty
    extra = 0
    fields = ["role", "address", "display_name", *PARTY_RECORDS]
    autocomplete_fields = PARTY_RECORDS


class EmailAttachmentInline(AdministratorPermissions, admin.TabularInline[EmailAttachment, EmailActivity]):
    model = EmailAttachment
    extra = 0
    fields = ["filename", "content_type", "content_id", "size", "content", "skipped_reason"]


@admin.register(EmailActivity)
class EmailActivityAdmin(AdministratorModelAdmin[EmailActivity]):
    list_display = [
        "__str__",
        "sender",
        "direction",
        "status",
        "owner",
        "regarding",
        "received_on",
        "created_on",
    ]
    list_filter = ["direction", "status", "correlation_method", "received_on"]
    list_select_related = ["owner", "regarding_account", "regarding_contact", "regarding_lead"]
    search_fields = ["subject", "message_id", "tracking_token", "conversation_id", "=parties__address"]
    date_hierarchy = "created_on"
    autocomplete_fields = ["owner", "regarding_account", "regarding_contact", "regarding_lead"]
    inlines = [ActivityPartyInline, EmailAttachmentInline]
    # What the engine decides: how the mail was matched, its identity, delivery times and outcome.
    readonly_fields = [
        "status",
        "message_identity",
        "copy_owner",
        "correlation_method",
        "correlated_email",
        "received_on",
        "sent_on",
        "failure_reason",
        "raw_message",
        "body_html_preview",
        "created_on",
        "modified_on",
    ]
    fieldsets = [
        ("General", {"fields": ["subject", "direction", "status", "owner", "failure_reason"]}),
        ("Regarding", {"fields": ["regarding_account", "regarding_contact", "regarding_lead"]}),
        # body_html is edited as source text (escaped in its box); only the sanitized copy is rendered.
        ("Body", {"fields": ["body_text", "body_html", "body_html_preview"]}),
        (
            "Message headers",
            {"fields": ["message_id", "in_reply_to", "references", "conversation_id", "tracking_token"]},
        ),
        (
            "Tracking",
            {"fields": ["correlation_method", "correlated_email", "message_identity", "copy_owner"]},
        ),
        ("Delivery", {"fields": ["received_on", "sent_on", "raw_message"]}),
        RECORD_INFO,
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[EmailActivity]:
        senders = ActivityParty.objects.filter(role=ActivityParty.Role.FROM).order_by("id")
        return (
            super()
            .get_queryset(request)
            .prefetch_related(Prefetch("parties", queryset=senders, to_attr="senders"))
        )

    @admin.display(description="From")
    def sender(self, email: EmailActivity) -> str:
        senders = getattr(email, "senders", None)
        if senders is None:  # outside the changelist's queryset
            senders = list(email.parties.filter(role=ActivityParty.Role.FROM))
        return senders[0].address if senders else ""

    @admin.display(description="Regarding")
    def regarding(self, email: EmailActivity) -> str:
        return str(email.regarding or "")

    @admin.display(description="HTML body (sanitized preview)")
    def body_html_preview(self, email: EmailActivity) -> SafeString | str:
        return html_preview(email.body_html)


@admin.register(ActivityParty)
class ActivityPartyAdmin(AdministratorModelAdmin[ActivityParty]):
    """Every address on every email: search here for who wrote to or was copied on what."""

    list_display = ["address", "display_name", "role", "email", "record"]
    list_filter = ["role"]
    list_select_related = ["email", *PARTY_RECORDS]
    search_fields = ["address", "display_name", "email__subject"]
    autocomplete_fields = ["email", *PARTY_RECORDS]

    @admin.display(description="Resolved to")
    def record(self, party: ActivityParty) -> str:
        return str(party.record or "(unresolved)")


@admin.register(EmailAttachment)
class EmailAttachmentAdmin(AdministratorModelAdmin[EmailAttachment]):
    list_display = ["__str__", "email", "content_type", "size", "skipped_reason"]
    list_select_related = ["email"]
    search_fields = ["filename", "email__subject"]
    autocomplete_fields = ["email"]


@admin.register(QueueItem)
class QueueItemAdmin(AdministratorModelAdmin[QueueItem]):
    list_display = ["email", "queue", "worked_by", "created_on"]
    list_filter = ["queue"]
    list_select_related = ["email", "queue", "worked_by"]
    search_fields = ["email__subject", "queue__name"]
    autocomplete_fields = ["queue", "email", "worked_by"]
    readonly_fields = ["created_on", "modified_on"]


APPOINTMENT_PARTY_RECORDS = ["user", "contact", "account", "lead"]


class AppointmentPartyFormSet(BaseInlineFormSet[AppointmentParty, Appointment, ModelForm[AppointmentParty]]):
    """The admin's side of crm.services.appointment_save's rule: an appointment has an
    organizer (an exception of a series may go without: the series has one)."""

    def clean(self) -> None:
        super().clean()
        kept = [
            form.cleaned_data
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        organizers = [data for data in kept if data.get("role") == AppointmentParty.Role.ORGANIZER]
        if not organizers and self.instance.series_master_id is None:
            raise ValidationError(f"{ORGANIZER_REQUIRED} Add a party with the role Organizer.")


class AppointmentPartyInline(AdministratorPermissions, admin.TabularInline[AppointmentParty, Appointment]):
    model = AppointmentParty
    formset = AppointmentPartyFormSet
    extra = 0
    fields = ["role", "address", "display_name", *APPOINTMENT_PARTY_RECORDS]
    autocomplete_fields = APPOINTMENT_PARTY_RECORDS


class AppointmentExceptionInline(AdministratorPermissions, admin.TabularInline[Appointment, Appointment]):
    """A series' changed occurrences (each opens as an appointment of its own)."""

    model = Appointment
    fk_name = "series_master"
    extra = 0
    fields = ["original_start", "subject", "start", "end", "status"]
    readonly_fields = ["original_start", "subject", "start", "end", "status"]
    show_change_link = True
    verbose_name = "changed occurrence"
    verbose_name_plural = "changed occurrences"


@admin.register(Appointment)
class AppointmentAdmin(AdministratorModelAdmin[Appointment]):
    list_display = ["__str__", "start", "end", "start_time_zone", "status", "show_as", "owner", "series"]
    list_filter = ["status", "show_as", "all_day", "start"]
    list_select_related = ["owner", "series_master"]
    search_fields = ["subject", "location", "=parties__address"]
    date_hierarchy = "start"
    autocomplete_fields = ["owner", "series_master", *REGARDING_FIELDS]
    inlines = [AppointmentPartyInline, AppointmentExceptionInline]
    readonly_fields = ["body_html_preview", "created_on", "modified_on"]
    fieldsets = [
        ("General", {"fields": ["subject", "location", "status", "show_as", "owner", "categories"]}),
        (
            "Time",
            {
                "fields": [
                    ("start", "start_time_zone"),
                    ("end", "end_time_zone"),
                    "all_day",
                    ("start_date", "end_date"),
                    "reminder_minutes_before",
                ]
            },
        ),
        ("Series", {"fields": ["recurrence_rule", "deleted_occurrences", "series_master", "original_start"]}),
        ("Regarding", {"fields": [*REGARDING_FIELDS]}),
        ("Body", {"fields": ["body_text", "body_html", "body_html_preview"]}),
        RECORD_INFO,
    ]

    @admin.display(description="Series")
    def series(self, appointment: Appointment) -> str:
        if appointment.series_master_id is not None:
            return f"exception of #{appointment.series_master_id}"
        return appointment.recurrence_rule

    @admin.display(description="HTML body (sanitized preview)")
    def body_html_preview(self, appointment: Appointment) -> SafeString | str:
        return html_preview(appointment.body_html)


@admin.register(Task)
class TaskAdmin(AdministratorModelAdmin[Task]):
    list_display = ["subject", "status", "percent_complete", "priority", "due", "owner", "completed_on"]
    list_filter = ["status", "priority", "due"]
    list_select_related = ["owner"]
    search_fields = ["subject"]
    autocomplete_fields = ["owner", *REGARDING_FIELDS]
    readonly_fields = ["completed_on", "created_on", "modified_on"]
    fieldsets = [
        (
            "General",
            {"fields": ["subject", "owner", "status", "percent_complete", "priority", "completed_on"]},
        ),
        ("Dates", {"fields": ["start", "due"]}),
        ("Regarding", {"fields": [*REGARDING_FIELDS]}),
        ("Body", {"fields": ["body_text"]}),
        RECORD_INFO,
    ]


# DRF lists API token keys; a key is a credential, and credentials are never shown in the admin.
admin.site.unregister(TokenProxy)


@admin.register(TokenProxy)
class MaskedTokenAdmin(AdministratorPermissions, TokenAdmin):
    list_display = ("user", "created")
