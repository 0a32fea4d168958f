"""The profile's limit on sending (``outgoing_rate_limit_per_minute``): when a
mailbox may send again. The sender (``sync.outgoing``) stops at it, and the
scheduler (``sync.scheduler``) brings the mailbox back when a slot frees.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Q

from crm.models import ActivityParty, EmailActivity
from mailboxes.models import Mailbox
from sync import clock
from sync.models import OutgoingClaim

RATE_WINDOW = timedelta(minutes=1)


def send_slot_free_on(mailbox: Mailbox) -> datetime | None:
    """When this mailbox may send again under its profile's rate limit, or None
    when it may send now. Counted in the database (sent in the last minute plus
    sending now), so the limit holds whichever worker holds the mailbox."""
    limit = mailbox.profile.outgoing_rate_limit_per_minute if mailbox.profile else None
    if not limit:
        return None
    now = clock.now()
    sender = Q(user_id=mailbox.user_id) if mailbox.user_id else Q(queue_id=mailbox.queue_id)
    recent = (
        EmailActivity.objects.filter(
            pk__in=ActivityParty.objects.filter(sender, role=ActivityParty.Role.FROM).values("email_id"),
            status=EmailActivity.Status.SENT,
            sent_on__gt=now - RATE_WINDOW,
            # Sent "after now" means the clock went back since: counted, they would hold
            # the mailbox back for as long as the jump (sync/clock.py).
            sent_on__lte=now,
        )
        .order_by("sent_on")
        .values_list("sent_on", flat=True)
    )
    sent_on = [at for at in recent if at is not None]
    sending = OutgoingClaim.objects.filter(
        mailbox=mailbox, email__status=EmailActivity.Status.SENDING
    ).count()
    over = len(sent_on) + sending - limit
    if over < 0:
        return None
    # The slot frees when enough of the last minute's sends have aged out of it.
    return sent_on[over] + RATE_WINDOW if over < len(sent_on) else now + RATE_WINDOW
