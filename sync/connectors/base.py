"""Plain settings and data the connectors take and return (no Django, no CRM)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

# The inbox, as IMAP names it (RFC 3501); a POP3 maildrop is read as this one folder.
INBOX = "INBOX"


class Tls(enum.StrEnum):
    IMPLICIT = "implicit"  # TLS from the first byte (IMAPS 993, POP3S 995, SMTPS 465)
    STARTTLS = "starttls"  # plain connect, then STARTTLS / STLS, required
    NONE = "none"  # cleartext; only where the profile says SSL is off


@dataclass(frozen=True, repr=False)
class OAuthApp:
    """An app registration in Microsoft Entra ID, signing in with client credentials
    (app-only): a client secret, or a certificate, as Microsoft recommends."""

    tenant_id: str
    client_id: str
    client_secret: str = field(default="", repr=False)
    # PEM: the private key and its certificate (the thumbprint Entra ID knows it by).
    certificate_pem: str = field(default="", repr=False)
    # Where tokens come from; another cloud (or the test server) has its own.
    authority: str = "https://login.microsoftonline.com"

    def __repr__(self) -> str:
        return f"OAuthApp(tenant_id={self.tenant_id!r}, client_id={self.client_id!r})"


@dataclass(frozen=True, repr=False)
class ServerSettings:
    """Where and how to connect and authenticate for one direction of one mailbox."""

    host: str
    port: int
    tls: Tls = Tls.IMPLICIT
    timeout: float = 30.0
    # A PEM bundle to trust instead of the system's CAs (tests, private CAs).
    # Verification is never switched off.
    ca_file: str | None = None
    username: str = ""
    password: str = field(default="", repr=False)
    # Impersonation: log in as ``username`` (a master / service account) on
    # behalf of this mailbox (IMAP SASL PLAIN authorization identity; POP3
    # Dovecot-style ``mailbox*master``).
    act_as: str = ""
    # HTTP services (Microsoft Graph, EWS): the service's URL (Graph's root,
    # "https://graph.microsoft.com"; the EWS URL, "" when Autodiscover finds it);
    # host and port then only name the server in messages.
    url: str = ""
    # The mailbox's SMTP address: Graph's /users/{mailbox}, the EWS account synced.
    mailbox: str = ""
    # EWS: "basic", "ntlm" or "oauth"; "" lets the client pick (Auto Detect).
    auth: str = ""
    # App-only sign-in (Graph; EWS with OAuth for hybrid deployments).
    oauth: OAuthApp | None = None
    # EWS: find the EWS URL with Autodiscover from ``mailbox``'s domain.
    autodiscover: bool = False
    # EWS: the Exchange version to speak ("Exchange2016"); "" asks the server.
    server_version: str = ""
    # IMAP, POP3, SMTP: sign ``username`` in with an OAuth 2.0 access token through a SASL
    # bearer token mechanism (sync/connectors/sasl.py: "XOAUTH2" or "OAUTHBEARER") instead
    # of a password; "" signs in with the password.
    sasl_mechanism: str = ""
    access_token: str = field(default="", repr=False)
    # Appointments, contacts and tasks: the IANA zone the mailbox's user works in; a calendar's
    # all-day dates and times without a zone (floating) are read in it.
    time_zone: str = "UTC"

    def __repr__(self) -> str:
        # Never print the password: settings end up in tracebacks and logs.
        return (
            f"ServerSettings(host={self.host!r}, port={self.port}, tls={self.tls.value}, "
            f"username={self.username!r}, act_as={self.act_as!r}, url={self.url!r}, mailbox={self.mailbox!r})"
        )


@dataclass(frozen=True)
class FolderState:
    name: str
    uidvalidity: int
    uidnext: int | None
    highestmodseq: int | None
    exists: int


@dataclass(frozen=True)
class FetchedMessage:
    """One message as the server holds it. ``raw`` is None when it was over the
    size cap and not downloaded (``size`` says how big it is)."""

    uid: int
    size: int
    internaldate: datetime | None
    raw: bytes | None


@dataclass(frozen=True)
class Pop3Message:
    number: int
    uidl: str
    size: int


@dataclass(frozen=True)
class SendResult:
    """What the SMTP server said: recipients it refused (address -> reply)."""

    refused: dict[str, str] = field(default_factory=dict)


def carries(raw: bytes, header: str, token: str) -> bool:
    """Whether the message's header section holds ``header: token`` (a marked test message)."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    return f"{header.lower()}: {token}".encode() in head.lower()
