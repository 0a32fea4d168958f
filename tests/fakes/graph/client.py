"""A plain client for the Graph test server's own tests: msal for tokens, requests for calls.

``trust_env`` is off on purpose: requests lets ``REQUESTS_CA_BUNDLE`` (set on these
machines) override a session's ``verify``, which would trust the system CAs instead
of the test CA (requests issue #3829).
"""

from __future__ import annotations

import base64
from typing import Any

import msal
import requests

from tests.fakes.graph.entra import App
from tests.fakes.graph.server import GraphServer


def session(server: GraphServer) -> requests.Session:
    http = requests.Session()
    http.trust_env = False
    http.verify = server.ca_file
    return http


def confidential_app(
    server: GraphServer, app: App, *, tenant: str | None = None, **credential: Any
) -> msal.ConfidentialClientApplication:
    """msal as a connector would build it: the server's authority, no instance discovery
    (that would ask login.microsoftonline.com whether the authority is known)."""
    if not credential:
        credential = {"client_credential": app.secret}
    return msal.ConfidentialClientApplication(
        app.client_id,
        authority=f"{server.authority}/{tenant or server.tenant_id}",
        instance_discovery=False,
        http_client=session(server),
        **credential,
    )


def token(server: GraphServer, app: App, **credential: Any) -> dict[str, Any]:
    result: dict[str, Any] = confidential_app(server, app, **credential).acquire_token_for_client(
        [f"{server.url}/.default"]
    )
    return result


class Graph:
    """Calls on one mailbox with one app's token."""

    def __init__(self, server: GraphServer, app: App, address: str) -> None:
        self.server = server
        self.address = address
        self.http = session(server)
        result = token(server, app)
        assert "access_token" in result, result
        self.http.headers["Authorization"] = f"Bearer {result['access_token']}"

    def url(self, path: str) -> str:
        return path if path.startswith("https://") else f"{self.server.url}/v1.0/users/{self.address}/{path}"

    def get(self, path: str, **options: Any) -> requests.Response:
        return self.http.get(self.url(path), timeout=10, **options)

    def post(self, path: str, **options: Any) -> requests.Response:
        return self.http.post(self.url(path), timeout=10, **options)

    def patch(self, path: str, **options: Any) -> requests.Response:
        return self.http.patch(self.url(path), timeout=10, **options)

    def delete(self, path: str, **options: Any) -> requests.Response:
        return self.http.delete(self.url(path), timeout=10, **options)

    def post_mime(self, path: str, raw: bytes) -> requests.Response:
        return self.post(path, data=base64.b64encode(raw), headers={"Content-Type": "text/plain"})
