"""The platform's own services going away under a running worker: PostgreSQL restarted
(``pg_ctl restart -m fast``) or crashed (``-m immediate``) while the worker stores a
mailbox's mail or sends its email; Redis, the broker, restarted without persistence while
one task runs and others wait in its queues (they are gone with it).

The machine's own PostgreSQL and Redis serve every test worker and are never touched: the
tests here start a scratch cluster and a scratch ``redis-server`` (tests/harness/), migrate
the cluster, point this test process's ORM at it and start ONE real Celery worker, with the
production settings (persistent database connections with health checks), that lives
through every restart of the module: nobody restarts it by hand. The test plays Celery beat
(``sync.tasks.dispatch`` every half second). After each fault every message on the server
is one receipt and one activity, every email was delivered once (the SMTP relay's count)
or is "outcome unknown" with its alert, and the mailbox is free for its next run.

Each run takes a few seconds: ``make test`` runs a few, ``make reliability``
(RELIABILITY_RUNS) twenty per fault."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Count

from crm.models import EmailActivity
from mailboxes.models import Mailbox
from sync import clock, database_loss
from sync.models import MailboxAlert, MailboxSchedule, Receipt, SyncKind, SyncOutcome, SyncRun
from tests import factories, messages
from tests.faults.runs import runs
from tests.faults.test_network import incoming_outcome
from tests.harness.celery_worker import ROOT, CeleryWorkerProcess
from tests.harness.dovecot import HOST, Dovecot
from tests.harness.fixtures import MailUser
from tests.harness.scratch_postgres import ScratchPostgres
from tests.harness.scratch_redis import ScratchRedis
from tests.harness.smtp_relay import SmtpRelay
from tests.sync.stack import Stack
from tests.sync.test_engine_outgoing import api_client_for, compose

pytestmark = [pytest.mark.slow]

RUNS = runs(in_make_test=1)
MESSAGES = 40
EMAILS = 3
DATABASE = "serversync"
BEAT_SECONDS = 0.5
FINAL = (EmailActivity.Status.SENT, EmailActivity.Status.OUTCOME_UNKNOWN)


@dataclass
class Scratch:
    postgres: ScratchPostgres
    redis: ScratchRedis
    broker: Celery
    worker: ScratchWorker
    stack: Stack


def migrate(postgres: ScratchPostgres) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": postgres.url_of(DATABASE),
    }
    env.pop("PYTEST_XDIST_WORKER", None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=300,
    )


@contextmanager
def orm_on(postgres: ScratchPostgres) -> Iterator[None]:
    """This process's ORM on the scratch cluster (the test database is left alone)."""
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(
        HOST=HOST, PORT=str(postgres.port), NAME=DATABASE, USER="postgres", PASSWORD=""
    )
    try:
        yield
    finally:
        with suppress(DatabaseError):
            connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


def broker_app(url: str) -> Celery:
    """A Celery client of the scratch broker, routing as the product does: beat's sends and
    the worker's pings (the project's app stays on the test broker). Read and write URLs,
    because Celery prefers CELERY_BROKER_URL from the environment to a broker it is given."""
    return Celery(
        "scratch-services",
        broker_read_url=url,
        broker_write_url=url,
        task_routes=settings.CELERY_TASK_ROUTES,
        task_default_queue=settings.CELERY_TASK_DEFAULT_QUEUE,
        task_serializer="json",
    )


class ScratchWorker(CeleryWorkerProcess):
    """The worker with the production settings, on the scratch database and broker."""

    def __init__(self, broker: Celery, postgres: ScratchPostgres, server: ScratchRedis, media: Path) -> None:
        super().__init__(
            name="services",
            env={
                "DJANGO_SETTINGS_MODULE": "config.settings",
                "DATABASE_URL": f"{postgres.url_of(DATABASE)}?application_name=serversync-services-worker",
                "CELERY_BROKER_URL": server.url,
                "CELERY_RESULT_BACKEND": server.url,
                "MEDIA_ROOT": str(media),
                # Stored in batches of two, so a run is part way for longer than an instant.
                "SYNC_BATCH_MESSAGES": "2",
            },
        )
        self.broker = broker
        self.app_name = "serversync-services-worker"

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"celery worker exited with {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"celery worker not ready after {timeout}s:\n{self.log()}")

    def answers(self) -> bool:
        """A solo-pool worker answers between tasks only: True means connected and idle."""
        try:
            return bool(self.broker.control.ping(destination=[self.hostname], timeout=0.5))
        except (OSError, redis.RedisError):  # a connection to the broker that was just restarted
            return False


def make_stack(dovecot: Dovecot, smtp_relay: SmtpRelay) -> Stack:
    def mail_user(prefix: str = "user") -> MailUser:
        password = secrets.token_hex(8)
        return MailUser(dovecot.add_user(f"{prefix}-{secrets.token_hex(5)}", password), password)

    profile = factories.profile(
        f"Scratch services {secrets.token_hex(3)}",
        incoming_server_location=dovecot.host,
        incoming_port=dovecot.imaps_port,
        outgoing_server_location=smtp_relay.host,
        outgoing_port=smtp_relay.port,
        connection_timeout_seconds=10,
    )
    return Stack(dovecot=dovecot, relay=smtp_relay, make_mail_user=mail_user, profile=profile)


@pytest.fixture(scope="module")
def scratch(
    django_db_blocker: Any, dovecot: Dovecot, smtp_relay: SmtpRelay, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scratch]:
    postgres, broker_server = ScratchPostgres(), ScratchRedis()
    try:
        postgres.start().create_database(DATABASE)
        broker_server.start()
        migrate(postgres)
        with django_db_blocker.unblock(), orm_on(postgres):
            stack = make_stack(dovecot, smtp_relay)
            broker = broker_app(broker_server.url)
            worker = ScratchWorker(broker, postgres, broker_server, tmp_path_factory.mktemp("services-media"))
            worker.extra_env["SYNC_CA_FILE"] = str(dovecot.ca_pem_path)
            try:
                worker.start()
                yield Scratch(postgres, broker_server, broker, worker, stack)
            finally:
                worker.kill()
    finally:
        broker_server.close()
        postgres.close()


def diagnosis(scratch: Scratch) -> str:
    """What a stuck wait shows: the schedules, the database's sessions, the worker's log."""
    schedules = list(
        MailboxSchedule.objects.order_by("-pk").values(
            "mailbox_id", "kind", "next_due_on", "lease_expires_on"
        )[:8]
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT application_name, state, xact_start, query FROM pg_stat_activity WHERE datname = %s",
            [DATABASE],
        )
        sessions = cursor.fetchall()
    receipts = list(Receipt.objects.values("mailbox_id").annotate(n=Count("pk")).order_by("mailbox_id"))
    emails = list(EmailActivity.objects.filter(direction="outgoing").values_list("pk", "status"))
    log = scratch.worker.log()[-3000:]
    return f"receipts {receipts}\nemails {emails}\nschedules {schedules}\nsessions {sessions}\nlog:\n{log}"


def beat_until(scratch: Scratch, condition: Callable[[], bool], *, what: str, timeout: float = 120) -> None:
    """Send ``sync.tasks.dispatch`` as Celery beat would (more often) until ``condition``."""
    deadline = time.monotonic() + timeout
    next_beat = 0.0
    while not condition():
        now = time.monotonic()
        if now > deadline:
            raise TimeoutError(f"gave up waiting for {what}; {diagnosis(scratch)}")
        if now >= next_beat:
            scratch.broker.send_task("sync.tasks.dispatch")
            next_beat = now + BEAT_SECONDS
        time.sleep(0.005)


@dataclass
class Load:
    """One mailbox's share of a run: mail waiting on the server and emails waiting to go."""

    mailbox: Mailbox
    subjects: list[str]
    emails: list[EmailActivity]

    def received(self) -> int:
        return Receipt.objects.filter(mailbox=self.mailbox).count()

    def sending_started(self) -> bool:
        pks = [e.pk for e in self.emails]
        return (
            EmailActivity.objects.filter(pk__in=pks)
            .exclude(status=EmailActivity.Status.PENDING_SEND)
            .exists()
        )

    def settled(self) -> bool:
        """All mail stored, every email final, and no run holds the mailbox."""
        return (
            incoming_outcome(self.mailbox, self.subjects)[0] == 0
            and EmailActivity.objects.filter(pk__in=[e.pk for e in self.emails], status__in=FINAL).count()
            == len(self.emails)
            and not MailboxSchedule.objects.filter(mailbox=self.mailbox, lease_token__isnull=False).exists()
        )


def quiet(scratch: Scratch) -> None:
    """Wait until no dispatch sent earlier is still queued: a new mailbox's load must be in
    place (its emails composed) before any run sees the mailbox, or its send run finds
    nothing and the emails wait for the next poll."""
    queue = scratch.redis.client()
    deadline = time.monotonic() + 60
    while queue.llen(settings.CELERY_TASK_DEFAULT_QUEUE) or not scratch.worker.answers():
        assert time.monotonic() < deadline, diagnosis(scratch)
        time.sleep(0.02)


def load(stack: Stack, name: str, recipient: Mailbox, *, count: int = MESSAGES) -> Load:
    mailbox = stack.user_mailbox(name)
    subjects = [f"{name} message {n:02d}" for n in range(count)]
    stack.dovecot.deliver_many(
        mailbox.email_address,
        [messages.simple(to=mailbox.email_address, subject=s, body="x" * 20000) for s in subjects],
    )
    client = api_client_for(mailbox)
    emails = [
        compose(client, subject=f"{name} email {n}", body_text="Hello\n" * 200, to=[recipient.email_address])
        for n in range(EMAILS)
    ]
    return Load(mailbox, subjects, emails)


def has_stored(works: list[Load], count: int) -> bool:
    """Whether a run is part way: ``count`` messages of one of ``works`` stored."""
    return any(w.received() >= count for w in works)


def all_settled(works: list[Load]) -> bool:
    return all(w.settled() for w in works)


@dataclass
class Outcome:
    lost: int
    doubled: int
    unknown: int
    unknown_delivered: int = 0  # of those, how many the server had in fact taken


def outcome(stack: Stack, work: Load) -> Outcome:
    """Incoming: each subject one receipt and one activity. Outgoing: each email delivered
    once by the relay, or "outcome unknown" (never resent) with its open alert."""
    lost, doubled = incoming_outcome(work.mailbox, work.subjects)
    unknown = unknown_delivered = 0
    for email in EmailActivity.objects.filter(pk__in=[e.pk for e in work.emails]):
        copies = stack.relay.accepted_count(email.message_id)
        doubled += max(copies - 1, 0)
        if email.status == EmailActivity.Status.OUTCOME_UNKNOWN:
            unknown += 1
            unknown_delivered += copies
            assert MailboxAlert.objects.filter(
                mailbox=work.mailbox, code="outcome_unknown", resolved_on__isnull=True
            ).exists()
        elif copies == 0:
            lost += 1
    return Outcome(lost, doubled, unknown, unknown_delivered)


def interrupted_runs(mailbox: Mailbox) -> set[str]:
    """The kinds of the runs the loss cut short, as the mailbox's history shows them."""
    return set(
        SyncRun.objects.filter(
            mailbox=mailbox, outcome=SyncOutcome.FAILED, error_code=database_loss.CODE
        ).values_list("kind", flat=True)
    )


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_postgresql_restarted_mid_run_loses_and_doubles_nothing(
    scratch: Scratch, fault_table: Any, mode: str
) -> None:
    crash = (
        "crashed (pg_ctl restart -m immediate)"
        if mode == "immediate"
        else "restarted (pg_ctl restart -m fast)"
    )
    row = fault_table(f"PostgreSQL {crash} mid-run, mid-receive or mid-send; one worker throughout")
    recipient = scratch.stack.user_mailbox(f"pg-{mode}-recipient")
    hit = sends_cut = delivered_unknown = 0
    for run in range(RUNS):
        quiet(scratch)
        work = load(scratch.stack, f"pg-{mode}-{run}", recipient)
        # Every other run the database goes while mail is stored (after a different number
        # each run), else while the email is sent; a crash begins with a send.
        if (run + (mode == "immediate")) % 2:
            moment, what = work.sending_started, "sending to start"
        else:
            stored = 2 + run % 10
            moment, what = (
                partial(has_stored, [work], stored),
                f"{stored} stored messages",
            )
        beat_until(scratch, moment, what=what)
        scratch.postgres.restart(mode)
        restarted = time.monotonic()
        connection.close()  # this process's own session went with the server
        beat_until(scratch, work.settled, what=f"run {run} to settle")
        recovered_in = time.monotonic() - restarted
        result = outcome(scratch.stack, work)
        row.add(
            messages=MESSAGES + EMAILS,
            lost=result.lost,
            doubled=result.doubled,
            recovered_in=recovered_in,
            unknown=result.unknown,
        )
        assert (result.lost, result.doubled) == (0, 0), (run, result)
        cut = interrupted_runs(work.mailbox)
        hit += bool(cut)
        sends_cut += SyncKind.OUTGOING in cut
        delivered_unknown += result.unknown_delivered
    print(
        f"{row.fault}: {hit} of {RUNS} restarts cut a run short ({sends_cut} a send run); "
        f"{row.unknown} emails outcome unknown, {delivered_unknown} of them delivered"
    )
    # The restart must land inside runs for the test to mean anything.
    assert hit >= 1, f"no run was interrupted by the restart; worker log:\n{scratch.worker.log()[-5000:]}"


def lapse_held_leases() -> float:
    """Leases of tasks the broker lost: let them lapse now, as they would after their
    length (a test cannot wait ten minutes). Returns the longest wait skipped, in seconds."""
    now = clock.now()
    held = MailboxSchedule.objects.filter(lease_token__isnull=False, lease_expires_on__gt=now)
    longest = max((s.lease_expires_on - now for s in held if s.lease_expires_on), default=timedelta(0))
    held.update(lease_expires_on=now - timedelta(seconds=1))
    return longest.total_seconds()


def test_redis_restarted_with_tasks_running_and_queued_loses_and_doubles_nothing(
    scratch: Scratch, fault_table: Any
) -> None:
    row = fault_table(
        "Redis restarted without persistence, a run going and tasks queued (lost tasks wait out their lease)"
    )
    recipient = scratch.stack.user_mailbox("redis-recipient")
    lost_tasks = 0
    for run in range(RUNS):
        quiet(scratch)
        works = [load(scratch.stack, f"redis-{run}-{n}", recipient) for n in range(3)]
        stored = 2 + run % 10
        beat_until(
            scratch,
            partial(has_stored, works, stored),
            what=f"{stored} stored messages",
        )
        scratch.redis.restart()
        restarted = time.monotonic()
        # This process's broker connections went with the server (the worker's reconnect).
        scratch.broker.close()
        scratch.broker = scratch.worker.broker = broker_app(scratch.redis.url)
        # Back on the new broker and idle (the run it was in finished): what is still leased
        # was queued in the broker that is gone.
        deadline = time.monotonic() + 60
        while not scratch.worker.answers():
            assert time.monotonic() < deadline, scratch.worker.log()[-5000:]
        skipped = lapse_held_leases()
        lost_tasks += skipped > 0
        beat_until(scratch, partial(all_settled, works), what=f"run {run} to settle")
        recovered_in = time.monotonic() - restarted + skipped
        results = [outcome(scratch.stack, w) for w in works]
        row.add(
            messages=len(works) * (MESSAGES + EMAILS),
            lost=sum(r.lost for r in results),
            doubled=sum(r.doubled for r in results),
            recovered_in=recovered_in,
            unknown=sum(r.unknown for r in results),
        )
        assert all((r.lost, r.doubled) == (0, 0) for r in results), (run, results)
    assert scratch.redis.restarts == RUNS
    print(f"{row.fault}: {lost_tasks} of {RUNS} restarts lost queued tasks")
    assert lost_tasks >= 1, "no restart lost a queued task: the fault never bit"
    assert scratch.worker.process is not None
    assert scratch.worker.process.poll() is None, "the one worker lived through every restart"
    # However long the broker is away: Celery's default would end the worker after 100 tries.
    conf = scratch.broker.control.inspect([scratch.worker.hostname], timeout=5).conf(with_defaults=True)
    assert conf is not None
    assert conf[scratch.worker.hostname]["broker_connection_max_retries"] is None
