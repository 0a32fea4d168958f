"""Who may see and change what. One place for the role rules used by the API and the pages.

- an administrator (member of the "Administrators" group, or a superuser)
  manages everything;
- a user sees their own mailbox and the records they own;
- a queue owner also sees the queues they own and their mailboxes;
- approving email addresses needs the permission ``mailboxes.approve_email``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.conf import settings
from django.db import models

from crm.models import CrmUser

_M = TypeVar("_M", bound=models.Model)


def is_administrator(user: Any) -> bool:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if user.is_superuser:
        return True
    cached = getattr(user, "_serversync_is_admin", None)
    if cached is None:
        cached = user.groups.filter(name=settings.ADMINISTRATORS_GROUP).exists()
        user._serversync_is_admin = cached
    return bool(cached)


def crm_user_for(user: Any) -> CrmUser | None:
    """The active CRM user behind a login, if any."""
    if not getattr(user, "is_authenticated", False):
        return None
    try:
        crm_user = user.crm_user
    except CrmUser.DoesNotExist:
        return None
    return crm_user if crm_user.is_active else None


def can_approve_email(user: Any) -> bool:
    return bool(getattr(user, "is_authenticated", False) and user.has_perm("mailboxes.approve_email"))


def visible(queryset: models.QuerySet[_M], user: Any) -> models.QuerySet[_M]:
    """The rows of ``queryset`` the login may see: all for an administrator, those of the
    model's ``QuerySet.visible_to(crm_user)`` for a CRM user, none for anyone else."""
    if is_administrator(user):
        return queryset
    crm_user = crm_user_for(user)
    if crm_user is None or not hasattr(queryset, "visible_to"):
        return queryset.none()
    # visible_to() is defined by each model's own QuerySet class (hasattr above).
    scoped: models.QuerySet[_M] = queryset.visible_to(crm_user)
    return scoped
