"""Sign-in as IIS does it for Exchange's /EWS: Basic and NTLM (checked with pyspnego); OAuth bearer tokens
are Entra ID's (the Graph test server's tenant, hosted by server.py).

NTLM is connection-based: Negotiate, then the server's Challenge, then Authenticate, on one
TCP connection, which then stays signed in (IIS's default), so each connection keeps its state.
pyspnego's NTLM acceptor reads passwords from the file named by ``NTLM_USER_FILE``
(``domain:user:password`` lines), rewritten on every new user.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import spnego
from spnego.channel_bindings import GssChannelBindings
from spnego.exceptions import SpnegoError

# What IIS offers on a 401 for /EWS/Exchange.asmx (Windows authentication and Basic on).
CHALLENGES = ("Negotiate", "NTLM", 'Basic realm="127.0.0.1"')
# The NetBIOS domain for DOMAIN\user sign-ins.
NETBIOS_DOMAIN = "EWS"


class _NtlmStore:
    """The file pyspnego's NTLM acceptor reads (``NTLM_USER_FILE``, one per process): the users of
    every EWS test server of the process go in it; each server then accepts only its own."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.passwords: dict[str, str] = {}
        self.path = Path(tempfile.mkdtemp(prefix="ews-ntlm-")) / "users"
        self.path.write_text("")
        os.environ["NTLM_USER_FILE"] = str(self.path)

    def add(self, address: str, password: str) -> None:
        if ":" in password:
            raise ValueError("the NTLM store cannot hold a password with ':'")
        with self.lock:
            self.passwords[address] = password
            # UPN sign-in (user@domain, no NetBIOS domain) and DOMAIN\user both map to the address.
            lines = [f":{a}:{p}\n{NETBIOS_DOMAIN}:{a.split('@')[0]}:{p}" for a, p in self.passwords.items()]
            staged = self.path.with_suffix(".new")
            staged.write_text("\n".join(lines) + "\n")
            staged.replace(self.path)


_ntlm_store: _NtlmStore | None = None
_ntlm_store_lock = threading.Lock()


def ntlm_store() -> _NtlmStore:
    global _ntlm_store
    with _ntlm_store_lock:
        if _ntlm_store is None:
            _ntlm_store = _NtlmStore()
        return _ntlm_store


@dataclass
class Credentials:
    """One server's users and their passwords (Basic checks them here, NTLM through pyspnego)."""

    passwords: dict[str, str] = field(default_factory=dict)

    def add_user(self, address: str, password: str) -> None:
        ntlm_store().add(address.lower(), password)
        self.passwords[address.lower()] = password

    def basic(self, value: str) -> str | None:
        try:
            username, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        address = self.address_of(username)
        if address and secrets.compare_digest(self.passwords[address].encode(), password.encode()):
            return address
        return None

    def address_of(self, username: str) -> str | None:
        """The address ``user@domain`` or ``DOMAIN\\user`` signs in as."""
        name = username.split("\\")[-1].lower()
        if name in self.passwords:
            return name
        return next((a for a in self.passwords if a.split("@")[0] == name), None)


class NtlmExchange:
    """One connection's NTLM handshake (pyspnego as the acceptor)."""

    def __init__(self, certificate_der: bytes) -> None:
        self.context = spnego.server(protocol="ntlm")
        # Extended Protection: the client binds its Authenticate message to our TLS certificate.
        digest = hashlib.sha256(certificate_der).digest()
        self.bindings = GssChannelBindings(application_data=b"tls-server-end-point:" + digest)

    def step(self, token: bytes) -> bytes | None:
        """The Challenge for a Negotiate, None once the Authenticate checked out; SpnegoError if not."""
        return self.context.step(token, channel_bindings=self.bindings)

    @property
    def complete(self) -> bool:
        return bool(self.context.complete)

    @property
    def principal(self) -> str:
        return self.context.client_principal or ""


__all__ = ["CHALLENGES", "Credentials", "NtlmExchange", "SpnegoError"]
