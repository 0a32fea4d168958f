"""A profile whose mailboxes mostly fail: the Dynamics 365 rule "more than 50 %
of the profile's mailboxes fail within an hour" raises one Error alert on the
profile and, when the profile says so, emails its owner once per alert.

The evidence is the last hour's sync runs. A mailbox *fails* when, for some
kind of run (incoming, outgoing, ACT), its latest run of that kind in the hour
failed; the share is taken over the mailboxes that ran at all in that hour.
Run by beat with the roll-ups; running it again changes nothing.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from smtplib import SMTPException

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Max

from profiles.models import EmailServerProfile
from sync import alerts, clock
from sync.models import AlertLevel, MailboxAlert, SyncOutcome, SyncRun

logger = logging.getLogger(__name__)

CATEGORY = "profile_health"
CODE = "mailboxes_failing"
WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class Share:
    ran: int
    failing: int

    @property
    def fraction(self) -> float:
        return self.failing / self.ran if self.ran else 0.0

    @property
    def is_unhealthy(self) -> bool:
        return self.ran >= settings.SYNC_PROFILE_ALERT_MIN_MAILBOXES and (
            self.fraction * 100 > settings.SYNC_PROFILE_ALERT_FAILING_PERCENT
        )


def failing_shares(*, since: datetime) -> dict[int, Share]:
    """Per profile id: mailboxes that ran since ``since``, and how many of them fail."""
    latest: dict[tuple[int, int, str], dict[bool, datetime]] = defaultdict(dict)
    runs = (
        SyncRun.objects.filter(
            started_on__gte=since, finished_on__isnull=False, mailbox__profile__isnull=False
        )
        .values_list("mailbox_id", "mailbox__profile_id", "kind", "outcome")
        .annotate(last=Max("started_on"))
        .order_by()
    )
    for mailbox_id, profile_id, kind, outcome, last in runs:
        failed = outcome == SyncOutcome.FAILED
        slot = latest[(profile_id, mailbox_id, kind)]
        slot[failed] = max(last, slot.get(failed, last))
    ran: dict[int, set[int]] = defaultdict(set)
    failing: dict[int, set[int]] = defaultdict(set)
    for (profile_id, mailbox_id, _kind), last in latest.items():
        ran[profile_id].add(mailbox_id)
        if True in last and last[True] >= last.get(False, last[True]):
            failing[profile_id].add(mailbox_id)
    return {profile_id: Share(len(ran[profile_id]), len(failing[profile_id])) for profile_id in ran}


def check_profiles() -> dict[str, int]:
    """Raise, refresh or resolve each profile's alert; email owners not yet told."""
    shares = failing_shares(since=clock.now() - WINDOW)
    raised = resolved = 0
    for profile in EmailServerProfile.objects.select_related("owner"):
        share = shares.get(profile.pk, Share(0, 0))
        if share.is_unhealthy:
            alert = alerts.record_alert(
                level=AlertLevel.ERROR,
                category=CATEGORY,
                code=CODE,
                message=_message(profile, share),
                profile=profile,
            )
            raised += 1
            if alert is not None:
                _notify_owner(profile, alert)
        else:
            resolved += alerts.resolve_alerts(profile=profile, category=CATEGORY)
    return {"unhealthy": raised, "resolved": resolved}


def _message(profile: EmailServerProfile, share: Share) -> str:
    return (
        f"{share.failing} of {share.ran} mailboxes of the email server profile {profile.name!r} "
        f"failed in the last hour ({share.fraction:.0%}). Check the server and the profile's "
        "settings; the mailboxes' own alerts give each error."
    )


def _notify_owner(profile: EmailServerProfile, alert: MailboxAlert) -> None:
    """Once per alert; a failed send is tried again on the next check."""
    owner = profile.owner
    if alert.owner_notified_on is not None or not profile.send_alert_email_to_owner:
        return
    if owner is None or not owner.email:
        return
    try:
        send_mail(
            subject=f"serversync: mailboxes of the profile {profile.name} are failing",
            message=f"{alert.message}\n\nFirst seen: {alert.first_seen:%Y-%m-%d %H:%M} UTC.\n",
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[owner.email],
        )
    except (OSError, SMTPException):
        logger.warning("could not email the owner of profile %s", profile.pk, exc_info=True)
        return
    MailboxAlert.objects.filter(pk=alert.pk).update(owner_notified_on=clock.now())
