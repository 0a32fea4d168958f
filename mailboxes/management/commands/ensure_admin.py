"""Create the first administrator, once: `make run` calls this on every start."""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from crm.models import CrmUser


class Command(BaseCommand):
    help = (
        "Create an administrator (a superuser in the Administrators group, with a CRM user) unless "
        "that username exists. Defaults come from SERVERSYNC_ADMIN_USERNAME, SERVERSYNC_ADMIN_EMAIL "
        "and SERVERSYNC_ADMIN_PASSWORD; without a password one is generated and printed once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default=os.environ.get("SERVERSYNC_ADMIN_USERNAME") or "admin")
        parser.add_argument("--email", default=os.environ.get("SERVERSYNC_ADMIN_EMAIL") or "admin@localhost")

    def handle(self, *args: Any, username: str, email: str, **options: Any) -> None:
        User = get_user_model()
        if User._default_manager.filter(username=username).exists():
            self.stdout.write(f"Administrator {username!r} exists; left unchanged.")
            return
        # Read from the environment only, so a password never shows in `ps` or shell history.
        password = os.environ.get("SERVERSYNC_ADMIN_PASSWORD", "")
        generated = not password
        if generated:
            password = secrets.token_urlsafe(15)
        administrator_create(username=username, email=email, password=password)
        self.stdout.write(self.style.SUCCESS(f"Created administrator {username!r}."))
        if generated:
            self._announce(username, password)

    def _announce(self, username: str, password: str) -> None:
        rule = "=" * 64
        self.stdout.write(
            self.style.WARNING(
                f"\n{rule}\n  Generated password for administrator {username!r} (shown only this once):\n"
                f"\n      {password}\n\n  Sign in at /admin/ and change it there.\n{rule}\n"
            )
        )


@transaction.atomic
def administrator_create(*, username: str, email: str, password: str) -> AbstractUser:
    """A superuser in the Administrators group with a linked CRM user, all or nothing."""
    user = get_user_model()._default_manager.create_superuser(
        username=username, email=email, password=password
    )
    group, _ = Group.objects.get_or_create(name=settings.ADMINISTRATORS_GROUP)
    user.groups.add(group)
    if not CrmUser.objects.filter(user=user).exists():
        CrmUser.objects.create(user=user, full_name=user.get_full_name() or username, email=email)
    return user
