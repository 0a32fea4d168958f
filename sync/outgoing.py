"""Outgoing mail: pending CRM email -> claim -> send -> Sent, never twice.

The Message-ID is fixed when an email is claimed, before any network I/O. An
email whose claim expires while it is Sending may have been accepted by the
server: it becomes "outcome unknown" with an alert and is never resent on its own.
"""

from __future__ import annotations

import os
import signal
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Q, QuerySet

from crm.choices import OutgoingMethod
from crm.models import ActivityParty, EmailActivity, OrganizationSettings
from mailboxes.models import ApprovalStatus, Mailbox
from profiles.models import ServerType
from sync import activity_store, alerts, clock, mailbox_state, parsing
from sync.connectors.imap import ImapConnection
from sync.connectors.smtp import SmtpConnection
from sync.errors import MessageError, PermanentError, SyncError, TransientError
from sync.models import AlertLevel, OutgoingClaim, SyncKind, SyncOutcome, SyncRun, TrackingTokenSequence
from sync.server_settings import incoming_settings, outgoing_settings

MAX_SEND_ATTEMPTS = 10
RATE_WINDOW = timedelta(minutes=1)


def crash_point(name: str) -> None:
    """Die here, as a power cut would, when test settings name this point."""
    if name in settings.SYNC_CRASH_POINTS:
        os.kill(os.getpid(), signal.SIGKILL)


def pending_for(mailbox: Mailbox) -> QuerySet[EmailActivity]:
    """Pending Send emails this mailbox sends: from its user or its queue, due now."""
    sender = Q(parties__user_id=mailbox.user_id) if mailbox.user_id else Q(parties__queue_id=mailbox.queue_id)
    now = clock.now()
    return (
        EmailActivity.objects.filter(
            sender, parties__role=ActivityParty.Role.FROM, status=EmailActivity.Status.PENDING_SEND
        )
        .filter(Q(outgoing_claim__isnull=True) | Q(outgoing_claim__next_attempt_on__lte=now))
        .order_by("created_on", "pk")
        .distinct()
    )


def send_pending(*, mailbox: Mailbox) -> SyncRun:
    """Send this mailbox's pending email over one SMTP connection."""
    run = SyncRun.objects.create(mailbox=mailbox, kind=SyncKind.OUTGOING, started_on=clock.now())
    emails = list(pending_for(mailbox)[: settings.SYNC_RUN_MAX_MESSAGES])
    sent: list[EmailActivity] = []
    rate_limited = False
    try:
        if emails:
            with SmtpConnection(outgoing_settings(mailbox)) as smtp:
                for email in emails:
                    if send_slot_free_on(mailbox) is not None:
                        rate_limited = True  # the scheduler brings the mailbox back when a slot frees
                        break
                    if _send_one(smtp, mailbox, email, run):
                        sent.append(email)
    except (TransientError, PermanentError) as error:
        alerts.run_finish(run, SyncOutcome.FAILED, error)
        mailbox_state.record_failure(mailbox=mailbox, kind=SyncKind.OUTGOING, error=error)
        return run
    _copy_to_sent_folder(mailbox, sent)
    stopped = rate_limited or len(emails) >= settings.SYNC_RUN_MAX_MESSAGES
    alerts.run_finish(run, SyncOutcome.PARTIAL if stopped else SyncOutcome.SUCCESS)
    mailbox_state.record_success(
        mailbox=mailbox, kind=SyncKind.OUTGOING, processed=run.sent, failed=run.failed
    )
    return run


def send_slot_free_on(mailbox: Mailbox) -> datetime | None:
    """When this mailbox may send again under its profile's rate limit, or None
    when it may send now. Counted in the database (sent in the last minute plus
    sending now), so the limit holds whichever worker holds the mailbox."""
    limit = mailbox.profile.outgoing_rate_limit_per_minute if mailbox.profile else None
    if not limit:
        return None
    now = clock.now()
    sender = Q(user_id=mailbox.user_id) if mailbox.user_id else Q(queue_id=mailbox.queue_id)
    recent = (
        EmailActivity.objects.filter(
            pk__in=ActivityParty.objects.filter(sender, role=ActivityParty.Role.FROM).values("email_id"),
            status=EmailActivity.Status.SENT,
            sent_on__gt=now - RATE_WINDOW,
        )
        .order_by("sent_on")
        .values_list("sent_on", flat=True)
    )
    sent_on = [at for at in recent if at is not None]
    sending = OutgoingClaim.objects.filter(
        mailbox=mailbox, email__status=EmailActivity.Status.SENDING
    ).count()
    over = len(sent_on) + sending - limit
    if over < 0:
        return None
    # The slot frees when enough of the last minute's sends have aged out of it.
    return sent_on[over] + RATE_WINDOW if over < len(sent_on) else now + RATE_WINDOW


def _send_one(smtp, mailbox: Mailbox, email: EmailActivity, run: SyncRun) -> bool:  # type: ignore[no-untyped-def]
    claim = claim_email(email=email, mailbox=mailbox)
    if claim is None:
        return False
    raw, recipients = build_message(email=email, mailbox=mailbox)
    try:
        result = smtp.send(raw, mail_from=mailbox.email_address, rcpt_to=recipients)
    except MessageError as error:
        _mark_failed(email, claim, error.message)
        run.failed += 1
        return False
    except TransientError as error:
        if error.code == "outcome_unknown":
            mark_outcome_unknown(email_id=email.pk, reason=error.message)
            run.failed += 1
            return False
        _retry_later(email, claim, error)
        raise
    except PermanentError:
        _release(email, claim)  # not this email's fault: it waits for the mailbox to work again
        raise
    crash_point("after_smtp_data")
    _mark_sent(email, claim, raw, refused=result.refused)
    run.sent += 1
    return True


@transaction.atomic
def claim_email(*, email: EmailActivity, mailbox: Mailbox) -> OutgoingClaim | None:
    """Pending Send -> Sending under a claim; fixes Message-ID and tracking token first."""
    now = clock.now()
    updated = EmailActivity.objects.filter(pk=email.pk, status=EmailActivity.Status.PENDING_SEND).update(
        status=EmailActivity.Status.SENDING, modified_on=now
    )
    if not updated:
        return None
    email.refresh_from_db()
    if not email.message_id:
        email.message_id = parsing.normalize_message_id(
            make_msgid(domain=mailbox.email_address.rpartition("@")[2])
        )
        email.message_identity = parsing.identity_for(email.message_id, b"")
    if not email.tracking_token:
        email.tracking_token = next_tracking_token(email)
    email.save(update_fields=["message_id", "message_identity", "tracking_token", "modified_on"])
    expires = now + timedelta(seconds=settings.SYNC_LEASE_SECONDS)
    claim, _ = OutgoingClaim.objects.update_or_create(
        email=email, defaults={"mailbox": mailbox, "expires_on": expires, "next_attempt_on": None}
    )
    OutgoingClaim.objects.filter(pk=claim.pk).update(attempts=claim.attempts + 1)
    claim.attempts += 1
    return claim


def next_tracking_token(email: EmailActivity) -> str:
    """``CRM:0001001``: prefix, a 0 (online), the user number and a per-user counter."""
    organization = OrganizationSettings.load()
    if not organization.tracking_token_enabled:
        return ""
    owner = email.owner_id or 0
    user_digits, counter_digits = (
        organization.tracking_token_user_digits,
        organization.tracking_token_counter_digits,
    )
    sequence, _ = TrackingTokenSequence.objects.select_for_update().get_or_create(owner_key=f"user:{owner}")
    value = (organization.tracking_token_base_number + sequence.next_value) % 10**counter_digits
    TrackingTokenSequence.objects.filter(pk=sequence.pk).update(next_value=sequence.next_value + 1)
    user_number = owner % 10**user_digits
    return f"{organization.tracking_token_prefix}:0{user_number:0{user_digits}d}{value:0{counter_digits}d}"


def build_message(*, email: EmailActivity, mailbox: Mailbox) -> tuple[bytes, list[str]]:
    """The MIME message to send and its envelope recipients (Bcc only in the envelope)."""
    parties = list(email.parties.all())
    message = EmailMessage()
    sender_name = str(mailbox.user or mailbox.queue or "")
    message["From"] = formataddr((sender_name, mailbox.email_address))
    for role, header in ((ActivityParty.Role.TO, "To"), (ActivityParty.Role.CC, "Cc")):
        addresses = [formataddr((p.display_name, p.address)) for p in parties if p.role == role]
        if addresses:
            message[header] = ", ".join(addresses)
    subject = email.subject
    if email.tracking_token and email.tracking_token not in subject:
        subject = f"{subject} {email.tracking_token}".strip()
    message["Subject"] = subject
    message["Message-ID"] = f"<{email.message_id}>"
    message["Date"] = format_datetime(clock.now())
    if email.correlated_email_id and email.correlated_email and email.correlated_email.message_id:
        parent = email.correlated_email
        message["In-Reply-To"] = f"<{parent.message_id}>"
        message["References"] = " ".join(filter(None, [parent.references, f"<{parent.message_id}>"]))
    message.set_content(email.body_text or "")
    if email.body_html:
        message.add_alternative(email.body_html, subtype="html")
    for attachment in email.attachments.exclude(content=""):
        with attachment.content.open("rb") as stored:
            maintype, _, subtype = attachment.content_type.partition("/")
            message.add_attachment(
                stored.read(),
                maintype=maintype,
                subtype=subtype or "octet-stream",
                filename=attachment.filename,
            )
    recipients = [
        p.address
        for p in parties
        if p.role in (ActivityParty.Role.TO, ActivityParty.Role.CC, ActivityParty.Role.BCC)
    ]
    return message.as_bytes(), recipients


@transaction.atomic
def _mark_sent(email: EmailActivity, claim: OutgoingClaim, raw: bytes, *, refused: dict[str, str]) -> None:
    email.status = EmailActivity.Status.SENT
    email.sent_on = clock.now()
    email.failure_reason = "; ".join(f"{address}: {reply}" for address, reply in refused.items())
    email.raw_message.save("message.eml", ContentFile(raw), save=False)
    email.save(update_fields=["status", "sent_on", "failure_reason", "raw_message", "modified_on"])
    activity_store.remember_sent(email=email, raw=raw)
    OutgoingClaim.objects.filter(pk=claim.pk).delete()


def _mark_failed(email: EmailActivity, claim: OutgoingClaim, reason: str) -> None:
    with transaction.atomic():
        EmailActivity.objects.filter(pk=email.pk).update(
            status=EmailActivity.Status.FAILED, failure_reason=reason, modified_on=clock.now()
        )
        OutgoingClaim.objects.filter(pk=claim.pk).delete()


def _retry_later(email: EmailActivity, claim: OutgoingClaim, error: SyncError) -> None:
    if claim.attempts >= MAX_SEND_ATTEMPTS:
        _mark_failed(email, claim, f"{error.message} (gave up after {claim.attempts} attempts)")
        return
    delay = timedelta(minutes=settings.SYNC_TRANSIENT_RETRY_MINUTES * 2 ** min(claim.attempts - 1, 6))
    with transaction.atomic():
        OutgoingClaim.objects.filter(pk=claim.pk).update(
            next_attempt_on=clock.now() + delay, last_error=error.message
        )
        EmailActivity.objects.filter(pk=email.pk, status=EmailActivity.Status.SENDING).update(
            status=EmailActivity.Status.PENDING_SEND
        )


def _release(email: EmailActivity, claim: OutgoingClaim) -> None:
    with transaction.atomic():
        OutgoingClaim.objects.filter(pk=claim.pk).update(next_attempt_on=clock.now())
        EmailActivity.objects.filter(pk=email.pk, status=EmailActivity.Status.SENDING).update(
            status=EmailActivity.Status.PENDING_SEND
        )


def mark_outcome_unknown(*, email_id: int, reason: str) -> None:
    with transaction.atomic():
        updated = EmailActivity.objects.filter(pk=email_id, status=EmailActivity.Status.SENDING).update(
            status=EmailActivity.Status.OUTCOME_UNKNOWN, failure_reason=reason, modified_on=clock.now()
        )
        claim = OutgoingClaim.objects.filter(email_id=email_id).select_related("mailbox").first()
        if claim is not None:
            claim.delete()
        if updated and claim is not None:
            alerts.record_alert(
                level=AlertLevel.ERROR,
                category=SyncKind.OUTGOING,
                code="outcome_unknown",
                message=f"Sending email {email_id} was interrupted after the server may have accepted it; "
                "check the recipient's copy, then resend or mark it sent. " + reason,
                mailbox=claim.mailbox,
            )


def settle_expired_claims() -> int:
    """Emails whose claim lapsed while Sending: the worker died mid-send. Never resend them."""
    expired = OutgoingClaim.objects.filter(
        expires_on__lt=clock.now(), email__status=EmailActivity.Status.SENDING
    ).values_list("email_id", flat=True)
    count = 0
    for email_id in list(expired):
        mark_outcome_unknown(email_id=email_id, reason="The worker stopped while sending.")
        count += 1
    return count


def _copy_to_sent_folder(mailbox: Mailbox, sent: list[EmailActivity]) -> None:
    """Put a copy in the IMAP Sent folder; a failure here never resends anything."""
    if not sent or mailbox.profile is None or mailbox.profile.server_type != ServerType.IMAP_SMTP:
        return
    try:
        with ImapConnection(incoming_settings(mailbox)) as imap:
            folder = imap.find_sent_folder()
            for email in sent:
                with email.raw_message.open("rb") as stored:
                    imap.append(folder, stored.read())
    except (TransientError, PermanentError) as error:
        alerts.record_alert(
            level=AlertLevel.WARNING,
            category=SyncKind.OUTGOING,
            code="sent_copy_failed",
            message=f"Sent email could not be copied to the Sent folder: {error.message}",
            mailbox=mailbox,
        )


def cannot_send_reason(mailbox: Mailbox | None) -> str:
    """Why a mailbox cannot send now ('' when it can), in the administrator's words."""
    from sync.scheduler import eligible

    if mailbox is None:
        return "The sender has no mailbox."
    if eligible(SyncKind.OUTGOING).filter(pk=mailbox.pk).exists():
        return ""
    if mailbox.outgoing_method != OutgoingMethod.SERVER_SIDE_SYNC:
        return "Its outgoing email sync method is not Server-Side Synchronization."
    if mailbox.approval_status != ApprovalStatus.APPROVED:
        return "Its email address is not approved."
    if not mailbox.outgoing_enabled:
        return f"Outgoing email is not enabled (test & enable it). {mailbox.disabled_reason}".strip()
    return "It cannot send now: inactive profile or owner, postponed after errors, or not supported yet."


def warn_stuck_pending() -> int:
    """Pending Send email whose sender mailbox cannot send stays pending, with a
    Warning alert saying why."""
    stuck = 0
    senders = (
        ActivityParty.objects.filter(
            role=ActivityParty.Role.FROM, email__status=EmailActivity.Status.PENDING_SEND
        )
        .values_list("user_id", "queue_id")
        .distinct()
    )
    for user_id, queue_id in senders:
        mailbox = Mailbox.objects.sending_as(user_id=user_id, queue_id=queue_id).first()
        reason = cannot_send_reason(mailbox)
        if reason and mailbox is not None:
            alerts.record_alert(
                level=AlertLevel.WARNING,
                category=SyncKind.OUTGOING,
                code="cannot_send",
                message=f"Email waits in Pending Send: {reason}",
                mailbox=mailbox,
            )
            stuck += 1
    return stuck
