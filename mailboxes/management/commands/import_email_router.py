"""manage.py import_email_router DIR [DIR ...] [--dry-run]: migrate Email Routers' settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mailboxes.models import RouterMigrationSource
from mailboxes.router_import.errors import RouterImportError
from mailboxes.router_import.files import DiskFile, RouterUpload, canonical_name
from mailboxes.router_import.service import router_migration_apply, router_migration_create, router_review
from mailboxes.router_import.text import result_lines, review_lines


class Command(BaseCommand):
    help = (
        "Migrate Email Routers: each DIR holds one router's EncryptionKey.xml, "
        "Microsoft.Crm.Tools.EmailAgent.SystemState.xml and Microsoft.Crm.Tools.EmailAgent.xml "
        "(other files there are ignored and listed). Prints the review, then applies it in one "
        "transaction unless --dry-run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "dirs", nargs="+", metavar="DIR", help="a folder of one router's files (up to four)"
        )
        parser.add_argument("--dry-run", action="store_true", help="print the review; change nothing")

    def handle(self, *args: Any, dirs: list[str], dry_run: bool, **options: Any) -> None:
        routers = [_router(Path(folder)) for folder in dirs]
        try:
            if dry_run:
                self._print(review_lines(router_review(routers=routers)))
                self.stdout.write("Dry run: nothing was changed.")
                return
            migration = router_migration_create(
                routers=routers, created_by=None, source=RouterMigrationSource.COMMAND
            )
            self._print(review_lines(migration.review))
            applied = router_migration_apply(migration=migration, by=None)
        except RouterImportError as error:
            raise CommandError("\n".join(error.problems)) from None
        self._print(result_lines(applied.result))
        self.stdout.write(f"Email Router migration {applied.pk} applied.")

    def _print(self, lines: list[str]) -> None:
        for line in lines:
            self.stdout.write(line)


def _router(folder: Path) -> RouterUpload:
    if not folder.is_dir():
        raise CommandError(f"{folder} is not a folder.")
    files = sorted(path for path in folder.iterdir() if path.is_file())
    picked = [path for path in files if canonical_name(path.name)]
    return RouterUpload(
        name=folder.resolve().name,
        files=[DiskFile(path) for path in picked],
        ignored=[path.name for path in files if path not in picked],
    )
