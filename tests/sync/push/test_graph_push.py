"""Exchange Online push: Graph change notifications from the Graph test server to
the web app's webhook (a live server), with a real Celery worker."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.test import Client

from crm.models import EmailActivity
from sync import clock, listener_graph
from sync.models import MailboxSchedule, PushLease, PushMethod, PushState, SyncKind, SyncRun
from tests import messages
from tests.harness.celery_worker import celery_worker
from tests.sync.exchange_stack import GraphStack
from tests.sync.push.listening import listening, state_of, wait_until
from tests.sync.received_mail import signed_in

WEBHOOK = "/push/graph/"


@pytest.fixture
def graph(settings, graph_server, live_server) -> GraphStack:
    settings.PUSH_GRAPH_WEBHOOK_URL = f"{live_server.url}{WEBHOOK}"
    settings.PUSH_HEARTBEAT_SECONDS = 1
    return GraphStack.build(settings, graph_server)


def caught_up(mailbox_id: int) -> bool:
    return (
        SyncRun.objects.filter(mailbox_id=mailbox_id, kind=SyncKind.INCOMING).exists()
        and MailboxSchedule.objects.filter(mailbox_id=mailbox_id, lease_token__isnull=True).exists()
        and PushLease.objects.filter(mailbox_id=mailbox_id, pending_since__isnull=True).exists()
    )


def expires_in(mailbox_id: int) -> timedelta:
    expires = PushLease.objects.get(mailbox_id=mailbox_id).subscription_expires_on
    return expires - clock.now() if expires else timedelta(0)


def subscription_of(mailbox_id: int) -> str:
    return PushLease.objects.get(mailbox_id=mailbox_id).subscription_id


@pytest.mark.django_db(transaction=True)
def test_a_graph_notification_is_an_activity_in_under_two_seconds(graph: GraphStack):
    alice = graph.user_mailbox("alice")
    with celery_worker(queues="incoming"), listening():
        wait_until(lambda: state_of(alice.pk) == PushState.LIVE and caught_up(alice.pk), what="subscribed")
        delivered = time.monotonic()
        graph.deliver(alice, messages.simple(to=alice.email_address, subject="Pushed by Graph"))
        wait_until(lambda: EmailActivity.objects.filter(subject="Pushed by Graph").exists(), what="activity")
        took = time.monotonic() - delivered
    print(f"Graph delivery -> activity: {took:.2f} s")
    assert took < 2.0, f"delivery -> activity took {took:.2f} s"
    lease = PushLease.objects.get(mailbox=alice)
    subscription = graph.server.subscriptions.by_id[lease.subscription_id]
    # Within Graph's limit for messages, and the webhook took the notification.
    assert subscription.expires <= clock.now() + timedelta(minutes=4230)
    assert (lease.subscription_id, 202) in graph.server.subscriptions.sent


def test_the_webhook_answers_graph_s_validation_handshake():
    answer = Client().post(
        f"{WEBHOOK}?validationToken=Validation%3A+token+%3Cb%3E", content_type="text/plain"
    )
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/plain")
    assert answer.content.decode() == "Validation: token <b>"


@pytest.mark.django_db(transaction=True)
def test_a_notification_with_a_wrong_client_state_is_refused(graph: GraphStack):
    alice = graph.user_mailbox("alice")
    with listening():
        wait_until(lambda: state_of(alice.pk) == PushState.LIVE, what="subscribed")
    PushLease.objects.filter(mailbox=alice).update(pending_since=None)
    lease = PushLease.objects.get(mailbox=alice)
    graph.server.subscriptions.lifecycle(lease.subscription_id, "missed", client_state="not the secret")
    graph.server.subscriptions.wait_sent()
    assert (lease.subscription_id, 403) in graph.server.subscriptions.sent
    forged = {
        "value": [{"subscriptionId": lease.subscription_id, "clientState": "guess", "changeType": "created"}]
    }
    answer = Client().post(WEBHOOK, json.dumps(forged), content_type="application/json")
    assert answer.status_code == 403
    assert PushLease.objects.get(mailbox=alice).pending_since is None


@pytest.mark.django_db(transaction=True)
def test_lifecycle_events_renew_or_subscribe_again(graph: GraphStack):
    alice = graph.user_mailbox("alice")
    subscriptions = graph.server.subscriptions
    with listening():
        wait_until(lambda: state_of(alice.pk) == PushState.LIVE, what="subscribed")
        first = PushLease.objects.get(mailbox=alice)
        subscriptions.lifecycle(first.subscription_id, "reauthorizationRequired")
        wait_until(lambda: renewals(graph) == 1, what="the renewal")
        wait_until(lambda: expires_in(alice.pk) > timedelta(hours=1), what="the renewed expiry")
        assert subscription_of(alice.pk) == first.subscription_id
        subscriptions.lifecycle(first.subscription_id, "subscriptionRemoved")
        wait_until(lambda: subscription_of(alice.pk) not in ("", first.subscription_id), what="a new one")
        wait_until(lambda: state_of(alice.pk) == PushState.LIVE, what="live again")
        assert subscription_of(alice.pk) in subscriptions.by_id


def renewals(graph: GraphStack) -> int:
    return sum(1 for r in graph.server.requests if r.method == "PATCH" and "/subscriptions/" in r.path)


@pytest.mark.django_db(transaction=True)
def test_a_webhook_graph_cannot_reach_leaves_the_mailbox_polling(graph: GraphStack, settings, closed_port):
    settings.PUSH_GRAPH_WEBHOOK_URL = f"http://127.0.0.1:{closed_port}{WEBHOOK}"
    alice = graph.user_mailbox("alice")
    with listening():
        wait_until(lambda: state_of(alice.pk) == PushState.FALLBACK, what="the fallback")
    lease = PushLease.objects.get(mailbox=alice)
    assert lease.method == PushMethod.GRAPH
    page = signed_in("alice", mailbox=alice).get(f"/mailboxes/{alice.pk}/").content.decode()
    row = page[page.index('<tr id="push">') :]
    row = row[: row.index("</tr>")]
    assert "Not available: polling" in row
    assert "could not be set up" in row
    assert listener_graph.RETRY_MINUTES == 10
