"""Credentials at rest: a rotatable Fernet key set from ``settings.CREDENTIAL_KEYS``.

The first key encrypts; every key decrypts, so a new key can be put in front
and old tokens still read until ``manage.py rotate_credential_keys`` has
re-encrypted them under it.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class CredentialDecryptError(Exception):
    """A stored credential cannot be read with any configured key."""


@lru_cache(maxsize=4)
def _key_set(keys: tuple[str, ...]) -> MultiFernet:
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key.encode()))
        except ValueError:
            raise ImproperlyConfigured(
                f"CREDENTIAL_KEYS entry {position} is not a Fernet key "
                "(32 bytes, URL-safe base64, as Fernet.generate_key() prints)."
            ) from None
    if not fernets:
        raise ImproperlyConfigured("CREDENTIAL_KEYS is empty.")
    return MultiFernet(fernets)


def key_set() -> MultiFernet:
    return _key_set(tuple(settings.CREDENTIAL_KEYS))


@lru_cache(maxsize=4)
def _newest_key(key: str) -> Fernet:
    return Fernet(key.encode())


def is_current(token: str) -> bool:
    """Whether ``token`` is encrypted under the newest key already (rotation leaves it alone)."""
    key_set()  # the clear error for a malformed key set
    try:
        _newest_key(settings.CREDENTIAL_KEYS[0]).decrypt(token.encode())
    except InvalidToken:
        return False
    return True


def encrypt(plaintext: str) -> str:
    return key_set().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return key_set().decrypt(token.encode()).decode()
    except InvalidToken:
        raise CredentialDecryptError(
            "A stored credential cannot be decrypted with any key in CREDENTIAL_KEYS; "
            "was a key removed before rotate_credential_keys ran?"
        ) from None


def rotate(token: str) -> str:
    """The same secret, encrypted under the newest key."""
    try:
        return key_set().rotate(token.encode()).decode()
    except InvalidToken:
        raise CredentialDecryptError(
            "A stored credential cannot be decrypted with any configured key."
        ) from None
