"""The API's JSON parser: DRF's, refusing documents nested deeper than any body the API takes.

Kept apart from ``web.api_base`` because DRF's settings name it (``DEFAULT_PARSER_CLASSES``)
and read it while ``rest_framework.views`` is still being imported: this module imports
nothing that imports that."""

from __future__ import annotations

from typing import IO, Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# Far deeper than any body this API takes (a sync filter's criteria are the deepest, at 4);
# Python's own parser and every recursive step after it (validation, copies) stop near 1,000.
MAX_JSON_DEPTH = 32


def json_depth(value: Any) -> int:
    """How deeply lists and objects nest in a parsed document (a scalar is 0), without recursion."""
    deepest = 0
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in children)
    return deepest


class BoundedJSONParser(JSONParser):
    """JSON, refused with 400 when nested deeper than ``MAX_JSON_DEPTH``."""

    def parse(self, stream: IO[Any], media_type: str | None = None, parser_context: Any = None) -> Any:
        too_deep = ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels.")
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:  # deeper than Python's parser itself goes
            raise too_deep from None
        if json_depth(data) > MAX_JSON_DEPTH:
            raise too_deep
        return data
