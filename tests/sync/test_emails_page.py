"""The item-level view (/emails/) after real sync runs against the test Dovecot:
every message with what became of it and why, counted against the test's own
queries; one row per message however many mailboxes received it; a user sees
only their own mailboxes' mail; and the page's queries do not grow with its rows."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from sync.models import Receipt, ReceiptOutcome
from tests import factories
from tests.personas import World
from tests.sync.received_mail import QUOTE_ID, ReceivedMail, signed_in

pytestmark = pytest.mark.django_db


def shown(client: Client, query: str = "") -> dict[str, list[tuple[str, str]]]:
    """The page's messages: identity -> [(receiving mailbox, outcome)], read from its HTML."""
    response = client.get(f"/emails/?{query}")
    assert response.status_code == 200
    messages = {}
    for chunk in response.content.decode().split('<tbody class="message"')[1:]:
        body = chunk.split("</tbody>")[0]
        identity = html.unescape(re.search(r'data-identity="([^"]*)"', body)[1])
        rows = re.findall(r'data-outcome="(\w+)" data-mailbox="([^"]+)"', body)
        messages[identity] = [(mailbox, outcome) for outcome, mailbox in rows]
    return messages


def row_of(client: Client, identity: str) -> str:
    page = client.get("/emails/").content.decode()
    start = page.index(f'data-identity="{html.escape(identity)}"')
    return page[start : page.index("</tbody>", start)]


def identities(receipts) -> set[str]:
    return set(receipts.values_list("message_identity", flat=True))


def test_every_outcome_is_shown_with_its_reason(mail: ReceivedMail):
    admin = signed_in("admin", administrator=True)
    everything = shown(admin)
    assert set(everything) == identities(Receipt.objects.all())
    produced = set(Receipt.objects.values_list("outcome", flat=True))
    assert produced == {
        ReceiptOutcome.TRACKED,
        ReceiptOutcome.LINKED,
        ReceiptOutcome.NOT_TRACKED_OPTION,
        ReceiptOutcome.NO_CORRELATION,
        ReceiptOutcome.SENDER_NOT_CRM,
        ReceiptOutcome.AUTO_REPLY,
        ReceiptOutcome.QUARANTINED,
        ReceiptOutcome.FORWARDED,
    }
    for outcome in produced:
        filtered = shown(admin, f"outcome={outcome}")
        assert set(filtered) == identities(Receipt.objects.filter(outcome=outcome)), outcome
        rows = [row for receipts in filtered.values() for row in receipts]
        assert len(rows) == Receipt.objects.filter(message_identity__in=filtered).count(), outcome
    page = admin.get("/emails/").content.decode()
    for outcome in produced:
        count = Receipt.objects.filter(outcome=outcome).count()
        assert f'data-outcome="{outcome}" data-count="{count}"' in page
        assert html.escape(ReceiptOutcome(outcome).label) in page


def test_a_message_several_mailboxes_received_is_one_row_naming_each(mail: ReceivedMail):
    admin = signed_in("admin", administrator=True)
    quote = Receipt.objects.get(mailbox=mail.alice, message_id=QUOTE_ID.strip("<>")).message_identity
    assert sorted(shown(admin)[quote]) == [
        (mail.alice.email_address, ReceiptOutcome.TRACKED),
        (mail.carol.email_address, ReceiptOutcome.LINKED),
    ]
    assert row_of(admin, quote).count("Quote request") == 1


def test_a_correlated_reply_shows_its_method_and_regarding_record(mail: ReceivedMail):
    admin = signed_in("admin", administrator=True)
    reply = Receipt.objects.get(mailbox=mail.bob, subject="Re: Order 1001")
    assert reply.email is not None
    assert reply.email.correlation_method == "in_reply_to"
    row = row_of(admin, reply.message_identity)
    assert re.search(r'class="correlation">\s*In-Reply-To', row)
    assert "Account: Contoso" in row


def test_quarantined_mail_says_why(mail: ReceivedMail):
    admin = signed_in("admin", administrator=True)
    held = Receipt.objects.get(mailbox=mail.inbound, outcome=ReceiptOutcome.QUARANTINED)
    assert held.quarantined is not None
    assert html.escape(held.quarantined.error_text) in row_of(admin, held.message_identity)


def test_a_user_sees_only_their_own_mailboxes_mail(mail: ReceivedMail):
    alice = signed_in("alice", mailbox=mail.alice)
    mine = shown(alice)
    assert set(mine) == identities(Receipt.objects.filter(mailbox=mail.alice))
    assert {mailbox for rows in mine.values() for mailbox, _ in rows} == {mail.alice.email_address}
    # Asking for another user's mailbox finds nothing of theirs.
    for asked in (mail.carol.pk, mail.carol.email_address, "carol"):
        assert shown(alice, f"mailbox={asked}") == {}
    assert mail.carol.email_address not in alice.get(f"/emails/?mailbox={mail.carol.pk}").content.decode()


def test_filters_and_search(mail: ReceivedMail):
    admin = signed_in("admin", administrator=True)
    bobs = identities(Receipt.objects.filter(mailbox=mail.bob))
    assert set(shown(admin, f"mailbox={mail.bob.pk}")) == bobs
    assert set(shown(admin, f"mailbox={mail.bob.email_address.upper()}")) == bobs
    assert set(shown(admin, "mailbox=inbound-")) == identities(Receipt.objects.filter(mailbox=mail.inbound))
    assert set(shown(admin, "q=quote")) == identities(Receipt.objects.filter(subject__icontains="quote"))
    assert set(shown(admin, "q=news@example")) == identities(
        Receipt.objects.filter(sender__icontains="news@")
    )
    today = timezone.localdate()
    assert set(shown(admin, f"received_from={today}&received_until={today}")) == identities(
        Receipt.objects.all()
    )
    assert shown(admin, f"received_from={today + timedelta(days=1)}") == {}
    refused = admin.get("/emails/?received_from=yesterday&outcome=nonsense")
    assert "Enter a valid date." in refused.content.decode()
    assert "Select a valid choice." in refused.content.decode()


def test_pages_of_messages(mail: ReceivedMail, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("console.views.emails.PAGE_SIZE", 5)
    admin = signed_in("admin", administrator=True)
    total = len(identities(Receipt.objects.all()))
    pages = [shown(admin, f"page={number}") for number in range(1, (total + 4) // 5 + 1)]
    assert sum(len(page) for page in pages) == total
    assert set().union(*pages) == identities(Receipt.objects.all())


def _queries_for_emails_page(client: Client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/emails/").status_code == 200
    return len(queries)


def _receive(world: World, count: int) -> None:
    """``count`` messages, each received by alice's and bob's mailboxes, one of them tracked."""
    for _ in range(count):
        email = factories.email(direction="incoming", regarding_account=world["alice"].account)
        receipt = factories.receipt(
            mailbox=world["alice"].mailbox, outcome=ReceiptOutcome.TRACKED, email=email
        )
        factories.receipt(
            mailbox=world["bob"].mailbox,
            message_identity=receipt.message_identity,
            outcome=ReceiptOutcome.LINKED,
            email=email,
        )


def test_the_emails_page_queries_do_not_grow_with_its_rows(world: World):
    client = Client()
    client.force_login(world["admin"].login)
    _receive(world, 3)
    few = _queries_for_emails_page(client)
    _receive(world, 27)
    assert len(shown(client)) >= 30
    assert _queries_for_emails_page(client) == few


def test_the_last_seven_days_unless_the_viewer_widens_them(mail: ReceivedMail):
    admin = signed_in("admin", administrator=True)
    old = Receipt.objects.filter(mailbox=mail.bob).first()
    Receipt.objects.filter(message_identity=old.message_identity).update(
        server_received_on=timezone.now() - timedelta(days=8), created_on=timezone.now() - timedelta(days=8)
    )
    recent = identities(Receipt.objects.exclude(message_identity=old.message_identity))

    assert set(shown(admin)) == recent
    page = admin.get("/emails/").content.decode()
    assert f'value="{timezone.localdate() - timedelta(days=6)}"' in page  # the window, in the form
    assert set(shown(admin, "received_from=")) == recent | {old.message_identity}


def test_a_cleared_window_stays_cleared_on_the_next_page(mail: ReceivedMail, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("console.views.emails.PAGE_SIZE", 2)
    admin = signed_in("admin", administrator=True)
    old = Receipt.objects.filter(mailbox=mail.bob).first()
    Receipt.objects.filter(message_identity=old.message_identity).update(
        server_received_on=timezone.now() - timedelta(days=8), created_on=timezone.now() - timedelta(days=8)
    )

    page = admin.get("/emails/?received_from=").content.decode()
    following = html.unescape(re.search(r'<a href="\?([^"]*)">Next</a>', page)[1])
    assert following == "received_from=&page=2"
    total = len(identities(Receipt.objects.all()))
    pages = [shown(admin, f"received_from=&page={number}") for number in range(1, (total + 1) // 2 + 1)]
    assert set().union(*pages) == identities(Receipt.objects.all())  # the old message is on one of them


def _count_shown(client: Client, query: str) -> int:
    page = client.get(f"/emails/?{query}").content.decode()
    return int(re.search(r'<strong id="message-count">(\d+)</strong>', page)[1])


def test_the_number_of_messages_comes_with_the_page(world: World, monkeypatch: pytest.MonkeyPatch):
    """One grouping of the receipts by message a page (the number counted with its rows),
    and the same pages as Paginator.get_page: past the last or below the first, the
    last; not a number, the first."""
    monkeypatch.setattr("console.views.emails.PAGE_SIZE", 5)
    client = Client()
    client.force_login(world["admin"].login)
    _receive(world, 12)
    total = len(identities(Receipt.objects.all()))
    last = (total + 4) // 5
    pages = [shown(client, f"page={number}") for number in range(1, last + 1)]
    assert [len(page) for page in pages] == [5] * (last - 1) + [total - 5 * (last - 1)]
    assert set().union(*pages) == identities(Receipt.objects.all())
    for number in range(1, last + 1):
        assert _count_shown(client, f"page={number}") == total
    for beyond in (last + 1, 999, 0, -1):
        assert shown(client, f"page={beyond}") == pages[-1], beyond
        assert _count_shown(client, f"page={beyond}") == total
    for not_a_number in ("x", "", "1.5"):
        assert shown(client, f"page={not_a_number}") == pages[0], not_a_number
    with CaptureQueriesContext(connection) as queries:
        client.get("/emails/?page=2")
    grouping = [q["sql"] for q in queries if "GROUP BY" in q["sql"] and "message_identity" in q["sql"]]
    assert len(grouping) == 1, grouping
    assert shown(client, "q=no+such+subject") == {}
    assert _count_shown(client, "q=no+such+subject") == 0
