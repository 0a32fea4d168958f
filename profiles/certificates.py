"""The certificate an app registration signs in with (Microsoft Entra ID client
credentials): read from the PEM an administrator uploads — its private key and
certificate — to check that the two belong together and to know when it expires."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

_KEY_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]*PRIVATE KEY)-----.+?-----END \1-----", re.DOTALL)


class CertificateError(ValueError):
    """The PEM is not what an app registration can sign in with; the message says why."""


@dataclass(frozen=True)
class AppCertificate:
    subject: str
    # The SHA-1 thumbprint, as Entra ID's "Certificates & secrets" page lists it.
    thumbprint: str
    expires_on: datetime


def read_certificate(pem: str) -> AppCertificate:
    """The certificate of ``pem`` (a private key and its certificate, in either order)."""
    data = pem.encode()
    certificate = _certificate(data)
    key = _private_key(data)
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    if key.public_key().public_bytes(encoding, public) != certificate.public_key().public_bytes(
        encoding, public
    ):
        raise CertificateError("The private key does not belong to the certificate.")
    return AppCertificate(
        subject=certificate.subject.rfc4514_string(),
        thumbprint=certificate.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303  (Entra ID's thumbprint)
        expires_on=certificate.not_valid_after_utc,
    )


def _certificate(data: bytes) -> x509.Certificate:
    try:
        found = x509.load_pem_x509_certificates(data)
    except ValueError as error:
        raise CertificateError(
            "No certificate found: upload a PEM file holding the certificate and its private key."
        ) from error
    return found[0]


def _private_key(data: bytes) -> PrivateKeyTypes:
    block = _KEY_BLOCK.search(data)
    if block is None:
        raise CertificateError(
            "No private key found: the PEM file must hold the private key with the certificate."
        )
    try:
        return serialization.load_pem_private_key(block.group(0), password=None)
    except (ValueError, TypeError) as error:
        raise CertificateError(
            "The private key cannot be read; upload it unencrypted (no passphrase), in PEM."
        ) from error
