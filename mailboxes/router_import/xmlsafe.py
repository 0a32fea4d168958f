"""Parse an uploaded XML file safely: defusedxml refuses entity declarations
(billion laughs) and external entities; every refusal and every syntax error is
a RouterImportError naming the router, the file and, where known, the line.

Encodings: a UTF-8 or UTF-16 byte order mark decides the encoding even when the
XML declaration names another (Windows tools write such files); without one,
expat follows the declaration and recognises UTF-16 by its first bytes. CRLF
line endings are normal XML line ends.
"""

from __future__ import annotations

import codecs
import re
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import fromstring

from mailboxes.router_import.errors import RouterImportError
from mailboxes.router_import.files import RouterFile

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)
_DECLARED_ENCODING = re.compile(rb"^(<\?xml\b[^>]*?)\s+encoding\s*=\s*(['\"])[^'\"]*\2")
_POSITION = re.compile(r":\s*line \d+, column \d+$")


def parse(file: RouterFile) -> Element:
    """The document's root element."""
    where = f"{file.router_name}, {file.name}"
    data = _as_utf8(file.data, where)
    try:
        return fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except EntitiesForbidden as refused:
        raise RouterImportError(_entity_message(where, refused)) from None
    except ExternalReferenceForbidden as refused:
        raise RouterImportError(
            f"{where}: refers to the external resource {refused.sysid!r}; external entities are refused."
        ) from None
    except DefusedXmlException as refused:
        raise RouterImportError(f"{where}: refused for safety ({type(refused).__name__}).") from None
    except ParseError as error:
        line, column = error.position
        reason = _POSITION.sub("", str(error))
        raise RouterImportError(
            f"{where}, line {line}, column {column + 1}: the XML is not well-formed ({reason})."
        ) from None


def _entity_message(where: str, refused: EntitiesForbidden) -> str:
    if refused.sysid or refused.pubid:
        target = refused.sysid or refused.pubid
        return (
            f"{where}: declares the external entity {refused.name!r} ({target}); "
            "external entities are refused."
        )
    return (
        f"{where}: declares the XML entity {refused.name!r}; entity declarations are refused "
        "(no entity expansion, so no billion-laughs document gets through)."
    )


def _as_utf8(data: bytes, where: str) -> bytes:
    """Bytes expat reads as they are: with a byte order mark, re-encoded as UTF-8
    and the declaration's encoding dropped, so the mark is what counts."""
    for bom, codec, label in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(codec)
            except UnicodeDecodeError as error:
                raise RouterImportError(
                    f"{where}: starts with a {label} byte order mark but is not valid {label} "
                    f"(at byte {error.start})."
                ) from None
            return _DECLARED_ENCODING.sub(rb"\1", text.encode("utf-8"), count=1)
    return data
