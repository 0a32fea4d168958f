"""Large attachments kept out of the email parser.

The standard library's parser holds a message several times over while it
works: the bytes decoded to a string, a list of every line, then the joined
payload, and decoding an attachment copies it twice more. For a message of
40 MB that is most of a gigabyte of a worker's memory. Before parsing, the
bodies of large base64 leaf parts of a multipart message are therefore cut
out of the copy handed to the parser and replaced by a short placeholder; the
parser still reads every header and every other part. An attachment held so
is decoded later straight from the original bytes, without copying them.

Only the MIME structure is read here (boundaries and each part's
Content-Type and Content-Transfer-Encoding, parsed by the email package from
the part's own small header block). Anything unexpected — a boundary that
never appears, a part without headers — leaves the message whole, for the
parser to handle as it always does.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from email import policy
from email.message import Message
from email.parser import BytesHeaderParser

# Leaf bodies from this size on are held out of the parser.
LARGE_BODY_BYTES = 256 * 1024
# Deeper nesting than this is left to the parser as it is (no mailer nests so deep).
MAX_DEPTH = 20
PLACEHOLDER = "serversync-held-part-{index}"
_PLACEHOLDER = re.compile(rb"serversync-held-part-(\d+)")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_HEADERS = BytesHeaderParser(policy=policy.compat32)


@dataclass(frozen=True)
class HeldBody:
    """A base64 body left in the original bytes: where it is."""

    start: int
    end: int

    def decoded_size(self, raw: bytes) -> int:
        line_ends = raw.count(b"\n", self.start, self.end) + raw.count(b"\r", self.start, self.end)
        spaces = raw.count(b" ", self.start, self.end) + raw.count(b"\t", self.start, self.end)
        letters = self.end - self.start - line_ends - spaces
        tail = bytes(memoryview(raw)[max(self.start, self.end - 8) : self.end]).rstrip()
        padding = len(tail) - len(tail.rstrip(b"="))
        return max(0, letters * 3 // 4 - padding)

    def decode(self, raw: bytes) -> bytes:
        # Non-strict base64 skips line ends and other non-alphabet bytes, as MIME readers must.
        return binascii.a2b_base64(memoryview(raw)[self.start : self.end])


def without_large_bodies(raw: bytes, *, threshold: int = LARGE_BODY_BYTES) -> tuple[bytes, list[HeldBody]]:
    """``raw`` with its large base64 leaf bodies replaced by placeholders, and the
    bodies held; ``raw`` itself (and nothing held) when there is none or the
    structure is not what MIME says."""
    if len(raw) < threshold:
        return raw, []
    held: list[HeldBody] = []
    try:
        _scan(raw, 0, len(raw), held, threshold, depth=0)
    except _Malformed:
        return raw, []
    if not held:
        return raw, []
    pieces: list[memoryview | bytes] = []
    position = 0
    for index, body in enumerate(held):
        pieces += [memoryview(raw)[position : body.start], PLACEHOLDER.format(index=index).encode() + b"\r\n"]
        position = body.end
    pieces.append(memoryview(raw)[position:])
    return b"".join(pieces), held


def held_index(payload: object) -> int | None:
    """The index of the held body a parsed part's payload stands for, if any."""
    if not isinstance(payload, str) or len(payload) > 64:
        return None
    match = _PLACEHOLDER.fullmatch(payload.strip().encode("ascii", "replace"))
    return int(match.group(1)) if match else None


class _Malformed(Exception):
    pass


def _scan(raw: bytes, start: int, end: int, held: list[HeldBody], threshold: int, *, depth: int) -> None:
    """Find the large base64 leaf bodies of the entity at ``raw[start:end]``."""
    header_end, body_start = _header_block(raw, start, end)
    headers = _HEADERS.parsebytes(raw[start:header_end])
    if headers.get_content_maintype() == "multipart" and depth < MAX_DEPTH:
        boundary = headers.get_boundary()
        if not boundary:
            raise _Malformed
        for part_start, part_end in _parts(raw, body_start, end, boundary.encode("ascii", "replace")):
            _scan(raw, part_start, part_end, held, threshold, depth=depth + 1)
        return
    large = end - body_start >= threshold
    if depth and large and _is_base64_attachment(headers):
        held.append(HeldBody(body_start, end))


def _header_block(raw: bytes, start: int, end: int) -> tuple[int, int]:
    """Where the entity's header block ends and its body starts."""
    for line_end in (b"\r\n", b"\n"):
        if raw.startswith(line_end, start):
            return start, start + len(line_end)  # no headers at all: the body follows the empty line
    blank = _BLANK_LINE.search(raw, start, end)
    if blank is None:
        raise _Malformed
    return blank.start(), blank.end()


def _is_base64_attachment(headers: Message) -> bool:
    # Text parts stay with the parser: their text is the activity's body.
    encoding = str(headers.get("content-transfer-encoding", "")).strip().lower()
    return encoding == "base64" and headers.get_content_maintype() not in ("text", "message", "multipart")


def _parts(raw: bytes, start: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
    """The byte ranges of a multipart body's parts, between its delimiter lines
    (RFC 2046 5.1.1: "--" boundary at the start of a line, the last one followed
    by "--", either maybe followed by blanks). Found with ``bytes.find``, which
    skips through a large base64 body far faster than a regular expression."""
    marker = b"--" + boundary
    ranges: list[tuple[int, int]] = []
    part_start: int | None = None
    position = start
    while (found := raw.find(marker, position, end)) != -1:
        position = found + len(marker)
        if found != start and raw[found - 1 : found] != b"\n":
            continue  # not at the start of a line: part of the text
        closing = raw.startswith(b"--", position)
        line_end = raw.find(b"\n", position, end)
        rest = raw[position + (2 if closing else 0) : end if line_end == -1 else line_end]
        if rest.strip(b" \t\r"):
            continue  # a longer boundary that begins with this one
        if part_start is not None:
            ranges.append((part_start, _before_line_end(raw, found)))
        if closing:
            return ranges
        part_start = end if line_end == -1 else line_end + 1
    raise _Malformed  # no closing delimiter: leave it to the parser's own recovery


def _before_line_end(raw: bytes, delimiter: int) -> int:
    """The line end before a delimiter belongs to the delimiter."""
    if raw[delimiter - 2 : delimiter] == b"\r\n":
        return delimiter - 2
    return delimiter - 1
