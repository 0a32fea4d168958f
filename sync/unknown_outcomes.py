"""Emails whose send was interrupted after the server may have accepted them.

The engine never resends such an email on its own (sync.outgoing). Someone
who checked the recipient's copy settles it here: *resend* puts it back to
Pending Send with the same Message-ID (so a copy that did arrive is recognised
as the same message), *mark sent* records it as sent. When the last one of a
mailbox is settled, the mailbox's "outcome unknown" alert is resolved.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet

from crm.models import ActivityParty, EmailActivity
from mailboxes.models import Mailbox
from sync import alerts, clock
from sync.models import MailboxAlert, SyncKind

CODE = "outcome_unknown"
Status = EmailActivity.Status


def by_mailbox(mailboxes: Collection[Mailbox]) -> dict[int, list[EmailActivity]]:
    """The unsettled emails each of these mailboxes sent, in one query."""
    by_user: dict[int | None, int] = {m.user_id: m.pk for m in mailboxes if m.user_id}
    by_queue: dict[int | None, int] = {m.queue_id: m.pk for m in mailboxes if m.queue_id}
    found: dict[int, list[EmailActivity]] = defaultdict(list)
    if not by_user and not by_queue:
        return found
    parties = (
        ActivityParty.objects.filter(Q(user_id__in=by_user) | Q(queue_id__in=by_queue))
        .filter(role=ActivityParty.Role.FROM, email__status=Status.OUTCOME_UNKNOWN)
        .select_related("email")
        .order_by("email__created_on", "email_id")
    )
    for party in parties:
        mailbox_id = by_user.get(party.user_id) or by_queue.get(party.queue_id)
        if mailbox_id is not None:
            found[mailbox_id].append(party.email)
    return found


def sender_mailbox(email: EmailActivity) -> Mailbox | None:
    """The mailbox that sends as this email's sender (its user's or queue's)."""
    party = email.parties.filter(role=ActivityParty.Role.FROM).first()
    if party is None:
        return None
    return Mailbox.objects.sending_as(user_id=party.user_id, queue_id=party.queue_id).first()


def sent_by(mailboxes: QuerySet[Mailbox]) -> QuerySet[EmailActivity]:
    """Emails whose sender is the user or queue of one of these mailboxes."""
    users = mailboxes.exclude(user=None).values("user_id")
    queues = mailboxes.exclude(queue=None).values("queue_id")
    return EmailActivity.objects.filter(
        Q(parties__role=ActivityParty.Role.FROM)
        & (Q(parties__user_id__in=users) | Q(parties__queue_id__in=queues))
    ).distinct()


def unsettled_for(mailboxes: QuerySet[Mailbox]) -> QuerySet[EmailActivity]:
    """Emails in "outcome unknown" sent by any of these mailboxes."""
    return sent_by(mailboxes).filter(status=Status.OUTCOME_UNKNOWN)


@transaction.atomic
def settle(*, email: EmailActivity, resend: bool, by: Any) -> EmailActivity:
    """Resend (back to Pending Send) or mark sent an email whose outcome is unknown."""
    now = clock.now()
    changes: dict[str, Any] = {"modified_on": now, "failure_reason": ""}
    if resend:
        changes["status"] = Status.PENDING_SEND
    else:
        changes |= {"status": Status.SENT, "sent_on": now}
    if not EmailActivity.objects.filter(pk=email.pk, status=Status.OUTCOME_UNKNOWN).update(**changes):
        raise ValidationError("This email's outcome is no longer unknown: someone settled it already.")
    mailbox = sender_mailbox(email)
    if mailbox is not None and not unsettled_for(Mailbox.objects.filter(pk=mailbox.pk)).exists():
        alerts.resolve_alerts(mailbox=mailbox, category=SyncKind.OUTGOING, code=CODE, by=by)
    email.refresh_from_db()
    return email


def is_outcome_unknown_alert(alert: MailboxAlert) -> bool:
    return alert.code == CODE and alert.mailbox_id is not None
