"""Nothing lost, nothing doubled on Exchange: real workers killed mid-way, through the real
clients against the Graph and EWS test servers."""

from __future__ import annotations

import pytest

from sync import outgoing
from tests.sync.exchange_stack import ExchangeStack
from tests.sync.test_crash_safety import (
    after_leases_expire,
    kill_mid_run_then_finish,
    send_until_killed_after_data,
)
from tests.sync.test_engine_outgoing import api_client_for, compose

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
MESSAGES = 60
KILL_AFTER = 10


def test_a_worker_killed_mid_sync_loses_nothing_and_doubles_nothing(exchange: ExchangeStack):
    alice = exchange.user_mailbox("alice")
    kill_mid_run_then_finish(alice, exchange.deliver, count=MESSAGES, kill_after=KILL_AFTER)


def test_a_worker_killed_right_after_the_server_took_the_email_sends_it_once_and_settles_it(
    exchange: ExchangeStack,
):
    alice, bob = exchange.user_mailbox("alice"), exchange.user_mailbox("bob")
    message = compose(api_client_for(alice), subject="Exactly once", to=[bob.email_address])

    send_until_killed_after_data(alice)
    message.refresh_from_db()
    assert message.status == "sending"

    with after_leases_expire():
        assert outgoing.settle_expired_claims() == 1
        message.refresh_from_db()
        assert message.status == "outcome_unknown"
        # The next run finds it in Sent Items: sent, and never sent again.
        outgoing.send_pending(mailbox=alice)
    message.refresh_from_db()
    assert message.status == "sent"
    assert len(exchange.inbox(bob)) == 1
    assert len(exchange.sent_items(alice)) == 1
