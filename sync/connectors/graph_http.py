"""One session's HTTP client for Microsoft Graph: httpx, a bearer token from msal,
at most four requests in flight per mailbox, every failure a SyncError.

Outlook's limit is four concurrent requests per mailbox across all apps; a
session is sequential, so a process-wide semaphore per mailbox keeps the
engine's threads (a folder read while the last batch is stored, sign-out
overlapping the database) and several workers' sessions of one mailbox in this
process under it. No retry here: a throttled request raises ThrottledError with
the server's Retry-After, and the scheduler waits.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import httpx

from sync.connectors import network
from sync.connectors.base import ServerSettings
from sync.connectors.graph_auth import access_token
from sync.connectors.graph_errors import (
    GRAPH,
    GraphFailure,
    failure,
    graph_error,
    network_error,
    token_roles,
)
from sync.errors import TransientError

# Outlook REST's limit of concurrent requests per mailbox ("MailboxConcurrency").
MAILBOX_CONCURRENCY = 4
API = "v1.0"

_semaphores: dict[tuple[str, str], threading.BoundedSemaphore] = {}
_semaphores_lock = threading.Lock()

# Raised before the request reached the server: it was surely not processed.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def mailbox_slots(settings: ServerSettings) -> threading.BoundedSemaphore:
    key = (settings.url.rstrip("/").lower(), settings.mailbox.lower())
    with _semaphores_lock:
        return _semaphores.setdefault(key, threading.BoundedSemaphore(MAILBOX_CONCURRENCY))


class GraphRefused(Exception):
    """Graph answered with an error status the caller asked to see (``expect``)."""

    def __init__(self, found: GraphFailure) -> None:
        super().__init__(f"{found.status} {found.code}")
        self.found = found


class GraphClient:
    """HTTP to Graph for one mailbox, open between :meth:`open` and :meth:`close`."""

    def __init__(self, settings: ServerSettings, *, permission: str) -> None:
        self.settings = settings
        self.permission = permission
        self.root = settings.url.rstrip("/")
        self.mailbox_url = f"{self.root}/{API}/users/{quote(settings.mailbox, safe='@')}"
        self._http: httpx.Client | None = None
        self._token = ""
        self._slots = mailbox_slots(settings)

    def open(self) -> None:
        """Sign in (a cached token costs nothing) and open the connection pool."""
        self._token = access_token(self.settings)
        self._http = httpx.Client(
            timeout=self.settings.timeout,
            verify=network.verifying_context(self.settings),
            headers={"User-Agent": "serversync", "Accept": "application/json"},
            follow_redirects=False,
        )

    def close(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            http.close()

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            raise RuntimeError("the Graph session is not open; use it as a context manager")
        return self._http

    def url(self, path: str) -> str:
        """The mailbox's resource ``path`` ("mailFolders/inbox")."""
        return f"{self.mailbox_url}/{path}"

    def json(
        self,
        method: str,
        url: str,
        *,
        what: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        expect: frozenset[int] = frozenset(),
    ) -> dict[str, Any]:
        response = self.call(method, url, what=what, params=params, headers=headers, expect=expect)
        try:
            body = response.json()
        except ValueError as error:
            raise TransientError(
                f"{GRAPH} answered {what} for {self.settings.mailbox} with something other than JSON. "
                "serversync tries again later.",
                code="server_error",
            ) from error
        return body if isinstance(body, dict) else {}

    def call(
        self,
        method: str,
        url: str,
        *,
        what: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        expect: frozenset[int] = frozenset(),
        unsure: bool = False,
    ) -> httpx.Response:
        """One request; a 2xx answer comes back, a status in ``expect`` raises GraphRefused,
        anything else its SyncError. ``unsure``: a request the server may have carried out
        although no answer came (sending) fails with code ``outcome_unknown``."""
        request = self._request(method, url, params=params, headers=headers, content=content)
        with self._slots:
            try:
                response = self.http.send(request)
            except httpx.TransportError as error:
                raise self._transport_error(error, what, unsure=unsure) from error
        return self._checked(response, what, expect)

    @contextmanager
    def stream(
        self, url: str, *, what: str, expect: frozenset[int] = frozenset()
    ) -> Iterator[httpx.Response]:
        """A GET whose body is read as it arrives (a message's MIME), its slot held until closed."""
        request = self._request("GET", url, params=None, headers={"Accept": "*/*"}, content=None)
        with self._slots:
            try:
                response = self.http.send(request, stream=True)
            except httpx.TransportError as error:
                raise self._transport_error(error, what, unsure=False) from error
            try:
                if response.status_code >= 300:
                    response.read()
                    self._checked(response, what, expect)
                yield response
            except httpx.TransportError as error:
                raise self._transport_error(error, what, unsure=False) from error
            finally:
                response.close()

    def _request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        content: bytes | None,
    ) -> httpx.Request:
        # A token per request: msal's cache answers, and renews it before it expires
        # in a session that outlives it (a large first sync).
        self._token = access_token(self.settings)
        merged = {"Authorization": f"Bearer {self._token}", **(headers or {})}
        return self.http.build_request(method, url, params=params, headers=merged, content=content)

    def _checked(self, response: httpx.Response, what: str, expect: frozenset[int]) -> httpx.Response:
        if response.status_code < 300:
            return response
        found = failure(response.status_code, response.headers, response.content)
        if response.status_code in expect:
            raise GraphRefused(found)
        raise graph_error(
            found, self.settings, permission=self.permission, roles=token_roles(self._token), what=what
        )

    def _transport_error(self, error: httpx.TransportError, what: str, *, unsure: bool) -> Exception:
        if unsure and not isinstance(error, _NOT_SENT):
            return TransientError(
                f"The connection to {GRAPH} at {self.root} failed while {what} for {self.settings.mailbox} "
                f"({type(error).__name__}: {error}), after the request was sent: Exchange Online may or may "
                "not have taken it. serversync looks for it in Sent Items before anything is sent again.",
                code="outcome_unknown",
            )
        return network_error(error, self.settings, self.root, service=GRAPH)
