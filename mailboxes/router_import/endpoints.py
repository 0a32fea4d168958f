"""What one provider entry says about a mail server: direction, protocol,
location, port, SSL, authentication and credentials.

The router's incoming servers are Exchange (WebDAV or Exchange Web Services)
or POP3; its outgoing servers SMTP or Exchange Online. The provider class says
which where it can; otherwise an explicit server type or protocol tag, and
last the shape of the location (a URL is Exchange, a host name POP3 or SMTP).
Each inference is written into the endpoint's notes, so the review shows it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import urlsplit, urlunsplit

from mailboxes.router_import.documents import Entry
from profiles.models import AuthProtocol

MICROSOFT_ASSEMBLY = "microsoft.crm.tools.emailproviders"
EWS_PATH = "/EWS/Exchange.asmx"
# Microsoft's online service: an EWS location on these hosts is Exchange Online.
ONLINE_HOSTS = ("outlook.office365.com", "outlook.office.com")
ONLINE_DOMAINS = (".outlook.com", ".office365.com")


class Protocol(StrEnum):
    EWS = "ews"
    WEBDAV = "webdav"
    POP3 = "pop3"
    SMTP = "smtp"


INCOMING, OUTGOING = "incoming", "outgoing"
PROTOCOL_NAMES = {
    Protocol.EWS: "Exchange Web Services",
    Protocol.WEBDAV: "Exchange WebDAV",
    Protocol.POP3: "POP3",
    Protocol.SMTP: "SMTP",
}

# Confirmed class names -> (direction, protocol); None: decided from tags or location.
KNOWN_CLASSES: dict[str, tuple[str, Protocol | None]] = {
    "ExchangePollingMailboxProvider": (INCOMING, Protocol.EWS),
    "Pop3PollingMailboxProvider": (INCOMING, Protocol.POP3),
    "SmtpPollingSendEmailProvider": (OUTGOING, Protocol.SMTP),
    "CrmPollingSendEmailProvider": (OUTGOING, None),
    "CrmPollingMailboxProvider": (INCOMING, None),
}
_DIRECTIONS = {"incoming": INCOMING, "in": INCOMING, "inbound": INCOMING, "outgoing": OUTGOING}
_DIRECTIONS |= {"out": OUTGOING, "outbound": OUTGOING}
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}
_SSL_PORTS, _PLAIN_PORTS = {995, 465, 993, 443}, {110, 25, 143, 80}


@dataclass(frozen=True)
class Endpoint:
    """One direction's server, as server-side synchronization can use it."""

    direction: str
    protocol: Protocol
    location: str  # an EWS URL, or a host name
    port: int
    use_ssl: bool
    auth: str
    username: str
    password_stored: bool
    autodiscover: bool = False

    @property
    def is_online(self) -> bool:
        host = (urlsplit(self.location).hostname or "").lower()
        return host in ONLINE_HOSTS or host.endswith(ONLINE_DOMAINS)

    def describe(self) -> str:
        where = self.location if self.protocol is Protocol.EWS else f"{self.location}:{self.port}"
        ssl = "SSL" if self.use_ssl else "no SSL"
        return f"{PROTOCOL_NAMES[self.protocol]} {where or '(Autodiscover)'} ({ssl})"


@dataclass
class Reading:
    """An entry read as an endpoint, or the reason it cannot be one."""

    entry: Entry
    direction: str | None = None
    endpoint: Endpoint | None = None
    refusal: str = ""
    notes: list[str] = field(default_factory=list)
    provider: str = ""

    @property
    def source(self) -> str:
        return f"{self.entry.label} ({self.provider or 'no provider class'})"


def read_endpoint(entry: Entry) -> Reading:
    reading = Reading(entry=entry, notes=list(entry.aliases))
    direction, protocol = _kind(entry, reading)
    reading.direction = direction
    if reading.refusal:
        return reading
    if direction is None:
        reading.refusal = (
            "neither the provider class nor a Direction tag says whether it is incoming or outgoing"
        )
        return reading
    location = entry.get("EmailServerUrl")
    protocol = protocol or _protocol_from_tags(entry, reading) or _protocol_from_location(direction, location)
    if protocol is Protocol.EWS:
        protocol = _ews_or_webdav(entry, location, reading)
    if protocol is Protocol.WEBDAV:
        reading.refusal = (
            f"{webdav_kind(entry)} at {location or 'no location'}: Exchange 2003 and Exchange 2007 WebDAV "
            "profiles are not migrated; server-side synchronization uses Exchange Web Services"
        )
        return reading
    reading.endpoint = _endpoint(entry, direction, protocol, location, reading)
    return reading


def webdav_kind(entry: Entry) -> str:
    """A WebDAV entry as the Email Router Configuration Manager named it: its
    Exchange version where the server type says it, else both WebDAV ones."""
    said = f"{entry.get('EmailServerType')} {entry.get('EmailProtocol')}".lower()
    versions = [version for version in ("2003", "2007") if version in said]
    return f"Exchange {' or '.join(versions or ['2003', '2007'])} (WebDAV)"


def _kind(entry: Entry, reading: Reading) -> tuple[str | None, Protocol | None]:
    written_class = entry.get("ProviderClass")
    class_name = written_class.split(",")[0].strip().rsplit(".", 1)[-1]
    reading.provider = class_name
    assembly = entry.get("ProviderAssembly").split(",")[0].strip().lower().removesuffix(".dll")
    direction = _DIRECTIONS.get(entry.get("Direction").lower())
    if entry.get("Direction") and direction is None:
        reading.notes.append(f"Direction {entry.get('Direction')!r} not understood")
    if assembly and assembly != MICROSOFT_ASSEMBLY:
        reading.refusal = f"custom provider (assembly {entry.get('ProviderAssembly')}); not migrated"
        return direction, None
    if not class_name:
        reading.notes.append("no ProviderClass: the kind of server is inferred from the other tags")
        return direction, None
    if class_name not in KNOWN_CLASSES:
        reading.refusal = f"custom provider {written_class}; not migrated"
        return direction, None
    class_direction, protocol = KNOWN_CLASSES[class_name]
    if direction and direction != class_direction:
        reading.notes.append(
            f"Direction says {direction}, but {class_name} is {class_direction}; {direction} used"
        )
    return direction or class_direction, protocol


def _protocol_from_tags(entry: Entry, reading: Reading) -> Protocol | None:
    said = f"{entry.get('EmailServerType')} {entry.get('EmailProtocol')}".lower()
    for words, protocol in (
        (("webdav", "2003"), Protocol.WEBDAV),
        (("pop",), Protocol.POP3),
        (("smtp",), Protocol.SMTP),
        (("ews", "web service", "webservice", "exchange"), Protocol.EWS),
    ):
        if any(word in said for word in words):
            reading.notes.append(f"server kind taken from the server type / protocol tags ({said.strip()})")
            return protocol
    return None


def _protocol_from_location(direction: str, location: str) -> Protocol:
    # The router knew only these: a URL is Exchange, a host POP3 (in) or SMTP (out).
    if "://" in location and location.lower().startswith(("http://", "https://")):
        return Protocol.EWS
    return Protocol.POP3 if direction == INCOMING else Protocol.SMTP


def _ews_or_webdav(entry: Entry, location: str, reading: Reading) -> Protocol:
    said = f"{entry.get('EmailServerType')} {entry.get('EmailProtocol')}".lower()
    if "webdav" in said or "2003" in said:
        return Protocol.WEBDAV
    if not location or "://" not in location:
        return Protocol.EWS
    path = urlsplit(location).path.lower()
    if "/ews/" in path or path.endswith(".asmx"):
        return Protocol.EWS
    reading.notes.append(f"{location} is not an Exchange Web Services URL (…{EWS_PATH}): taken as WebDAV")
    return Protocol.WEBDAV


def _endpoint(entry: Entry, direction: str, protocol: Protocol, location: str, reading: Reading) -> Endpoint:
    said_ssl = _flag(entry, "EmailUseSSL", reading)
    said_port = _port(entry, reading)
    if protocol is Protocol.EWS:
        url, use_ssl, port = _ews_location(location, said_ssl, reading)
        return Endpoint(
            direction,
            protocol,
            url,
            port,
            use_ssl,
            _auth(entry, exchange=True, reading=reading),
            entry.get("EmailUser"),
            bool(entry.get("EmailPassword")),
            autodiscover=not url,
        )
    host, port_in_location = _host_and_port(location)
    given_port = said_port or port_in_location
    if said_ssl is None:
        said_ssl = given_port not in _PLAIN_PORTS if given_port else True
        reading.notes.append(f"SSL not stated; taken as {'on' if said_ssl else 'off'}")
    port = given_port or _default_port(protocol, said_ssl)
    return Endpoint(
        direction,
        protocol,
        host,
        port,
        said_ssl,
        _auth(entry, exchange=False, reading=reading),
        entry.get("EmailUser"),
        bool(entry.get("EmailPassword")),
    )


def _ews_location(location: str, said_ssl: bool | None, reading: Reading) -> tuple[str, bool, int]:
    if not location:
        reading.notes.append("no server location: the profile finds it through Autodiscover")
        use_ssl = True if said_ssl is None else said_ssl
        return "", use_ssl, 443 if use_ssl else 80
    if "://" not in location:
        location = f"https://{location.strip('/')}{EWS_PATH}"
        reading.notes.append(f"the location is a host name; taken as {location}")
    parts = urlsplit(location.strip())
    scheme = parts.scheme.lower()
    url = urlunsplit((scheme, parts.netloc.lower(), parts.path, parts.query, ""))
    use_ssl = scheme == "https"
    if said_ssl is not None and said_ssl != use_ssl:
        reading.notes.append(f"EmailUseSSL says {said_ssl} but the URL is {scheme}; the URL counts")
    return url, use_ssl, parts.port or (443 if use_ssl else 80)


def _host_and_port(location: str) -> tuple[str, int | None]:
    text = location.strip()
    parts = urlsplit(text if "://" in text else f"//{text}")
    try:
        port = parts.port
    except ValueError:
        port = None
    return (parts.hostname or text).lower(), port


def _default_port(protocol: Protocol, use_ssl: bool) -> int:
    if protocol is Protocol.POP3:
        return 995 if use_ssl else 110
    return 465 if use_ssl else 587


def _flag(entry: Entry, name: str, reading: Reading) -> bool | None:
    value = entry.get(name).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    if value:
        reading.notes.append(f"{name} {entry.get(name)!r} not understood")
    return None


def _port(entry: Entry, reading: Reading) -> int | None:
    value = entry.get("EmailPort").strip()
    if re.fullmatch(r"\d{1,5}", value) and 1 <= int(value) <= 65535:
        return int(value)
    if value:
        reading.notes.append(f"EmailPort {value!r} not understood")
    return None


def _auth(entry: Entry, *, exchange: bool, reading: Reading) -> str:
    said = entry.get("EmailAuthMode").strip()
    mode = re.sub(r"[\s_-]", "", said.lower())
    if not mode:
        return AuthProtocol.AUTO
    if mode in ("basic", "cleartext", "plain", "plaintext"):
        return AuthProtocol.BASIC
    if mode in ("oauth", "modernauth", "modern"):
        return AuthProtocol.OAUTH
    if mode in ("ntlm", "windows", "windowsauthentication", "windowsintegrated", "negotiate", "kerberos"):
        if exchange:
            if mode != "ntlm":
                reading.notes.append(f"authentication {said!r} taken as NTLM")
            return AuthProtocol.NTLM
        reading.notes.append(f"authentication {said!r} is for Exchange only; Auto Detect used")
        return AuthProtocol.AUTO
    if mode in ("anonymous", "none"):
        reading.notes.append(
            "anonymous access: server-side synchronization always signs in; Auto Detect used"
        )
        return AuthProtocol.AUTO
    reading.notes.append(f"EmailAuthMode {said!r} not understood; Auto Detect used")
    return AuthProtocol.AUTO
