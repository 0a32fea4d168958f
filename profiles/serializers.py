from __future__ import annotations

import copy
from typing import Any, TypeVar

from django.db import models
from rest_framework import serializers

from profiles.fields import EncryptedTextField
from profiles.models import EmailServerProfile
from profiles.server_types import facts
from web.api_base import CleanModelSerializer

_M = TypeVar("_M", bound=models.Model)


class SecretField(serializers.CharField):
    """Write-only: a secret goes in and never comes out. Omit it to keep the
    stored value; send an empty string to remove it."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.update(write_only=True, required=False, allow_blank=True, trim_whitespace=False)
        kwargs.setdefault("max_length", 4096)
        kwargs.setdefault("style", {"input_type": "password"})
        super().__init__(**kwargs)


class SecretIsSetField(serializers.BooleanField):
    """Read-only: whether a secret is stored, without decrypting it."""

    def __init__(self, secret_name: str) -> None:
        super().__init__(
            source=secret_name,
            read_only=True,
            help_text=f"Whether a {secret_name.replace('_', ' ')} is stored.",
        )

    def to_representation(self, value: Any) -> bool:
        return bool(value)


class SecretsWriteOnlyMixin(serializers.ModelSerializer[_M]):
    """Every encrypted field becomes write-only, with a read-only ``<name>_set`` flag."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        EncryptedTextField: SecretField,
    }

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = super().get_fields()
        model: Any = self.Meta.model
        secrets = [f.name for f in model._meta.fields if isinstance(f, EncryptedTextField)]
        for name in secrets:
            if name in fields:
                fields[f"{name}_set"] = SecretIsSetField(name)
        return fields


class EmailServerProfileSerializer(
    SecretsWriteOnlyMixin[EmailServerProfile], CleanModelSerializer[EmailServerProfile]
):
    """``oauth_certificate``: the app registration's private key and certificate, in PEM
    (write-only); ``oauth_certificate_expires_on`` says until when it signs in."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # An API client sets up the app registration with the profile, as the page does.
        candidate = copy.copy(self.instance) if self.instance is not None else EmailServerProfile()
        for name, value in attrs.items():
            setattr(candidate, name, value)
        # (Only where the type signs in so: elsewhere the model's rule says OAuth does not apply.)
        violations = candidate.oauth_client_violations()
        if facts(candidate.server_type).oauth_client_credentials:
            violations += candidate.app_registration_violations()
        if violations:
            raise serializers.ValidationError({name: [message] for name, message in violations})
        return attrs

    class Meta:
        model = EmailServerProfile
        fields = "__all__"
        read_only_fields = (
            "last_test_started_on",
            "last_test_result",
            "last_test_message",
            "created_on",
            "modified_on",
        )
