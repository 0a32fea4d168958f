"""Plumbing every app's API shares: role-scoped querysets and permissions.

A non-administrator sees through ``QuerySet.visible_to(crm_user)``, defined by
each model next to its fields; an outsider (a login with no active CRM user)
sees nothing. Objects outside a user's scope answer 404, not 403, so their
existence does not leak.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

from django.db import models
from rest_framework import permissions, serializers, viewsets
from rest_framework.request import Request
from rest_framework.views import APIView

from crm.models import CrmUser
from web.roles import crm_user_for, is_administrator

_M = TypeVar("_M", bound=models.Model)


def visible(queryset: models.QuerySet[_M], user: Any) -> models.QuerySet[_M]:
    if is_administrator(user):
        return queryset
    crm_user = crm_user_for(user)
    if crm_user is None:
        return queryset.none()
    # visible_to() is defined by each model's own QuerySet class, which the
    # plain QuerySet[_M] the callers pass in does not name.
    scoped: models.QuerySet[_M] = queryset.visible_to(crm_user)  # type: ignore[attr-defined]
    return scoped


class IsAdministrator(permissions.BasePermission):
    message = "Only administrators may do this."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return is_administrator(request.user)


class IsCrmMember(permissions.BasePermission):
    """An administrator, or a login with an active CRM user."""

    message = "Your login is not linked to an active CRM user."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return is_administrator(request.user) or crm_user_for(request.user) is not None


class RoleScopedMixin(viewsets.GenericViewSet[_M]):
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
