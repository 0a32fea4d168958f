"""/health/ and /health/status/ against the real parts: PostgreSQL, Redis (or the
filesystem broker of `make run`) and a real Celery worker's heartbeat.

The checks run in threads with connections of their own, so these tests commit
what they write (transactional tests)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
import time_machine
from django.conf import settings
from django.db import connection
from django.test import Client

from config.celery import app
from mailboxes.models import ApprovalStatus, Mailbox
from sync import heartbeats, rollups
from sync.models import AlertLevel
from tests import factories
from tests.harness.celery_worker import celery_worker, flush_broker

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "status-token-for-the-tests-0123456789"


def get_health(client: Client | None = None):
    response = (client or Client()).get("/health/")
    return response.status_code, response.content.decode()


def fresh_heartbeat(hostname: str = "worker-1@test", queues: str = "default,incoming") -> None:
    heartbeats.beat(hostname=hostname, queues=queues, pid=4242)


def old_heartbeat(hostname: str, age: timedelta) -> None:
    with time_machine.travel(datetime.now(UTC) - age, tick=False):
        heartbeats.beat(hostname=hostname, queues="default")


# -- /health/ ----------------------------------------------------------------------------


def test_all_checks_pass_while_a_real_worker_runs_and_the_workers_check_fails_once_it_stops():
    with celery_worker(queues="default,incoming") as worker:
        assert get_health() == (200, "ok\n")

        worker.stop()

        assert get_health() == (503, "failing: workers\n")


def test_without_any_heartbeat_only_the_workers_check_fails():
    status, body = get_health()

    assert (status, body) == (503, "failing: workers\n")


def test_a_failing_probe_is_a_warning_in_the_log_not_a_django_request_error(caplog):
    with caplog.at_level("INFO"):
        assert get_health()[0] == 503
        assert Client().get("/health/status/").status_code == 404  # other pages are logged as before

    request_log = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "django.request"]
    assert request_log == [("WARNING", "Not Found: /health/status/")]


def test_a_heartbeat_older_than_three_intervals_is_stale(settings):
    settings.SYNC_HEARTBEAT_SECONDS = 10
    old_heartbeat("old@test", timedelta(seconds=31))
    assert get_health() == (503, "failing: workers\n")

    old_heartbeat("recent@test", timedelta(seconds=25))
    assert get_health() == (200, "ok\n")


def test_a_fresh_heartbeat_goes_stale_when_the_clock_moves_on(settings):
    settings.SYNC_HEARTBEAT_SECONDS = 30
    fresh_heartbeat()
    assert get_health() == (200, "ok\n")

    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=91), tick=True):
        assert get_health() == (503, "failing: workers\n")


def test_a_broker_that_refuses_connections_fails_the_broker_check_and_says_nothing_more(
    settings, closed_port: int
):
    fresh_heartbeat()
    settings.CELERY_BROKER_URL = f"redis://:secret-password@127.0.0.1:{closed_port}/0"

    status, body = get_health()

    assert (status, body) == (503, "failing: broker\n")
    assert str(closed_port) not in body


def test_a_broker_url_kombu_cannot_use_fails_the_check_instead_of_the_request(settings):
    fresh_heartbeat()
    settings.CELERY_BROKER_URL = "no-such-transport://localhost//"

    assert get_health() == (503, "failing: broker\n")


def test_the_filesystem_broker_of_make_run_passes_while_its_folder_exists(settings, tmp_path):
    fresh_heartbeat()
    queue = tmp_path / "queue"
    settings.CELERY_BROKER_URL = "filesystem://localhost//"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(queue),
        "data_folder_out": str(queue),
        "processed_folder": str(tmp_path / "processed"),
        "store_processed": False,
    }
    assert get_health() == (503, "failing: broker\n")  # the folder is not there

    queue.mkdir()

    assert get_health() == (200, "ok\n")


def test_health_is_public_uncached_and_answers_head():
    fresh_heartbeat()

    response = Client().head("/health/")

    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]
    assert Client().post("/health/").status_code == 405


# -- /health/status/: who may read it ---------------------------------------------------


def status_as(*, token: str | None = None, login=None):
    client = Client()
    if login is not None:
        client.force_login(login)
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return client.get("/health/status/", headers=headers)


def test_the_right_token_reads_the_status(settings):
    settings.SERVERSYNC_STATUS_TOKEN = TOKEN

    response = status_as(token=TOKEN)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


@pytest.mark.parametrize("offered", [None, "wrong-token", TOKEN[:-1], TOKEN + "x", ""])
def test_a_wrong_or_missing_token_is_refused_with_a_bearer_challenge(settings, offered):
    settings.SERVERSYNC_STATUS_TOKEN = TOKEN

    response = status_as(token=offered)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"mailboxes" not in response.content


def test_without_a_configured_token_any_token_gets_404(settings):
    settings.SERVERSYNC_STATUS_TOKEN = ""

    assert status_as(token=TOKEN).status_code == 404
    assert status_as(token="").status_code == 404


def test_an_administrators_session_reads_the_status_and_a_users_does_not(settings):
    admin = factories.login_user("admin", administrator=True)
    alice = factories.login_user("alice")
    factories.crm_user("Alice Example", login=alice)

    settings.SERVERSYNC_STATUS_TOKEN = ""
    assert status_as(login=admin).status_code == 200
    assert status_as(login=alice).status_code == 404

    settings.SERVERSYNC_STATUS_TOKEN = TOKEN
    assert status_as(login=admin).status_code == 200
    assert status_as(login=alice).status_code == 401
    # A token offered must be right, even from an administrator's browser.
    assert status_as(login=admin, token="wrong-token").status_code == 401


# -- /health/status/: what it says --------------------------------------------------------


def sql(query: str, params: list | None = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(query, params or [])
        return cursor.fetchall()


def expected_mailboxes(now: datetime) -> dict:
    counts = {"total": sql("SELECT count(*) FROM mailboxes_mailbox")[0][0]}
    for direction in ("incoming", "outgoing", "act"):
        rows = dict(sql(f"SELECT {direction}_status, count(*) FROM mailboxes_mailbox GROUP BY 1"))  # noqa: S608
        counts[direction] = {status: rows.get(status, 0) for status in ("not_run", "success", "failure")}
    counts["disabled"] = sql("SELECT count(*) FROM mailboxes_mailbox WHERE disabled_reason <> ''")[0][0]
    counts["in_backoff"] = sql(
        "SELECT count(*) FROM mailboxes_mailbox WHERE incoming_postponed_until > %s"
        " OR outgoing_postponed_until > %s OR act_postponed_until > %s",
        [now, now, now],
    )[0][0]
    counts["pending_approval"] = sql(
        "SELECT count(*) FROM mailboxes_mailbox WHERE approval_status = 'pending_approval'"
    )[0][0]
    return counts


def seed_organization(now: datetime) -> list[Mailbox]:
    profile = factories.profile("Status IMAP")
    mailboxes = [
        factories.mailbox(user=factories.crm_user(), profile=profile, email_address=f"user{n}@example.test")
        for n in range(6)
    ]
    ids = [m.pk for m in mailboxes]
    Mailbox.objects.filter(pk__in=ids[:3]).update(incoming_status="success", outgoing_status="success")
    Mailbox.objects.filter(pk=ids[3]).update(
        incoming_status="failure", incoming_enabled=False, disabled_reason="Authentication failed."
    )
    Mailbox.objects.filter(pk=ids[4]).update(
        outgoing_status="failure", act_status="failure", outgoing_postponed_until=now + timedelta(minutes=5)
    )
    Mailbox.objects.filter(pk=ids[5]).update(
        approval_status=ApprovalStatus.PENDING_APPROVAL, incoming_postponed_until=now - timedelta(minutes=1)
    )
    for level in (AlertLevel.ERROR, AlertLevel.ERROR, AlertLevel.WARNING):
        factories.alert(mailbox=mailboxes[3], level=level)
    factories.alert(mailbox=mailboxes[4], level=AlertLevel.INFORMATION, resolved_on=now)
    last_hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    for offset, mailbox in ((0, mailboxes[0]), (0, mailboxes[1]), (1, mailboxes[0]), (-1, mailboxes[0])):
        started = last_hour + timedelta(hours=offset, minutes=10)
        factories.sync_run(mailbox=mailbox, started_on=started, received=30 + offset, tracked=20)
        factories.sync_run(mailbox=mailbox, kind="outgoing", started_on=started, sent=5, failed=2)
        factories.sync_run(mailbox=mailbox, started_on=started, outcome="failed")
    for offset in (-1, 0, 1):
        rollups.rollup_hour(hour=last_hour + timedelta(hours=offset))
    return mailboxes


@pytest.fixture
def mid_hour() -> Iterator[datetime]:
    """The clock held in the middle of an hour, so "the last complete hour" cannot turn during a test."""
    now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
    with time_machine.travel(now, tick=True):
        yield now


@pytest.fixture
def broker_queues() -> Iterator[redis.Redis]:
    flush_broker()
    yield redis.Redis.from_url(settings.CELERY_BROKER_URL)
    flush_broker()


def test_the_status_numbers_match_the_databases_and_redis_own_counts(
    settings, mid_hour: datetime, broker_queues: redis.Redis
):
    settings.SERVERSYNC_STATUS_TOKEN = TOKEN
    seed_organization(mid_hour)
    fresh_heartbeat("worker-a@test", "default,incoming")
    old_heartbeat("worker-gone@test", timedelta(hours=2))
    for queue, waiting in (("incoming", 3), ("outgoing", 1)):
        for _ in range(waiting):
            app.send_task("sync.tasks.ping", queue=queue)

    report = status_as(token=TOKEN).json()

    assert report["healthy"] is True
    assert report["checks"] == {"database": True, "broker": True, "workers": True}
    assert report["mailboxes"] == expected_mailboxes(mid_hour)
    open_alerts = dict(
        sql("SELECT level, count(*) FROM sync_mailboxalert WHERE resolved_on IS NULL GROUP BY 1")
    )
    assert report["alerts"] == {
        level: open_alerts.get(level, 0) for level in ("information", "warning", "error")
    }
    assert [(w["hostname"], w["queues"]) for w in report["workers"]] == [
        ("worker-a@test", ["default", "incoming"])
    ]
    prefix = settings.REDIS_KEY_PREFIX
    assert report["queues"] == {
        queue: broker_queues.llen(f"{prefix}{queue}") for queue in ("default", "incoming", "outgoing", "act")
    }
    assert report["queues"]["incoming"] == 3
    last_hour = mid_hour.replace(minute=0) - timedelta(hours=1)
    sums = sql(
        "SELECT count(*), count(*) FILTER (WHERE outcome = 'failed'), sum(received), sum(tracked), sum(sent),"
        " sum(failed) FROM sync_syncrun WHERE started_on >= %s AND started_on < %s",
        [last_hour, last_hour + timedelta(hours=1)],
    )[0]
    assert report["last_hour"] == {
        "hour": last_hour.isoformat(),
        **dict(zip(("runs", "failed_runs", "received", "tracked", "sent", "failed"), sums, strict=True)),
    }


def test_the_status_reports_failing_checks_with_a_200_and_no_queue_depths(settings, closed_port: int):
    settings.SERVERSYNC_STATUS_TOKEN = TOKEN
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port}/0"

    response = status_as(token=TOKEN)

    assert response.status_code == 200
    report = response.json()
    assert report["healthy"] is False
    assert report["checks"] == {"database": True, "broker": False, "workers": False}
    assert report["queues"] is None
    assert report["workers"] == []
    assert report["mailboxes"]["total"] == 0
    assert "secret" not in response.content.decode()
