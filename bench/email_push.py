"""B3: new mail's delay, delivery -> stored activity, with push and with polling.

``--push-mailboxes`` mailboxes (1,000) on a Dovecot of their own, one new message
a second to a random one for ``--push-seconds``; the delay of each is the
activity's ``created_on`` less the moment LMTP accepted the message. Push: one
``manage.py listen`` holding IDLE on every inbox, two Celery worker processes
(the machine's two cores). Polling, for comparison: the same workers and
Celery beat (dispatching every ``SYNC_DISPATCH_SECONDS``), no listener, every
mailbox polled each minute (the shortest interval a profile allows, idle
backoff capped there too: polling at its best), due times spread over the minute
as a steady state leaves them.

This Dovecot allows 3,000 sessions (the harness's allows 100 logins at once).
Past 128 sessions inotify runs out (instances are counted per user, machine-wide,
and every session is the ``mail`` user's), and the harness's Dovecots look for new
mail every second instead (``mailbox_idle_check_interval``): a fact of the test
server, within the figures.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.email_crm import Bench, user_mailbox
from bench.email_figures import Figure, Result
from bench.mail_stack import MailUser
from crm.models import EmailActivity
from profiles.models import EmailServerProfile, ServerType
from sync import clock
from sync.models import MailboxSchedule, PushLease, PushState, SyncKind
from tests.harness.dovecot import Dovecot

ROOT = Path(__file__).resolve().parents[1]
P99_TARGET = 10.0
PUSH_BROKER_URL = "redis://127.0.0.1:6379/13"
MANY_SESSIONS = """
default_process_limit = 3000
default_client_limit = 6000
service imap-login {
  service_count = 0
  process_min_avail = 2
  client_limit = 3000
}
service imap {
  process_limit = 3000
}
"""


def push_latency(bench: Bench) -> Result:
    result = Result()
    options = bench.options
    dovecot = Dovecot(extra_config=MANY_SESSIONS, parent=bench.workdir).start()
    env = {
        **os.environ,
        "SYNC_CA_FILE": str(dovecot.ca_pem_path),
        "SYNC_IDLE_BACKOFF_MAX_MINUTES": "1",
        # A broker of B3's own: other benchmarks' workers on the usual one would take its tasks.
        "CELERY_BROKER_URL": os.environ.get("BENCH_PUSH_BROKER_URL", PUSH_BROKER_URL),
    }
    celery = [sys.executable, "-m", "celery", "-A", "config"]
    workers = [
        _start([*celery, "worker", "-Q", "incoming,default", "-c", "2", "-l", "WARNING"], env),
        _start([*celery, "beat", "-l", "WARNING", "-s", str(bench.workdir / "beat-schedule")], env),
    ]
    try:
        profile = _profile(dovecot)
        accounts = _mailboxes(dovecot, profile, options.push_mailboxes)
        result.note(f"{len(accounts)} mailboxes, one message a second for {options.push_seconds} s")
        listener = _start([sys.executable, "manage.py", "listen"], env)
        try:
            started = time.monotonic()
            _wait(lambda: _all_live(len(accounts)), timeout=600, what="IDLE on every inbox")
            _wait(_caught_up, timeout=600, what="the catch-up runs")
            result.note(
                f"push: IDLE held on {len(accounts)} inboxes after {time.monotonic() - started:.0f} s"
            )
            result.note(_memory("listener", listener.pid))
            cpu, pushing = _cpu_seconds(listener.pid), time.monotonic()
            pushed = _deliver(dovecot, accounts, options.push_seconds, "push")
            busy = (_cpu_seconds(listener.pid) - cpu) / (time.monotonic() - pushing)
            result.note(f"listener CPU while pushing: {busy:.1%} of a core")
        finally:
            _stop(listener)
        result.figures.append(_figure("B3 push: delivery -> activity", pushed, target=True))
        _spread_due_times()
        polled = _deliver(dovecot, accounts, options.push_seconds, "poll")
        result.figures.append(_figure("B3 polling each minute (comparison)", polled, target=False))
    finally:
        for worker in workers:
            _stop(worker)
        dovecot.close()
    return result


def _profile(dovecot: Dovecot) -> EmailServerProfile:
    return EmailServerProfile.objects.create(
        name="B3 push",
        server_type=ServerType.IMAP_SMTP,
        incoming_server_location=dovecot.host,
        incoming_port=dovecot.imaps_port,
        outgoing_server_location=dovecot.host,
        outgoing_port=dovecot.imaps_port,
        connection_timeout_seconds=60,
        min_polling_interval_minutes=1,
    )


def _mailboxes(dovecot: Dovecot, profile: EmailServerProfile, count: int) -> list[MailUser]:
    accounts = []
    for number in range(count):
        password = secrets.token_hex(8)
        account = MailUser(dovecot.add_user(f"b3-{number:04d}", password), password)
        user_mailbox(account, profile, name=f"Push {number:04d}")
        accounts.append(account)
    return accounts


def _deliver(dovecot: Dovecot, accounts: list[MailUser], seconds: int, tag: str) -> list[float]:
    """One message a second to a random mailbox; the delays once every one is stored."""
    rng = random.Random(3)  # noqa: S311 - which mailbox gets the next message, not a secret
    delivered: dict[str, datetime] = {}
    start = time.monotonic()
    for number in range(seconds):
        account = rng.choice(accounts)
        subject = f"B3 {tag} {number:05d}"
        raw = f"From: sender@example.test\r\nTo: {account.address}\r\nSubject: {subject}\r\n\r\nbody\r\n"
        dovecot.deliver(account.address, raw.encode())
        delivered[subject] = datetime.now(UTC)
        time.sleep(max(0.0, start + number + 1 - time.monotonic()))
    activities = EmailActivity.objects.filter(subject__in=list(delivered))
    deadline = time.monotonic() + 600
    while activities.count() < len(delivered) and time.monotonic() < deadline:
        time.sleep(0.5)
    stored = dict(activities.values_list("subject", "created_on"))
    return [(stored[s] - at).total_seconds() if s in stored else float("inf") for s, at in delivered.items()]


def _figure(name: str, delays: list[float], *, target: bool) -> Figure:
    ordered = sorted(delays)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    measured = f"p50 {p50:.2f} s, p99 {p99:.2f} s, max {ordered[-1]:.2f} s ({len(ordered)} messages)"
    if not target:
        return Figure(name, measured)
    return Figure(name, measured, target=f"p99 <= {P99_TARGET:.0f} s", met=p99 <= P99_TARGET)


def _all_live(count: int) -> bool:
    return PushLease.objects.filter(state=PushState.LIVE).count() >= count


def _caught_up() -> bool:
    held = MailboxSchedule.objects.filter(kind=SyncKind.INCOMING, lease_token__isnull=False).exists()
    return not held and not PushLease.objects.filter(pending_since__isnull=False).exists()


def _spread_due_times() -> None:
    """As a steady state of polling each minute leaves them: due at random over the next minute."""
    now = clock.now()
    rng = random.Random(5)  # noqa: S311 - a spread of due times, not a secret
    for schedule in MailboxSchedule.objects.filter(kind=SyncKind.INCOMING):
        schedule.next_due_on = now + timedelta(seconds=rng.uniform(0, 60))
        schedule.idle_runs = 1
        schedule.save(update_fields=["next_due_on", "idle_runs"])


def _memory(name: str, pid: int) -> str:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss, virtual, threads = (fields[k].strip() for k in ("VmRSS", "VmSize", "Threads"))
    return f"{name}: RSS {rss}, virtual {virtual}, threads {threads}"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait(condition: object, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"B3: no {what} after {timeout:.0f} s")
        time.sleep(0.5)


def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)  # noqa: S603 - our own commands


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()  # the main process only: a worker's warm shutdown ends its children
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
