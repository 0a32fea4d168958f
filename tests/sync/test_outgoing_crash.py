"""Never twice, with an email claimed ahead: a real worker killed mid-run."""

from __future__ import annotations

import pytest

from crm.models import EmailActivity
from sync import outgoing
from tests.sync.test_crash_safety import after_leases_expire, send_until_killed_after_data
from tests.sync.test_engine_outgoing import api_client_for, compose, inbox

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_worker_killed_with_the_next_email_claimed_leaves_both_outcome_unknown_and_resends_neither(stack):
    alice, bob = stack.user_mailbox("alice"), stack.user_mailbox("bob")
    client = api_client_for(alice)
    first = compose(client, subject="First", to=[bob.email_address])
    second = compose(client, subject="Second", to=[bob.email_address])

    send_until_killed_after_data(alice)
    # Killed after the server took the first, the second claimed (while the server delivered) and unsent.
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == ("sending", "sending")

    with after_leases_expire():
        assert outgoing.settle_expired_claims() == 2
        outgoing.send_pending(mailbox=alice)
    statuses = EmailActivity.objects.filter(pk__in=[first.pk, second.pk]).values_list("status", flat=True)
    assert list(statuses) == ["outcome_unknown", "outcome_unknown"]  # a person settles them
    assert [stack.relay.accepted_count(e.message_id) for e in (first, second)] == [1, 0]
    assert [m["Subject"] for m in inbox(stack, bob)] == [f"First {first.tracking_token}"]
