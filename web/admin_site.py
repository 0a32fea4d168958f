"""The admin site follows the project's roles, not Django's staff flag.

An administrator (a member of the "Administrators" group, or a superuser; see
``web.roles``) may sign in to the admin and view, add, change and delete every
model registered there; nobody else gets in. Django's defaults would instead
ask for ``is_staff`` and one model permission per action, which would give the
admin a second, diverging notion of who manages serversync. ModelAdmins may
still narrow what an administrator can do (no deleting the organization
settings) by overriding a ``has_*_permission`` method and calling ``super()``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.db.models import Model
from django.http import HttpRequest

from web.roles import is_administrator

_M = TypeVar("_M", bound=Model)


class AdministratorAuthenticationForm(AdminAuthenticationForm):
    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "invalid_login": "Please enter the correct %(username)s and password for an administrator "
        "account. Note that both fields may be case-sensitive.",
    }

    def confirm_login_allowed(self, user: Any) -> None:
        # Skip AdminAuthenticationForm's is_staff test; keep the is_active one.
        AuthenticationForm.confirm_login_allowed(self, user)
        if not is_administrator(user):
            raise ValidationError(
                self.error_messages["invalid_login"],
                code="invalid_login",
                params={"username": self.username_field.verbose_name},
            )


class AdministratorPermissions:
    """ModelAdmin permissions granted by the administrator role."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_administrator(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return is_administrator(request.user)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        # *args: inlines pass the parent object as well.
        return is_administrator(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return is_administrator(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return is_administrator(request.user)


class AdministratorModelAdmin(AdministratorPermissions, admin.ModelAdmin[_M]):
    """Base class for serversync's ModelAdmins."""


class ServersyncAdminSite(admin.AdminSite):
    site_header = "serversync administration"
    site_title = "serversync"
    index_title = "Server-side synchronization"
    login_form = AdministratorAuthenticationForm

    def has_permission(self, request: HttpRequest) -> bool:
        return is_administrator(request.user)

    def register(self, model_or_iterable: Any, admin_class: Any = None, **options: Any) -> None:
        # Third-party ModelAdmins (auth's users and groups, DRF's tokens) get the
        # same role rule, so an administrator who is not a superuser manages them too.
        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, AdministratorPermissions):
            admin_class = type(admin_class.__name__, (AdministratorPermissions, admin_class), {})
        super().register(model_or_iterable, admin_class, **options)
