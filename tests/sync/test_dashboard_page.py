"""The dashboard (/): every number is checked against the test's own SQL, never
against the dashboard's code; the roll-ups come from real sync runs against the
test mail stack; workers are real Celery subprocesses."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crm.choices import SyncStatus
from mailboxes.models import ApprovalStatus, Mailbox
from mailboxes.services import mailbox_set_approval
from profiles.models import EmailServerProfile
from sync import rollups
from sync.checks import mailbox_test_and_enable
from sync.incoming import sync_incoming
from sync.rollups import LATENCY_BOUNDS
from tests import factories, messages
from tests.harness.celery_worker import celery_worker
from tests.sync.stack import Stack

pytestmark = pytest.mark.django_db


def client_for(login) -> Client:
    client = Client()
    client.force_login(login)
    return client


def sql_count(where: str, params: list | None = None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM mailboxes_mailbox WHERE {where}", params or [])  # noqa: S608
        return cursor.fetchone()[0]


def linked_count(body: str, label: str) -> tuple[int, str]:
    """The number a tile shows under ``label`` and where it links."""
    match = re.search(
        rf'<a [^>]*href="([^"]+)"[^>]*aria-label="{re.escape(label)}"[^>]*>(?:<strong>)?(\d+)', body
    )
    assert match, f"no tile {label!r}"
    return int(match.group(2)), match.group(1).replace("&amp;", "&")


@pytest.fixture
def spread(world):
    """Mailboxes in every state a dashboard tile counts."""
    profile = world.profile
    now = timezone.now()
    for index, (incoming, outgoing, act) in enumerate(
        [
            (SyncStatus.FAILURE, SyncStatus.SUCCESS, SyncStatus.NOT_RUN),
            (SyncStatus.FAILURE, SyncStatus.FAILURE, SyncStatus.NOT_RUN),
            (SyncStatus.SUCCESS, SyncStatus.SUCCESS, SyncStatus.SUCCESS),
            (SyncStatus.SUCCESS, SyncStatus.NOT_RUN, SyncStatus.FAILURE),
        ]
    ):
        mailbox = factories.mailbox(user=factories.crm_user(f"Spread{index} User"), profile=profile)
        Mailbox.objects.filter(pk=mailbox.pk).update(
            incoming_status=incoming, outgoing_status=outgoing, act_status=act
        )
    first, second = Mailbox.objects.filter(incoming_status=SyncStatus.FAILURE)[:2]
    Mailbox.objects.filter(pk=first.pk).update(disabled_reason="The password was rejected.")
    Mailbox.objects.filter(pk=second.pk).update(
        disabled_reason="The password was rejected.", outgoing_postponed_until=now + timedelta(minutes=5)
    )
    Mailbox.objects.filter(pk=world["bob"].mailbox.pk).update(approval_status=ApprovalStatus.PENDING_APPROVAL)
    return world


def test_each_mailbox_count_matches_the_database_and_links_to_that_filtered_list(spread):
    client = client_for(spread["admin"].login)
    body = client.get("/").content.decode()
    cases = []
    for direction, label in (
        ("incoming", "Incoming email"),
        ("outgoing", "Outgoing email"),
        ("act", "Appointments, contacts, and tasks"),
    ):
        for status in SyncStatus:
            cases.append((f"{label}: {status.label}", f"{direction}_status = %s", [status.value]))
    cases += [
        ("Disabled", "disabled_reason <> ''", []),
        (
            "In backoff",
            "incoming_postponed_until > now() OR outgoing_postponed_until > now() "
            "OR act_postponed_until > now()",
            [],
        ),
        ("Pending approval", "approval_status = %s", [ApprovalStatus.PENDING_APPROVAL]),
    ]
    for label, where, params in cases:
        shown, link = linked_count(body, label)
        assert shown == sql_count(where, params), label
        listed = client.get(link).content.decode()
        matching = int(re.search(r"All (\d+) matching", listed).group(1))
        assert matching == shown, (label, link)


def test_the_most_common_disabled_reason_is_shown_with_its_count(spread):
    body = client_for(spread["admin"].login).get("/").content.decode()
    count = sql_count("disabled_reason = %s", ["The password was rejected."])
    assert re.search(
        rf"<strong>{count}</strong> <span class=\"reason\">The password was rejected.</span>", body
    )


def test_a_user_sees_only_their_own_mailboxes_and_no_profiles_or_workers(spread):
    bob = spread["bob"]
    body = client_for(bob.login).get("/").content.decode()
    shown, _ = linked_count(body, "Pending approval")
    assert (
        shown
        == sql_count("user_id = %s AND approval_status = %s", [bob.crm_user.pk, "pending_approval"])
        == 1
    )
    assert re.search(r'data-count="total">(\d+)<', body).group(1) == "1"
    assert "Email server profiles" not in body
    assert 'id="workers"' not in body
    assert spread.profile.name not in body


def test_profile_rows_count_their_mailboxes_and_failing_ones(spread):
    body = client_for(spread["admin"].login).get("/").content.decode()
    row = re.search(rf'<tr data-profile="{spread.profile.pk}">(.*?)</tr>', body, re.S).group(1)
    mailboxes = re.search(r'data-column="mailboxes">(\d+)<', row).group(1)
    failing = re.search(r'data-column="failing"><span[^>]*>(\d+) \(', row).group(1)
    assert int(mailboxes) == sql_count("profile_id = %s", [spread.profile.pk])
    assert int(failing) == sql_count(
        "profile_id = %s AND (incoming_status = 'failure' OR outgoing_status = 'failure' "
        "OR act_status = 'failure')",
        [spread.profile.pk],
    )


def _dashboard_for(count: int, world) -> None:
    for index in range(count):
        mailbox = factories.mailbox(
            user=factories.crm_user(f"Many{index} User", email=f"many{index}-{count}@example.test"),
            profile=factories.profile(f"Profile {count}-{index}"),
        )
        factories.alert(mailbox=mailbox, profile=mailbox.profile)
        factories.sync_run(mailbox=mailbox, received=3, tracked=2)
    rollups.rollup_recent()


def test_the_dashboard_costs_the_same_queries_for_3_and_for_30_mailboxes(world):
    client = client_for(world["admin"].login)
    _dashboard_for(3, world)
    with CaptureQueriesContext(connection) as few:
        assert client.get("/").status_code == 200
    _dashboard_for(27, world)
    with CaptureQueriesContext(connection) as many:
        body = client.get("/").content.decode()
    assert body.count("<tr data-profile=") == 31  # the personas' profile and 30 more
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]


# -- throughput and latency, from real sync runs ------------------------------------


@pytest.mark.slow
def test_throughput_and_latency_come_from_real_runs(stack: Stack):
    alice, bob = stack.user_mailbox("alice"), stack.user_mailbox("bob")
    for number in range(3):
        stack.deliver(
            alice,
            messages.simple(subject=f"To Alice {number}", sender=bob.email_address, to=alice.email_address),
        )
    stack.deliver(bob, messages.simple(subject="To Bob", sender=alice.email_address, to=bob.email_address))
    sync_incoming(mailbox=alice)
    sync_incoming(mailbox=bob)
    rollups.rollup_recent()

    body = client_for(factories.login_user("admin", administrator=True)).get("/").content.decode()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COALESCE(SUM(received), 0), COALESCE(SUM(tracked), 0) FROM sync_syncrun "
            "WHERE started_on >= %s",
            [rollups.hour_of(timezone.now()) - timedelta(hours=23)],
        )
        received, tracked = cursor.fetchone()
        cursor.execute(
            "SELECT EXTRACT(EPOCH FROM created_on - server_received_on) FROM sync_receipt "
            "WHERE email_id IS NOT NULL AND server_received_on IS NOT NULL ORDER BY 1"
        )
        latencies = [float(row[0]) for row in cursor.fetchall()]
    assert (received, tracked) == (4, 4)
    assert re.search(r'data-figure="received">(\d+)<', body).group(1) == str(received)
    assert re.search(r'data-figure="tracked">(\d+)<', body).group(1) == str(tracked)
    assert body.count("<svg") == 2  # the throughput charts; one hour of latency is a table row

    # The p95 shown is the upper bound of the bucket the test's own p95 falls in.
    own_p95 = latencies[max(0, int(len(latencies) * 0.95 + 0.999) - 1)]
    bound = next(b for b in LATENCY_BOUNDS if own_p95 <= b)
    row = re.search(r'<table id="latency".*?<tbody>\s*<tr>(.*?)</tr>', body, re.S).group(1)
    cells = re.findall(r"<td>(.*?)</td>", row)
    assert cells[1] == str(tracked)
    assert cells[3] == f"≤ {bound} s"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_appears_while_it_runs_and_vanishes_when_it_stops(world):
    client = client_for(world["admin"].login)
    with celery_worker(queues="default", env={"SYNC_HEARTBEAT_SECONDS": "1"}) as worker:
        body = client.get("/").content.decode()
        assert worker.hostname in body
        assert "No worker has sent a heartbeat recently" not in body
        worker.stop()
        body = client.get("/").content.decode()
        assert worker.hostname not in body
        assert "No worker has sent a heartbeat recently" in body


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_vanishes_once_its_heartbeat_is_stale(world, settings):
    settings.SYNC_HEARTBEAT_SECONDS = 1  # "recent" is three heartbeats
    client = client_for(world["admin"].login)
    with celery_worker(queues="default", env={"SYNC_HEARTBEAT_SECONDS": "1"}) as worker:
        assert worker.hostname in client.get("/").content.decode()
        worker.kill()
        time.sleep(3.5)
        assert worker.hostname not in client.get("/").content.decode()


def test_an_unreachable_broker_is_said_on_the_dashboard_and_the_rest_still_shows(
    world, settings, closed_port: int
):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port}/0"
    body = client_for(world["admin"].login).get("/").content.decode()
    assert "The broker cannot be reached." in body
    assert re.search(r'data-count="total">(\d+)<', body).group(1) == str(sql_count("1 = 1"))


# -- first steps of a new installation -----------------------------------------------


def first_steps(body: str) -> str | None:
    """The "First steps" panel of a dashboard page, or None when it is not there."""
    match = re.search(r'<section class="card" id="first-steps".*?</section>', body, re.S)
    return match.group(0) if match else None


def steps_done(panel: str) -> dict[str, str]:
    return dict(re.findall(r'<li data-step="(\w+)" data-done="(\w+)">', panel))


def links(panel: str) -> list[str]:
    return re.findall(r'href="([^"]+)"', panel)


def heading(body: str) -> str:
    return re.sub(r"<[^>]+>", "", re.search(r"<h1[^>]*>(.*?)</h1>", body, re.S).group(1)).strip()


def new_mailbox(owner_name: str, account, profile: EmailServerProfile) -> Mailbox:
    """A mailbox as an administrator adds it: owner, profile, credentials; not tested."""
    return factories.mailbox(
        user=factories.crm_user(owner_name, email=account.address),
        email_address=account.address,
        profile=profile,
        allow_credentials_for_email_processing=True,
        username=account.address,
        password=account.password,
    )


def test_a_new_installation_shows_its_administrator_three_first_steps_whose_links_work(db):
    assert not EmailServerProfile.objects.exists()
    assert not Mailbox.objects.exists()
    client = client_for(factories.login_user("admin", administrator=True))
    panel = first_steps(client.get("/").content.decode())
    assert panel, "no first steps on the dashboard of a new installation"
    assert list(steps_done(panel).items()) == [("profile", "no"), ("mailboxes", "no"), ("test", "no")]
    text = re.sub(r"<[^>]+>|\s+", " ", panel)
    for step in ("1. Create an email server profile", "2. Add mailboxes", "3. Test &amp; enable"):
        assert step in text
    # Each link opens the page where that step is taken.
    expected = {
        "/profiles/new/": "New email server profile",
        "/admin/mailboxes/mailbox/add/": "Add mailbox",
        "/migration/": "Email Router migration",
        "/mailboxes/": "Mailboxes",
    }
    assert links(panel) == list(expected)
    for link, title in expected.items():
        response = client.get(link)
        assert response.status_code == 200, link
        assert heading(response.content.decode()) == title, link


@pytest.mark.slow
def test_the_steps_are_ticked_off_and_vanish_once_a_mailbox_passed_test_and_enable(stack: Stack):
    admin = factories.login_user("admin", administrator=True)
    client = client_for(admin)
    panel = first_steps(client.get("/").content.decode())
    assert steps_done(panel) == {"profile": "yes", "mailboxes": "no", "test": "no"}
    assert links(panel)[0] == "/profiles/"  # done: the profiles, no longer "create one"
    assert client.get("/profiles/").content.decode().count(stack.profile.name) >= 1

    mailbox = new_mailbox("Amy Agent", stack.make_mail_user("amy"), stack.profile)
    panel = first_steps(client.get("/").content.decode())
    assert steps_done(panel) == {"profile": "yes", "mailboxes": "yes", "test": "no"}

    mailbox_set_approval(mailbox=mailbox, status=ApprovalStatus.APPROVED, by=admin)
    assert mailbox_test_and_enable(mailbox=mailbox).passed  # against the test Dovecot and relay
    body = client.get("/").content.decode()
    assert first_steps(body) is None
    assert "First steps" not in body
    assert re.search(r'data-count="total">(\d+)<', body).group(1) == "1"


@pytest.mark.slow
def test_a_failed_test_and_enable_also_ends_the_first_steps_the_disabled_tile_takes_over(stack: Stack):
    admin = factories.login_user("admin", administrator=True)
    account = stack.make_mail_user("ben")
    mailbox = new_mailbox("Ben Agent", account._replace(password="not-the-password"), stack.profile)
    mailbox_set_approval(mailbox=mailbox, status=ApprovalStatus.APPROVED, by=admin)
    assert not mailbox_test_and_enable(mailbox=mailbox).passed
    body = client_for(admin).get("/").content.decode()
    assert first_steps(body) is None
    assert linked_count(body, "Disabled")[0] == sql_count("disabled_reason <> ''") == 1


def test_a_user_is_shown_only_the_step_they_can_take(db):
    carl = factories.login_user("carl")
    crm_user = factories.crm_user("Carl Clerk", login=carl)
    client = client_for(carl)
    panel = first_steps(client.get("/").content.decode())
    assert panel
    assert "No mailbox of yours is connected yet" in panel
    assert links(panel) == []  # creating profiles and adding mailboxes is for administrators
    assert client.get("/profiles/new/").status_code == 403

    factories.mailbox(user=crm_user, profile=factories.profile("Main"))
    panel = first_steps(client.get("/").content.decode())
    assert "Your mailbox has not been tested yet" in panel
    assert links(panel) == ["/mailboxes/"]
    listed = client.get("/mailboxes/").content.decode()
    assert "carl@example.test" in listed
    assert "Test &amp; enable" in listed
