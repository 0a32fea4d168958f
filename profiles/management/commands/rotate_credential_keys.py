"""Re-encrypt every stored credential under the newest key in CREDENTIAL_KEYS."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from profiles.rotation import UnreadableCredentialsError, rotate_credentials


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored credential (passwords, OAuth secrets) under the first key in "
        "CREDENTIAL_KEYS. Put the new key first, keep the old ones after it, run this, and remove "
        "an old key only when a run re-encrypts nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=_positive_int, default=500, help="Rows per transaction.")

    def handle(self, *args: Any, batch_size: int, **options: Any) -> None:
        try:
            counts = rotate_credentials(batch_size=batch_size)
        except UnreadableCredentialsError as error:
            self._summary(error.rotated)
            raise CommandError(str(error)) from None
        self._summary(counts)

    def _summary(self, counts: dict[str, int]) -> None:
        self.stdout.write("Re-encrypted under the newest key:")
        for label, count in counts.items():
            self.stdout.write(f"  {label}: {count}")
        self.stdout.write(self.style.SUCCESS(f"Total: {sum(counts.values())}"))
