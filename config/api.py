"""REST framework plumbing shared by every app's API: pagination and error shape (the
JSON parser and the documented errors every view carries are web.api_base's).

Every error answers 4xx with a message, per field where there is a field;
model-layer validation, database conflicts and pathological JSON never escape as a 500,
and the schema documents each 4xx an operation can answer.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import ProtectedError, RestrictedError
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
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
