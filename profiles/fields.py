"""One encrypted field type for every secret (passwords, OAuth secrets and tokens).

The model attribute is always a :class:`Secret`: it prints as asterisks, so a
stray log line, repr or template never shows the value, and it decrypts only
when code asks for it with :meth:`Secret.reveal`. Its form field
(:class:`SecretFormField`) is write-only: never rendered, blank keeps the stored value.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.db import models
from django.db.models.query_utils import DeferredAttribute

from profiles import crypto

MASK = "********"


class Secret:
    __slots__ = ("_plain", "_token")

    def __init__(self, *, plain: str | None = None, token: str | None = None) -> None:
        self._plain = plain
        self._token = token

    @classmethod
    def wrap(cls, value: Any) -> Secret:
        if isinstance(value, Secret):
            return value
        if value is None or value == "":
            return cls(plain="")
        return cls(plain=str(value))

    def reveal(self) -> str:
        if self._plain is None:
            self._plain = crypto.decrypt(self._token or "")
        return self._plain

    @property
    def token(self) -> str:
        """The ciphertext to store ('' for no secret)."""
        if self._token is None:
            self._token = crypto.encrypt(self._plain) if self._plain else ""
        return self._token

    def __bool__(self) -> bool:
        return bool(self._token) if self._plain is None else bool(self._plain)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return self.reveal() == other.reveal()
        if isinstance(other, str):
            return self.reveal() == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.token)

    def __str__(self) -> str:
        return MASK if self else ""

    def __repr__(self) -> str:
        return f"Secret({MASK!r})" if self else "Secret('')"


class SecretFormField(forms.CharField):
    """The form field of every secret: write-only (never rendered), blank keeps the stored value."""

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


class _SecretDescriptor(DeferredAttribute):
    def __set__(self, instance: models.Model, value: Any) -> None:
        instance.__dict__[self.field.attname] = Secret.wrap(value)


class EncryptedTextField(models.TextField[Secret | str, Secret]):
    """Stores a Fernet token; never the plaintext."""

    descriptor_class = _SecretDescriptor

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("blank", True)
        kwargs.setdefault("default", "")
        kwargs.setdefault("editable", True)
        super().__init__(*args, **kwargs)

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Secret:
        return Secret(token=value or "") if value else Secret(plain="")

    def to_python(self, value: Any) -> Secret:
        return Secret.wrap(value)

    def get_prep_value(self, value: Any) -> str:
        return Secret.wrap(value).token

    def value_to_string(self, obj: models.Model) -> str:
        # Fixtures and dumps carry the ciphertext, never the plaintext.
        return Secret.wrap(self.value_from_object(obj)).token

    def formfield(self, form_class: Any = None, choices_form_class: Any = None, **kwargs: Any) -> Any:
        return SecretFormField(label=self.verbose_name.capitalize(), help_text=self.help_text)
