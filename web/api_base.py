"""Plumbing every app's API shares: role-scoped querysets and permissions.

A non-administrator sees through ``QuerySet.visible_to(crm_user)``, defined by
each model next to its fields; an outsider (a login with no active CRM user)
sees nothing. Objects outside a user's scope answer 404, not 403, so their
existence does not leak.
"""

from __future__ import annotations

from typing import Any, cast

from django.db import models
from rest_framework import permissions, serializers, viewsets
from rest_framework.request import Request
from rest_framework.views import APIView

from crm.models import CrmUser
from web.roles import crm_user_for, is_administrator


def visible(queryset: models.QuerySet[Any], user: Any) -> models.QuerySet[Any]:
    if is_administrator(user):
        return queryset
    crm_user = crm_user_for(user)
    if crm_user is None:
        return queryset.none()
    return queryset.visible_to(crm_user)  # type: ignore[attr-defined]


class IsAdministrator(permissions.BasePermission):
    message = "Only administrators may do this."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return is_administrator(request.user)


class IsCrmMember(permissions.BasePermission):
    """An administrator, or a login with an active CRM user."""

    message = "Your login is not linked to an active CRM user."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return is_administrator(request.user) or crm_user_for(request.user) is not None


class RoleScopedMixin(viewsets.GenericViewSet):
    """A generic viewset whose rows are scoped by role.

    ``admin_actions`` are open to administrators only; every other action to
    CRM members, within what ``visible()`` lets them see.
    """

    admin_actions: frozenset[str] = frozenset({"create", "update", "partial_update", "destroy"})

    def get_queryset(self) -> models.QuerySet[Any]:
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


class ScopedModelViewSet(RoleScopedMixin, viewsets.ModelViewSet):
    pass


def save_cleaned(instance: models.Model) -> models.Model:
    """Save through the model's own validation, so the API refuses exactly what forms refuse."""
    instance.full_clean()
    instance.save()
    return instance


class ScopedRelatedField(serializers.PrimaryKeyRelatedField):
    """A foreign key that accepts only records the requesting user can see."""

    def get_queryset(self) -> models.QuerySet[Any]:
        request = self.context.get("request")
        return visible(cast(models.QuerySet[Any], super().get_queryset()), getattr(request, "user", None))


class CleanModelSerializer(serializers.ModelSerializer):
    """Creates and updates through ``full_clean()``; model rules answer 400 per field."""

    def create(self, validated_data: dict[str, Any]) -> Any:
        model: Any = self.Meta.model
        return save_cleaned(model(**validated_data))

    def update(self, instance: Any, validated_data: dict[str, Any]) -> Any:
        for field, value in validated_data.items():
            setattr(instance, field, value)
        return save_cleaned(instance)
