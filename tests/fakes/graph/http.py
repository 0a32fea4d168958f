"""The request and reply the Graph test server's handlers pass around, and Graph's error shape."""

from __future__ import annotations

import contextlib
import json
import ssl
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

JSON = "application/json"
# What Graph answers with for JSON entities and collections.
ODATA_JSON = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
)


@dataclass
class Request:
    method: str
    target: str  # as sent: path and query, still escaped
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def segments(self) -> list[str]:
        """The path's segments, each unescaped ("users/a%40b" -> ["users", "a@b"])."""
        return [unquote(s) for s in self.path.strip("/").split("/")]

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.target).query, keep_blank_values=True))

    def json(self) -> object:
        return json.loads(self.body or b"null")


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    # The JSON sent, and how to check it against the metadata (violations or []).
    document: object = None
    check: Callable[[object], list[str]] | None = None

    @classmethod
    def of_json(
        cls,
        status: int,
        document: object,
        check: Callable[[object], list[str]] | None,
        content_type: str = ODATA_JSON,
    ) -> Reply:
        return cls(status, json.dumps(document).encode(), content_type, {}, document, check)


class GraphError(Exception):
    """An error answer of Graph: ``{"error": {"code", "message", "innerError"}}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def reply(self, request_id: str, client_request_id: str) -> Reply:
        from tests.fakes.graph.metadata import validate_error

        document = {
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                },
            }
        }
        reply = Reply.of_json(self.status, document, validate_error, JSON)
        reply.headers.update(self.headers)
        return reply


def new_request_id() -> str:
    return str(uuid.uuid4())


class HttpsServer(ThreadingHTTPServer):
    """TLS per connection, in the connection's own thread (a slow handshake blocks no one)."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], tls: ssl.SSLContext, handle: Callable[[Request], Reply]
    ) -> None:
        super().__init__(address, _Handler)
        self.tls = tls
        self.handle = handle

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            connection = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            _Handler(connection, client_address, self)
        finally:
            with contextlib.suppress(OSError):
                connection.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-IIS/10.0"
    sys_version = ""
    # One write per answer, sent at once (headers and body apart would meet delayed ACKs).
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    # An idle keep-alive connection is closed after this long, its thread with it.
    timeout = 60
    server: HttpsServer

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:  # the connection broke part way through the body: never acted on
            self.close_connection = True
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.server.handle(Request(self.command, self.path, headers, body))
        self.send_response(reply.status)
        if reply.content_type:
            self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log is ``GraphServer.requests``."""
