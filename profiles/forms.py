"""Forms of profiles: write-only handling of encrypted fields (never rendered, blank keeps the
stored value), and the web UI's profile form, which shows only what applies to a server type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import models
from django.forms import BoundField
from django.http import QueryDict
from django.utils.datastructures import MultiValueDict

from crm.models import CrmUser
from profiles.fields import EncryptedTextField, Secret
from profiles.models import (
    ADDITIONAL_SETTINGS,
    AuthProtocol,
    CredentialsSource,
    Direction,
    EmailServerProfile,
    ServerType,
    default_port,
)
from profiles.server_types import facts

_M = TypeVar("_M", bound=models.Model)


class SecretFieldsFormMixin(Generic[_M]):
    """For a ModelForm: an empty secret input keeps the stored secret, and a
    ``clear_<field>`` checkbox removes it."""

    instance: _M
    cleaned_data: dict[str, Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in self._secret_field_names():
            if name in self.fields:  # type: ignore[attr-defined]
                self.fields[f"clear_{name}"] = forms.BooleanField(  # type: ignore[attr-defined]
                    required=False, label=f"Remove the stored {name.replace('_', ' ')}"
                )

    def _secret_field_names(self) -> list[str]:
        return [f.name for f in self.instance._meta.get_fields() if isinstance(f, EncryptedTextField)]

    def clean(self) -> dict[str, Any]:
        # The mixin's superclass is the ModelForm it is mixed into, which mypy cannot see.
        cleaned: dict[str, Any] = super().clean()  # type: ignore[misc]
        for name in self._secret_field_names():
            if name not in self.fields:  # type: ignore[attr-defined]
                continue  # a form that leaves the secret out leaves it alone
            if cleaned.get(f"clear_{name}"):
                cleaned[name] = Secret(plain="")
                # Also when the request left the secret's box out: construct_instance
                # skips a field missing from the data whose value is empty.
                setattr(self.instance, name, Secret(plain=""))
            elif not cleaned.get(name):
                cleaned[name] = getattr(self.instance, name)
        return cleaned


# -- the web UI's profile form (console/views/profiles.py) -----------------------

# The form's sections, in the order the page shows them (Dynamics' profile form groups them so).
PROFILE_SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("General", ("name", "server_type", "description", "owner", "is_active", "is_default")),
    (
        "Incoming email",
        (
            "incoming_server_location",
            "auto_discover_server_location",
            "exchange_server_version",
            "incoming_port",
            "incoming_use_ssl",
            "incoming_auth_protocol",
        ),
    ),
    (
        "Outgoing email",
        ("outgoing_server_location", "outgoing_port", "outgoing_use_ssl", "outgoing_auth_protocol"),
    ),
    (
        "Credentials",
        (
            "credentials_source",
            "username",
            "password",
            "use_same_settings_for_outgoing",
            "outgoing_username",
            "outgoing_password",
            "oauth_tenant_id",
            "oauth_client_id",
            "oauth_client_secret",
            "oauth_certificate",
            "oauth_authority",
            "oauth_provider",
            "oauth_authorize_url",
            "oauth_token_url",
            "oauth_scopes",
            "oauth_sasl_mechanism",
            "incoming_use_impersonation",
            "outgoing_use_impersonation",
        ),
    ),
    ("Additional settings", ADDITIONAL_SETTINGS),
)

EXCHANGE_ONLY = frozenset({"move_failed_email_to_undeliverable"})
DAV_ONLY = frozenset({"dav_server_url"})
EWS_ONLY = frozenset({"auto_discover_server_location", "exchange_server_version"})
# An Exchange location is a URL, which carries the port.
PORTS = frozenset({"incoming_port", "outgoing_port"})
# Microsoft Graph: the app signs in with OAuth over TLS, whatever these would say.
APP_ONLY_HIDDEN = frozenset(
    {"incoming_use_ssl", "outgoing_use_ssl", "incoming_auth_protocol", "outgoing_auth_protocol"}
)
OAUTH_FIELDS = frozenset(
    {"oauth_tenant_id", "oauth_client_id", "oauth_client_secret", "oauth_certificate", "oauth_authority"}
)
# IMAP, POP3 and SMTP over OAuth: whose endpoints, which scopes, which SASL mechanism.
MAIL_OAUTH_FIELDS = frozenset(
    {"oauth_provider", "oauth_authorize_url", "oauth_token_url", "oauth_scopes", "oauth_sasl_mechanism"}
)
# Mailboxes connecting their accounts: the app's id and secret (and Microsoft's tenant);
# the browser sign-in's endpoints. No certificate: the secret is what providers take there.
AUTHORIZATION_CODE_HIDDEN = frozenset({"oauth_certificate"})
PROFILE_CREDENTIALS = frozenset(
    {"username", "password", "use_same_settings_for_outgoing", "outgoing_username", "outgoing_password"}
)
OUTGOING_CREDENTIALS = frozenset({"outgoing_username", "outgoing_password"})
IMPERSONATION = frozenset({"incoming_use_impersonation", "outgoing_use_impersonation"})
# Changing one of these changes which fields apply or which port is usual: the page redraws the form.
REDRAWN_ON_CHANGE = (
    "server_type",
    "credentials_source",
    "use_same_settings_for_outgoing",
    "incoming_use_ssl",
    "outgoing_use_ssl",
)


def fields_not_applying(server_type: str, credentials_source: str, same_for_outgoing: bool) -> frozenset[str]:
    """The profile fields that mean nothing for this server type and way of signing in.

    The form hides them and clears them on save, so a profile never keeps a
    setting its page does not show.
    """
    kind = facts(server_type)
    hidden = set(PORTS if kind.exchange else EXCHANGE_ONLY)
    if not kind.ews:
        hidden |= EWS_ONLY
    if not kind.act_over_dav:
        hidden |= DAV_ONLY
    if kind.app_only:
        hidden |= APP_ONLY_HIDDEN | IMPERSONATION
    oauth = credentials_source in _OAUTH_SOURCES
    if not oauth:
        hidden |= OAUTH_FIELDS
    if not oauth or kind.exchange:
        hidden |= MAIL_OAUTH_FIELDS
    if credentials_source == CredentialsSource.OAUTH_AUTHORIZATION_CODE:
        hidden |= AUTHORIZATION_CODE_HIDDEN | IMPERSONATION
    if credentials_source != CredentialsSource.PROFILE:
        hidden |= PROFILE_CREDENTIALS
    elif same_for_outgoing:
        hidden |= OUTGOING_CREDENTIALS
    if credentials_source == CredentialsSource.USER_OR_QUEUE:
        hidden |= IMPERSONATION
    return frozenset(hidden)


_OAUTH_SOURCES = (CredentialsSource.OAUTH_CLIENT_CREDENTIALS, CredentialsSource.OAUTH_AUTHORIZATION_CODE)


def credential_choices(server_type: str) -> list[tuple[str, str]]:
    kind = facts(server_type)
    return [
        (value, label)
        for value, label in CredentialsSource.choices
        if (value == CredentialsSource.OAUTH_CLIENT_CREDENTIALS and kind.oauth_client_credentials)
        or (value == CredentialsSource.OAUTH_AUTHORIZATION_CODE and not kind.exchange)
        or (value not in _OAUTH_SOURCES and not kind.app_only)
    ]


def auth_protocol_choices(server_type: str) -> list[tuple[str, str]]:
    return [
        (value, label)
        for value, label in AuthProtocol.choices
        if value != AuthProtocol.NTLM or facts(server_type).ews
    ]


def default_location(server_type: str) -> str:
    return facts(server_type).default_location


def type_defaults(
    server_type: str, *, incoming_ssl: bool = True, outgoing_ssl: bool = True
) -> dict[str, Any]:
    """What a new profile of this type starts with: the usual ports, Exchange Online's Graph endpoint."""
    values: dict[str, Any] = {"server_type": server_type}
    for direction, ssl in ((Direction.INCOMING, incoming_ssl), (Direction.OUTGOING, outgoing_ssl)):
        values[f"{direction}_server_location"] = default_location(server_type)
        if not facts(server_type).exchange:
            values[f"{direction}_port"] = default_port(server_type, direction, ssl)
    return values


def _still_default(value: Any, name: str, server_type: str) -> bool:
    """Whether a port or location is blank or still the usual one of ``server_type``
    (then it follows a change of type or SSL; one the administrator typed stays)."""
    text = "" if value is None else str(value).strip()
    if not text:
        return True
    if name.endswith("_server_location"):
        return text == default_location(server_type)
    if facts(server_type).exchange or not text.isdigit():
        return False
    direction = name.removesuffix("_port")
    return int(text) in {default_port(server_type, direction, ssl) for ssl in (True, False)}


class OwnerField(forms.EmailField):
    """The owner by email address: a list of every CRM user would not scale."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.update(
            required=False,
            label="Owner",
            help_text="Email address of the active CRM user who owns the profile and gets its alert emails.",
        )
        super().__init__(**kwargs)

    def clean(self, value: Any) -> CrmUser | None:
        address = super().clean(value)
        if not address:
            return None
        owners = list(CrmUser.objects.filter(email__iexact=address, is_active=True)[:2])
        if not owners:
            raise ValidationError("No active CRM user has this email address.", code="invalid_choice")
        if len(owners) > 1:
            raise ValidationError(
                "Several active CRM users have this email address; give the owner an address of their own.",
                code="ambiguous",
            )
        return owners[0]


@dataclass
class FieldRow:
    """One field of the page, and for a secret whether one is stored and its "remove" box."""

    field: BoundField
    stored: bool = False
    clear: BoundField | None = None


class CertificateUploadField(forms.FileField):
    """The app registration's certificate, uploaded as a PEM file (its private key and
    certificate); stored encrypted like every secret, never shown again."""

    # A certificate and its key fill a few kilobytes; anything far bigger is not one.
    MAX_BYTES = 64 * 1024

    def __init__(self, **kwargs: Any) -> None:
        kwargs.update(
            required=False,
            label="OAuth certificate",
            help_text="A PEM file with the app's certificate and its private key (unencrypted); "
            "upload the certificate alone to the app registration in Microsoft Entra ID. "
            "Write-only: leave empty to keep the stored one.",
        )
        super().__init__(**kwargs)

    def clean(self, data: Any, initial: Any = None) -> str:
        upload = super().clean(data, initial)
        if not isinstance(upload, UploadedFile):
            return ""  # nothing uploaded (FileField hands back the stored value): keep it
        if (upload.size or 0) > self.MAX_BYTES:
            raise ValidationError("This file is too big to be a certificate and its private key (PEM).")
        try:
            return str(upload.read().decode("ascii"))
        except UnicodeDecodeError as error:
            raise ValidationError("Upload the certificate in PEM (text), not DER or PFX.") from error


class ProfileForm(SecretFieldsFormMixin[EmailServerProfile], forms.ModelForm[EmailServerProfile]):
    """The web UI's profile form: the fields that apply to the server type and the
    way of signing in, and no others.

    The rules stay in ``EmailServerProfile.clean()``, so its errors show on the
    fields they name. Fields that do not apply are left out of the page and
    cleared on save, whatever the request sent. A field the page did not show
    (``shown_fields``, which the page sends along) keeps its stored value.
    """

    owner = OwnerField()
    oauth_certificate = CertificateUploadField()
    instance: EmailServerProfile

    class Meta:
        model = EmailServerProfile
        fields = [name for _, names in PROFILE_SECTIONS for name in names]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "process_email_from": forms.DateTimeInput(
                attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"
            ),
        }

    def __init__(
        self,
        data: QueryDict | None = None,
        files: MultiValueDict[str, UploadedFile] | None = None,
        *,
        instance: EmailServerProfile,
        initial: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(data, files, instance=instance, initial=initial)
        if instance.owner is not None and "owner" not in (initial or {}):
            self.initial["owner"] = instance.owner.email
        self.stored_secrets = {name for name in self._secret_field_names() if getattr(instance, name)}
        shown = data.get("shown_fields") if data is not None else None
        self.shown_before = None if shown is None else set(shown.split(","))
        self.chosen_type = self._server_type()
        if instance.pk is not None:
            del self.fields["server_type"]  # fixed once saved: a new type is a new profile
        source = self._current("credentials_source")
        if source not in dict(credential_choices(self.chosen_type)):
            source = credential_choices(self.chosen_type)[0][0]
        same = bool(self._current("use_same_settings_for_outgoing"))
        self.not_applying = fields_not_applying(self.chosen_type, source, same)
        for name in self.not_applying:
            self.fields.pop(name, None)
            self.fields.pop(f"clear_{name}", None)
        self._fit_to_type()

    def clean_owner(self) -> CrmUser | None:
        owner: CrmUser | None = self.cleaned_data.get("owner")
        current = self.instance.owner
        # An owner without an email address cannot be shown in the box: an empty box keeps them.
        if owner is None and current is not None and not current.email:
            return current
        return owner

    def _current(self, name: str) -> Any:
        """The value on the page now: as submitted, or initial where the page did not show it."""
        field = self[name]
        if self.is_bound and self.shown_before is not None and name not in self.shown_before:
            return field.initial
        return field.value()

    def _server_type(self) -> str:
        if self.instance.pk is None and self._current("server_type") in ServerType.values:
            return str(self._current("server_type"))
        return self.instance.server_type

    def _fit_to_type(self) -> None:
        fields = self.fields
        if "credentials_source" in fields:
            fields["credentials_source"].choices = credential_choices(self.chosen_type)  # type: ignore[attr-defined]
        for direction in Direction.values:
            if f"{direction}_auth_protocol" in fields:
                protocol = fields[f"{direction}_auth_protocol"]
                protocol.choices = auth_protocol_choices(self.chosen_type)  # type: ignore[attr-defined]
            location = fields[f"{direction}_server_location"]
            examples = facts(self.chosen_type).host_examples
            location.widget.attrs["placeholder"] = examples.get(direction, "")
            if facts(self.chosen_type).location_help:
                location.help_text = facts(self.chosen_type).location_help
            if f"{direction}_port" in fields:
                port = fields[f"{direction}_port"]
                port.widget.attrs["list"] = f"{direction}-ports"
                port.help_text = "Blank: the usual port for the server type and SSL."
        expires = self.instance.oauth_certificate_expires_on
        if expires is not None and "oauth_certificate" in fields:
            fields["oauth_certificate"].help_text = (
                f"The stored certificate expires on {expires:%Y-%m-%d}. "
                + fields["oauth_certificate"].help_text
            )
        owner = self.instance.owner
        if owner is not None and not owner.email and "owner" in fields:
            fields["owner"].help_text = (
                f"Now {owner.full_name}, who has no email address: leave the box empty to keep them, "
                "or enter another owner's address."
            )
        for name in REDRAWN_ON_CHANGE:
            if name in fields:
                fields[name].widget.attrs["data-redraw"] = "true"
        for name in self._secret_field_names():
            if name in fields:
                # A password typed before the form is redrawn stays in the browser, never sent back.
                fields[name].widget.attrs.update({"id": f"id_{name}", "hx-preserve": "true"})

    @property
    def shown_fields(self) -> str:
        return ",".join(name for name in self.fields if not name.startswith("clear_"))

    @property
    def port_suggestions(self) -> list[tuple[str, tuple[tuple[int, str], ...]]]:
        return [
            (direction, facts(self.chosen_type).common_ports.get(direction, ()))
            for direction in Direction.values
            if f"{direction}_port" in self.fields
        ]

    def sections(self) -> list[tuple[str, list[FieldRow]]]:
        shown = []
        for title, names in PROFILE_SECTIONS:
            rows = [self._row(name) for name in names if name in self.fields]
            if rows:
                shown.append((title, rows))
        return shown

    def _row(self, name: str) -> FieldRow:
        if name not in self._secret_field_names():
            return FieldRow(self[name])
        stored = name in self.stored_secrets
        clear = self[f"clear_{name}"] if stored and f"clear_{name}" in self.fields else None
        return FieldRow(self[name], stored=stored, clear=clear)

    def _post_clean(self) -> None:
        fields = {field.name: field for field in EmailServerProfile._meta.concrete_fields}
        for name in self.not_applying:
            setattr(self.instance, name, fields[name].get_default())
        super()._post_clean()  # type: ignore[misc]
        # The page asks for the app registration the profile signs in with.
        violations = self.instance.app_registration_violations() + self.instance.oauth_client_violations()
        for name, message in violations:
            self.add_error(name if name in self.fields else None, message)

    def _update_errors(self, errors: ValidationError) -> None:
        # A model rule about a field this form does not show still reaches the page,
        # as an error of the whole form rather than a crash.
        if hasattr(errors, "error_dict"):
            placed: dict[str, list[ValidationError]] = {}
            for name, messages in errors.error_dict.items():
                key = name if name == NON_FIELD_ERRORS or name in self.fields else NON_FIELD_ERRORS
                placed.setdefault(key, []).extend(messages)
            errors = ValidationError(placed)
        super()._update_errors(errors)  # type: ignore[misc]

    @classmethod
    def redrawn(cls, query: QueryDict, *, instance: EmailServerProfile) -> ProfileForm:
        """The form after a change of type, credentials or SSL: what was typed stays (never
        a secret: those stay in the browser), fields that no longer apply go, and ports and
        locations that were still the usual ones follow the type and SSL."""
        probe = cls(query, instance=instance)
        kept = {
            field.name: field.value()
            for field in probe
            if field.name not in probe._secret_field_names()
            and not field.name.startswith("clear_")
            and (probe.shown_before is None or field.name in probe.shown_before)
        }
        previous_type = query.get("shown_server_type", "")
        if previous_type not in ServerType.values:
            previous_type = probe.chosen_type
        usual = type_defaults(
            probe.chosen_type,
            incoming_ssl=bool(kept.get("incoming_use_ssl", instance.incoming_use_ssl)),
            outgoing_ssl=bool(kept.get("outgoing_use_ssl", instance.outgoing_use_ssl)),
        )
        for name, value in usual.items():
            if name != "server_type" and _still_default(kept.get(name), name, previous_type):
                kept[name] = value
        return cls(instance=instance, initial=kept)
