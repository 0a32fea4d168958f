"""App certificates about to expire: an Exchange profile signing in with a certificate
(Microsoft Entra ID client credentials) stops working the day it expires, for every
mailbox at once. A Warning alert on the profile ``SYNC_CERTIFICATE_WARNING_DAYS``
ahead, an Error once expired; resolved when a new certificate is uploaded. Run by
beat with the profile health check; running it again changes nothing.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings

from profiles.models import EmailServerProfile
from sync import alerts, clock
from sync.models import AlertLevel

CATEGORY = "certificate"
EXPIRING, EXPIRED = "certificate_expiring", "certificate_expired"


def check_certificates() -> dict[str, int]:
    """Raise, refresh or resolve each profile's certificate alert."""
    now = clock.now()
    warn_from = now + timedelta(days=settings.SYNC_CERTIFICATE_WARNING_DAYS)
    counts = {"expiring": 0, "expired": 0, "resolved": 0}
    for profile in EmailServerProfile.objects.filter(is_active=True):
        expires = profile.oauth_certificate_expires_on
        if expires is not None and expires <= now:
            _raise(profile, AlertLevel.ERROR, EXPIRED, f"expired on {expires:%Y-%m-%d}")
            counts["expired"] += 1
        elif expires is not None and expires <= warn_from:
            days = (expires - now).days
            _raise(profile, AlertLevel.WARNING, EXPIRING, f"expires on {expires:%Y-%m-%d}, in {days} days")
            counts["expiring"] += 1
        else:
            counts["resolved"] += alerts.resolve_alerts(profile=profile, category=CATEGORY)
    return counts


def _raise(profile: EmailServerProfile, level: str, code: str, when: str) -> None:
    # An expired certificate's alert replaces the warning that came before it.
    other = EXPIRING if code == EXPIRED else EXPIRED
    alerts.resolve_alerts(profile=profile, category=CATEGORY, code=other)
    alerts.record_alert(
        level=level,
        category=CATEGORY,
        code=code,
        message=(
            f"The certificate the profile {profile.name!r} signs in with {when}. Create a new one, upload "
            "it to the app registration in Microsoft Entra ID (Certificates & secrets) and to the profile."
        ),
        profile=profile,
    )
