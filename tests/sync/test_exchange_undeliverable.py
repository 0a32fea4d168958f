"""An Exchange profile's "Move failed emails to Undeliverable folder": the engine on the Graph and
EWS test servers moves the messages it quarantined out of the Inbox, keeps them in serversync,
and says so on their receipts; a move the server refuses is a Warning, never the run's failure."""

from __future__ import annotations

from email.parser import BytesHeaderParser

import pytest

from mailboxes.models import Mailbox
from profiles.models import EmailServerProfile
from sync.incoming import sync_incoming
from sync.models import MailboxAlert, QuarantinedMessage, Receipt, ReceiptOutcome
from sync.undeliverable import UNDELIVERABLE_ALERTS
from tests import messages
from tests.sync.exchange_stack import EwsStack, ExchangeStack, GraphStack
from tests.sync.received_mail import signed_in

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

# Header fields a message may have here: the broken one has more, and is quarantined.
MAX_HEADERS = 40


@pytest.fixture(autouse=True)
def _few_headers(settings) -> None:
    settings.SYNC_MAX_HEADER_COUNT = MAX_HEADERS


def moving(exchange: ExchangeStack, *, on: bool = True) -> None:
    EmailServerProfile.objects.filter(pk=exchange.profile.pk).update(move_failed_email_to_undeliverable=on)
    exchange.profile.refresh_from_db()


def broken(mailbox: Mailbox) -> bytes:
    """A message no real mailer writes (too many header fields): processing fails, it is quarantined."""
    filler = {f"X-Filler-{n}": "yes" for n in range(MAX_HEADERS * 2)}
    return messages.simple(to=mailbox.email_address, subject="Broken", headers=filler)


def undeliverable(exchange: ExchangeStack, mailbox: Mailbox) -> list[bytes] | None:
    """The messages of the Undeliverable folder beside the Inbox; None while there is none."""
    if isinstance(exchange, GraphStack):
        box = exchange.server.mailbox(mailbox.email_address)
        with exchange.server.lock:
            found = [f for f in box.children(box.root.id) if f.display_name == "Undeliverable"]
            return [m.raw for m in box.in_folder(found[0].id)] if found else None
    assert isinstance(exchange, EwsStack)
    return exchange.server.top_folder_messages(mailbox.email_address, "Undeliverable")


def subjects(raws: list[bytes] | None) -> list[str]:
    assert raws is not None
    return [str(BytesHeaderParser().parsebytes(raw)["Subject"]) for raw in raws]


def test_a_message_that_failed_leaves_the_inbox_and_stays_in_serversync(exchange: ExchangeStack):
    moving(exchange)
    alice = exchange.user_mailbox("alice")
    exchange.deliver(alice, broken(alice))
    exchange.deliver(alice, messages.simple(to=alice.email_address, subject="Fine"))

    run = sync_incoming(mailbox=alice)

    assert (run.outcome, run.tracked, run.quarantined) == ("success", 1, 1), run.error_text
    assert subjects(undeliverable(exchange, alice)) == ["Broken"]
    assert subjects(exchange.inbox(alice)) == ["Fine"]
    held = QuarantinedMessage.objects.get(mailbox=alice)
    assert held.error_code == "too_many_headers"
    with held.raw.open("rb") as stored:
        assert b"Subject: Broken" in stored.read()  # downloadable, reprocessable
    failed = Receipt.objects.get(mailbox=alice, outcome=ReceiptOutcome.QUARANTINED)
    # Where it was found, and where it went.
    assert (failed.folder, failed.server_id, failed.moved_to) == ("INBOX", held.server_id, "Undeliverable")
    tracked = Receipt.objects.get(mailbox=alice, outcome=ReceiptOutcome.TRACKED)
    assert tracked.moved_to == ""
    assert not MailboxAlert.objects.filter(mailbox=alice).exists()
    # The mailbox page says where the failed message went.
    page = signed_in("admin", administrator=True).get(f"/mailboxes/{alice.pk}/").content.decode()
    row = page.split(f'data-quarantined="{held.pk}"', 1)[1].split("</tr>", 1)[0]
    assert '<span class="moved-to">moved to Undeliverable</span>' in row

    again = sync_incoming(mailbox=alice)

    assert (again.outcome, again.received) == ("success", 0), again.error_text
    assert Receipt.objects.filter(mailbox=alice).count() == 2
    assert QuarantinedMessage.objects.filter(mailbox=alice).count() == 1
    assert subjects(undeliverable(exchange, alice)) == ["Broken"]


def test_with_the_option_off_nothing_moves(exchange: ExchangeStack):
    moving(exchange, on=False)
    alice = exchange.user_mailbox("alice")
    exchange.deliver(alice, broken(alice))
    exchange.deliver(alice, messages.simple(to=alice.email_address, subject="Fine"))

    run = sync_incoming(mailbox=alice)

    assert (run.outcome, run.quarantined) == ("success", 1), run.error_text
    assert undeliverable(exchange, alice) is None
    assert sorted(subjects(exchange.inbox(alice))) == ["Broken", "Fine"]
    assert Receipt.objects.get(mailbox=alice, outcome=ReceiptOutcome.QUARANTINED).moved_to == ""


def test_deleting_processed_mail_too_sends_the_failed_one_to_undeliverable(exchange: ExchangeStack):
    moving(exchange)
    alice = exchange.user_mailbox("alice")
    Mailbox.objects.filter(pk=alice.pk).update(delete_email_after_processing=True)
    alice.refresh_from_db()
    exchange.deliver(alice, broken(alice))
    exchange.deliver(alice, messages.simple(to=alice.email_address, subject="Fine"))

    run = sync_incoming(mailbox=alice)

    assert run.outcome == "success", run.error_text
    assert exchange.inbox(alice) == []
    assert subjects(undeliverable(exchange, alice)) == ["Broken"]


@pytest.fixture(params=["graph", "ews"])
def refusing(request, settings) -> tuple[ExchangeStack, Mailbox]:
    """A mailbox whose server lets serversync read it but not move its mail: Graph, an app
    registration granted Mail.Read only; EWS, an account with read-only rights."""
    settings.SYNC_MAX_HEADER_COUNT = MAX_HEADERS
    stack: ExchangeStack
    if request.param == "graph":
        stack = GraphStack.build(
            settings, request.getfixturevalue("graph_server"), ("Mail.Read", "Mail.Send")
        )
        moving(stack)
        return stack, stack.user_mailbox("alice")
    ews = EwsStack.build(settings, request.getfixturevalue("ews_server"))
    moving(ews)
    alice = ews.user_mailbox("alice")
    ews.server.make_read_only(alice.email_address)
    return ews, alice


def test_a_move_the_server_refuses_is_a_warning_and_the_run_succeeds(refusing):
    exchange, alice = refusing
    exchange.deliver(alice, broken(alice))
    exchange.deliver(alice, messages.simple(to=alice.email_address, subject="Fine"))

    run = sync_incoming(mailbox=alice)

    assert (run.outcome, run.tracked, run.quarantined) == ("success", 1, 1), run.error_text
    assert sorted(subjects(exchange.inbox(alice))) == ["Broken", "Fine"]
    alert = MailboxAlert.objects.get(mailbox=alice, category=UNDELIVERABLE_ALERTS, resolved_on=None)
    assert alert.level == "warning"
    assert "stay in INBOX" in alert.message
    assert QuarantinedMessage.objects.filter(mailbox=alice).count() == 1
    assert Receipt.objects.get(mailbox=alice, outcome=ReceiptOutcome.QUARANTINED).moved_to == ""
    alice.refresh_from_db()
    assert alice.incoming_enabled  # the mailbox goes on
