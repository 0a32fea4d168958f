"""Exchange Online push: Graph change notifications (not built yet)."""

from __future__ import annotations

from sync.models import PushLease


def keep(owner: str, lease: PushLease) -> None:
    """Create or renew the mailbox's subscription (not built yet)."""
