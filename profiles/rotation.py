"""Re-encrypt every stored credential under the newest key (``manage.py rotate_credential_keys``).

Put a new key first in CREDENTIAL_KEYS, keep the old ones after it, run the
rotation, and remove an old key only once a run re-encrypts nothing more.
"""

from __future__ import annotations

from django.apps import apps
from django.db import models, transaction

from profiles import crypto
from profiles.crypto import CredentialDecryptError
from profiles.fields import EncryptedTextField, Secret


class UnreadableCredentialsError(CredentialDecryptError):
    """Some stored credentials cannot be decrypted with any configured key.

    ``records`` names them ("app.Model.field of record <pk>"), never their values;
    ``rotated`` counts what was re-encrypted anyway.
    """

    def __init__(self, records: list[str], rotated: dict[str, int]) -> None:
        self.records = records
        self.rotated = rotated
        super().__init__(
            f"{len(records)} stored credential(s) cannot be decrypted with any key in CREDENTIAL_KEYS "
            f"(was the key they were encrypted with removed?): {'; '.join(records)}. "
            "Everything else was re-encrypted; enter these credentials again or restore the missing key."
        )


def encrypted_fields() -> list[tuple[type[models.Model], EncryptedTextField]]:
    """Every encrypted field of every installed model, found at run time, so
    models of apps above ``profiles`` are covered without importing them."""
    found = []
    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        for field in model._meta.local_concrete_fields:
            if isinstance(field, EncryptedTextField):
                found.append((model, field))
    return found


def rotate_credentials(*, batch_size: int = 500) -> dict[str, int]:
    """Re-encrypt every stored secret under the newest key; returns how many values
    were re-encrypted per ``app.Model.field``. Values already under the newest key
    are left alone, so running it again is harmless and re-encrypts nothing.

    Raises UnreadableCredentialsError, after rotating everything it can, when
    some values cannot be decrypted with any configured key.
    """
    rotated: dict[str, int] = {}
    unreadable: list[str] = []
    for model, field in encrypted_fields():
        label = f"{model._meta.label}.{field.name}"
        rotated[label] = _rotate_field(model, field, batch_size=batch_size, unreadable=unreadable)
    if unreadable:
        raise UnreadableCredentialsError(unreadable, rotated)
    return rotated


def _rotate_field(
    model: type[models.Model], field: EncryptedTextField, *, batch_size: int, unreadable: list[str]
) -> int:
    rows = model._base_manager.exclude(**{field.attname: ""}).order_by("pk")
    count = 0
    last_pk = None
    while True:
        page = rows if last_pk is None else rows.filter(pk__gt=last_pk)
        batch: list[tuple[object, Secret]] = list(page.values_list("pk", field.attname)[:batch_size])
        if not batch:
            return count
        with transaction.atomic():
            for pk, secret in batch:
                token = secret.token
                if crypto.is_current(token):
                    continue
                try:
                    new_token = crypto.rotate(token)
                except CredentialDecryptError:
                    unreadable.append(f"{model._meta.label}.{field.name} of record {pk}")
                    continue
                # Only if unchanged since read: a secret saved meanwhile is already under the newest key.
                count += model._base_manager.filter(pk=pk, **{field.attname: Secret(token=token)}).update(
                    **{field.attname: Secret(token=new_token)}
                )
        last_pk = batch[-1][0]
