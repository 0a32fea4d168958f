"""A profile's connection cap, counted one way for sync runs and push listeners alike.

Open connections are the sync runs' leases (``MailboxSchedule``) and the push listeners'
held IMAP connections (``sync.push_leases``), counted per profile when the profile holds
the credentials (every connection signs in as the same account), per mailbox when each
mailbox has its own. The scheduler takes room for a run; a listener takes room to hold a
connection open only while a run still fits beside it.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from mailboxes.models import Mailbox
from profiles.models import EmailServerProfile
from sync import push_leases
from sync.models import MailboxSchedule

PER_PROFILE, PER_MAILBOX = 0, 1


def counts_per_profile(profile: EmailServerProfile) -> bool:
    return profile.holds_credentials


class OpenConnections:
    """The connections open at ``now``, per profile and per mailbox, as one dispatch or one
    listener beat takes more of them."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        runs = MailboxSchedule.objects.filter(lease_token__isnull=False, lease_expires_on__gte=now)
        self.runs = (
            Counter(runs.values_list("profile_id", flat=True)),
            Counter(runs.values_list("mailbox_id", flat=True)),
        )
        self.pushed = push_leases.connections_held(now)

    def take_run(self, mailbox: Mailbox) -> bool:
        """Room for one more sync run: the open connections stay within the cap."""
        scope = _scope(mailbox)
        if scope is None:
            return False
        which, key, cap = scope
        if self.runs[which][key] + self.pushed[which][key] >= cap:
            return False
        self.runs[which][key] += 1
        return True

    def take_push(self, mailbox: Mailbox) -> bool:
        """Room to hold one more connection open for push, with a sync run still fitting beside them."""
        scope = _scope(mailbox)
        if scope is None:
            return False
        which, key, cap = scope
        if self.pushed[which][key] + 1 + max(self.runs[which][key], 1) > cap:
            return False
        self.pushed[which][key] += 1
        return True


def _scope(mailbox: Mailbox) -> tuple[int, int, int] | None:
    """Which count the mailbox's connections go to, its key there, and the cap."""
    profile = mailbox.profile
    if profile is None:
        return None
    which, key = (PER_PROFILE, profile.pk) if counts_per_profile(profile) else (PER_MAILBOX, mailbox.pk)
    return which, key, profile.max_concurrent_connections
