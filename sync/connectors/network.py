"""Socket and TLS failures, in words an administrator can act on.

Shared by the protocol connectors: each turns what its library raises for the
protocol itself into ``SyncError``\\s, and hands the rest (``OSError`` and its
``ssl`` subclasses) to :func:`translate`.
"""

from __future__ import annotations

import functools
import os
import re
import socket
import ssl
from collections.abc import Callable

from cryptography import x509
from cryptography.x509.oid import NameOID

from sync.connectors.base import ServerSettings
from sync.errors import PermanentError, SyncError, TransientError

# What servers say when they are overloaded or limit sessions (IMAP RFC 5530 and
# POP3 RFC 3206 response codes, and the usual wording of connection limits).
BUSY = re.compile(
    r"\[(UNAVAILABLE|INUSE|IN-USE|SYS/TEMP|LIMIT)\]|too many (connections|sessions|logins)"
    r"|maximum number of connections|temporarily unavailable",
    re.IGNORECASE,
)

# Reads the server's certificate without checking it; None when that fails too.
CertificateFetcher = Callable[[ssl.SSLContext], bytes | None]


def looks_busy(text: str) -> bool:
    return BUSY.search(text) is not None


def where(settings: ServerSettings) -> str:
    return f"{settings.host}:{settings.port}"


def verifying_context(settings: ServerSettings) -> ssl.SSLContext:
    """Certificate and host name checks on, always; a profile may only add a CA to trust.

    Loading the trusted CAs costs as much as a TLS handshake, so one context
    serves every connection that trusts the same CA file, as long as the file
    is unchanged (its modification time and size are part of the key)."""
    if settings.ca_file is None:
        return _context(None, None)
    stat = os.stat(settings.ca_file)
    return _context(settings.ca_file, (stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=32)
def _context(ca_file: str | None, version: tuple[int, int] | None) -> ssl.SSLContext:
    # ``version`` only keys the cache: a CA file changed on disk gets a new context.
    return ssl.create_default_context(cafile=ca_file)


def inspecting_context() -> ssl.SSLContext:
    """Only for a second connection that reads a certificate already refused, to say why.

    Nothing is sent over it: no credentials, no mail.
    """
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def translate(
    error: OSError, settings: ServerSettings, *, protocol: str, fetch_certificate: CertificateFetcher
) -> SyncError:
    """The SyncError for a failure below the protocol: name lookup, TCP, TLS."""
    if isinstance(error, socket.gaierror):
        return _dns(error, settings)
    if isinstance(error, ssl.SSLCertVerificationError):
        return _certificate(error, settings, fetch_certificate)
    if isinstance(error, ConnectionRefusedError):
        return TransientError(
            f"{protocol} server {where(settings)} refused the connection: nothing listens on that port, "
            "or the server is down. Check the server name and port in the email server profile; "
            "serversync tries again later.",
            code="connection_refused",
        )
    if isinstance(error, TimeoutError):
        return timeout(settings, protocol=protocol)
    if isinstance(error, ssl.SSLError) and not isinstance(error, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return PermanentError(
            f"The TLS handshake with {where(settings)} failed ({error.reason or error}). Check that the "
            "profile's encryption setting matches the port (SSL/TLS on the implicit-TLS port, STARTTLS "
            "on the plain one).",
            code="tls_failed",
        )
    if isinstance(error, ConnectionError | EOFError | ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return connection_lost(settings, protocol=protocol, detail=str(error) or type(error).__name__)
    return TransientError(
        f"Network error talking to {protocol} server {where(settings)}: {error}. "
        "serversync tries again later.",
        code="network_error",
    )


def timeout(settings: ServerSettings, *, protocol: str) -> TransientError:
    return TransientError(
        f"{protocol} server {where(settings)} did not answer within {settings.timeout:g} seconds. "
        "It may be overloaded or a firewall drops the traffic; serversync tries again later.",
        code="timeout",
    )


def connection_lost(settings: ServerSettings, *, protocol: str, detail: str) -> TransientError:
    return TransientError(
        f"{protocol} server {where(settings)} closed the connection ({detail}). "
        "serversync tries again later.",
        code="connection_lost",
    )


def server_busy(settings: ServerSettings, *, protocol: str, detail: str) -> TransientError:
    return TransientError(
        f"{protocol} server {where(settings)} is busy or limits connections ({detail}). "
        "serversync tries again later; if it persists, lower the profile's connection limit.",
        code="server_busy",
    )


def _dns(error: socket.gaierror, settings: ServerSettings) -> SyncError:
    if error.errno == socket.EAI_AGAIN:
        # The resolver itself did not answer: that passes.
        return TransientError(
            f"The name {settings.host} could not be looked up right now (DNS did not answer). "
            "serversync tries again later.",
            code="dns_unavailable",
        )
    return PermanentError(
        f"The mail server name {settings.host} does not exist in DNS ({error.strerror}). "
        "Correct the server name in the email server profile.",
        code="dns_not_found",
    )


def _certificate(
    error: ssl.SSLCertVerificationError, settings: ServerSettings, fetch_certificate: CertificateFetcher
) -> PermanentError:
    reason = (error.verify_message or error.reason or str(error)).rstrip(". ")
    try:
        details = describe_certificate(fetch_certificate(inspecting_context()))
    except (OSError, EOFError, ValueError):
        details = ""
    return PermanentError(
        f"The TLS certificate of {where(settings)} is not valid: {reason}.{details} "
        f"The mail server needs a current certificate for {settings.host} from an authority this "
        "system trusts; or correct the server name in the profile to one the certificate names.",
        code="tls_certificate_invalid",
    )


def describe_certificate(der: bytes | None) -> str:
    """' It names X, is issued by Y, valid from A to B.' — or '' when unknown."""
    if not der:
        return ""
    cert = x509.load_der_x509_certificate(der)
    names = _names(cert) or cert.subject.rfc4514_string()
    issuer = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    issuer_name = str(issuer[0].value) if issuer else cert.issuer.rfc4514_string()
    return (
        f" The certificate names {names}, is issued by {issuer_name}, and is valid from "
        f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} to {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC."
    )


def _names(cert: x509.Certificate) -> str:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ""
    return ", ".join(str(name.value) for name in san)


def peer_certificate(sock: socket.socket) -> bytes | None:
    return sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None


def fetch_implicit_certificate(settings: ServerSettings) -> CertificateFetcher:
    """For implicit TLS: connect again and read the certificate from the handshake."""

    def fetch(context: ssl.SSLContext) -> bytes | None:
        with (
            socket.create_connection((settings.host, settings.port), timeout=settings.timeout) as raw,
            context.wrap_socket(raw, server_hostname=settings.host) as tls,
        ):
            return peer_certificate(tls)

    return fetch
