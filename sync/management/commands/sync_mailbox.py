"""manage.py sync_mailbox ADDRESS [--kind incoming|outgoing] [--progress]: run one mailbox now."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper

from mailboxes.models import Mailbox
from sync import incoming, outgoing, scheduler
from sync.models import SyncKind, SyncRun


class ProgressBar:
    """One line redrawn in place: messages so far of at most one run's budget."""

    WIDTH = 30

    def __init__(self, out: OutputWrapper, total: int) -> None:
        self.out, self.total, self.started = out, total, time.monotonic()
        self.shown = False

    def __call__(self, run: SyncRun) -> None:
        done = min(run.received, self.total)
        filled = self.WIDTH * done // self.total
        rate = run.received / max(time.monotonic() - self.started, 1e-6)
        self.out.write(
            f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {run.received}/{self.total} "
            f"({rate:.1f}/s; tracked {run.tracked}, linked {run.linked}, quarantined {run.quarantined})",
            ending="",
        )
        self.out.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.out.write("")


def _work(kind: str, on_progress: Callable[[SyncRun], None] | None) -> Callable[[Mailbox], SyncRun]:
    if kind == SyncKind.INCOMING:
        return lambda mailbox: incoming.sync_incoming(mailbox=mailbox, on_progress=on_progress)
    return lambda mailbox: outgoing.send_pending(mailbox=mailbox)


class Command(BaseCommand):
    help = "Synchronize one mailbox now, as a worker would (its lease keeps workers away meanwhile)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("address", help="The mailbox's email address.")
        parser.add_argument("--kind", choices=[SyncKind.INCOMING, SyncKind.OUTGOING], action="append")
        parser.add_argument(
            "--progress",
            action="store_true",
            help="Show a progress bar for incoming mail (the default when output is a terminal).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        mailbox = Mailbox.objects.filter(email_address__iexact=options["address"]).first()
        if mailbox is None:
            raise CommandError(f"No mailbox has the address {options['address']}.")
        show_progress = options["progress"] or self.stdout.isatty()
        for kind in options["kind"] or [SyncKind.INCOMING, SyncKind.OUTGOING]:
            claim = scheduler.claim_now(mailbox=mailbox, kind=kind)
            if claim is None:
                raise CommandError(
                    f"A worker is synchronizing {mailbox} ({kind}) right now; try again shortly."
                )
            bar = ProgressBar(self.stdout, settings.SYNC_RUN_MAX_MESSAGES) if show_progress else None
            run = scheduler.run_claimed(claim, _work(kind, bar))
            if bar is not None:
                bar.close()
            if run is None:
                raise CommandError("The lease was lost before the run started.")
            self.stdout.write(
                f"{kind}: {run.get_outcome_display()} — received {run.received}, tracked {run.tracked}, "
                f"linked {run.linked}, not tracked {run.not_tracked}, quarantined {run.quarantined}, "
                f"sent {run.sent}, failed {run.failed}"
                + (f"; {run.error_code}: {run.error_text}" if run.error_code else "")
            )
