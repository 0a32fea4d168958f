"""Plumbing every app's API shares: role-scoped viewsets and permissions, the schema's
error answers, and the conventions every view carries (``ApiConventions``: the parser of
``web.api_parsers``, the filters of ``web.api_filters``, ``ApiSchema``).

A non-administrator sees through ``web.roles.visible()`` (``QuerySet.visible_to(crm_user)``,
defined by each model next to its fields; a model without one is administrators' only); an
outsider (a login with no active CRM user) sees nothing. Objects outside a user's scope
answer 404, not 403, and a filter naming one answers "not a valid choice" as for an id that
does not exist, so their existence does not leak.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, TypeVar, cast

from django.db import models
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import permissions, serializers, viewsets
from rest_framework.filters import OrderingFilter, SearchFilter
from rest_framework.parsers import BaseParser, FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.schemas.inspectors import ViewInspector
from rest_framework.views import APIView

from crm.models import CrmUser
from web.api_filters import ApiFilterBackend
from web.api_parsers import BoundedJSONParser
from web.roles import crm_user_for, is_administrator, visible

_M = TypeVar("_M", bound=models.Model)


class ApiErrorSerializer(serializers.Serializer[None]):
    """An error: ``detail``, or a list of messages per field (``{"direction": ["..."]}``)."""

    detail = serializers.CharField(required=False)


BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class ApiSchema(AutoSchema):
    """drf-spectacular's schema, plus the error answers every operation shares, so a client
    (and the schema fuzz) knows each status code it may get."""

    def _get_response_bodies(self, direction: Literal["request", "response"] = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        for code, description in self._error_answers().items():
            if code not in responses:
                answer = OpenApiResponse(ApiErrorSerializer, description=description)
                responses[code] = self._get_response_for_code(  # type: ignore[no-untyped-call]
                    answer, code, direction=direction
                )
        return responses

    def _error_answers(self) -> dict[str, str]:
        answers = {
            "401": "Not signed in: no token or session, or a wrong one.",
            "403": "Signed in, but not allowed to do this (an administrator's action, or a login "
            "with no active CRM user).",
            "429": "Too many requests from this client: ``Retry-After`` says when to try again.",
        }
        has_query = any(parameter["in"] == "query" for parameter in self._get_parameters())
        if self.method in BODY_METHODS or has_query:
            answers["400"] = "The request is not valid: ``detail``, or messages per field."
        paginated = self._is_list_view() and getattr(self.view, "pagination_class", None) is not None
        if "{" in self.path or paginated:
            answers["404"] = "No such record among those the requester may see, or no such page."
        writes_rows = getattr(self.view, "queryset", None) is not None  # conflicts come from the database
        if writes_rows and (self.method in BODY_METHODS or self.method == "DELETE"):
            answers["409"] = "Conflicts with an existing record, or the record is still in use."
        if self.method in BODY_METHODS:
            answers["413"] = "The body is larger than this route takes."
            answers["415"] = "The body is not in a media type this operation takes."
        return answers


class ApiConventions:
    """Mixed into every API view (first, so it wins over APIView's defaults): the bounded
    JSON parser, the filters of ``ApiFilterSet`` and the schema with the shared error
    answers. A view with uploads lists its parsers with ``BoundedJSONParser``, never
    DRF's own JSONParser."""

    parser_classes: Sequence[type[BaseParser]] = [BoundedJSONParser, FormParser, MultiPartParser]
    # type[Any]: the stubs type it by the view's model, which a mixin does not know.
    filter_backends: Sequence[type[Any]] = [ApiFilterBackend, SearchFilter, OrderingFilter]
    schema: ViewInspector | None = ApiSchema()


class IsAdministrator(permissions.BasePermission):
    message = "Only administrators may do this."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return is_administrator(request.user)


class IsCrmMember(permissions.BasePermission):
    """An administrator, or a login with an active CRM user."""

    message = "Your login is not linked to an active CRM user."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return is_administrator(request.user) or crm_user_for(request.user) is not None


class RoleScopedMixin(ApiConventions, viewsets.GenericViewSet[_M]):
    """A generic viewset whose rows are scoped by role.

    ``admin_actions`` are open to administrators only; every other action to
    CRM members, within what ``visible()`` lets them see.
    """

    admin_actions: frozenset[str] = frozenset({"create", "update", "partial_update", "destroy"})

    def get_queryset(self) -> models.QuerySet[_M]:
        return visible(super().get_queryset(), self.request.user)

    def get_permissions(self) -> list[permissions.BasePermission]:
        if self.action in self.admin_actions:
            return [permissions.IsAuthenticated(), IsAdministrator()]
        return [permissions.IsAuthenticated(), IsCrmMember()]

    @property
    def is_admin(self) -> bool:
        return is_administrator(self.request.user)

    @property
    def crm_user(self) -> CrmUser | None:
        return crm_user_for(self.request.user)


class ScopedModelViewSet(RoleScopedMixin[_M], viewsets.ModelViewSet[_M]):
    pass


def save_cleaned(instance: _M) -> _M:
    """Save through the model's own validation, so the API refuses exactly what forms refuse."""
    instance.full_clean()
    instance.save()
    return instance


class ScopedRelatedField(serializers.PrimaryKeyRelatedField[_M]):
    """A foreign key that accepts only records the requesting user can see."""

    def get_queryset(self) -> models.QuerySet[_M]:
        request = self.context.get("request")
        return visible(cast(models.QuerySet[_M], super().get_queryset()), getattr(request, "user", None))


class CleanModelSerializer(serializers.ModelSerializer[_M]):
    """Creates and updates through ``full_clean()``; model rules answer 400 per field."""

    def create(self, validated_data: dict[str, Any]) -> _M:
        model: type[_M] = self.Meta.model
        return save_cleaned(model(**validated_data))

    def update(self, instance: _M, validated_data: dict[str, Any]) -> _M:
        for field, value in validated_data.items():
            setattr(instance, field, value)
        return save_cleaned(instance)
