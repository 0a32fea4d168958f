"""manage.py reprocess_failed [--mailbox ADDRESS]: run quarantined messages again."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from sync.errors import MessageError
from sync.incoming import reprocess_quarantined
from sync.models import QuarantinedMessage, QuarantineState


class Command(BaseCommand):
    help = "Reprocess quarantined messages (all, or one mailbox's)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--mailbox", help="Only this mailbox's quarantined messages (its address).")

    def handle(self, *args: Any, **options: Any) -> None:
        held = QuarantinedMessage.objects.filter(state=QuarantineState.QUARANTINED).order_by("pk")
        if options["mailbox"]:
            held = held.filter(mailbox__email_address__iexact=options["mailbox"])
        done = failed = 0
        for quarantined_id in held.values_list("pk", flat=True):
            try:
                receipt = reprocess_quarantined(quarantined_id=quarantined_id)
            except MessageError as error:
                failed += 1
                self.stdout.write(f"#{quarantined_id}: still failing — {error.message}")
            else:
                done += 1
                self.stdout.write(f"#{quarantined_id}: {receipt.get_outcome_display()}")
        self.stdout.write(f"Reprocessed {done}, still quarantined {failed}.")
