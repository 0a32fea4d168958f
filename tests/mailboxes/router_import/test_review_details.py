"""What the review says in the cases issue 12 found wanting: a server the merge
drops still gets its SSL warning, WebDAV entries are named as such, SystemState
thresholds are matched by IdentityHash, and importing again shows each mailbox
as the database holds it."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command

from mailboxes.models import Mailbox
from mailboxes.router_import.service import router_review
from tests.mailboxes.router_import.routers import (
    BRANCH,
    CRM_URL,
    FILES,
    MAIN,
    NOW,
    Contoso,
    memory_upload,
    minimal_agent,
)

pytestmark = pytest.mark.django_db

FRANK = "{F4A11C00-0000-4000-8000-000000000007}"
ERIN = "{E5140000-0000-4000-8000-000000000006}"
PROVIDERS = "Microsoft.Crm.Tools.Email.Providers"
EWS_ONLINE = "https://outlook.office365.com/EWS/Exchange.asmx"
AGENT = "Microsoft.Crm.Tools.EmailAgent.xml"


def provider(provider_class: str, **tags: str) -> str:
    body = "".join(f"<{tag}>{value}</{tag}>" for tag, value in tags.items())
    return (
        f"<ProviderConfiguration><ProviderClass>{PROVIDERS}.{provider_class}</ProviderClass>"
        f"<CrmServerUrl>{CRM_URL}</CrmServerUrl>{body}</ProviderConfiguration>\n"
    )


def review_of(*entries: str, state: bytes | None = None) -> dict:
    files = {"agent": minimal_agent("".join(entries))}
    if state is not None:
        files["state"] = state
    return router_review(routers=[memory_upload(**files)])


def warnings_of(review: dict) -> list[str]:
    return [warning for profile in review["profiles"] for warning in profile["warnings"]]


# --- a server the merge drops still gets its SSL warning -----------------------------------------


def test_the_smtp_server_an_exchange_profile_does_not_use_is_still_warned_about(contoso: Contoso, frozen_now):
    review = review_of(
        provider("ExchangePollingMailboxProvider", UserId=FRANK, EmailServerUrl=EWS_ONLINE),
        provider("SmtpPollingSendEmailProvider", UserId=FRANK, EmailServer="smtp.contoso.test:25"),
    )

    [profile] = review["profiles"]
    assert profile["server_type_label"] == "Exchange Online"
    assert "SMTP smtp.contoso.test:25 (no SSL) does not use SSL." in profile["warnings"]
    assert any("not the SMTP server smtp.contoso.test" in warning for warning in profile["warnings"])
    # Exchange Online is reached through Microsoft Graph now, and the review says so.
    assert any("sends through Microsoft Graph" in warning for warning in profile["warnings"])


def test_the_pop3_server_a_profile_reading_through_exchange_drops_is_still_warned_about(
    contoso: Contoso, frozen_now
):
    review = review_of(
        provider("Pop3PollingMailboxProvider", UserId=FRANK, EmailServer="pop.contoso.test:110"),
        provider("CrmPollingSendEmailProvider", UserId=FRANK, EmailServerUrl=EWS_ONLINE),
    )

    [profile] = review["profiles"]
    assert profile["server_type_label"] == "Exchange Online"
    assert "POP3 pop.contoso.test:110 (no SSL) does not use SSL." in profile["warnings"]


def test_servers_with_ssl_get_no_ssl_warning(contoso: Contoso, frozen_now):
    review = review_of(
        provider("ExchangePollingMailboxProvider", UserId=FRANK, EmailServerUrl=EWS_ONLINE),
        provider(
            "SmtpPollingSendEmailProvider", UserId=FRANK, EmailServer="smtp.contoso.test", EmailUseSSL="true"
        ),
    )

    assert not any("does not use SSL" in warning for warning in warnings_of(review))


# --- WebDAV entries are named as such --------------------------------------------------------


def test_an_exchange_2003_entry_is_named_so_under_not_migrated(contoso: Contoso, frozen_now):
    review = router_review(routers=[memory_upload(agent=(FILES / MAIN / AGENT).read_bytes())])

    not_migrated = {item["what"]: item["reason"] for item in review["not_migrated"]}
    assert not_migrated["Carol Example"].startswith(
        "Router 1, provider entry 7 (ExchangePollingMailboxProvider): Exchange 2003 (WebDAV) at "
        "http://exchange2003.contoso.test/exchange/: "
    )


@pytest.mark.parametrize(
    ("tags", "named"),
    [
        ({"EmailServerType": "Exchange 2007", "EmailProtocol": "WebDAV"}, "Exchange 2007 (WebDAV)"),
        ({"EmailServerUrl": "http://mail.contoso.test/exchange/"}, "Exchange 2003 or 2007 (WebDAV)"),
    ],
)
def test_a_webdav_entry_of_someone_unknown_is_named_under_not_migrated_too(
    contoso: Contoso, frozen_now, tags: dict[str, str], named: str
):
    """The person is unknown (listed apart), and the server could not be migrated
    anyway: the review says both, so adding the person later is no surprise."""
    review = review_of(provider("ExchangePollingMailboxProvider", EmailAddress="nobody@contoso.test", **tags))

    assert review["people_skipped"] == [
        "Router 1, provider entry 1: no CRM user or queue is known by email address nobody@contoso.test."
    ]
    [item] = review["not_migrated"]
    assert item["what"] == "Router 1, provider entry 1 (ExchangePollingMailboxProvider)"
    assert item["reason"].startswith(f"{named} at ")
    assert "WebDAV profiles are not migrated" in item["reason"]


# --- SystemState's IdentityHash --------------------------------------------------------------

STATE_BY_HASH = b"""<?xml version="1.0" encoding="utf-8"?>
<SystemState>
  <MailboxState IdentityHash="k3VbX9+Qm2w=">
    <ThresholdDate>2025-03-10T10:00:00.0000000Z</ThresholdDate>
    <StateXML />
  </MailboxState>
  <MailboxState>
    <IdentityHash>Zt7Pq1/Rr4A=</IdentityHash>
    <ThresholdDate>2025-03-10T11:15:00Z</ThresholdDate>
  </MailboxState>
  <MailboxState>
    <IdentityHash>no-such-entry</IdentityHash>
    <ThresholdDate>2025-03-10T11:45:00Z</ThresholdDate>
  </MailboxState>
</SystemState>
"""


def test_systemstate_thresholds_are_matched_to_their_entries_by_identity_hash(contoso: Contoso, frozen_now):
    review = review_of(
        provider(
            "ExchangePollingMailboxProvider",
            UserId=FRANK,
            EmailServerUrl=EWS_ONLINE,
            IdentityHash="k3VbX9+Qm2w=",
        ),
        provider(
            "Pop3PollingMailboxProvider",
            UserId=ERIN,
            EmailServer="pop.contoso.test",
            EmailUseSSL="true",
            IdentityHash="Zt7Pq1/Rr4A=",
        ),
        provider(
            "SmtpPollingSendEmailProvider", UserId=ERIN, EmailServer="smtp.contoso.test", EmailUseSSL="1"
        ),
        state=STATE_BY_HASH,
    )

    rows = {row["email_address"]: row for row in review["mailboxes"]}
    assert (
        rows["frank@contoso.test"]["process_email_from"],
        rows["frank@contoso.test"]["threshold_kept"],
    ) == (
        "2025-03-10T10:00:00+00:00",
        True,
    )
    assert rows["erin@contoso.test"]["process_email_from"] == "2025-03-10T11:15:00+00:00"
    assert review["not_understood"] == []
    assert (
        "Router 1: the SystemState threshold for IdentityHash no-such-entry matched no migrated mailbox"
        in review["notes"]
    )
    not_migrated = {item["what"]: item["reason"] for item in review["not_migrated"]}
    assert "match SystemState thresholds" in not_migrated["IdentityHash (2 entries)"]


# --- importing again shows what the database holds -----------------------------------------------


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("import_email_router", *args, stdout=out)
    return out.getvalue()


def line_of(printed: str, address: str) -> str:
    return next(line for line in printed.splitlines() if f"<{address}>" in line)


def test_a_second_import_prints_each_mailbox_as_the_database_holds_it(contoso: Contoso, frozen_now):
    folders = (str(FILES / MAIN), str(FILES / BRANCH))
    run(*folders)
    # Since then Frank's mailbox passed test & enable; a day and a half went by.
    Mailbox.objects.filter(email_address="frank@contoso.test").update(
        incoming_enabled=True, outgoing_enabled=True, needs_credentials=False
    )

    with time_machine.travel(NOW + timedelta(days=1, hours=12), tick=False):
        again = run(*folders)

    bob, frank = line_of(again, "bob@contoso.test"), line_of(again, "frank@contoso.test")
    # As migrated the first time (24 hours before it), not 24 hours before this run.
    assert bob.startswith("  [unchanged] user Bob Example <bob@contoso.test>")
    assert "process email from 2025-03-09T12:00:00+00:00;" in bob
    assert "2025-03-11T00:00:00" not in again.split("Mailboxes to update")[1]  # this run's 24 hours back
    assert "needs credentials; not enabled" in bob
    assert (
        "process email from 2025-03-09T12:00:00+00:00; reads inbox and sub-folders; enabled: incoming, "
        in frank
    )
    assert "needs credentials" not in frank
    # Erin's router threshold was kept the first time, and still is.
    assert "process email from 2025-03-10T09:30:00+00:00 (the router's threshold)" in line_of(
        again, "erin@contoso.test"
    )
    # The profile used as it is: no "created without it".
    assert "The existing profile has no app registration yet." in again
    assert "the profile is created without it" not in again
    assert (
        "6 unchanged. Nothing it created or updated is enabled yet; 1 of the unchanged mailboxes already are."
        in again
    )
    first_cutoff = datetime(2025, 3, 9, 12, tzinfo=UTC)
    assert Mailbox.objects.get(email_address="bob@contoso.test").process_email_received_after == first_cutoff
