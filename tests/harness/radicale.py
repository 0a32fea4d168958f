"""A real Radicale (PyPI) for the CalDAV / CardDAV tests.

One instance runs as a subprocess (``python -m radicale --config FILE``) from a
temporary directory, on a free loopback port, HTTPS only, its certificate from
a throwaway trustme CA (``ca_pem_path``: clients verify against it). Choices the
tests rely on:

- htpasswd authentication with plain passwords (no extra hashing dependency; a
  test server's passwords are throwaway). Radicale reads the file on every
  login unless ``htpasswd_cache`` is on (it is off here), so a user added by
  ``add_user`` can sign in at once. Failed logins answer at once (``delay = 0``),
  not after Radicale's usual second: tests fail logins on purpose.
- ``owner_only`` rights: each user reads and writes ``/<user>/`` and what is
  under it, and nothing else; the root answers PROPFIND (current-user-principal)
  to any signed-in user. Radicale makes ``/<user>/`` (the principal, which is
  also the calendar and address-book home) on that user's first request.
- Filesystem storage in the temporary directory (``collections/``).
- ``/.well-known/caldav`` and ``/.well-known/carddav`` answer as Radicale always
  does: a redirect to ``/``, where the principal is found.

The helpers (``make_calendar``, ``make_address_book``, ``list_collection``) act
as the user over WebDAV, as a client would: Radicale has no administrator.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote, unquote
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

import httpx
import trustme
from defusedxml import ElementTree

from tests.harness import processes
from tests.harness.dovecot import HOST, free_port

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
CARDDAV = "urn:ietf:params:xml:ns:carddav"

MKCALENDAR_BODY = """<?xml version="1.0" encoding="utf-8"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:set><D:prop>
    <D:displayname>{name}</D:displayname>
    <C:supported-calendar-component-set>{components}</C:supported-calendar-component-set>
  </D:prop></D:set>
</C:mkcalendar>
"""

MKCOL_ADDRESS_BOOK_BODY = """<?xml version="1.0" encoding="utf-8"?>
<D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav">
  <D:set><D:prop>
    <D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype>
    <D:displayname>{name}</D:displayname>
  </D:prop></D:set>
</D:mkcol>
"""

PROPFIND_MEMBERS_BODY = """<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getetag/></D:prop></D:propfind>
"""


class RadicaleError(RuntimeError):
    """Radicale could not start or refused a helper's request; the text holds its log or answer."""


class Member(NamedTuple):
    """One entry of a collection listing: its path on the server and etag (None for a collection)."""

    path: str
    etag: str | None
    is_collection: bool


class Radicale:
    def __init__(self, *, ca: trustme.CA | None = None, parent: str | Path | None = None) -> None:
        """``ca`` issues the server's certificate (a fresh one by default, or Dovecot's so one
        PEM verifies every test server); ``parent`` is where its directory is made (/tmp)."""
        self.ca = ca or trustme.CA()
        self.cert = self.ca.issue_cert("localhost", HOST)
        self.host = HOST
        self.port = free_port()
        # mkdtemp: a fresh private directory wherever it is made.
        self.dir = Path(tempfile.mkdtemp(prefix="serversync-radicale-", dir=parent or "/tmp"))  # noqa: S108
        self.config_path = self.dir / "radicale.conf"
        self.users_path = self.dir / "users"
        self.storage_path = self.dir / "collections"
        self.ca_pem_path = self.dir / "ca.pem"
        self.log_path = self.dir / "radicale.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._passwords: dict[str, str] = {}
        self._prepare()

    @property
    def url(self) -> str:
        """The server's root, where ``/.well-known/caldav`` leads."""
        return f"https://{self.host}:{self.port}/"

    def home_url(self, user: str) -> str:
        """``user``'s principal, which Radicale also makes its calendar and address-book home."""
        return f"{self.url}{quote(user)}/"

    # -- set-up -------------------------------------------------------------

    def _prepare(self) -> None:
        self.ca.cert_pem.write_to_path(str(self.ca_pem_path))
        self.cert.private_key_pem.write_to_path(str(self.dir / "key.pem"))
        chain = b"".join(blob.bytes() for blob in self.cert.cert_chain_pems)
        (self.dir / "cert.pem").write_bytes(chain)
        self.users_path.write_text("")
        self.storage_path.mkdir()
        self.config_path.write_text(CONFIG_TEMPLATE.format(dir=self.dir, host=self.host, port=self.port))

    # -- life cycle ---------------------------------------------------------

    def start(self, timeout: float = 30) -> Radicale:
        # setpriv: a killed pytest takes its Radicale down (no port or folder held).
        command = [
            "setpriv", "--pdeathsig", "TERM",
            sys.executable, "-m", "radicale", "--config", str(self.config_path),
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RadicaleError(f"radicale exited with {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RadicaleError(f"radicale did not answer within {timeout}s:\n{self.log()}")
            if self._answers():
                return
            time.sleep(0.05)

    def _answers(self) -> bool:
        """True once HTTPS is up: the well-known redirect needs no login. A short timeout:
        whoever else holds the port (Radicale then exits) may accept and never answer."""
        try:
            with self._client(timeout=1) as client:
                return client.get("/.well-known/caldav").is_redirect
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self.process is None:
            return
        processes.stop(self.process)
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts only this server's CA, checks on."""
        return ssl.create_default_context(cafile=str(self.ca_pem_path))

    # -- users --------------------------------------------------------------

    def add_user(self, name: str, password: str) -> str:
        """Add a user who may sign in at once; returns the login name (its home is ``/<name>/``)."""
        if ":" in name or "/" in name or "\n" in name + password:
            raise ValueError(f"{name!r}: htpasswd names hold no ':', '/' or line break")
        with self.users_path.open("a") as users:
            users.write(f"{name}:{password}\n")
        self._passwords[name] = password
        return name

    # -- collections (as the user, over WebDAV) -----------------------------

    def make_calendar(self, user: str, name: str, components: tuple[str, ...] = ("VEVENT", "VTODO")) -> str:
        """MKCALENDAR ``/<user>/<name>/`` holding ``components``; returns its URL."""
        comps = "".join(f'<C:comp name="{c}"/>' for c in components)
        body = MKCALENDAR_BODY.format(name=escape(name), components=comps)
        return self._make(user, name, "MKCALENDAR", body)

    def make_address_book(self, user: str, name: str) -> str:
        """Extended MKCOL (RFC 5689) of ``/<user>/<name>/`` as a CardDAV address book; returns its URL."""
        return self._make(user, name, "MKCOL", MKCOL_ADDRESS_BOOK_BODY.format(name=escape(name)))

    def _make(self, user: str, name: str, method: str, body: str) -> str:
        url = f"{self.home_url(user)}{quote(name)}/"
        with self._client(user) as client:
            response = client.request(method, url, content=body, headers=_XML)
        if response.status_code != httpx.codes.CREATED:
            raise RadicaleError(f"{method} {url} answered {response.status_code}: {response.text}")
        return url

    def list_collection(self, user: str, path: str) -> list[Member]:
        """What the collection at ``path`` (URL or server path) holds, itself left out, by path."""
        with self._client(user) as client:
            response = client.request("PROPFIND", path, content=PROPFIND_MEMBERS_BODY, headers=_DEPTH_1)
        if response.status_code != httpx.codes.MULTI_STATUS:
            raise RadicaleError(f"PROPFIND {path} answered {response.status_code}: {response.text}")
        own = httpx.URL(self.url).join(path).path
        members = [_member(entry) for entry in ElementTree.fromstring(response.content)]
        return sorted((m for m in members if m.path.rstrip("/") != own.rstrip("/")), key=lambda m: m.path)

    def _client(self, user: str | None = None, timeout: float = 30) -> httpx.Client:
        auth = (user, self._passwords[user]) if user is not None else None
        return httpx.Client(base_url=self.url, verify=self.ssl_context(), auth=auth, timeout=timeout)


_XML = {"Content-Type": "application/xml; charset=utf-8"}
_DEPTH_1 = {**_XML, "Depth": "1"}


def _member(response: Element) -> Member:
    href = unquote(response.findtext(f"{{{DAV}}}href", ""))
    etag = response.findtext(f".//{{{DAV}}}getetag")
    is_collection = response.find(f".//{{{DAV}}}resourcetype/{{{DAV}}}collection") is not None
    return Member(href, etag or None, is_collection)


CONFIG_TEMPLATE = """\
# Written by tests/harness/radicale.py for one test run; see its docstring.
[server]
hosts = {host}:{port}
ssl = True
certificate = {dir}/cert.pem
key = {dir}/key.pem

[auth]
type = htpasswd
htpasswd_filename = {dir}/users
htpasswd_encryption = plain
delay = 0

[rights]
type = owner_only

[storage]
filesystem_folder = {dir}/collections

[web]
type = none

[logging]
# Warnings and errors only: the log is what a failed start reports.
level = warning
"""
