"""REST framework plumbing shared by every app's API: pagination, error shape and the
JSON parser (web.api_base.ApiConventions puts it on every view; this module is loaded
by REST framework's own settings, so it must not import views or drf-spectacular).

Every error answers 4xx with a message, per field where there is a field;
model-layer validation, database conflicts and pathological JSON never escape as a 500,
and the schema documents each 4xx an operation can answer.
"""

from __future__ import annotations

from typing import IO, Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import ProtectedError, RestrictedError
from rest_framework import serializers, status
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


def validation_error_detail(exc: DjangoValidationError) -> dict[str, Any]:
    """A Django ValidationError as DRF's ``{field: [messages]}``."""
    if hasattr(exc, "error_dict"):
        detail = {}
        for field, messages in exc.message_dict.items():
            key = api_settings.NON_FIELD_ERRORS_KEY if field == "__all__" else field
            detail[key] = messages
        return detail
    return {api_settings.NON_FIELD_ERRORS_KEY: exc.messages}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DjangoValidationError):
        exc = ValidationError(validation_error_detail(exc))
    response = drf_exception_handler(exc, context)
    if response is not None:
        if isinstance(response.data, list):
            # A message raised outside a serializer (a filter's, "Null characters are not
            # allowed.") comes as a bare list; every error answers an object.
            response.data = {"detail": " ".join(str(message) for message in response.data)}
        return response
    if isinstance(exc, ProtectedError | RestrictedError):
        blocking = exc.protected_objects if isinstance(exc, ProtectedError) else exc.restricted_objects
        names = sorted({str(obj._meta.verbose_name_plural) for obj in blocking})
        return Response(
            {"detail": f"Still in use by {', '.join(str(n) for n in names)}; remove or reassign them first."},
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, IntegrityError):
        return Response(
            {"detail": "This conflicts with an existing record."},
            status=status.HTTP_409_CONFLICT,
        )
    return None


# --- JSON bodies ------------------------------------------------------------------------------

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


# --- the schema's error answers ---------------------------------------------------------------


class ApiErrorSerializer(serializers.Serializer[None]):
    """An error: ``detail``, or a list of messages per field (``{"direction": ["..."]}``)."""

    detail = serializers.CharField(required=False)
