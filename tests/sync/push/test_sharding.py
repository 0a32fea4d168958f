"""Listeners share the mailboxes through the database; a dead one's move on."""

from __future__ import annotations

import signal
from collections import Counter
from datetime import timedelta

import pytest
import time_machine

from sync import clock, listener_shares
from sync.models import PushLease, PushListener
from tests.sync.push.listening import ListenerProcess, all_live_with, owners, wait_until

QUICK = {"PUSH_LEASE_SECONDS": "5", "PUSH_HEARTBEAT_SECONDS": "1"}


def shares(mailbox_ids: list[int]) -> Counter[str]:
    return Counter(PushLease.objects.filter(mailbox_id__in=mailbox_ids).values_list("owner", flat=True))


@pytest.mark.django_db(transaction=True)
def test_a_killed_listener_s_mailboxes_move_to_another_within_a_minute(stack):
    boxes = [stack.user_mailbox(f"user{n}").pk for n in range(4)]
    first = ListenerProcess(name="listen-a", env=QUICK).start()
    second = None
    try:
        wait_until(lambda: all_live_with(first.owner, boxes), what="the first listener idling on all")
        second = ListenerProcess(name="listen-b", env=QUICK).start()
        # It joins: the first gives it half, and each holds IDLE on its share.
        wait_until(lambda: shares(boxes) == {first.owner: 2, second.owner: 2}, what="the shares")
        first.kill(signal.SIGKILL)
        took = wait_until(lambda: all_live_with(second.owner, boxes), timeout=60, what="the takeover")
        print(f"takeover after SIGKILL: {took:.1f} s")
    finally:
        first.kill()
        if second is not None:
            second.kill()
    assert took < 60


@pytest.mark.django_db
def test_listeners_take_fair_shares(stack):
    boxes = [stack.user_mailbox(f"user{n}").pk for n in range(5)]
    a = listener_shares.beat("listener-a", capacity=100)
    assert len(a) == 5  # alone
    b = listener_shares.beat("listener-b", capacity=100)
    assert b == []  # nothing free yet; its presence makes the first one's share 3
    a = listener_shares.beat("listener-a", capacity=100)
    b = listener_shares.beat("listener-b", capacity=100)
    assert (len(a), len(b)) == (3, 2)
    assert owners(boxes) == {"listener-a", "listener-b"}
    # A listener that stops lets go at once; the other takes all at its next beat.
    listener_shares.leave("listener-b")
    assert len(listener_shares.beat("listener-a", capacity=100)) == 5
    assert PushLease.objects.filter(owner="").count() == 0
    # A listener holds at most its capacity (PUSH_MAX_CONNECTIONS).
    assert len(listener_shares.beat("listener-a", capacity=4)) == 4
    assert PushLease.objects.filter(owner="").count() == 1


@pytest.mark.django_db
def test_a_dead_listener_s_leases_left_far_ahead_by_a_clock_set_back_lapse_one_lease_length_later(
    stack, settings
):
    settings.PUSH_LEASE_SECONDS = 40
    alice = stack.user_mailbox("alice")
    listener_shares.beat("listener-dead", capacity=10)
    # The clock went back a day after the dead listener's last beat.
    day = timedelta(days=1)
    PushLease.objects.filter(owner="listener-dead").update(expires_on=clock.now() + day)
    PushListener.objects.filter(owner="listener-dead").update(expires_on=clock.now() + day)

    listener_shares.beat("listener-b", capacity=10)
    with time_machine.travel(clock.now() + timedelta(seconds=41), tick=False):
        held = listener_shares.beat("listener-b", capacity=10)

    assert alice.pk in {lease.mailbox_id for lease in held}
