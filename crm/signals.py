"""Set-up that must exist after every migrate: the Administrators group."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, Permission


def ensure_administrators_group(**kwargs: Any) -> None:
    group, _ = Group.objects.get_or_create(name=settings.ADMINISTRATORS_GROUP)
    # Administrators approve email addresses by default; others need the permission granted.
    approve = Permission.objects.filter(content_type__app_label="mailboxes", codename="approve_email").first()
    if approve:
        group.permissions.add(approve)
