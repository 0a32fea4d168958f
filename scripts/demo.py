"""`make demo`: the test mail stack, a seeded organization, a stream of mail
and the platform (web, worker, beat), so a newcomer sees mail flowing: an IMAP
user and queue on the test Dovecot, and an Exchange Online user on the
Microsoft Graph test server (tests/fakes/graph/), its app registered there.

Needs root, as the tests do: the test Dovecot runs as the system's mail user.
Run it through scripts/local-env.sh (the Makefile does) so keys exist. Ctrl-C
(or SIGTERM) stops the platform, the stream and the mail servers.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.graph.server import GraphServer  # noqa: E402
from tests.harness.dovecot import Dovecot  # noqa: E402
from tests.harness.smtp_relay import SmtpRelay, doveadm_authenticator  # noqa: E402

PASSWORD = "demo-mail-password"  # noqa: S105  (the throwaway test Dovecot's users)
CUSTOMERS = [("Carl", "Customer", "carl@customer.example"), ("Dana", "Buyer", "dana@customer.example")]


def message(*, sender: str, to: str, subject: str, body: str, **headers: str) -> bytes:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = sender, to, subject
    mail["Date"] = format_datetime(time_now())
    mail["Message-ID"] = make_msgid(domain="customer.example")
    for name, value in headers.items():
        mail[name.replace("_", "-")] = value
    mail.set_content(body)
    return mail.as_bytes()


def time_now() -> Any:
    from django.utils import timezone

    return timezone.now()


def reset_data(data_dir: Path) -> None:
    """A fresh database each time: the mail servers are new each time too (keys stay)."""
    for pattern in ("serversync.sqlite3*", "celerybeat-schedule*"):
        for path in data_dir.glob(pattern):
            path.unlink()
    for folder in ("broker", "results", "media"):
        subprocess.run(["rm", "-rf", str(data_dir / folder)], check=True)  # noqa: S603, S607
    for folder in ("broker/queue", "broker/processed", "broker/control", "results"):
        (data_dir / folder).mkdir(parents=True, exist_ok=True)


def seed_exchange_online(graph: GraphServer) -> str:
    """An Exchange Online profile on the Graph test server (its app registered there)
    and a user's mailbox on it, approved and enabled; the mailbox's address."""
    from crm.choices import TrackIncomingEmail
    from crm.models import CrmUser
    from mailboxes.models import ApprovalStatus, Mailbox
    from mailboxes.services import mailbox_create
    from profiles.models import CredentialsSource, EmailServerProfile, ServerType

    app = graph.register_app()
    profile = EmailServerProfile(
        name="Demo Exchange Online",
        server_type=ServerType.EXCHANGE_ONLINE,
        incoming_server_location=graph.url,
        outgoing_server_location=graph.url,
        credentials_source=CredentialsSource.OAUTH_CLIENT_CREDENTIALS,
        oauth_tenant_id=graph.tenant_id,
        oauth_client_id=app.client_id,
        oauth_client_secret=app.secret or "",
        oauth_authority=graph.authority,
        min_polling_interval_minutes=1,
    )
    profile.full_clean()
    profile.save()
    address = "erin@contoso.onmicrosoft.com"
    graph.add_user(address)
    erin = CrmUser.objects.create(
        full_name="Erin Exchange", email=address, track_incoming_email=TrackIncomingEmail.ALL
    )
    mailbox = mailbox_create(data={"email_address": address, "profile": profile, "user": erin})
    Mailbox.objects.filter(pk=mailbox.pk).update(
        approval_status=ApprovalStatus.APPROVED, incoming_enabled=True, outgoing_enabled=True
    )
    return address


def seed(dovecot: Dovecot, relay: SmtpRelay) -> dict[str, Any]:
    """A profile for the mail stack, a user and a queue mailbox (approved, enabled),
    two customers as contacts, and an email the CRM already sent (to reply to)."""
    from crm.choices import TrackIncomingEmail
    from crm.models import Contact, CrmUser, EmailActivity, Queue
    from mailboxes.models import ApprovalStatus, Mailbox
    from mailboxes.services import mailbox_create
    from profiles.models import EmailServerProfile, ServerType
    from sync.parsing import identity_for, normalize_message_id

    profile = EmailServerProfile(
        name="Demo mail stack",
        server_type=ServerType.IMAP_SMTP,
        incoming_server_location=dovecot.host,
        incoming_port=dovecot.imaps_port,
        outgoing_server_location=relay.host,
        outgoing_port=relay.port,
        connection_timeout_seconds=10,
        min_polling_interval_minutes=1,  # the floor: a busy mailbox is read again each minute
    )
    profile.full_clean()
    profile.save()
    alice_address = dovecot.add_user("alice", PASSWORD)
    support_address = dovecot.add_user("support", PASSWORD)
    alice = CrmUser.objects.create(
        full_name="Alice Agent", email=alice_address, track_incoming_email=TrackIncomingEmail.ALL
    )
    support = Queue.objects.create(name="Support", email=support_address)
    for owner in ({"user": alice}, {"queue": support}):
        address = alice_address if "user" in owner else support_address
        mailbox = mailbox_create(
            data={
                "email_address": address,
                "profile": profile,
                "allow_credentials_for_email_processing": True,
                "username": address,
                "password": PASSWORD,
                **owner,
            }
        )
        # As a passed test & enable leaves it.
        Mailbox.objects.filter(pk=mailbox.pk).update(
            approval_status=ApprovalStatus.APPROVED, incoming_enabled=True, outgoing_enabled=True
        )
    for first, last, address in CUSTOMERS:
        Contact.objects.create(first_name=first, last_name=last, email=address)
    # As the engine records a sent email: normalized Message-ID and its identity.
    quote_id = normalize_message_id(make_msgid(domain="serversync.demo"))
    quote = EmailActivity.objects.create(
        direction=EmailActivity.Direction.OUTGOING,
        status=EmailActivity.Status.SENT,
        owner=alice,
        subject="Your quote",
        body_text="Here is the quote you asked for.",
        message_id=quote_id,
        message_identity=identity_for(quote_id, b""),
        sent_on=time_now(),
    )
    return {"alice": alice_address, "support": support_address, "quote": quote}


def stream(
    dovecot: Dovecot, graph: GraphServer, seeded: dict[str, Any], stop: threading.Event, every: float
) -> None:
    """Customers write in (to the IMAP mailboxes and the Exchange Online one), reply to
    the CRM's email, and one auto-replies."""
    alice, support, quote, erin = seeded["alice"], seeded["support"], seeded["quote"], seeded["erin"]
    carl, dana = CUSTOMERS[0][2], CUSTOMERS[1][2]
    script = [
        (alice, message(sender=carl, to=alice, subject="Question about my order", body="Where is it?")),
        (support, message(sender=dana, to=support, subject="Login trouble", body="I cannot sign in.")),
        (erin, message(sender=carl, to=erin, subject="Contract renewal", body="Can we talk on Friday?")),
        (
            alice,
            message(
                sender=carl,
                to=alice,
                subject=f"Re: {quote.subject}",
                body="Thanks, the quote looks good.",
                In_Reply_To=f"<{quote.message_id}>",
                References=f"<{quote.message_id}>",
            ),
        ),
        (
            alice,
            message(
                sender=dana,
                to=alice,
                subject=f"Automatic reply: {quote.subject}",
                body="I am out of office until Monday.",
                In_Reply_To=f"<{quote.message_id}>",
                Auto_Submitted="auto-replied",
            ),
        ),
    ]
    for number in itertools.count(1):
        for address, raw in script if number == 1 else script[:3]:
            if stop.is_set():
                return
            if address == erin:
                graph.deliver(address, raw)
            else:
                dovecot.deliver(address, raw)
            print(f"demo: delivered a message to {address}", flush=True)
            if stop.wait(every):
                return
        script = [
            (alice, message(sender=carl, to=alice, subject=f"Follow-up {number}", body="One more thing.")),
            (support, message(sender=dana, to=support, subject=f"Ticket {number}", body="Still stuck.")),
            (erin, message(sender=carl, to=erin, subject=f"Renewal {number}", body="A question more.")),
        ]


def main() -> int:
    data_dir = Path(os.environ.setdefault("SERVERSYNC_DATA_DIR", str(ROOT / "var" / "demo"))).resolve()
    port = os.environ.get("PORT", "8000")
    reset_data(data_dir)
    dovecot = Dovecot().start()
    relay = SmtpRelay(
        lmtp_host=dovecot.host,
        lmtp_port=dovecot.lmtp_port,
        authenticate=doveadm_authenticator(dovecot.config_path),
        ca=dovecot.ca,
        workdir=data_dir / "relay",
    ).start()
    graph = GraphServer()
    # The worker trusts both test servers' CAs, and nothing else but the system's.
    bundle = data_dir / "demo-ca-bundle.pem"
    bundle.write_text(dovecot.ca_pem_path.read_text() + Path(graph.ca_file).read_text())
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "SYNC_CA_FILE": str(bundle),
            "SYNC_DISPATCH_SECONDS": os.environ.get("SYNC_DISPATCH_SECONDS", "5"),
            "SYNC_IDLE_BACKOFF_MAX_MINUTES": "1",
            "SERVERSYNC_ADMIN_PASSWORD": os.environ.get("SERVERSYNC_ADMIN_PASSWORD", "demo"),
        }
    )
    stop = threading.Event()
    platform: subprocess.Popen[bytes] | None = None
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", interactive=False, verbosity=0)
        # Into this data folder's static/, where the web app serves them from (STATIC_ROOT).
        call_command("collectstatic", interactive=False, verbosity=0)
        call_command("ensure_admin")
        seeded = seed(dovecot, relay)
        seeded["erin"] = seed_exchange_online(graph)
        platform = subprocess.Popen(  # noqa: S603
            ["honcho", "start", "--port", port],  # noqa: S607
            cwd=ROOT,
            start_new_session=True,
        )
        print(
            f"\ndemo: web app  http://{os.environ.get('HOST', '127.0.0.1')}:{port}/admin/  "
            f"(user admin, password {os.environ['SERVERSYNC_ADMIN_PASSWORD']})\n"
            f"demo: watch    Email activities, Receipts and Sync runs in the admin; the API at /api/\n"
            f"demo: mailboxes {seeded['alice']} (user Alice) and {seeded['support']} (queue Support), "
            f"IMAP on {dovecot.host}:{dovecot.imaps_port}, SMTP on {relay.host}:{relay.port}\n"
            f"demo: Exchange Online mailbox {seeded['erin']} (user Erin) on the Microsoft Graph test "
            f"server at {graph.url}\n"
            "demo: a message arrives every few seconds; Ctrl-C stops everything\n",
            flush=True,
        )
        streamer = threading.Thread(target=stream, args=(dovecot, graph, seeded, stop, 4.0), daemon=True)
        streamer.start()
        while not stop.wait(1):
            if platform.poll() is not None:
                print(f"demo: the platform exited with {platform.returncode}", flush=True)
                return 1
        return 0
    finally:
        stop.set()
        if platform is not None and platform.poll() is None:
            platform.send_signal(signal.SIGTERM)  # honcho stops its processes in order
            try:
                platform.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(platform.pid, signal.SIGKILL)
        relay.stop()
        dovecot.close()
        graph.stop()
        for violation in graph.take_violations():
            print(f"demo: the Graph test server saw a body Graph v1.0 lacks: {violation}", flush=True)
        print("demo: stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
