"""Hold push for the mailboxes (``sync.listener``): new mail reaches the CRM in seconds."""

from __future__ import annotations

import resource
import signal
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from sync.listener import Listener


class Command(BaseCommand):
    help = (
        "Hold IMAP IDLE and Graph subscriptions for this process's share of the enabled mailboxes, "
        "and start a mailbox's incoming sync as soon as new mail is announced. Run as many as needed: "
        "they share the mailboxes through the database. Stops cleanly on SIGTERM or Ctrl-C."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--max-connections",
            type=int,
            default=None,
            help="connections to hold at most (PUSH_MAX_CONNECTIONS)",
        )

    def handle(self, *args: Any, max_connections: int | None, **options: Any) -> None:
        listener = Listener(capacity=max_connections)
        _raise_open_files_limit()

        def stop(signum: int, frame: FrameType | None) -> None:
            listener.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.stdout.write(f"Listening as {listener.owner}")
        self.stdout.flush()
        listener.run()


def _raise_open_files_limit() -> None:
    """A socket per held connection: the usual soft limit of 1,024 open files would cap
    a listener below PUSH_MAX_CONNECTIONS' 1,000 plus its database and broker."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
