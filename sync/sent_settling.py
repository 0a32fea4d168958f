"""Interrupted sends settled by the server's own copy in Sent Items.

Where sending keeps its own copy (Graph's sendMail, EWS SendAndSaveCopy: the
registry's ``saves_sent_copies``), an email whose send was interrupted after the
server may have taken it ("outcome unknown": a lost connection, a worker killed
mid-send) is looked up in Sent Items by its Message-ID, fixed before sending, at
the start of the mailbox's next outgoing run. Found: it was sent, and is marked
so. Not found: it stays "outcome unknown" for a person to settle — never resent
on a guess, since a message can sit in the Outbox before its copy appears.
"""

from __future__ import annotations

from crm.models import EmailActivity
from mailboxes.models import Mailbox
from sync import unknown_outcomes
from sync.server_settings import incoming_settings, kind_for


def settle_from_sent_items(*, mailbox: Mailbox) -> list[EmailActivity]:
    """Mark sent this mailbox's "outcome unknown" emails that Sent Items holds; return them."""
    kind = kind_for(mailbox.profile)
    if kind is None or not kind.saves_sent_copies or kind.sent_items is None:
        return []
    unsettled = list(
        unknown_outcomes.unsettled_for(Mailbox.objects.filter(pk=mailbox.pk)).exclude(message_id="")
    )
    if not unsettled:
        return []
    settled = []
    with kind.sent_items(incoming_settings(mailbox)) as sent_items:
        for email in unsettled:
            if sent_items.find_sent(email.message_id):
                settled.append(unknown_outcomes.settle(email=email, resend=False, by=None))
    return settled
