"""Outgoing mail: pending CRM email -> claim -> send -> Sent, never twice.

The Message-ID is fixed when an email is claimed, before any network I/O. An
email whose claim expires while it is Sending may have been accepted by the
server: it becomes "outcome unknown" with an alert and is never resent on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import errors as email_errors
from email import policy
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q, QuerySet, Value
from django.db.models.expressions import Combinable
from django.db.models.functions import Least, Power

from crm.choices import OutgoingMethod
from crm.models import ActivityParty, EmailActivity, EmailAttachment, OrganizationSettings
from mailboxes.models import ApprovalStatus, Mailbox
from sync import activity_store, alerts, clock, mailbox_state, parsing, sent_settling
from sync.checkpoints import checkpoint
from sync.connectors.base import SendResult
from sync.connectors.interfaces import Outgoing, Verdict
from sync.database_wait import database_back
from sync.errors import MessageError, PermanentError, SyncError, TransientError
from sync.models import AlertLevel, OutgoingClaim, SyncKind, SyncOutcome, SyncRun, TrackingTokenSequence
from sync.scheduler import eligible
from sync.send_rate import send_slot_free_on
from sync.server_settings import connectors_of, incoming_settings, kind_for, outgoing_settings, profile_of
from sync.sql import quoted

MAX_SEND_ATTEMPTS = 10


# CRLF line endings (RFC 5321 2.3.8) and 7-bit content: text with non-ASCII
# characters or lines over 78 characters goes quoted-printable or base64, so
# every line stays far below RFC 5322's 998 octets and any server takes the
# message, with or without 8BITMIME.
class _HeaderClasses(HeaderRegistry):
    """The email package's header registry, with each header name's class made
    once: the stock one makes a new class (``type(...)``) every time a header is
    set or read, some 30 times an email, a sixth of the time writing one."""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(name)
        return made


SEVEN_BIT = policy.SMTP.clone(cte_type="7bit", header_factory=_HeaderClasses())
# A non-ASCII address can only be written in UTF-8 headers (RFC 6532); the SMTP
# connector sends such mail only to a server that offers SMTPUTF8.
INTERNATIONAL = policy.SMTPUTF8.clone(header_factory=_HeaderClasses())
# The email package writes message/* and multipart/* payloads as they are, with
# bare LF line ends; attachments of those types go as opaque bytes instead.
_OPAQUE_MAINTYPES = frozenset({"message", "multipart"})


def pending_for(mailbox: Mailbox) -> QuerySet[EmailActivity]:
    """Pending Send emails this mailbox sends: from its user or its queue, due now."""
    sender = Q(user_id=mailbox.user_id) if mailbox.user_id else Q(queue_id=mailbox.queue_id)
    now = clock.now()
    # A subquery rather than a join and DISTINCT, which would compare whole rows, bodies included.
    senders = ActivityParty.objects.filter(sender, role=ActivityParty.Role.FROM).values("email_id")
    retry_on = "outgoing_claim__next_attempt_on"
    return (
        EmailActivity.objects.filter(pk__in=senders, status=EmailActivity.Status.PENDING_SEND)
        .filter(Q(outgoing_claim__isnull=True) | clock.came(retry_on, now=now, longest=_longest_backoff()))
        .order_by("created_on", "pk")
    )


def send_pending(*, mailbox: Mailbox) -> SyncRun:
    """Send this mailbox's pending email over one SMTP connection."""
    run = SyncRun.objects.create(mailbox=mailbox, kind=SyncKind.OUTGOING, started_on=clock.now())
    emails = list(_batch(mailbox))
    sending: _Sending | None = None
    try:
        sent_settling.settle_from_sent_items(mailbox=mailbox)
        if emails:
            organization = OrganizationSettings.load()
            with connectors_of(profile_of(mailbox)).outgoing(outgoing_settings(mailbox)) as smtp:
                sending = _Sending(smtp, mailbox, run, organization)
                sending.send_all(emails)
    except (TransientError, PermanentError) as error:
        alerts.run_finish(run, SyncOutcome.FAILED, error)
        mailbox_state.record_failure(mailbox=mailbox, kind=SyncKind.OUTGOING, error=error)
        return run
    except (OperationalError, InterfaceError):
        # The database went away mid-send. This run alone knows what became of its emails:
        # recorded once the database is back, they need not be left "outcome unknown"
        # (sync/database_loss.py settles the rest of the run).
        if sending is not None and database_back():
            sending.settle_after_database_loss()
        raise
    _copy_to_sent_folder(mailbox, sending.sent if sending else [])
    rate_limited = sending is not None and sending.rate_limited
    stopped = rate_limited or len(emails) >= settings.SYNC_RUN_MAX_MESSAGES
    alerts.run_close(run, SyncOutcome.PARTIAL if stopped else SyncOutcome.SUCCESS)
    mailbox_state.record_success(
        mailbox=mailbox, kind=SyncKind.OUTGOING, processed=run.sent, failed=run.failed, run=run
    )
    return run


def _batch(mailbox: Mailbox) -> QuerySet[EmailActivity]:
    """This run's emails, with what sending them reads (the claim of an earlier
    attempt, the email answered, parties, attachments) in three queries, not in
    several per email."""
    return (
        pending_for(mailbox)
        .select_related("outgoing_claim", "correlated_email")
        .prefetch_related("parties", "attachments")[: settings.SYNC_RUN_MAX_MESSAGES]
    )


@dataclass(frozen=True)
class _Ready:
    """An email claimed (durably: before any of it goes out) and written."""

    email: EmailActivity
    claim: OutgoingClaim
    message: OutgoingMessage


class _Sending:
    """A run's emails over one connection, with one message in flight: a server
    delivers a message before it answers the end of its data (tens of
    milliseconds here), and that is when the email before it is recorded Sent
    and the next one claimed and written, so neither the statements, nor the
    claim's disk flush, nor writing the MIME message add to the run's time.

    Never twice still holds: an email goes out only under a claim committed
    before (one claimed ahead at most: should the run stop before its turn, it
    is given back to Pending Send, its attempt not counted), and an email the
    server took stays Sending until it is recorded, so a worker that dies in
    between leaves it (and the one claimed ahead) to be settled as "outcome
    unknown", never resent."""

    def __init__(
        self, smtp: Outgoing, mailbox: Mailbox, run: SyncRun, organization: OrganizationSettings
    ) -> None:
        self.smtp, self.mailbox, self.run, self.organization = smtp, mailbox, run, organization
        self.sent: list[EmailActivity] = []
        self.rate_limited = False
        self._ready: _Ready | None = None  # claimed ahead, not submitted yet
        # Taken by the server, not recorded yet: one at a time, unless the database went away
        # before one was recorded (they wait for it to come back: settle_after_database_loss).
        self._accepted: list[tuple[_Ready, SendResult]] = []

    def send_all(self, emails: Iterable[EmailActivity]) -> None:
        queue = iter(emails)
        try:
            self._ready = self._next(queue)
            while self._ready is not None:
                ready, self._ready = self._ready, None
                submission = self._submit(ready)
                try:  # while the server delivers `ready`:
                    self._record_accepted()
                    self._ready = self._next(queue)
                finally:  # its verdict is read even if the work meanwhile failed
                    if submission is not None:
                        self._conclude(ready, submission)
        except (TransientError, PermanentError):
            if self._ready is not None:
                _give_back(self._ready.email, self._ready.claim)
            raise
        finally:
            self._record_accepted()

    def _next(self, queue: Iterator[EmailActivity]) -> _Ready | None:
        """The next email claimed and written, or None when there is none (or the rate limit says wait)."""
        for email in queue:
            if send_slot_free_on(self.mailbox) is not None:
                self.rate_limited = True  # the scheduler brings the mailbox back when a slot frees
                return None
            claim = claim_email(email=email, mailbox=self.mailbox, organization=self.organization)
            if claim is None:
                continue
            try:
                return _Ready(email, claim, build_message(email=email, mailbox=self.mailbox))
            except MessageError as error:
                self._settle_failure(email, claim, error)
        return None

    def _submit(self, ready: _Ready) -> Verdict | None:
        """The message sent up to the end of its data; None when the server refused it before."""
        message = ready.message
        try:
            return self.smtp.submit(
                message.raw, mail_from=self.mailbox.email_address, rcpt_to=message.recipients
            )
        except SyncError as error:
            if self._settle_failure(ready.email, ready.claim, error):
                raise
            return None

    def _conclude(self, ready: _Ready, submission: Verdict) -> None:
        try:
            result = submission.result()
        except SyncError as error:
            if self._settle_failure(ready.email, ready.claim, error):
                raise
            return
        checkpoint("after_smtp_data")  # a crash here leaves the email "outcome unknown"
        self._accepted.append((ready, result))

    def _record_accepted(self) -> None:
        while self._accepted:
            ready, result = self._accepted[0]
            _mark_sent(ready.email, ready.claim, ready.message, self.organization, refused=result.refused)
            self._accepted.pop(0)  # once recorded: should the database fail first, it stays to record
            self.run.sent += 1
            self.sent.append(ready.email)

    def settle_after_database_loss(self) -> None:
        """With the database back after it went away mid-run: the email the server took is
        recorded Sent, the one claimed ahead and never submitted is given back to Pending
        Send. Emails caught part way through a write stay Sending, for "outcome unknown"."""
        self._record_accepted()
        if self._ready is not None:
            ready, self._ready = self._ready, None
            _give_back(ready.email, ready.claim)

    def _settle_failure(self, email: EmailActivity, claim: OutgoingClaim, error: SyncError) -> bool:
        """Record why this email was not sent; True when the error stops the whole run."""
        if isinstance(error, MessageError):
            _mark_failed(email, claim, error.message)
        elif isinstance(error, TransientError) and error.code == "outcome_unknown":
            mark_outcome_unknown(email_id=email.pk, reason=error.message)
        elif isinstance(error, TransientError):
            _retry_later(email, claim, error)
            return True
        else:
            _release(email, claim)  # not this email's fault: it waits for the mailbox to work again
            return True
        self.run.failed += 1
        return False


@transaction.atomic
def claim_email(
    *, email: EmailActivity, mailbox: Mailbox, organization: OrganizationSettings
) -> OutgoingClaim | None:
    """Pending Send -> Sending under a claim; fixes Message-ID and tracking token first.

    ``email`` is the row as this run listed it: the claim is one conditional
    UPDATE that holds only while the row is unchanged since (else None, and the
    email waits for the next run), so what is sent is what was claimed, without
    reading the row again.
    """
    now = clock.now()
    message_id = email.message_id or parsing.normalize_message_id(
        make_msgid(domain=mailbox.email_address.rpartition("@")[2])
    )
    identity = email.message_identity if email.message_id else parsing.identity_for(message_id, b"")
    token = email.tracking_token or next_tracking_token(email, organization)
    claimed = EmailActivity.objects.filter(
        pk=email.pk, status=EmailActivity.Status.PENDING_SEND, modified_on=email.modified_on
    ).update(
        status=EmailActivity.Status.SENDING,
        modified_on=now,
        message_id=message_id,
        message_identity=identity,
        tracking_token=token,
    )
    if not claimed:
        transaction.set_rollback(True)  # gives the tracking token's number back
        return None
    email.status, email.modified_on = EmailActivity.Status.SENDING, now
    email.message_id, email.message_identity, email.tracking_token = message_id, identity, token
    return _hold(email, mailbox, now)


def _claim_length() -> timedelta:
    return timedelta(seconds=settings.SYNC_LEASE_SECONDS)


def _hold(email: EmailActivity, mailbox: Mailbox, now: datetime) -> OutgoingClaim:
    """The claim row: made on the first attempt, renewed on a later one."""
    expires = now + _claim_length()
    try:
        claim = email.outgoing_claim  # listed with the email (select_related)
    except OutgoingClaim.DoesNotExist:
        return OutgoingClaim.objects.create(email=email, mailbox=mailbox, expires_on=expires, attempts=1)
    OutgoingClaim.objects.filter(pk=claim.pk).update(
        mailbox=mailbox, expires_on=expires, next_attempt_on=None, attempts=F("attempts") + 1
    )
    claim.mailbox, claim.expires_on, claim.next_attempt_on = mailbox, expires, None
    claim.attempts += 1
    return claim


def next_tracking_token(email: EmailActivity, organization: OrganizationSettings) -> str:
    """``CRM:0001001``: prefix, a 0 (online), the user number and a per-user counter."""
    if not organization.tracking_token_enabled:
        return ""
    owner = email.owner_id or 0
    user_digits, counter_digits = (
        organization.tracking_token_user_digits,
        organization.tracking_token_counter_digits,
    )
    value = (organization.tracking_token_base_number + _take_number(f"user:{owner}")) % 10**counter_digits
    user_number = owner % 10**user_digits
    return f"{organization.tracking_token_prefix}:0{user_number:0{user_digits}d}{value:0{counter_digits}d}"


def _take_number(owner_key: str) -> int:
    """The counter's next number, taken in one statement (an upsert; its row made on
    first use) instead of a locking read and an update. The row stays locked until
    the claim's transaction ends, and a rollback gives the number back. PostgreSQL
    and SQLite (3.35 and later) both speak this."""
    table, key, value = quoted(TrackingTokenSequence, "owner_key", "next_value")
    with connection.cursor() as cursor:
        cursor.execute(
            # Identifiers from the model, quoted; the one value is a parameter.
            f"INSERT INTO {table} ({key}, {value}) VALUES (%s, 2) "  # noqa: S608
            f"ON CONFLICT ({key}) DO UPDATE SET {value} = {table}.{value} + 1 "
            f"RETURNING {value} - 1",
            [owner_key],
        )
        (number,) = cursor.fetchone()
    return int(number)


@dataclass(frozen=True)
class OutgoingMessage:
    """An email as it goes out. ``raw`` is what DATA carries (before dot-stuffing)
    and what is stored; ``recipients`` the envelope (Bcc only there); ``facts``
    what correlation would read from ``raw``, known without parsing it again."""

    raw: bytes
    recipients: list[str]
    facts: parsing.ParsedMessage


def build_message(*, email: EmailActivity, mailbox: Mailbox) -> OutgoingMessage:
    """The MIME message to send: CRLF line endings, 7-bit unless an address needs
    UTF-8, lines folded at 78 characters. What the email package cannot write
    raises MessageError, so this email fails and the run goes on."""
    parties = list(email.parties.all())
    sender = parsing.Address(
        address=mailbox.email_address, name=_one_line(str(mailbox.user or mailbox.queue or ""))
    )
    to, cc = _addresses(parties, ActivityParty.Role.TO), _addresses(parties, ActivityParty.Role.CC)
    message = EmailMessage(policy=_policy_for([sender, *to, *cc]))
    try:
        _write_headers(message, email, sender, to, cc)
        _write_body(message, email)
        raw = message.as_bytes()
    except (ValueError, TypeError, LookupError, email_errors.MessageError) as error:
        raise MessageError(
            f"The email cannot be written as a MIME message ({type(error).__name__}: {error}). "
            "Correct its addresses, subject or attachments and send it again.",
            code="unwritable_message",
        ) from error
    envelope = (ActivityParty.Role.TO, ActivityParty.Role.CC, ActivityParty.Role.BCC)
    recipients = [p.address for p in parties if p.role in envelope]
    return OutgoingMessage(raw=raw, recipients=recipients, facts=_facts(email, message, sender, to, cc))


def _policy_for(addresses: Iterable[parsing.Address]) -> policy.EmailPolicy[EmailMessage]:
    return INTERNATIONAL if any(not a.address.isascii() for a in addresses) else SEVEN_BIT


def _addresses(parties: list[ActivityParty], role: str) -> list[parsing.Address]:
    return [
        parsing.Address(address=p.address, name=_one_line(p.display_name)) for p in parties if p.role == role
    ]


def _one_line(text: str) -> str:
    """A header value on one line: the email package refuses line breaks in one."""
    return " ".join(text.splitlines()).strip()


def _mailbox(address: parsing.Address) -> Address:
    # Built from its parts, not parsed: parsing refuses a non-ASCII local part,
    # which SMTPUTF8 allows, and quoting is done when the header is written.
    local, at, domain = address.address.rpartition("@")
    if not at:
        local, domain = address.address, ""
    return Address(display_name=address.name, username=local, domain=domain)


def _write_headers(
    message: EmailMessage,
    email: EmailActivity,
    sender: parsing.Address,
    to: list[parsing.Address],
    cc: list[parsing.Address],
) -> None:
    message["From"] = _mailbox(sender)
    if to:
        message["To"] = [_mailbox(a) for a in to]
    if cc:
        message["Cc"] = [_mailbox(a) for a in cc]
    message["Subject"] = _subject(email)
    message["Message-ID"] = f"<{email.message_id}>"
    message["Date"] = format_datetime(clock.now())
    parent = email.correlated_email
    if parent is not None and parent.message_id:
        message["In-Reply-To"] = f"<{parent.message_id}>"
        message["References"] = " ".join(filter(None, [parent.references, f"<{parent.message_id}>"]))


def _subject(email: EmailActivity) -> str:
    subject = _one_line(email.subject)
    if email.tracking_token and email.tracking_token not in subject:
        subject = f"{subject} {email.tracking_token}".strip()
    return subject


def _write_body(message: EmailMessage, email: EmailActivity) -> None:
    message.set_content(email.body_text or "")
    if email.body_html:
        message.add_alternative(email.body_html, subtype="html")
    for attachment in email.attachments.all():
        if not attachment.content:
            continue  # over the size limit when it came in: nothing stored to send
        maintype, subtype, params = _attachment_type(attachment.content_type)
        message.add_attachment(
            _read(attachment),
            maintype=maintype,
            subtype=subtype,
            params=params,
            filename=attachment.filename or None,
        )


def _attachment_type(content_type: str) -> tuple[str, str, dict[str, str]]:
    """Type, subtype and parameters (a text file's charset) of a stored type;
    application/octet-stream for one that is missing, invalid or opaque."""
    header = policy.default.header_factory("content-type", _one_line(content_type))
    if header.defects or header.maintype in _OPAQUE_MAINTYPES:  # "" and "pdf" are defects, not text/plain
        return "application", "octet-stream", {}
    return header.maintype, header.subtype, dict(header.params)


def _read(attachment: EmailAttachment) -> bytes:
    try:
        with attachment.content.open("rb") as stored:
            content: bytes = stored.read()
            return content
    except FileNotFoundError as error:
        raise MessageError(
            f"The attachment {attachment.filename!r} is missing from the file storage; "
            "attach it again and send the email again.",
            code="attachment_missing",
        ) from error


def _facts(
    email: EmailActivity,
    message: EmailMessage,
    sender: parsing.Address,
    to: list[parsing.Address],
    cc: list[parsing.Address],
) -> parsing.ParsedMessage:
    """What parsing the written message would tell correlation (headers, addresses,
    subject, threading), taken from what it was written with. Attachments are
    left out: nothing reads them of an email the CRM sent."""
    headers: dict[str, str] = {}
    for name, value in message.items():
        headers.setdefault(name.lower(), str(value))
    return parsing.ParsedMessage(
        identity=email.message_identity or parsing.identity_for(email.message_id, b""),
        message_id=email.message_id,
        subject=headers["subject"][:800],
        sender=sender,
        to=to,
        cc=cc,
        date=message["Date"].datetime,
        in_reply_to=parsing.message_ids(headers.get("in-reply-to", "")),
        references=parsing.message_ids(headers.get("references", "")),
        headers=headers,
        body_text=email.body_text,
        body_html=email.body_html,
    )


def _commit_without_waiting_for_the_disk() -> None:
    """Marking an email Sent need not wait for PostgreSQL's WAL flush (a disk
    flush per email, a tenth of a send here): should the database server crash
    before the flush, the email is back to Sending under its claim, which is
    settled as "outcome unknown" and never resent. Claiming (before anything
    is sent) keeps the full guarantee. Only this transaction; PostgreSQL only."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")


@transaction.atomic
def _mark_sent(
    email: EmailActivity,
    claim: OutgoingClaim,
    message: OutgoingMessage,
    organization: OrganizationSettings,
    *,
    refused: dict[str, str],
) -> None:
    _commit_without_waiting_for_the_disk()
    email.status = EmailActivity.Status.SENT
    email.sent_on = clock.now()
    email.failure_reason = "; ".join(f"{address}: {reply}" for address, reply in refused.items())
    email.raw_message.save("message.eml", ContentFile(message.raw), save=False)
    activity_store.remember_sent(email=email, sent=message.facts, organization=organization)
    email.save(
        update_fields=[
            "status",
            "sent_on",
            "failure_reason",
            "raw_message",
            "conversation_id",
            "conversation_index",
            "modified_on",
        ]
    )
    OutgoingClaim.objects.filter(pk=claim.pk).delete()


def _mark_failed(email: EmailActivity, claim: OutgoingClaim, reason: str) -> None:
    with transaction.atomic():
        EmailActivity.objects.filter(pk=email.pk).update(
            status=EmailActivity.Status.FAILED, failure_reason=reason, modified_on=clock.now()
        )
        OutgoingClaim.objects.filter(pk=claim.pk).delete()


# An email's retries wait SYNC_TRANSIENT_RETRY_MINUTES, doubling with each attempt up to 2**6 times that.
BACKOFF_DOUBLINGS = 6


def _retry_later(email: EmailActivity, claim: OutgoingClaim, error: SyncError) -> None:
    if claim.attempts >= MAX_SEND_ATTEMPTS:
        _mark_failed(email, claim, f"{error.message} (gave up after {claim.attempts} attempts)")
        return
    doublings = min(claim.attempts - 1, BACKOFF_DOUBLINGS)
    delay = timedelta(minutes=settings.SYNC_TRANSIENT_RETRY_MINUTES * 2**doublings)
    with transaction.atomic():
        OutgoingClaim.objects.filter(pk=claim.pk).update(
            next_attempt_on=clock.now() + delay, last_error=error.message
        )
        EmailActivity.objects.filter(pk=email.pk, status=EmailActivity.Status.SENDING).update(
            status=EmailActivity.Status.PENDING_SEND
        )


def _longest_backoff() -> Combinable:
    """Each email's own longest retry wait, in SQL: ``_retry_later``'s delay for its
    attempts so far (a wait further ahead is over: sync/clock.py)."""
    doublings = Least(F("outgoing_claim__attempts") - 1, BACKOFF_DOUBLINGS)
    return Value(timedelta(minutes=settings.SYNC_TRANSIENT_RETRY_MINUTES)) * Power(2, doublings)


def _give_back(email: EmailActivity, claim: OutgoingClaim) -> None:
    """An email claimed ahead that the run stopped before sending: Pending Send
    again, due at once, and the attempt it never had not counted."""
    with transaction.atomic():
        OutgoingClaim.objects.filter(pk=claim.pk).update(
            next_attempt_on=clock.now(), attempts=F("attempts") - 1
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
    now = clock.now()
    # A clock set back leaves claims far ahead (sync/clock.py): they lapse one claim length from now.
    clock.rebase(OutgoingClaim.objects.all(), "expires_on", now=now, length=_claim_length())
    expired = OutgoingClaim.objects.filter(
        expires_on__lt=now, email__status=EmailActivity.Status.SENDING
    ).values_list("email_id", flat=True)
    count = 0
    for email_id in list(expired):
        mark_outcome_unknown(email_id=email_id, reason="The worker stopped while sending.")
        count += 1
    return count


def _stored_raw(email: EmailActivity) -> bytes:
    with email.raw_message.open("rb") as stored:
        raw: bytes = stored.read()
        return raw


def _copy_to_sent_folder(mailbox: Mailbox, sent: list[EmailActivity]) -> None:
    """Put a copy in the Sent folder, where the server has one (IMAP, not POP3)
    and sending did not keep one itself (Graph, EWS); a failure here never resends anything."""
    kind = kind_for(mailbox.profile)
    if not sent or kind is None or kind.sent_items is None or kind.saves_sent_copies:
        return
    try:
        with kind.sent_items(incoming_settings(mailbox)) as folder:
            folder.save_to_sent(_stored_raw(email) for email in sent)
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
