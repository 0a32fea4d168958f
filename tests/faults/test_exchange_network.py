"""Networks that break in front of Exchange: the connection to the Graph test server cut
part way through a response (a delta page, a message's MIME) or stalled while mail comes
in; the connection to the Graph or EWS test server cut part way through sending (Graph's
sendMail, EWS's CreateItem with SendAndSaveCopy), in the request or in the answer.

After each, the next runs recover on their own: every message is one receipt and one
activity; every email reached its recipient's mailbox on the test server once (counted
there, by Message-ID) or is left "outcome unknown" with its alert. An email whose answer
was lost but which the server took is found in Sent Items by its Message-ID at the next
run (sync/sent_settling.py) and counted delivered once. Each fault adds its row to the
fault table (docs/reliability.md)."""

from __future__ import annotations

import email
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine

from crm.models import EmailActivity
from mailboxes.models import Mailbox
from profiles.models import EmailServerProfile
from sync import outgoing
from sync.incoming import sync_incoming
from sync.models import MailboxAlert
from tests import messages
from tests.faults.conftest import FaultRow
from tests.faults.runs import runs
from tests.faults.test_network import incoming_outcome, until_caught_up
from tests.harness.tcp_proxy import FaultyProxy
from tests.sync.exchange_stack import EwsStack, ExchangeStack, GraphStack
from tests.sync.test_engine_outgoing import api_client_for, compose

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

RUNS = 20
# A sending run costs a second or two (EWS signs in afresh each run): all twenty in
# `make reliability` (RELIABILITY_RUNS), fewer in `make test`.
SENDING_RUNS = runs(in_make_test=4)
MESSAGES = 12
EMAILS = 4


def through(exchange: ExchangeStack, proxy: FaultyProxy, url: str) -> None:
    """Both ways of the profile through the proxy; a short timeout, so a stall ends soon."""
    EmailServerProfile.objects.filter(pk=exchange.profile.pk).update(
        incoming_server_location=url, outgoing_server_location=url, connection_timeout_seconds=3
    )


@pytest.fixture
def graph_proxied(settings: Any, graph_server: Any) -> Iterator[tuple[GraphStack, FaultyProxy]]:
    exchange = GraphStack.build(settings, graph_server)
    proxy = FaultyProxy("127.0.0.1", graph_server.port)
    url = f"https://{proxy.host}:{proxy.port}"
    # Tokens are still asked of the server itself (the profile's authority); the resource
    # they are for is named by the URL the profile reaches Graph at: the proxy's.
    graph_server.also_reached_at(url)
    through(exchange, proxy, url)
    yield exchange, proxy
    proxy.close()


@pytest.fixture
def ews_proxied(settings: Any, ews_server: Any) -> Iterator[tuple[EwsStack, FaultyProxy]]:
    exchange = EwsStack.build(settings, ews_server)
    proxy = FaultyProxy(ews_server.host, ews_server.port)
    through(exchange, proxy, ews_server.url.replace(f":{ews_server.port}/", f":{proxy.port}/"))
    yield exchange, proxy
    proxy.close()


# -- incoming ---------------------------------------------------------------------------


def deliver_some(exchange: ExchangeStack, mailbox: Mailbox, prefix: str) -> list[str]:
    subjects = [f"{prefix} message {n:02d}" for n in range(MESSAGES)]
    for subject in subjects:
        exchange.deliver(mailbox, messages.simple(to=mailbox.email_address, subject=subject, body="z" * 2000))
    return subjects


def bytes_each_way(proxy: FaultyProxy, action: Callable[[], object]) -> dict[str, int]:
    """What ``action`` moved through the proxy each way, with no fault."""
    before = dict(proxy.passed)
    action()
    return {way: proxy.passed[way] - before[way] for way in before}


def nth_of(total: int, run: int, runs: int) -> int:
    """The cut of run ``run`` of ``runs``: evenly from the start to the end of ``total`` bytes."""
    return max(1, total * (run + 1) // (runs + 1))


def test_graph_cut_anywhere_in_a_response_loses_and_doubles_nothing(graph_proxied, fault_table):
    exchange, proxy = graph_proxied
    row = fault_table("Graph connection cut part way (a delta page, a message's MIME)")
    clean = exchange.user_mailbox("graphclean")
    deliver_some(exchange, clean, "Clean")
    span = bytes_each_way(proxy, lambda: until_caught_up(clean, time.monotonic(), tries=1))["downstream"]
    for run in range(RUNS):
        mailbox = exchange.user_mailbox(f"graphcut{run}")
        subjects = deliver_some(exchange, mailbox, f"Graph cut {run}")
        # From the TLS handshake to the last message's MIME, a different byte each run.
        proxy.cut_after(downstream=nth_of(span, run, RUNS))
        started = time.monotonic()
        sync_incoming(mailbox=mailbox)
        recovered_in = until_caught_up(mailbox, started)
        lost, doubled = incoming_outcome(mailbox, subjects)
        row.add(messages=MESSAGES, lost=lost, doubled=doubled, recovered_in=recovered_in)
        assert (lost, doubled) == (0, 0), run
    assert proxy.cuts == RUNS


def test_graph_stalled_mid_run_times_out_and_a_next_run_finishes(graph_proxied, fault_table):
    exchange, proxy = graph_proxied
    row = fault_table("Graph connection stalled (nothing moves; the client's timeout)")
    for run in range(3):
        mailbox = exchange.user_mailbox(f"graphstall{run}")
        subjects = deliver_some(exchange, mailbox, f"Graph stall {run}")
        proxy.stall()
        started = time.monotonic()
        sync_incoming(mailbox=mailbox)
        recovered_in = until_caught_up(mailbox, started)
        lost, doubled = incoming_outcome(mailbox, subjects)
        row.add(messages=MESSAGES, lost=lost, doubled=doubled, recovered_in=recovered_in)
        assert (lost, doubled) == (0, 0), run
    assert proxy.connections >= 3


# -- outgoing ---------------------------------------------------------------------------


def copies_delivered(exchange: ExchangeStack, recipient: Mailbox) -> Counter[str]:
    """The recipient's mailbox on the test server, by Message-ID (without ``<>``)."""
    return Counter(
        str(email.message_from_bytes(raw)["Message-ID"]).strip(" <>") for raw in exchange.inbox(recipient)
    )


def send_through_a_cut(
    exchange: ExchangeStack, row: FaultRow, run: int, recipient: Mailbox, cut: Callable[[], None]
) -> None:
    """Emails sent with the connection cut once (``cut`` arms the proxy), then the runs that
    follow, later (the retries' backoff); each email delivered once or "outcome unknown"."""
    sender = exchange.user_mailbox(f"sender{run}")
    client = api_client_for(sender)
    emails = [
        compose(
            client, subject=f"Run {run} email {n}", body_text="Hello\n" * 200, to=[recipient.email_address]
        )
        for n in range(EMAILS)
    ]
    cut()
    started = time.monotonic()
    # Each run hours after the last, its retries two hours later (their backoff): the clock
    # only moves on, so a Graph token from a run is never used before it was issued.
    with time_machine.travel(datetime.now(UTC) + timedelta(hours=3 * run), tick=True):
        outgoing.send_pending(mailbox=sender)
    with time_machine.travel(datetime.now(UTC) + timedelta(hours=3 * run + 2), tick=True):
        outgoing.send_pending(mailbox=sender)  # settles from Sent Items, then sends what waits
        outgoing.send_pending(mailbox=sender)
    recovered_in = time.monotonic() - started
    delivered = copies_delivered(exchange, recipient)
    sent = [EmailActivity.objects.get(pk=e.pk) for e in emails]
    unknown = [e.status == EmailActivity.Status.OUTCOME_UNKNOWN for e in sent]
    copies = [delivered[e.message_id.strip("<>")] for e in sent]
    lost = sum(1 for n in range(EMAILS) if not unknown[n] and copies[n] == 0)
    doubled = sum(max(n - 1, 0) for n in copies)
    row.add(messages=EMAILS, lost=lost, doubled=doubled, recovered_in=recovered_in, unknown=sum(unknown))
    statuses = [e.status for e in sent]
    assert (lost, doubled) == (0, 0), (run, statuses, copies)
    assert all(e.status == EmailActivity.Status.SENT for e, u in zip(sent, unknown, strict=True) if not u)
    if any(unknown):
        assert MailboxAlert.objects.filter(
            mailbox=sender, code="outcome_unknown", resolved_on__isnull=True
        ).exists()


def sending_cuts(
    exchange: ExchangeStack, proxy: FaultyProxy, recipient: Mailbox, runs: int
) -> Callable[[int], Callable[[], None]]:
    """Run ``n``'s cut: even runs in what the client sends (a request part way), odd runs in
    what the server answers (after it may have taken the email); spread evenly over the bytes
    a clean send of as many emails moves each way (measured first, twice: the second resumes
    the TLS session, as the runs do, and moves fewer bytes)."""
    spans = []
    for clean in range(2):
        sender = exchange.user_mailbox(f"cleansender{clean}")
        client = api_client_for(sender)
        for n in range(EMAILS):
            compose(client, subject=f"Clean {n}", body_text="Hello\n" * 200, to=[recipient.email_address])
        spans.append(bytes_each_way(proxy, lambda sender=sender: outgoing.send_pending(mailbox=sender)))
    span = {way: min(s[way] for s in spans) for way in spans[0]}
    half = runs // 2

    def cut(run: int) -> Callable[[], None]:
        if run % 2 == 0:
            return lambda: proxy.cut_after(upstream=nth_of(span["upstream"], run // 2, half))
        return lambda: proxy.cut_after(downstream=nth_of(span["downstream"], run // 2, half))

    return cut


def test_graph_cut_mid_send_mail_sends_each_email_once_or_says_outcome_unknown(graph_proxied, fault_table):
    exchange, proxy = graph_proxied
    row = fault_table("Graph connection cut part way through sendMail (request or answer)")
    bob = exchange.user_mailbox("bob")
    cut = sending_cuts(exchange, proxy, bob, SENDING_RUNS)
    for run in range(SENDING_RUNS):
        send_through_a_cut(exchange, row, run, bob, cut(run))
        # A request cut in its headers reaches the server without its body: the only bad ones.
        truncated = exchange.server.take_violations()
        assert all("the body is not a MIME message" in v for v in truncated), truncated
    assert proxy.cuts == SENDING_RUNS


def test_ews_cut_mid_create_item_sends_each_email_once_or_says_outcome_unknown(ews_proxied, fault_table):
    exchange, proxy = ews_proxied
    row = fault_table("EWS connection cut part way through CreateItem / SendAndSaveCopy (request or answer)")
    bob = exchange.user_mailbox("bob")
    cut = sending_cuts(exchange, proxy, bob, SENDING_RUNS)
    for run in range(SENDING_RUNS):
        send_through_a_cut(exchange, row, run, bob, cut(run))
        # A request cut in its headers reaches the server without its body: the only bad ones.
        truncated = exchange.server.take_request_violations()
        assert all("not well-formed XML" in v for v in truncated), truncated
    assert proxy.cuts == SENDING_RUNS


def test_an_ews_send_whose_answer_is_cut_in_its_body_is_never_sent_twice(ews_proxied):
    """The answer to CreateItem (SendAndSaveCopy) cut in its last bytes: the server took the
    email, the client read part of its answer. Not "the server is busy" (sent again later:
    twice), but outcome unknown, settled from Sent Items at the next run."""
    exchange, proxy = ews_proxied
    bob = exchange.user_mailbox("bob")

    def one_email(name: str) -> tuple[Mailbox, EmailActivity]:
        sender = exchange.user_mailbox(name)
        return sender, compose(
            api_client_for(sender), subject=name, body_text="Hello\n" * 200, to=[bob.email_address]
        )

    clean, _ = one_email("clean")
    span = bytes_each_way(proxy, lambda: outgoing.send_pending(mailbox=clean))["downstream"]
    sender, message = one_email("cut")
    proxy.cut_after(downstream=span - 16)  # the CreateItem answer comes last
    outgoing.send_pending(mailbox=sender)
    message.refresh_from_db()
    assert message.status == EmailActivity.Status.OUTCOME_UNKNOWN
    with time_machine.travel(datetime.now(UTC) + timedelta(hours=2), tick=True):
        outgoing.send_pending(mailbox=sender)
    message.refresh_from_db()
    assert message.status == EmailActivity.Status.SENT
    assert copies_delivered(exchange, bob)[message.message_id.strip("<>")] == 1
    assert proxy.cuts == 1
