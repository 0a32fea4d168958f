"""Admin for mailboxes. Changes go through mailboxes.services, so a new address
or profile starts a new configuration generation exactly as it does elsewhere.

Email Router migrations are shown read-only: they are made, applied and
abandoned by the wizard, the API and the command (mailboxes.router_import.service);
here an administrator looks one up, or abandons a pending one. The uploaded
files are listed by name, size and checksum only, never their contents."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import BooleanField, ExpressionWrapper, Model, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from mailboxes.models import (
    ApprovalStatus,
    Mailbox,
    RouterMigration,
    RouterMigrationFile,
    SyncFilter,
    SyncFilterTemplate,
)
from mailboxes.router_import.errors import RouterImportError
from mailboxes.router_import.service import router_migration_abandon
from mailboxes.services import mailbox_create, mailbox_defaults, mailbox_set_approval, mailbox_update
from profiles.admin import SecretFieldsAdminMixin
from web.admin_site import AdministratorModelAdmin, AdministratorPermissions
from web.roles import can_approve_email

STATUS_FIELDS = (
    "incoming_status",
    "incoming_enabled",
    "outgoing_status",
    "outgoing_enabled",
    "act_status",
    "act_enabled",
    "test_completed_on",
    "disabled_reason",
)
ENGINE_FIELDS = (
    "configuration_generation",
    "incoming_transient_failures",
    "outgoing_transient_failures",
    "act_transient_failures",
    "incoming_postponed_until",
    "outgoing_postponed_until",
    "act_postponed_until",
    "last_sync_error_code",
    "last_sync_error_text",
    "last_sync_error_count",
    "last_sync_error_on",
    "items_processed_last_sync",
    "items_failed_last_sync",
)
APPROVAL_FIELDS = ("approval_status", "approval_changed_by", "approval_changed_on")


@admin.register(Mailbox)
class MailboxAdmin(SecretFieldsAdminMixin[Mailbox], AdministratorModelAdmin[Mailbox]):
    list_display = [
        "name",
        "email_address",
        "owner",
        "profile",
        "approval_status",
        "incoming_status",
        "outgoing_status",
        "act_status",
        "last_sync_error_on",
    ]
    list_filter = [
        "approval_status",
        "incoming_status",
        "outgoing_status",
        "act_status",
        "incoming_method",
        "outgoing_method",
        "act_method",
        "is_forward_mailbox",
        "needs_credentials",
        "profile",
    ]
    list_select_related = ["user", "queue", "profile"]
    search_fields = ["name", "email_address", "user__full_name", "queue__name", "username"]
    autocomplete_fields = ["user", "queue", "profile"]
    actions = ["approve_email", "reject_email"]
    # Approval is decided by the actions (who and when recorded); the rest is the engine's.
    readonly_fields = [
        *APPROVAL_FIELDS,
        *STATUS_FIELDS,
        *ENGINE_FIELDS,
        "stored_secrets",
        "created_on",
        "modified_on",
    ]
    fieldsets = [
        (
            "General",
            {
                "fields": [
                    "name",
                    "email_address",
                    "user",
                    "queue",
                    "is_forward_mailbox",
                    "profile",
                    "delete_email_after_processing",
                ]
            },
        ),
        ("Email address approval", {"fields": APPROVAL_FIELDS}),
        ("Synchronization method", {"fields": ["incoming_method", "outgoing_method", "act_method"]}),
        ("Configuration test results", {"fields": STATUS_FIELDS}),
        (
            "Credentials",
            {
                "fields": [
                    "allow_credentials_for_email_processing",
                    "stored_secrets",
                    "username",
                    "password",
                    "clear_password",
                    "needs_credentials",
                ]
            },
        ),
        ("Advanced", {"fields": ["folders", "process_email_received_after"]}),
        ("Synchronization state", {"classes": ["collapse"], "fields": ENGINE_FIELDS}),
        ("Record information", {"classes": ["collapse"], "fields": ["created_on", "modified_on"]}),
    ]

    @admin.display(description="Owner")
    def owner(self, mailbox: Mailbox) -> str:
        return str(mailbox.user or mailbox.queue or "(forward mailbox)")

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        # "Apply default email settings": the organization's sync methods and default profile.
        defaults = mailbox_defaults()
        defaults["profile"] = defaults["profile"].pk if defaults["profile"] else None
        return {**defaults, **super().get_changeform_initial_data(request)}

    def save_model(
        self, request: HttpRequest, obj: Mailbox, form: forms.ModelForm[Mailbox], change: bool
    ) -> None:
        model_fields = {field.name for field in Mailbox._meta.concrete_fields}
        data = {name: value for name, value in form.cleaned_data.items() if name in model_fields}
        if change:
            mailbox_update(mailbox=obj, data=data)
            return
        created = mailbox_create(data=data)
        # The admin goes on with the form's instance (history entry, redirect): make it the new row.
        obj.pk = created.pk
        obj._state.adding = False
        obj.refresh_from_db()

    def has_approve_email_permission(self, request: HttpRequest) -> bool:
        return can_approve_email(request.user)

    @admin.action(description="Approve email address", permissions=["approve_email"])
    def approve_email(self, request: HttpRequest, queryset: QuerySet[Mailbox]) -> None:
        self._set_approval(request, queryset, ApprovalStatus.APPROVED)

    @admin.action(description="Reject email address", permissions=["approve_email"])
    def reject_email(self, request: HttpRequest, queryset: QuerySet[Mailbox]) -> None:
        self._set_approval(request, queryset, ApprovalStatus.REJECTED)

    def _set_approval(self, request: HttpRequest, queryset: QuerySet[Mailbox], status: str) -> None:
        mailboxes = list(queryset)
        for mailbox in mailboxes:
            mailbox_set_approval(mailbox=mailbox, status=status, by=request.user)
        label = ApprovalStatus(status).label
        self.message_user(request, f"{label}: {len(mailboxes)} email address(es).", messages.SUCCESS)


FILE_FIELDS = ("router", "router_name", "name", "uploaded_name", "size", "sha256", "held")
MIGRATION_FIELDS = (
    "state",
    "source",
    "wizard_link",
    "created_on",
    "created_by",
    "finished_on",
    "finished_by",
    "apply_error",
    "fingerprint",
    "routers",
    "selection",
    "counts_shown",
    "review",
    "result",
)


class RouterMigrationFileInline(
    AdministratorPermissions, admin.TabularInline[RouterMigrationFile, RouterMigration]
):
    """The uploaded files by name, size and checksum; whether the (encrypted) contents
    are still held, never the contents themselves."""

    model = RouterMigrationFile
    fields = FILE_FIELDS
    readonly_fields = FILE_FIELDS
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[RouterMigrationFile]:
        # The encrypted contents are never loaded for this page: the database says whether they are there.
        held = ExpressionWrapper(~Q(content=""), output_field=BooleanField())
        return super().get_queryset(request).defer("content").annotate(content_held=held)

    @admin.display(description="Contents")
    def held(self, stored: RouterMigrationFile) -> str:
        return "held, encrypted" if getattr(stored, "content_held", False) else "deleted"


@admin.register(RouterMigration)
class RouterMigrationAdmin(AdministratorModelAdmin[RouterMigration]):
    """Read-only: a migration is made by the wizard, the API or the command and
    carried out in one transaction by the service; its record is kept for good."""

    list_display = [
        "id",
        "state",
        "source",
        "routers_shown",
        "counts_shown",
        "created_on",
        "created_by",
        "finished_on",
        "finished_by",
    ]
    list_filter = ["state", "source"]
    list_select_related = ["created_by", "finished_by"]
    search_fields = ["fingerprint", "files__router_name", "files__sha256"]
    date_hierarchy = "created_on"
    inlines = [RouterMigrationFileInline]
    actions = ["abandon"]
    fields = MIGRATION_FIELDS
    readonly_fields = MIGRATION_FIELDS

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False  # the wizard (/migration/), the API or import_email_router make one from files

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False  # every migration is kept

    @admin.display(description="Routers")
    def routers_shown(self, migration: RouterMigration) -> str:
        return ", ".join(str(router.get("name", "")) for router in migration.routers) or "—"

    @admin.display(description="Review")
    def counts_shown(self, migration: RouterMigration) -> str:
        counts = migration.review.get("counts", {})
        if not counts:
            return "—"
        return (
            f"{counts.get('profiles_to_create', 0)} profiles to create, "
            f"{counts.get('mailboxes_to_create', 0)} mailboxes to create, "
            f"{counts.get('mailboxes_to_update', 0)} to update, "
            f"{counts.get('forward_mailboxes_to_create', 0)} forward mailboxes to create, "
            f"{counts.get('not_migrated', 0)} not migrated"
        )

    @admin.display(description="In the wizard")
    def wizard_link(self, migration: RouterMigration) -> str:
        url = reverse("migration-detail", args=[migration.pk])
        return format_html('<a href="{}">Migration #{}</a>', url, migration.pk)

    @admin.action(description="Abandon (delete the held files, migrate nothing)")
    def abandon(self, request: HttpRequest, queryset: QuerySet[RouterMigration]) -> None:
        done, refused = 0, []
        for migration in queryset:
            try:
                router_migration_abandon(migration=migration, by=request.user)
            except RouterImportError as error:
                refused.append(f"{migration.pk}: {error}")
            else:
                done += 1
        if done:
            self.message_user(request, f"Abandoned {done} migration(s).", messages.SUCCESS)
        if refused:
            self.message_user(request, "Not abandoned: " + "; ".join(refused), messages.WARNING)


@admin.register(SyncFilterTemplate)
class SyncFilterTemplateAdmin(AdministratorModelAdmin[SyncFilterTemplate]):
    """The organization's default sync filters (mailboxes.filter_criteria says what criteria
    may hold): copied onto each new user's mailbox, so an edit changes later mailboxes only."""

    list_display = ("name", "entity", "modified_on")
    list_filter = ("entity",)


@admin.register(SyncFilter)
class SyncFilterAdmin(AdministratorModelAdmin[SyncFilter]):
    """Mailboxes' sync filters; users edit their own on the mailbox's sync filters page."""

    list_display = ("name", "entity", "mailbox", "modified_on")
    list_filter = ("entity",)
    search_fields = ("name", "mailbox__email_address")
    raw_id_fields = ("mailbox",)
    list_select_related = ("mailbox",)
