"""Microsoft Graph v1.0 metadata (CSDL) and a validator of JSON bodies against it.

The Graph test server checks every body it sends and receives here, so that it
cannot drift into a Graph that does not exist: property names on the type or its
base types (open types may carry others), primitive types, collections, nested
complex types, enum members, derived types named by ``@odata.type``, and the
parameters of bound actions (``sendMail``, ``move``).

``validate`` returns the violations as readable strings ("" path = the body
itself); an empty list means the body is valid.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import cache
from pathlib import Path
from xml.etree.ElementTree import Element

from defusedxml import ElementTree

METADATA = Path(__file__).parent / "data" / "v1.0-cleanMetadata.xml.gz"
EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
GRAPH = "microsoft.graph"


@dataclass(frozen=True)
class Property:
    type: str  # a full name: "Edm.String", "microsoft.graph.recipient"
    collection: bool
    nullable: bool


@dataclass
class StructuredType:
    """An entity or complex type as declared (its own properties; ``base`` has the rest)."""

    name: str
    base: str | None
    open: bool
    properties: dict[str, Property] = field(default_factory=dict)


@dataclass(frozen=True)
class Enum:
    members: frozenset[str]
    flags: bool


@dataclass
class Schema:
    types: dict[str, StructuredType] = field(default_factory=dict)
    enums: dict[str, Enum] = field(default_factory=dict)
    # Bound actions: (name, binding type) -> parameters after the binding one.
    actions: dict[tuple[str, str], dict[str, Property]] = field(default_factory=dict)

    def chain(self, name: str) -> list[StructuredType]:
        """The type and its base types, most derived first."""
        found = []
        current: str | None = name
        while current is not None:
            declared = self.types[current]
            found.append(declared)
            current = declared.base
        return found

    def property(self, type_name: str, name: str) -> Property | None:
        for declared in self.chain(type_name):
            if name in declared.properties:
                return declared.properties[name]
        return None

    def is_open(self, type_name: str) -> bool:
        return any(declared.open for declared in self.chain(type_name))

    def derives(self, derived: str, base: str) -> bool:
        return derived in self.types and any(t.name == base for t in self.chain(derived))


@cache
def schema() -> Schema:
    """The parsed metadata, once per process (a fraction of a second: 3.5 MB of XML)."""
    with gzip.open(METADATA) as stream:
        root = ElementTree.parse(stream).getroot()
    assert root is not None
    schemas = list(root.iter(f"{EDM}Schema"))
    aliases = {s.get("Alias", s.get("Namespace", "")): s.get("Namespace", "") for s in schemas}
    parsed = Schema()
    for element in schemas:
        _read_schema(parsed, element, aliases)
    return parsed


def _read_schema(parsed: Schema, element: Element, aliases: dict[str, str]) -> None:
    namespace = element.get("Namespace", "")
    for child in element:
        tag = child.tag.removeprefix(EDM)
        name = f"{namespace}.{child.get('Name')}"
        if tag == "EnumType":
            members = frozenset(m.get("Name", "") for m in child.iter(f"{EDM}Member"))
            parsed.enums[name] = Enum(members, child.get("IsFlags") == "true")
        elif tag in ("EntityType", "ComplexType"):
            base = child.get("BaseType")
            declared = StructuredType(
                name, _full(base, aliases) if base else None, child.get("OpenType") == "true"
            )
            for prop in child:
                if prop.tag in (f"{EDM}Property", f"{EDM}NavigationProperty"):
                    declared.properties[prop.get("Name", "")] = _property(prop, aliases)
            parsed.types[name] = declared
        elif tag == "Action" and child.get("IsBound") == "true":
            binding, *parameters = child.iter(f"{EDM}Parameter")
            key = (name, _property(binding, aliases).type)
            parsed.actions[key] = {p.get("Name", ""): _property(p, aliases) for p in parameters}


def _property(element: Element, aliases: dict[str, str]) -> Property:
    declared = element.get("Type", "")
    collection = declared.startswith("Collection(")
    inner = declared[len("Collection(") : -1] if collection else declared
    return Property(_full(inner, aliases), collection, element.get("Nullable", "true") != "false")


def _full(name: str, aliases: dict[str, str]) -> str:
    prefix, _, short = name.rpartition(".")
    return f"{aliases.get(prefix, prefix)}.{short}"


def full_name(type_name: str) -> str:
    """ "message", "graph.message", "#microsoft.graph.message" -> "microsoft.graph.message"."""
    name = type_name.removeprefix("#")
    if name.startswith("Edm."):
        return name
    if "." not in name:
        return f"{GRAPH}.{name}"
    return _full(name, {"graph": GRAPH})


def validate(type_name: str, body: object, *, request: bool = False) -> list[str]:
    """Violations of ``body`` (a JSON value) as an instance of the entity or complex type.

    ``request``: a body sent to Graph, whose enum members Graph reads without regard to
    case (Microsoft's own examples send ``"contentType": "Text"``); Graph's answers
    always spell them as declared.
    """
    return _Checker(schema(), request=request).structured(full_name(type_name), body, "")


def validate_collection(type_name: str, body: object) -> list[str]:
    """A collection response: ``{"value": [...], "@odata.nextLink" | "@odata.deltaLink": ...}``."""
    if not isinstance(body, dict) or not isinstance(body.get("value"), list):
        return ["collection response: expected an object with a 'value' array"]
    violations = [
        f"collection response: unknown member {key!r}"
        for key in body
        if not _annotation(key) and key != "value"
    ]
    if "@odata.nextLink" in body and "@odata.deltaLink" in body:
        violations.append(
            "collection response: a page cannot carry both @odata.nextLink and @odata.deltaLink"
        )
    checker = _Checker(schema())
    for index, item in enumerate(body["value"]):
        violations += checker.structured(full_name(type_name), item, f"value[{index}]")
    return violations


def validate_action(action: str, binding_type: str, body: object) -> list[str]:
    """The JSON body of a bound action (``sendMail`` on a user, ``move`` on a message).

    Parameter names are matched without regard to case: Microsoft's own reference pages
    write them in camelCase ("message", "saveToSentItems") where the metadata says
    "Message", "SaveToSentItems", and Graph accepts both.
    """
    parameters = schema().actions.get((full_name(action), full_name(binding_type)))
    if parameters is None:
        return [f"no action {action} bound to {binding_type} in Graph v1.0"]
    if not isinstance(body, dict):
        return [f"{action}: expected a JSON object of parameters"]
    by_name = {name.lower(): (name, declared) for name, declared in parameters.items()}
    checker = _Checker(schema(), request=True)
    violations = []
    for key, value in body.items():
        if key.lower() not in by_name:
            violations.append(f"{action}: unknown parameter {key!r}")
            continue
        name, declared = by_name[key.lower()]
        violations += checker.value(declared, value, name)
    for name, declared in parameters.items():
        if not declared.nullable and name.lower() not in {k.lower() for k in body}:
            violations.append(f"{action}: missing parameter {name!r}")
    return violations


def validate_error(body: object) -> list[str]:
    """Graph's error body (the OData JSON error format, which the CSDL does not describe)."""
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(body["error"], dict):
        return ["error response: expected {'error': {...}}"]
    error = body["error"]
    violations = [
        f"error.{key}: expected a string"
        for key in ("code", "message")
        if not isinstance(error.get(key), str)
    ]
    if not isinstance(error.get("innerError", {}), dict):
        violations.append("error.innerError: expected an object")
    return violations


def _annotation(key: str) -> bool:
    """Instance annotations ("@odata.etag", "@removed") and property annotations ("value@odata.nextLink")."""
    return "@" in key


class _Checker:
    def __init__(self, parsed: Schema, *, request: bool = False) -> None:
        self.schema = parsed
        self.request = request

    def structured(self, type_name: str, body: object, path: str) -> list[str]:
        where = path or type_name.rpartition(".")[2]
        if not isinstance(body, dict):
            return [f"{where}: expected an object ({type_name}), got {type(body).__name__}"]
        actual = type_name
        named = body.get("@odata.type")
        if named is not None:
            actual = full_name(str(named))
            if not self.schema.derives(actual, type_name):
                return [f"{where}: @odata.type {named!r} is not {type_name} or derived from it"]
        violations = []
        for key, value in body.items():
            if _annotation(key):
                continue
            declared = self.schema.property(actual, key)
            if declared is None:
                if not self.schema.is_open(actual):
                    violations.append(f"{where}: {actual} has no property {key!r}")
                continue
            violations += self.value(declared, value, f"{path}.{key}" if path else key)
        return violations

    def value(self, declared: Property, value: object, path: str) -> list[str]:
        if value is None:
            return [] if declared.nullable else [f"{path}: null where {declared.type} is not nullable"]
        if not declared.collection:
            return self.single(declared.type, value, path)
        if not isinstance(value, list):
            return [f"{path}: expected a collection of {declared.type}, got {type(value).__name__}"]
        violations = []
        for index, item in enumerate(value):
            violations += self.single(declared.type, item, f"{path}[{index}]")
        return violations

    def single(self, type_name: str, value: object, path: str) -> list[str]:
        if type_name.startswith("Edm."):
            return (
                [] if _primitive_ok(type_name, value) else [f"{path}: {value!r} is not a valid {type_name}"]
            )
        enum = self.schema.enums.get(type_name)
        if enum is not None:
            return _enum_violations(enum, type_name, value, path, ignore_case=self.request)
        if type_name in self.schema.types:
            return self.structured(type_name, value, path)
        return [f"{path}: unknown type {type_name}"]


def _enum_violations(enum: Enum, type_name: str, value: object, path: str, *, ignore_case: bool) -> list[str]:
    if not isinstance(value, str):
        return [f"{path}: expected a member of {type_name}, got {value!r}"]
    members = [m.strip() for m in value.split(",")] if enum.flags else [value]
    known = {m.lower() for m in enum.members} if ignore_case else enum.members
    return [
        f"{path}: {m!r} is not a member of {type_name}"
        for m in members
        if (m.lower() if ignore_case else m) not in known
    ]


_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})")
_DURATION = re.compile(r"-?P(\d+D)?(T(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?")
_INTEGERS = {
    "Edm.Byte": (0, 255),
    "Edm.SByte": (-128, 127),
    "Edm.Int16": (-(2**15), 2**15 - 1),
    "Edm.Int32": (-(2**31), 2**31 - 1),
    "Edm.Int64": (-(2**63), 2**63 - 1),
}


def _primitive_ok(type_name: str, value: object) -> bool:
    if type_name in _INTEGERS:
        low, high = _INTEGERS[type_name]
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    if type_name in ("Edm.Double", "Edm.Single", "Edm.Decimal"):
        return (isinstance(value, int | float) and not isinstance(value, bool)) or value in (
            "NaN",
            "INF",
            "-INF",
        )
    if type_name == "Edm.Boolean":
        return isinstance(value, bool)
    if type_name == "Edm.Untyped":
        return True
    if type_name.startswith("Edm.Geo"):
        return isinstance(value, dict)
    if not isinstance(value, str):
        return False
    return _STRING_FORMATS.get(type_name, _any_string)(value)


def _any_string(value: str) -> bool:
    return True


def _datetime_ok(value: str) -> bool:
    if not _DATETIME.fullmatch(value):
        return False
    # Python reads at most 6 fractional digits; Graph sends 7 ("...:00.1234567Z").
    trimmed = re.sub(r"(\.\d{6})\d", r"\1", value).replace("Z", "+00:00")
    try:
        datetime.fromisoformat(trimmed)
    except ValueError:
        return False
    return True


def _date_ok(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


def _time_ok(value: str) -> bool:
    try:
        time.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", value))
    except ValueError:
        return False
    return True


def _guid_ok(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


def _binary_ok(value: str) -> bool:
    # OData JSON says base64url; Graph's own answers use the standard alphabet. Both decode here.
    try:
        base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


_STRING_FORMATS = {
    "Edm.DateTimeOffset": _datetime_ok,
    "Edm.Date": _date_ok,
    "Edm.TimeOfDay": _time_ok,
    "Edm.Duration": lambda value: bool(_DURATION.fullmatch(value)) and value not in ("P", "-P"),
    "Edm.Guid": _guid_ok,
    "Edm.Binary": _binary_ok,
}


def selectable(type_name: str, name: str) -> bool:
    """Whether ``$select`` / ``$expand`` may name this property of the type."""
    return schema().property(full_name(type_name), name) is not None


def declared_properties(type_name: str) -> dict[str, Property]:
    """Every property of the type, its base types' included."""
    found: dict[str, Property] = {}
    for declared in reversed(schema().chain(full_name(type_name))):
        found.update(declared.properties)
    return found
