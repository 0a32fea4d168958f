"""An Exchange profile's app certificate: a Warning alert 30 days before it expires,
an Error once it has, resolved when a new one is uploaded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
import trustme

from profiles.models import CredentialsSource, ServerType
from sync.certificate_expiry import check_certificates
from sync.models import MailboxAlert
from sync.tasks import check_profile_health
from tests import factories

pytestmark = pytest.mark.django_db
EXPIRES = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


def certificate(expires: datetime) -> str:
    return (
        trustme.CA()
        .issue_cert("serversync-app", not_after=expires)
        .private_key_and_cert_chain_pem.bytes()
        .decode()
    )


@pytest.fixture
def profile():
    return factories.profile(
        "Contoso 365",
        server_type=ServerType.EXCHANGE_ONLINE,
        incoming_server_location="",
        outgoing_server_location="",
        credentials_source=CredentialsSource.OAUTH_CLIENT_CREDENTIALS,
        oauth_tenant_id="contoso.onmicrosoft.com",
        oauth_client_id="11111111-2222-3333-4444-555555555555",
        oauth_certificate=certificate(EXPIRES),
    )


def open_alerts(profile) -> list[tuple[str, str]]:
    found = MailboxAlert.objects.filter(profile=profile, resolved_on__isnull=True)
    return sorted(found.values_list("level", "code"))


def test_a_certificate_is_warned_about_30_days_ahead_then_an_error_once_expired(profile):
    with time_machine.travel(EXPIRES - timedelta(days=31), tick=False):
        check_profile_health()
        assert open_alerts(profile) == []
    with time_machine.travel(EXPIRES - timedelta(days=29, hours=1), tick=False):
        check_profile_health()
        check_profile_health()  # again: the same alert, counted, not a second one
        assert open_alerts(profile) == [("warning", "certificate_expiring")]
        alert = MailboxAlert.objects.get(profile=profile, code="certificate_expiring")
        assert "expires on 2027-03-01, in 29 days" in alert.message
        assert "upload it to the app registration in Microsoft Entra ID" in alert.message
    with time_machine.travel(EXPIRES + timedelta(minutes=1), tick=False):
        check_certificates()
        assert open_alerts(profile) == [("error", "certificate_expired")]


def test_uploading_a_new_certificate_resolves_the_alert(profile):
    with time_machine.travel(EXPIRES + timedelta(days=1), tick=False):
        check_certificates()
        profile.oauth_certificate = certificate(EXPIRES + timedelta(days=365))
        profile.full_clean()
        profile.save()
        check_certificates()
        assert open_alerts(profile) == []
