"""WebDAV over httpx for the CalDAV / CardDAV connector: one client per session, and
every answer a DAV server can give turned into serversync's three error classes.

Multistatus bodies are read with defusedxml (a server's XML is untrusted input).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Self
from urllib.parse import quote, unquote, urljoin, urlsplit
from xml.etree.ElementTree import Element

import httpx
from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from sync.connectors import network
from sync.connectors.base import ServerSettings
from sync.connectors.graph_errors import network_error
from sync.errors import MessageError, PermanentError, SyncError, ThrottledError, TransientError

SERVICE = "CalDAV / CardDAV"
DAV = "{DAV:}"
CALDAV = "{urn:ietf:params:xml:ns:caldav}"
CARDDAV = "{urn:ietf:params:xml:ns:carddav}"
CALSERVER = "{http://calendarserver.org/ns/}"
XML = "application/xml; charset=utf-8"


@dataclass(frozen=True)
class Entry:
    """One ``DAV:response`` of a multistatus: its href (a path), status and found properties."""

    href: str
    status: int
    props: Element | None

    def text(self, name: str) -> str | None:
        found = self.props.find(name) if self.props is not None else None
        return None if found is None else (found.text or "")

    def element(self, name: str) -> Element | None:
        return self.props.find(name) if self.props is not None else None


def path_of(url: str) -> str:
    """A URL's (or href's) path, unquoted, as hrefs are compared."""
    return unquote(urlsplit(url).path)


class DavHttp:
    """An httpx client signed in with the profile's credentials, TLS verified (never off)."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.root = settings.url or f"https://{settings.host}:{settings.port}/"
        self._client: httpx.Client | None = None

    def __enter__(self) -> Self:
        self._client = httpx.Client(
            verify=network.verifying_context(self.settings),
            auth=httpx.BasicAuth(self.settings.username, self.settings.password),
            timeout=self.settings.timeout,
            # Only /.well-known/ redirects are followed (request(follow=True)).
            follow_redirects=False,
        )
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def url(self, href: str) -> str:
        """A full URL, or a server path as hrefs are kept (unquoted), made a URL."""
        return urljoin(self.root, quote(href) if href.startswith("/") else href)

    def request(
        self,
        method: str,
        href: str,
        *,
        body: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        depth: str | None = None,
        allow: frozenset[int] = frozenset(),
        follow: bool = False,
    ) -> httpx.Response:
        """Send one request; a 2xx answer, or one of ``allow``, is returned, anything else raised."""
        if self._client is None:
            raise RuntimeError("the DAV session is not open; use it as a context manager")
        url = self.url(href)
        merged = dict(headers or {})
        if depth is not None:
            merged["Depth"] = depth
        if isinstance(body, str):
            merged.setdefault("Content-Type", XML)
        try:
            response = self._client.request(
                method, url, content=body, headers=merged, follow_redirects=follow
            )
        except httpx.TransportError as error:
            raise network_error(error, self.settings, url, service=SERVICE) from None
        if response.is_success or response.status_code in allow:
            return response
        raise self.failure(response, method, url)

    def multistatus(self, method: str, href: str, body: str, *, depth: str | None) -> list[Entry]:
        response = self.request(method, href, body=body, depth=depth)
        if response.status_code != httpx.codes.MULTI_STATUS:
            raise TransientError(
                f"The {SERVICE} server at {self.root} answered {method} {path_of(href)} with "
                f"{response.status_code}, not a multistatus. serversync tries again later.",
                code="server_error",
            )
        return entries(response.content, self.root)

    def failure(self, response: httpx.Response, method: str, url: str) -> SyncError:
        status = response.status_code
        what = f"{method} {path_of(url)}"
        if status == httpx.codes.UNAUTHORIZED:
            return PermanentError(
                f"The {SERVICE} server at {self.root} refused the user name or password of "
                f"{self.settings.username or '(none)'} (401). Correct the credentials in the email "
                "server profile or on the mailbox (an app password where the server asks for one).",
                code="authentication_failed",
            )
        if status == httpx.codes.FORBIDDEN:
            return PermanentError(
                f"The {SERVICE} server at {self.root} does not let {self.settings.username} do {what} "
                "(403). Give the user read and write access to their calendars and address book "
                "on the server.",
                code="permission_denied",
            )
        if status == httpx.codes.PRECONDITION_FAILED:
            return item_changed(path_of(url))
        if status in (httpx.codes.TOO_MANY_REQUESTS, httpx.codes.SERVICE_UNAVAILABLE):
            wait = _retry_after(response)
            if wait is not None:
                return ThrottledError(
                    f"The {SERVICE} server at {self.root} asked serversync to wait {wait:g} seconds "
                    f"({status}); it waits that long.",
                    retry_after=wait,
                )
        if status >= httpx.codes.INTERNAL_SERVER_ERROR or status == httpx.codes.TOO_MANY_REQUESTS:
            return TransientError(
                f"The {SERVICE} server at {self.root} failed {what} ({status}). "
                "serversync tries again later.",
                code="server_error",
            )
        return PermanentError(
            f"The {SERVICE} server at {self.root} refused {what} ({status} {response.reason_phrase}). "
            "Check that the profile's DAV URL names a CalDAV / CardDAV server.",
            code="dav_refused",
        )


def item_changed(href: str) -> MessageError:
    return MessageError(
        f"The item {href} changed on the server since serversync last read it (its ETag differs). "
        "serversync reads it again and resolves the change.",
        code="item_changed",
    )


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


def entries(content: bytes, root: str) -> list[Entry]:
    """The responses of a multistatus body; each keeps the properties found (200)."""
    try:
        tree = ElementTree.fromstring(content)
    except (ElementTree.ParseError, DefusedXmlException) as error:
        raise TransientError(
            f"The {SERVICE} server at {root} sent XML serversync cannot read ({error}). "
            "serversync tries again later.",
            code="server_error",
        ) from None
    found = []
    for response in tree.findall(f"{DAV}response"):
        href = path_of(response.findtext(f"{DAV}href", ""))
        status, props = _status_and_props(response)
        found.append(Entry(href, status, props))
    return found


def _status_and_props(response: Element) -> tuple[int, Element | None]:
    own = response.findtext(f"{DAV}status")
    if own is not None:
        return _code(own), None
    for propstat in response.findall(f"{DAV}propstat"):
        if _code(propstat.findtext(f"{DAV}status", "")) == httpx.codes.OK:
            return httpx.codes.OK, propstat.find(f"{DAV}prop")
    return httpx.codes.NOT_FOUND, None


def _code(status_line: str) -> int:
    # "HTTP/1.1 200 OK"
    parts = status_line.split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def tag_of(name: str) -> str:
    """``{ns}local`` of a Clark name as a prefixed XML element name for request bodies."""
    prefixes = {DAV: "D", CALDAV: "C", CARDDAV: "CR", CALSERVER: "CS"}
    for namespace, prefix in prefixes.items():
        if name.startswith(namespace):
            return f"{prefix}:{name[len(namespace) :]}"
    raise ValueError(name)


NAMESPACES = (
    'xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" '
    'xmlns:CR="urn:ietf:params:xml:ns:carddav" xmlns:CS="http://calendarserver.org/ns/"'
)


def propfind_body(*names: str) -> str:
    props = "".join(f"<{tag_of(n)}/>" for n in names)
    head = f'<?xml version="1.0" encoding="utf-8"?><D:propfind {NAMESPACES}>'
    return f"{head}<D:prop>{props}</D:prop></D:propfind>"
