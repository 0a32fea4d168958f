"""Merge an owner's incoming and outgoing router profiles into one server-side
synchronization profile ("Merge email server profiles for migration"):

| incoming                          | outgoing                 | new profile        |
|-----------------------------------|--------------------------|--------------------|
| Exchange (EWS), Exchange Online   | SMTP, Exchange Online    | Exchange (1)       |
| POP3                              | SMTP                     | POP3/SMTP          |
| POP3                              | Exchange Online          | Exchange           |
| WebDAV, Exchange 2003, custom     | any                      | not migrated       |

(1) Exchange Online when its EWS location is Microsoft's online service
(then reached through Microsoft Graph with an app registration the router never
had: the review says so), Exchange Server (EWS) otherwise. Identical settings give identical specs, and
identical specs share one profile.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace

from mailboxes.router_import.endpoints import Endpoint, Protocol
from profiles.models import MICROSOFT_GRAPH_URL, AuthProtocol, CredentialsSource, ServerType
from profiles.server_types import facts


@dataclass(frozen=True)
class ProfileSpec:
    """The settings that make two profiles the same (names and dates aside)."""

    server_type: str
    incoming_server_location: str
    incoming_port: int
    incoming_use_ssl: bool
    incoming_auth_protocol: str
    outgoing_server_location: str
    outgoing_port: int
    outgoing_use_ssl: bool
    outgoing_auth_protocol: str
    credentials_source: str
    username: str
    use_same_settings_for_outgoing: bool
    outgoing_username: str
    auto_discover_server_location: bool

    def fields(self) -> dict[str, object]:
        return asdict(self)

    @property
    def key(self) -> str:
        """Stable across reviews of the same files: the administrator's choice is kept by it."""
        encoded = json.dumps(self.fields(), sort_keys=True).encode()
        return hashlib.sha256(encoded).hexdigest()[:16]

    @property
    def holds_credentials(self) -> bool:
        return self.credentials_source != CredentialsSource.USER_OR_QUEUE

    @property
    def signs_in_as_app(self) -> bool:
        return self.credentials_source == CredentialsSource.OAUTH_CLIENT_CREDENTIALS


@dataclass
class Merged:
    spec: ProfileSpec | None = None
    refusal: str = ""
    warnings: list[str] = field(default_factory=list)
    password_stored: bool = False


def merge(incoming: Endpoint | None, outgoing: Endpoint | None) -> Merged:
    """One owner's endpoints (either may be missing, not both) as one profile, or why not."""
    in_protocol = incoming.protocol if incoming else None
    out_protocol = outgoing.protocol if outgoing else None
    if in_protocol in (Protocol.SMTP,) or out_protocol in (Protocol.POP3,):
        return Merged(refusal="an incoming SMTP or outgoing POP3 server cannot be migrated")
    if in_protocol is Protocol.EWS:
        assert incoming is not None  # noqa: S101 -- in_protocol says so
        ews_out = outgoing if outgoing and outgoing.protocol is Protocol.EWS else incoming
        merged = _exchange(incoming, ews_out)
        if outgoing and outgoing.protocol is Protocol.SMTP:
            merged.warnings.append(
                f"Exchange incoming with SMTP outgoing: the Exchange profile sends through "
                f"{_service(merged)}, not the SMTP server {outgoing.location}."
            )
            _warn_without_ssl(outgoing, merged)
        return merged
    if in_protocol is Protocol.POP3:
        assert incoming is not None  # noqa: S101
        if outgoing is None:
            return Merged(
                refusal="POP3 incoming without an outgoing SMTP server: a POP3/SMTP profile needs both"
            )
        if outgoing.protocol is Protocol.EWS:
            merged = _exchange(outgoing, outgoing)
            merged.warnings.append(
                f"POP3 incoming with Exchange outgoing: the Exchange profile reads mail through "
                f"{_service(merged)}, not the POP3 server {incoming.location}."
            )
            _warn_without_ssl(incoming, merged)
            return merged
        return _pop3_smtp(incoming, outgoing)
    if outgoing is not None and outgoing.protocol is Protocol.EWS:
        return _exchange(outgoing, outgoing)
    return Merged(
        refusal="outgoing SMTP alone: a server-side synchronization profile needs an incoming server"
    )


def _service(merged: Merged) -> str:
    """How the merged Exchange profile reaches its server, in words."""
    return facts(merged.spec.server_type).service.label if merged.spec else "Exchange"


def _exchange(incoming: Endpoint, outgoing: Endpoint) -> Merged:
    merged = Merged()
    autodiscover = not incoming.location
    if autodiscover:
        merged.warnings.append(
            "No EWS location: an Exchange Server profile that finds mailboxes through Autodiscover; "
            "choose Exchange Online instead if the mailboxes are there."
        )
    server_type = ServerType.EXCHANGE_ONLINE if incoming.is_online else ServerType.EXCHANGE_SERVER
    if incoming is not outgoing and incoming.is_online != outgoing.is_online:
        merged.warnings.append(
            f"Incoming ({incoming.location}) and outgoing ({outgoing.location}) are on different kinds of "
            f"Exchange; the profile is {server_type.label}, as the incoming server is."
        )
    merged.spec = _spec(server_type, incoming, outgoing, autodiscover, merged)
    if facts(server_type).app_only:
        merged.spec = _through_graph(merged.spec, merged)
    return merged


def _through_graph(spec: ProfileSpec, merged: Merged) -> ProfileSpec:
    """Exchange Online is Microsoft Graph now, where an app registration signs in:
    the router's EWS location and credentials do not carry over."""
    if spec.username:
        merged.warnings.append(f"The router's user name {spec.username} is not used: an app signs in.")
    merged.password_stored = False
    return replace(
        spec,
        incoming_server_location=MICROSOFT_GRAPH_URL,
        outgoing_server_location=MICROSOFT_GRAPH_URL,
        incoming_auth_protocol=AuthProtocol.AUTO,
        outgoing_auth_protocol=AuthProtocol.AUTO,
        incoming_use_ssl=True,
        outgoing_use_ssl=True,
        credentials_source=CredentialsSource.OAUTH_CLIENT_CREDENTIALS,
        username="",
        use_same_settings_for_outgoing=True,
        outgoing_username="",
        auto_discover_server_location=False,
    )


def _pop3_smtp(incoming: Endpoint, outgoing: Endpoint) -> Merged:
    merged = Merged()
    merged.spec = _spec(ServerType.POP3_SMTP, incoming, outgoing, False, merged)
    return merged


def _spec(
    server_type: str, incoming: Endpoint, outgoing: Endpoint, autodiscover: bool, merged: Merged
) -> ProfileSpec:
    for endpoint in {id(incoming): incoming, id(outgoing): outgoing}.values():
        _warn_without_ssl(endpoint, merged)
    source, username, same, outgoing_username = _credentials(incoming, outgoing, merged)
    return ProfileSpec(
        server_type=server_type,
        incoming_server_location=incoming.location,
        incoming_port=incoming.port,
        incoming_use_ssl=incoming.use_ssl,
        incoming_auth_protocol=incoming.auth,
        outgoing_server_location=outgoing.location,
        outgoing_port=outgoing.port,
        outgoing_use_ssl=outgoing.use_ssl,
        outgoing_auth_protocol=outgoing.auth,
        credentials_source=source,
        username=username,
        use_same_settings_for_outgoing=same,
        outgoing_username=outgoing_username,
        auto_discover_server_location=autodiscover,
    )


def _warn_without_ssl(endpoint: Endpoint, merged: Merged) -> None:
    """Every router server without SSL is warned about, as Microsoft's wizard does,
    also one the merged profile does not use (the SMTP server of an Exchange
    profile, the POP3 server of one that reads through Exchange)."""
    if not endpoint.use_ssl:
        merged.warnings.append(f"{endpoint.describe()} does not use SSL.")


def _credentials(incoming: Endpoint, outgoing: Endpoint, merged: Merged) -> tuple[str, str, bool, str]:
    """ "Other specified" credentials (a user name in the file) stay in the profile;
    without one, each mailbox brings its own ("User specified" lived in the CRM)."""
    if not incoming.username:
        if outgoing.username and outgoing is not incoming:
            merged.warnings.append(
                f"The outgoing user name {outgoing.username} is not migrated: a profile holds credentials "
                "for incoming and outgoing, or none."
            )
        return CredentialsSource.USER_OR_QUEUE, "", True, ""
    merged.password_stored = incoming.password_stored or outgoing.password_stored
    if outgoing is incoming or outgoing.username in ("", incoming.username):
        if outgoing is not incoming and not outgoing.username:
            merged.warnings.append(
                "The outgoing server had no user name of its own; the incoming one is used."
            )
        return CredentialsSource.PROFILE, incoming.username, True, ""
    return CredentialsSource.PROFILE, incoming.username, False, outgoing.username
