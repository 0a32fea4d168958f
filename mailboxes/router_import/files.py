"""Which files make up an Email Router, and the limits checked before any parsing.

Each router brings exactly three files, named as the router names them (compared
case-insensitively). Sizes are checked from what the upload or the file system
reports, before a byte is parsed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mailboxes.router_import.errors import RouterImportError

KEY_FILE = "EncryptionKey.xml"
STATE_FILE = "Microsoft.Crm.Tools.EmailAgent.SystemState.xml"
AGENT_FILE = "Microsoft.Crm.Tools.EmailAgent.xml"
FILE_NAMES = (KEY_FILE, STATE_FILE, AGENT_FILE)
MAX_ROUTERS = 4
MAX_BYTES = 32 * 1024 * 1024  # each file, and all files of one migration together
_BY_FOLDED_NAME = {name.casefold(): name for name in FILE_NAMES}
# Bytes that alone make a file "empty": whitespace, NULs and byte order marks.
_BLANK = b" \t\r\n\x00\xef\xbb\xbf\xfe\xff"


class IncomingFile(Protocol):
    """What Django's UploadedFile and :class:`DiskFile` both offer."""

    name: str | None
    size: int | None

    def read(self, size: int = -1) -> bytes: ...


@dataclass
class DiskFile:
    """A file in a router folder, read only once its size has passed the checks."""

    path: Path
    name: str | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        self.name = self.path.name
        self.size = self.path.stat().st_size

    def read(self, size: int = -1) -> bytes:
        with self.path.open("rb") as handle:
            return handle.read(size)


@dataclass
class RouterUpload:
    """One router's files as given: ``ignored`` names files a folder held besides them."""

    name: str
    files: list[IncomingFile]
    ignored: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RouterFile:
    router: int
    router_name: str
    name: str
    uploaded_name: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class RouterFiles:
    position: int
    name: str
    files: dict[str, RouterFile]
    ignored: list[str] = field(default_factory=list)


def base_name(name: str | None) -> str:
    """A browser may send a path; only its last part is the file's name."""
    return (name or "").replace("\\", "/").rsplit("/", 1)[-1].strip()


def canonical_name(name: str | None) -> str | None:
    return _BY_FOLDED_NAME.get(base_name(name).casefold())


def read_uploads(routers: list[RouterUpload]) -> list[RouterFiles]:
    """Check names, counts and sizes of every router's files, then read them.
    Raises RouterImportError listing every problem found."""
    problems = _count_problems(routers)
    for router in routers:
        problems += _name_problems(router)
    if problems:
        raise RouterImportError(problems)
    read = [_read(position, router) for position, router in enumerate(routers, start=1)]
    problems = [problem for router in read for problem in _content_problems(router)]
    total = sum(file.size for router in read for file in router.files.values())
    if total > MAX_BYTES and not problems:
        problems = [f"The files come to more than {MAX_BYTES:,} bytes together (32 MiB)."]
    if problems:
        raise RouterImportError(problems)
    return read


def _count_problems(routers: list[RouterUpload]) -> list[str]:
    if not routers:
        return ["Upload the three files of at least one Email Router."]
    if len(routers) > MAX_ROUTERS:
        return [f"At most {MAX_ROUTERS} Email Routers per migration; {len(routers)} were given."]
    total = sum(file.size or 0 for router in routers for file in router.files)
    if total > MAX_BYTES:
        return [
            f"The files come to {total:,} bytes together; a migration takes at most "
            f"{MAX_BYTES:,} bytes (32 MiB)."
        ]
    return []


def _name_problems(router: RouterUpload) -> list[str]:
    problems = []
    seen: dict[str, list[str]] = {}
    for file in router.files:
        given = base_name(file.name)
        name = canonical_name(file.name)
        if name is None:
            problems.append(
                f"{router.name}: {given or 'a file without a name'} is not an Email Router file "
                f"(expected {', '.join(FILE_NAMES)})."
            )
            continue
        seen.setdefault(name, []).append(given)
        if not file.size:
            problems.append(f"{router.name}: {name} is empty.")
        elif file.size > MAX_BYTES:
            problems.append(
                f"{router.name}: {name} is {file.size:,} bytes; each file may be at most {MAX_BYTES:,} bytes "
                "(32 MiB)."
            )
    for name in FILE_NAMES:
        copies = seen.get(name, [])
        if not copies:
            problems.append(f"{router.name}: {name} is missing; each router needs all three files.")
        elif len(copies) > 1:
            problems.append(f"{router.name}: {name} was given {len(copies)} times ({', '.join(copies)}).")
    return problems


def _content_problems(router: RouterFiles) -> list[str]:
    """What the bytes read show, in case an upload's declared size was not the truth."""
    problems = []
    for file in router.files.values():
        if file.size > MAX_BYTES:
            problems.append(f"{router.name}: {file.name} is larger than {MAX_BYTES:,} bytes (32 MiB).")
        elif not file.data.strip(_BLANK):
            problems.append(f"{router.name}: {file.name} is empty.")
    return problems


def _read(position: int, router: RouterUpload) -> RouterFiles:
    files = {}
    for file in router.files:
        name = canonical_name(file.name)
        assert name is not None  # noqa: S101 -- _name_problems refused every other name
        # Never more than the limit, whatever size the upload claimed.
        data = file.read(MAX_BYTES + 1)
        files[name] = RouterFile(position, router.name, name, base_name(file.name), data)
    return RouterFiles(position=position, name=router.name, files=files, ignored=list(router.ignored))
