"""Admin for email server profiles. Secrets are write-only here: never rendered."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypedDict, TypeVar

from django import forms
from django.contrib import admin
from django.db.models import Count, Model, QuerySet
from django.http import HttpRequest

from profiles.fields import EncryptedTextField
from profiles.forms import SecretFieldsFormMixin
from profiles.models import ADDITIONAL_SETTINGS, EmailServerProfile
from web.admin_site import AdministratorModelAdmin

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

_M = TypeVar("_M", bound=Model)


class _MailboxCount(TypedDict):
    mailbox_count: int


class SecretAdminForm(SecretFieldsFormMixin[_M], forms.ModelForm[_M]):
    """The admin form of a model with secrets; the ModelAdmin supplies model and fields."""


class SecretFieldsAdminMixin(Generic[_M]):
    """For a ModelAdmin of a model with encrypted fields: write-only secret inputs.

    The ``clear_<secret>`` checkboxes are form fields, not model fields, so they
    are kept out of the ``fields`` handed to modelform_factory (the form adds
    them itself) and out of the add page, where there is nothing to remove.
    """

    model: type[_M]
    form: type[forms.ModelForm[_M]] = SecretAdminForm

    def _secret_fields(self) -> list[EncryptedTextField]:
        return [f for f in self.model._meta.concrete_fields if isinstance(f, EncryptedTextField)]

    def _clear_fields(self) -> set[str]:
        return {f"clear_{field.name}" for field in self._secret_fields()}

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)  # type: ignore[misc]
        if obj is not None:
            return fieldsets
        clear = self._clear_fields()
        return [
            (title, {**options, "fields": [f for f in options["fields"] if f not in clear]})
            for title, options in fieldsets
        ]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        clear = self._clear_fields()
        fieldsets = self.get_fieldsets(request, obj)
        kwargs["fields"] = [
            field for _, options in fieldsets for field in options["fields"] if field not in clear
        ]
        return super().get_form(request, obj, change, **kwargs)  # type: ignore[misc]

    @admin.display(description="Stored secrets")
    def stored_secrets(self, obj: Model) -> str:
        """Whether each secret is set, without decrypting or showing it."""
        states = []
        for field in self._secret_fields():
            state = "stored" if getattr(obj, field.name) else "not set"
            states.append(f"{str(field.verbose_name).capitalize()}: {state}")
        return "; ".join(states)


@admin.register(EmailServerProfile)
class EmailServerProfileAdmin(
    SecretFieldsAdminMixin[EmailServerProfile], AdministratorModelAdmin[EmailServerProfile]
):
    list_display = [
        "name",
        "server_type",
        "incoming_server_location",
        "credentials_source",
        "mailbox_count",
        "is_default",
        "is_active",
        "last_test_result",
        "last_test_started_on",
    ]
    list_filter = ["server_type", "credentials_source", "is_active", "is_default", "last_test_result"]
    list_select_related = ["owner"]
    search_fields = [
        "name",
        "description",
        "incoming_server_location",
        "outgoing_server_location",
        "username",
    ]
    autocomplete_fields = ["owner"]
    readonly_fields = [
        "stored_secrets",
        "last_test_started_on",
        "last_test_result",
        "last_test_message",
        "created_on",
        "modified_on",
    ]
    fieldsets = [
        (
            "General",
            {
                "fields": [
                    "name",
                    "description",
                    "server_type",
                    "owner",
                    "is_active",
                    "is_default",
                    "auto_discover_server_location",
                ]
            },
        ),
        (
            "Incoming",
            {
                "description": "Leave the port blank to use the usual one for the server type and SSL.",
                "fields": [
                    "incoming_server_location",
                    "incoming_port",
                    "incoming_use_ssl",
                    "incoming_auth_protocol",
                    "incoming_use_impersonation",
                ],
            },
        ),
        (
            "Outgoing",
            {
                "fields": [
                    "outgoing_server_location",
                    "outgoing_port",
                    "outgoing_use_ssl",
                    "outgoing_auth_protocol",
                    "outgoing_use_impersonation",
                ]
            },
        ),
        (
            "Credentials",
            {
                "fields": [
                    "credentials_source",
                    "stored_secrets",
                    "username",
                    "password",
                    "clear_password",
                    "use_same_settings_for_outgoing",
                    "outgoing_username",
                    "outgoing_password",
                    "clear_outgoing_password",
                    "oauth_tenant_id",
                    "oauth_client_id",
                    "oauth_client_secret",
                    "clear_oauth_client_secret",
                    "oauth_provider",
                    "oauth_authorize_url",
                    "oauth_token_url",
                    "oauth_scopes",
                    "oauth_sasl_mechanism",
                ]
            },
        ),
        (
            "Advanced",
            {"fields": list(ADDITIONAL_SETTINGS)},
        ),
        ("Last test", {"fields": ["last_test_started_on", "last_test_result", "last_test_message"]}),
        ("Record information", {"classes": ["collapse"], "fields": ["created_on", "modified_on"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[EmailServerProfile]:
        return super().get_queryset(request).annotate(mailbox_count=Count("mailboxes"))

    @admin.display(description="Mailboxes", ordering="mailbox_count")
    def mailbox_count(self, profile: WithAnnotations[EmailServerProfile, _MailboxCount]) -> int:
        return profile.mailbox_count
