"""The server types a profile can have, and what each means for a profile and its
mailboxes: one table, read by the profile's rules and form, the mailboxes' rules
and the Email Router import.

Which connectors run a type (and so which types can sync at all) is the
engine's business: ``sync/connectors/registry.py``, a floor above, which names
its types by these values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import models

# Where Exchange Online is reached (Microsoft Graph) and where its apps sign in
# (Microsoft Entra ID); national clouds have their own of both.
MICROSOFT_GRAPH_URL = "https://graph.microsoft.com"
ENTRA_ID_AUTHORITY = "https://login.microsoftonline.com"
EWS_URL_EXAMPLE = "https://mail.example.com/EWS/Exchange.asmx"


class Service(models.TextChoices):
    """How a type's server is reached when it is not a host and a port."""

    NONE = "", "host and port"
    GRAPH = "graph", "Microsoft Graph"
    EWS = "ews", "Exchange Web Services"


class ServerType(models.TextChoices):
    EXCHANGE_ONLINE = "exchange_online", "Exchange Online"
    EXCHANGE_SERVER = "exchange_server", "Exchange Server"
    IMAP_SMTP = "imap_smtp", "IMAP/SMTP"
    POP3_SMTP = "pop3_smtp", "Other (POP3/SMTP)"


class Direction(models.TextChoices):
    INCOMING = "incoming", "Incoming"
    OUTGOING = "outgoing", "Outgoing"


# A port administrators pick from, and what it is.
Port = tuple[int, str]

_SMTP_PORTS: tuple[Port, ...] = (
    (465, "SMTP over SSL/TLS"),
    (587, "SMTP submission, STARTTLS when SSL is on"),
    (25, "SMTP, STARTTLS when SSL is on"),
)


@dataclass(frozen=True)
class ServerTypeFacts:
    # What the type means to an administrator choosing one.
    description: str
    # Exchange: a server is a URL, not a host and a port; moving failed email applies.
    exchange: bool
    # Per direction: the port with SSL, the port without (as Dynamics fills them in).
    default_ports: dict[str, tuple[int, int]]
    # Per direction: the ports offered as suggestions, and a host for the placeholder.
    common_ports: dict[str, tuple[Port, ...]] = field(default_factory=dict)
    host_examples: dict[str, str] = field(default_factory=dict)
    # The location a new profile starts with (Exchange Online's one URL).
    default_location: str = ""
    # Signing in with an app registration (Microsoft Entra ID client credentials).
    oauth_client_credentials: bool = False
    # Appointments, contacts and tasks (Dynamics: not over POP3/SMTP).
    syncs_act: bool = True
    # Incoming and outgoing are separate servers, both worth naming (a router
    # import's profile name lists them).
    separate_outgoing_server: bool = False
    # Exchange's URL-addressed service, and what its location field holds.
    service: Service = Service.NONE
    location_help: str = ""
    # Signing in only as an app (Microsoft Graph): no user names, passwords,
    # authentication protocols or impersonation apply.
    app_only: bool = False
    # EWS: NTLM, Autodiscover and an explicit Exchange version apply.
    ews: bool = False
    # Appointments, contacts and tasks live on a CalDAV / CardDAV server the profile names
    # (the mail server does not hold them, as Exchange does).
    act_over_dav: bool = False


_EXCHANGE_PORTS: dict[str, tuple[int, int]] = {Direction.INCOMING: (443, 80), Direction.OUTGOING: (443, 80)}

FACTS: dict[str, ServerTypeFacts] = {
    ServerType.EXCHANGE_ONLINE: ServerTypeFacts(
        description=(
            "Microsoft 365 through Microsoft Graph, signing in as an app registered in Microsoft Entra ID."
        ),
        exchange=True,
        default_ports=_EXCHANGE_PORTS,
        default_location=MICROSOFT_GRAPH_URL,
        host_examples={Direction.INCOMING: MICROSOFT_GRAPH_URL, Direction.OUTGOING: MICROSOFT_GRAPH_URL},
        oauth_client_credentials=True,
        service=Service.GRAPH,
        location_help=f"The Microsoft Graph endpoint: {MICROSOFT_GRAPH_URL} (a national cloud has its own).",
        app_only=True,
    ),
    ServerType.EXCHANGE_SERVER: ServerTypeFacts(
        description="Exchange Server on premises (2016, 2019, Subscription Edition), through its EWS URL.",
        exchange=True,
        default_ports=_EXCHANGE_PORTS,
        host_examples={Direction.INCOMING: EWS_URL_EXAMPLE, Direction.OUTGOING: EWS_URL_EXAMPLE},
        # Hybrid deployments sign in to EWS with an Entra ID app, too.
        oauth_client_credentials=True,
        service=Service.EWS,
        location_help=f"The EWS URL, e.g. {EWS_URL_EXAMPLE}; blank with Autodiscover.",
        ews=True,
    ),
    ServerType.IMAP_SMTP: ServerTypeFacts(
        description="Any IMAP server for incoming and SMTP for outgoing email (Gmail, Dovecot, …).",
        exchange=False,
        default_ports={Direction.INCOMING: (993, 143), Direction.OUTGOING: (465, 587)},
        common_ports={
            Direction.INCOMING: ((993, "IMAP over SSL/TLS"), (143, "IMAP, STARTTLS when SSL is on")),
            Direction.OUTGOING: _SMTP_PORTS,
        },
        host_examples={Direction.INCOMING: "imap.example.com", Direction.OUTGOING: "smtp.example.com"},
        # Exchange Online's IMAP and SMTP take an Entra ID app's token too (XOAUTH2).
        oauth_client_credentials=True,
        separate_outgoing_server=True,
        act_over_dav=True,
    ),
    ServerType.POP3_SMTP: ServerTypeFacts(
        description="A POP3 server for incoming and SMTP for outgoing email.",
        exchange=False,
        default_ports={Direction.INCOMING: (995, 110), Direction.OUTGOING: (465, 587)},
        common_ports={
            Direction.INCOMING: ((995, "POP3 over SSL/TLS"), (110, "POP3, STARTTLS when SSL is on")),
            Direction.OUTGOING: _SMTP_PORTS,
        },
        host_examples={Direction.INCOMING: "pop.example.com", Direction.OUTGOING: "smtp.example.com"},
        oauth_client_credentials=True,
        syncs_act=False,
        separate_outgoing_server=True,
    ),
}

EXCHANGE_TYPES = frozenset(value for value, facts in FACTS.items() if facts.exchange)


# A blank or unknown type (a form not yet filled in): nothing special applies,
# and the field's own validation says what is wrong.
_UNKNOWN = ServerTypeFacts(description="", exchange=False, default_ports={})


def facts(server_type: str) -> ServerTypeFacts:
    """What ``server_type`` means."""
    return FACTS.get(server_type, _UNKNOWN)


def default_port(server_type: str, direction: str, use_ssl: bool) -> int:
    """The port a Dynamics administrator expects for this server type, direction and SSL."""
    with_ssl, without_ssl = facts(server_type).default_ports[direction]
    return with_ssl if use_ssl else without_ssl
