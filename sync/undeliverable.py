"""Dynamics 365's "Move failed emails to Undeliverable folder", an Exchange profile's
option, for the folder loop of ``sync.incoming`` (connectors with the
``Undeliverable`` capability: Graph, EWS)."""

from __future__ import annotations

from mailboxes.models import Mailbox
from sync import alerts
from sync.connectors.interfaces import UNDELIVERABLE, Incoming, Undeliverable
from sync.errors import SyncError
from sync.models import AlertLevel, Receipt

# The alerts of failed moves: apart from the run's own ("incoming"), which a run that
# succeeds resolves. These stay open until someone looks: a later move that works does not
# bring back the messages left in the Inbox.
UNDELIVERABLE_ALERTS = "undeliverable"


class FailedMessageMover:
    """Dynamics 365's "Move failed emails to Undeliverable folder", an Exchange profile's
    option: once a batch committed, its quarantined messages leave the folder for the
    mailbox's Undeliverable folder. serversync keeps them (the quarantine holds their bytes,
    reprocessable): the move only clears them out of the user's Inbox. A move that fails
    is a Warning alert on the mailbox; the run goes on and its record stays."""

    def __init__(self, source: Undeliverable, mailbox: Mailbox, folder: str) -> None:
        self.source, self.mailbox, self.folder = source, mailbox, folder
        self.moved: set[str] = set()

    @classmethod
    def of(cls, source: Incoming, mailbox: Mailbox, folder: str) -> FailedMessageMover | None:
        profile = mailbox.profile
        wanted = profile is not None and profile.move_failed_email_to_undeliverable
        return cls(source, mailbox, folder) if wanted and isinstance(source, Undeliverable) else None

    def move(self, quarantined: list[tuple[str, Receipt]]) -> None:
        server_ids = [key for key, _ in quarantined]
        try:
            self.source.move_to_undeliverable(self.folder, server_ids)
        except SyncError as error:
            alerts.record_alert(
                level=AlertLevel.WARNING,
                category=UNDELIVERABLE_ALERTS,
                code=error.code,
                message=f"{len(server_ids)} message(s) that serversync could not process stay in "
                f"{self.folder} (their copies are in serversync's quarantine): moving them to the "
                f"{UNDELIVERABLE} folder failed. {error.message}",
                mailbox=self.mailbox,
            )
            return
        self.moved.update(server_ids)
        Receipt.objects.filter(pk__in=[receipt.pk for _, receipt in quarantined]).update(
            moved_to=UNDELIVERABLE
        )
