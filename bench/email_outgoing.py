"""B4: sending pending CRM email through the relay, against smtplib sending the
same email's bytes over one reused connection to the same relay."""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from datetime import UTC, datetime

from django.core.files.base import ContentFile

from bench.email_crm import Bench, fresh, run_budget, user_mailbox
from bench.email_figures import Figure, Profiler, Rate, Result, counting_queries, ratio_figure
from bench.mail_corpus import OutgoingEmail, Party, outgoing_bytes, outgoing_emails
from bench.mail_stack import MailStack, MailUser
from crm.models import Contact, EmailActivity, EmailAttachment
from crm.services import email_create
from mailboxes.models import Mailbox
from sync.outgoing import send_pending

B4_TARGET = 0.70
# Each side's work in turns, so load from other work on the machine meets both alike.
B4_CHUNKS = 4
SENDER_NAME = "Vertrieb Süd"
CUSTOMERS = ["Zoë Ångström", "Jürgen Müller", "Françoise Dupré", "Łukasz Żółć"]


def send(bench: Bench) -> Result:
    result = Result()
    sender = bench.stack.add_user("b4-sender")
    customers = [
        Party(name, bench.stack.add_user(f"b4-kunde-{n}").address) for n, name in enumerate(CUSTOMERS)
    ]
    Contact.objects.bulk_create(Contact(last_name=p.name, email=p.address) for p in customers)
    mailbox = user_mailbox(sender, bench.profile, name=SENDER_NAME)
    emails = outgoing_emails(bench.options.emails, customers, seed=bench.options.seed)
    ids = [_pending(mailbox, email) for email in emails]
    wire = [_wire(email, sender, f"b4-size-{n}") for n, email in enumerate(emails)]
    sizes = [len(raw) for raw, _ in wire]
    result.note(
        f"{len(emails)} pending CRM emails, {min(sizes) / 1000:.0f} to {max(sizes) / 1000:.0f} KB "
        "on the wire "
        f"(median {statistics.median(sizes) / 1000:.0f} KB), {sum(1 for e in emails if e.attachments)} "
        "with an attachment"
    )
    raw, engine = Rate(), Rate()
    sent = _interleaved(bench, mailbox.pk, sender, emails, raw, engine, result)
    result.note(f"raw: {raw.items} sent in {raw.seconds:.1f} s, in turns with the engine's runs")
    name = f"B4 send, {len(emails)} emails of 5 to 50 KB"
    if sent < len(ids):
        result.figures.append(
            Figure(name, _refusal(ids, sent), raw=f"smtplib {raw.per_second:,.1f} emails/s", failed=True)
        )
        return result
    result.figures.append(
        ratio_figure(
            name,
            unit="emails/s",
            engine=engine.per_second,
            raw_label="smtplib, one connection,",
            raw=raw.per_second,
            target=B4_TARGET,
        )
    )
    return result


def _pending(mailbox: Mailbox, email: OutgoingEmail) -> int:
    """A Pending Send email from the mailbox's user, as the CRM's API creates it."""
    activity = email_create(
        owner=mailbox.user,
        subject=email.subject,
        body_text=email.text,
        body_html=email.html,
        status=EmailActivity.Status.PENDING_SEND,
        to=[p.address for p in email.to],
        cc=[p.address for p in email.cc],
    )
    for filename, content_type, data in email.attachments:
        EmailAttachment.objects.create(
            email=activity,
            filename=filename,
            content_type=content_type,
            size=len(data),
            content=ContentFile(data, name="attachment"),
        )
    return activity.pk


def _wire(email: OutgoingEmail, sender: MailUser, message_id: str) -> tuple[bytes, list[str]]:
    raw = outgoing_bytes(
        email,
        sender=Party(SENDER_NAME, sender.address),
        message_id=f"{message_id}@example.test",
        date=datetime.now(UTC),
    )
    return raw, [p.address for p in [*email.to, *email.cc]]


def _interleaved(
    bench: Bench,
    mailbox_id: int,
    sender: MailUser,
    emails: list[OutgoingEmail],
    raw: Rate,
    engine: Rate,
    result: Result,
) -> int:
    """The engine in runs of a chunk each (the run budget), each after smtplib sent the same
    chunk: load from other work on the machine meets both. Returns how many the engine sent."""
    chunk = math.ceil(len(emails) / B4_CHUNKS)
    profiler = Profiler(bench.profiled("B4"), "B4 send (send_pending)", bench.options.top)
    runs, statements = [], 0
    with run_budget(chunk):
        for start in range(0, len(emails), chunk):
            _raw_sends(bench.stack, sender, emails[start : start + chunk], raw, f"b4-raw-{start}")
            mailbox = fresh(mailbox_id)
            with counting_queries() as queries, profiler.measuring(), engine.timing():
                runs.append(send_pending(mailbox=mailbox))
            statements += queries.count
    profiler.report()
    sent, failed = sum(run.sent for run in runs), sum(run.failed for run in runs)
    engine.items = sent
    errors = {run.error_text for run in runs if run.error_text}
    result.note(
        f"engine: {len(runs)} send_pending runs ({', '.join(sorted({run.outcome for run in runs}))}): "
        f"{sent} sent, {failed} failed in {engine.seconds:.1f} s (the copies to the Sent folder included); "
        f"{statements / max(sent + failed, 1):.1f} SQL statements per email"
        + (f"; {'; '.join(sorted(errors))}" if errors else "")
    )
    return sent


def _raw_sends(
    stack: MailStack, sender: MailUser, emails: list[OutgoingEmail], rate: Rate, label: str
) -> None:
    """The same emails over one smtplib connection (connecting and signing in timed too, as the
    engine's run is)."""
    messages = [_wire(email, sender, f"{label}-{n}") for n, email in enumerate(emails)]
    with rate.timing():
        client = stack.smtp(sender)
        try:
            for raw, recipients in messages:
                client.sendmail(sender.address, recipients, raw)
                rate.items += 1
        finally:
            client.quit()


def _server_reply(reason: str) -> str:
    """The server's own words in a failure reason (its reply code onwards), short enough for a cell."""
    reply = re.search(r"\b[45]\d\d\b[^()]*(\([^()]*\))?", reason)
    return (reply.group(0) if reply else reason)[:80]


def _refusal(ids: list[int], sent: int) -> str:
    """Why the engine did not send everything, in one cell: statuses and the first reason."""
    emails = EmailActivity.objects.filter(pk__in=ids)
    statuses = Counter(emails.values_list("status", flat=True))
    reasons = Counter(r for r in emails.exclude(failure_reason="").values_list("failure_reason", flat=True))
    shown = ", ".join(f"{status} {count}" for status, count in statuses.most_common())
    reason = f": {_server_reply(reasons.most_common(1)[0][0])}" if reasons else ""
    return f"{sent} of {len(ids)} sent ({shown}){reason}"
