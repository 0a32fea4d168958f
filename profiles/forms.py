"""Write-only form handling for encrypted fields: never rendered, blank keeps the stored value."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db import models

from profiles.fields import EncryptedTextField, Secret


class SecretFormField(forms.CharField):
    widget = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        help_text = kwargs.pop("help_text", "") or ""
        kwargs["help_text"] = (
            help_text + " " if help_text else ""
        ) + "Write-only: leave blank to keep the stored value."
        super().__init__(strip=False, **kwargs)

    def prepare_value(self, value: Any) -> str:
        return ""

    def has_changed(self, initial: Any, data: Any) -> bool:
        return bool(data)


class SecretFieldsFormMixin:
    """For a ModelForm: an empty secret input keeps the stored secret, and a
    ``clear_<field>`` checkbox removes it."""

    instance: models.Model
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
        cleaned = super().clean()  # type: ignore[misc]
        for name in self._secret_field_names():
            if cleaned.get(f"clear_{name}"):
                cleaned[name] = Secret(plain="")
            elif not cleaned.get(name):
                cleaned[name] = getattr(self.instance, name)
        return cleaned
