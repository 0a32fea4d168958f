"""manage.py sync_mailbox ADDRESS [--kind incoming|outgoing]: run one mailbox now."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mailboxes.models import Mailbox
from sync import incoming, outgoing, scheduler
from sync.models import SyncKind, SyncRun


def _work(kind: str) -> Callable[[Mailbox], SyncRun]:
    if kind == SyncKind.INCOMING:
        return lambda mailbox: incoming.sync_incoming(mailbox=mailbox)
    return lambda mailbox: outgoing.send_pending(mailbox=mailbox)


class Command(BaseCommand):
    help = "Synchronize one mailbox now, as a worker would (its lease keeps workers away meanwhile)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("address", help="The mailbox's email address.")
        parser.add_argument("--kind", choices=[SyncKind.INCOMING, SyncKind.OUTGOING], action="append")

    def handle(self, *args: Any, **options: Any) -> None:
        mailbox = Mailbox.objects.filter(email_address__iexact=options["address"]).first()
        if mailbox is None:
            raise CommandError(f"No mailbox has the address {options['address']}.")
        for kind in options["kind"] or [SyncKind.INCOMING, SyncKind.OUTGOING]:
            claim = scheduler.claim_now(mailbox=mailbox, kind=kind)
            if claim is None:
                raise CommandError(
                    f"A worker is synchronizing {mailbox} ({kind}) right now; try again shortly."
                )
            run = scheduler.run_claimed(claim, _work(kind))
            if run is None:
                raise CommandError("The lease was lost before the run started.")
            self.stdout.write(
                f"{kind}: {run.get_outcome_display()} — received {run.received}, tracked {run.tracked}, "
                f"linked {run.linked}, not tracked {run.not_tracked}, quarantined {run.quarantined}, "
                f"sent {run.sent}, failed {run.failed}"
                + (f"; {run.error_code}: {run.error_text}" if run.error_code else "")
            )
