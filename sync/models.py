"""The engine's own records: where each folder was read up to, what became of
every message a mailbox saw, quarantined messages, alerts, sync runs, and the
leases that keep one mailbox from syncing twice at once."""

from __future__ import annotations

import uuid
from typing import Self, TypeVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Coalesce

from crm.models import Appointment, Contact, CrmUser, EmailActivity, Task
from mailboxes.filter_criteria import SyncEntity
from mailboxes.models import Mailbox
from profiles.models import EmailServerProfile

_Row = TypeVar("_Row", bound=models.Model)


class MailboxRowsQuerySet(models.QuerySet[_Row]):
    """Rows that belong to a mailbox: a user sees those of the mailboxes they can see."""

    def visible_to(self, crm_user: CrmUser) -> Self:
        # Rows without a mailbox (alerts about a profile) fall outside: administrators only.
        return self.filter(mailbox__in=Mailbox.objects.visible_to(crm_user).values("pk"))


class ReceiptQuerySet(MailboxRowsQuerySet["Receipt"]):
    pass


class QuarantinedMessageQuerySet(MailboxRowsQuerySet["QuarantinedMessage"]):
    pass


class MailboxAlertQuerySet(MailboxRowsQuerySet["MailboxAlert"]):
    pass


class SyncRunQuerySet(MailboxRowsQuerySet["SyncRun"]):
    pass


class SyncKind(models.TextChoices):
    INCOMING = "incoming", "Incoming email"
    OUTGOING = "outgoing", "Outgoing email"
    ACT = "act", "Appointments, contacts and tasks"


class FolderCursor(models.Model):
    """How far one folder of one mailbox has been read, for one configuration generation."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="folder_cursors")
    folder = models.CharField(max_length=500)
    generation = models.PositiveIntegerField()
    uidvalidity = models.BigIntegerField(null=True, blank=True)
    last_uid = models.BigIntegerField(default=0)
    highestmodseq = models.BigIntegerField(null=True, blank=True)
    # POP3 has no UIDs in order: the UIDLs already processed, pruned to what is still on the server.
    seen_uidls = models.JSONField(default=list, blank=True)
    # Opaque state of later connectors (EWS SyncFolderItems, DAV sync-token).
    token = models.TextField(blank=True)
    updated_on = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["mailbox", "folder"], name="folder_cursor_unique")]

    def __str__(self) -> str:
        return f"{self.mailbox_id}:{self.folder} uid>{self.last_uid}"


class ReceiptOutcome(models.TextChoices):
    TRACKED = "tracked", "Tracked"
    LINKED = "linked", "Already an activity; linked"
    NOT_TRACKED_OPTION = "not_tracked_option", "Not tracked: the owner's option"
    NO_CORRELATION = "no_correlation", "Not tracked: no correlation match"
    SENDER_NOT_CRM = "sender_not_crm", "Not tracked: sender is not a CRM record"
    QUARANTINED = "quarantined", "Quarantined"
    TEST_MESSAGE = "test_message", "Not tracked: serversync test message"
    AUTO_REPLY = "auto_reply", "Not tracked: auto-reply"
    BOUNCE = "bounce", "Delivery report: recorded on the failed recipient"
    FORWARDED = "forwarded", "Forwarded: processed for the forwarding user"


# The message is (or joined) an activity in the CRM.
TRACKED_OUTCOMES = frozenset({ReceiptOutcome.TRACKED, ReceiptOutcome.LINKED, ReceiptOutcome.FORWARDED})


class Receipt(models.Model):
    """A message seen by a mailbox: the activity it became, or why it did not."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="receipts")
    folder = models.CharField(max_length=500)
    server_id = models.CharField(max_length=200, help_text="UIDVALIDITY:UID (IMAP) or UIDL (POP3).")
    message_identity = models.CharField(max_length=512)
    # As on the email activity: tells apart different messages that share a Message-ID.
    content_fingerprint = models.CharField(max_length=64, blank=True)
    message_id = models.CharField(max_length=998, blank=True)
    subject = models.CharField(max_length=800, blank=True)
    sender = models.CharField(max_length=320, blank=True)
    outcome = models.CharField(max_length=30, choices=ReceiptOutcome.choices)
    email = models.ForeignKey(
        EmailActivity, on_delete=models.SET_NULL, null=True, blank=True, related_name="receipts"
    )
    quarantined = models.ForeignKey(
        "QuarantinedMessage", on_delete=models.SET_NULL, null=True, blank=True, related_name="receipts"
    )
    server_received_on = models.DateTimeField(null=True, blank=True)
    # ``folder`` and ``server_id`` say where the message was found; this, where serversync
    # moved it on the server afterwards (a failed message to Undeliverable), if it did.
    moved_to = models.CharField(max_length=500, blank=True)
    created_on = models.DateTimeField(auto_now_add=True)
    updated_on = models.DateTimeField(auto_now=True)

    objects = ReceiptQuerySet.as_manager()
    # Not stored: set by the incoming pipeline on a receipt it found rather than made
    # (the message was seen before), so the run counts it as linked.
    seen_before: bool = False

    class Meta:
        ordering = ["-created_on", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["mailbox", "message_identity"], name="receipt_mailbox_identity_unique"
            )
        ]
        indexes = [
            models.Index(fields=["mailbox", "created_on"], name="receipt_mailbox_created"),
            # The item-level view's "received" (console.received.RECEIVED): windows and newest first.
            models.Index(Coalesce("server_received_on", "created_on"), name="receipt_received"),
            # A page of messages fetches every receipt of each (all receiving mailboxes).
            models.Index(fields=["message_identity"], name="receipt_identity"),
        ]

    def __str__(self) -> str:
        return f"{self.mailbox_id} {self.server_id}: {self.outcome}"

    @property
    def tracked_activity(self) -> EmailActivity | None:
        """The activity this message became or was linked to (a bounce's
        ``email`` is the original it reports on, not an activity of its own)."""
        return self.email if self.outcome in TRACKED_OUTCOMES else None


class QuarantineState(models.TextChoices):
    QUARANTINED = "quarantined", "Quarantined"
    REPROCESSED = "reprocessed", "Reprocessed"
    DISCARDED = "discarded", "Discarded"


class QuarantinedMessage(models.Model):
    """A message that could not be processed: kept as received, reprocessable."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="quarantined_messages")
    folder = models.CharField(max_length=500)
    server_id = models.CharField(max_length=200)
    message_identity = models.CharField(max_length=512)
    raw = models.FileField(upload_to="quarantine/", blank=True)
    size = models.PositiveBigIntegerField(default=0)
    error_code = models.CharField(max_length=100)
    error_text = models.TextField()
    state = models.CharField(
        max_length=20, choices=QuarantineState.choices, default=QuarantineState.QUARANTINED
    )
    attempts = models.PositiveIntegerField(default=1)
    server_received_on = models.DateTimeField(null=True, blank=True)
    created_on = models.DateTimeField(auto_now_add=True)
    reprocessed_on = models.DateTimeField(null=True, blank=True)

    objects = QuarantinedMessageQuerySet.as_manager()

    class Meta:
        ordering = ["-created_on", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["mailbox", "message_identity"], name="quarantine_mailbox_identity_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.mailbox_id} {self.server_id}: {self.error_code}"


class AlertLevel(models.TextChoices):
    INFORMATION = "information", "Information"
    WARNING = "warning", "Warning"
    ERROR = "error", "Error"


class MailboxAlert(models.Model):
    """An alert about a mailbox or a profile. Repeats count up on the one open row."""

    level = models.CharField(max_length=12, choices=AlertLevel.choices)
    category = models.CharField(max_length=30)
    code = models.CharField(max_length=100)
    message = models.TextField()
    mailbox = models.ForeignKey(
        Mailbox, on_delete=models.CASCADE, null=True, blank=True, related_name="alerts"
    )
    profile = models.ForeignKey(
        EmailServerProfile, on_delete=models.CASCADE, null=True, blank=True, related_name="alerts"
    )
    subject_key = models.CharField(max_length=50, help_text='"mailbox:42" or "profile:7".')
    count = models.PositiveIntegerField(default=1)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    acknowledged_on = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    resolved_on = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Set once the profile's owner has been emailed about this alert (sync.profile_health).
    owner_notified_on = models.DateTimeField(null=True, blank=True, editable=False)

    objects = MailboxAlertQuerySet.as_manager()

    class Meta:
        ordering = ["-last_seen", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["subject_key", "category", "code"],
                condition=Q(resolved_on__isnull=True),
                name="alert_open_unique",
            )
        ]
        indexes = [
            models.Index(fields=["mailbox", "resolved_on"], name="alert_mailbox_open"),
            # The alert wall's first page: the newest open alerts.
            models.Index(
                fields=["-last_seen", "-id"], condition=Q(resolved_on__isnull=True), name="alert_open_recent"
            ),
        ]

    def __str__(self) -> str:
        return f"[{self.level}] {self.subject_key} {self.code}"


class SyncOutcome(models.TextChoices):
    SUCCESS = "success", "Success"
    PARTIAL = "partial", "Partial: continues next time"
    FAILED = "failed", "Failed"


class SyncRun(models.Model):
    """One run of one kind for one mailbox, for the dashboard and the mailbox page."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="sync_runs")
    kind = models.CharField(max_length=10, choices=SyncKind.choices)
    started_on = models.DateTimeField()
    finished_on = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=SyncOutcome.choices, blank=True)
    received = models.PositiveIntegerField(default=0)
    tracked = models.PositiveIntegerField(default=0)
    linked = models.PositiveIntegerField(default=0)
    not_tracked = models.PositiveIntegerField(default=0)
    quarantined = models.PositiveIntegerField(default=0)
    sent = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    error_code = models.CharField(max_length=100, blank=True)
    error_text = models.TextField(blank=True)

    objects = SyncRunQuerySet.as_manager()

    class Meta:
        ordering = ["-started_on", "-id"]
        indexes = [
            models.Index(fields=["mailbox", "kind", "started_on"], name="sync_run_mailbox_kind"),
            # The roll-ups and the profile health check read the runs of one recent hour.
            models.Index(fields=["started_on"], name="sync_run_started"),
        ]

    def __str__(self) -> str:
        return f"{self.mailbox_id} {self.kind} {self.started_on:%Y-%m-%d %H:%M}"

    @property
    def duration_seconds(self) -> float | None:
        """How long the run took; None while it runs."""
        if self.finished_on is None:
            return None
        return (self.finished_on - self.started_on).total_seconds()


class MailboxSchedule(models.Model):
    """When a mailbox is next due for one kind of sync, and who holds it now.

    A lease is a token and an expiry: the dispatcher sets both when it claims a
    due mailbox, the task checks the token is still its own, and an expired
    lease is free for the next dispatch (a worker that died lets go of it)."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="schedules")
    kind = models.CharField(max_length=10, choices=SyncKind.choices)
    # Copied from the mailbox so the connection cap counts leases per profile in one query.
    profile = models.ForeignKey(
        EmailServerProfile, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    next_due_on = models.DateTimeField()
    lease_token = models.UUIDField(null=True, blank=True)
    lease_expires_on = models.DateTimeField(null=True, blank=True)
    idle_runs = models.PositiveIntegerField(default=0, help_text="Runs in a row that found nothing to do.")
    last_run_on = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "kind"], name="schedule_mailbox_kind_unique")
        ]
        indexes = [models.Index(fields=["kind", "next_due_on"], name="schedule_due")]

    def __str__(self) -> str:
        return f"{self.mailbox_id} {self.kind} due {self.next_due_on}"


class PushMethod(models.TextChoices):
    IMAP_IDLE = "imap_idle", "IMAP IDLE"
    IMAP_NOOP = "imap_noop", "IMAP NOOP (the server offers no IDLE)"
    GRAPH = "graph", "Microsoft Graph change notifications"


class PushState(models.TextChoices):
    CONNECTING = "connecting", "Connecting"
    LIVE = "live", "Live"
    FALLBACK = "fallback", "Polling: push cannot work here"
    FAILING = "failing", "Reconnecting"


class PushLease(models.Model):
    """Which listener (``manage.py listen``) holds push for a mailbox's inbox, and how it goes.

    Leases as the scheduler's: a listener's token and an expiry its heartbeat moves on;
    a lapsed lease is free for another listener, so a dead one's mailboxes move on
    within a lease's length. ``pending_since``: new mail was announced and no run has
    started since; the listener wakes the mailbox's sync until one has."""

    mailbox = models.OneToOneField(Mailbox, on_delete=models.CASCADE, related_name="push_lease")
    # Copied from the mailbox so connection caps count per profile in one query, as the schedules do.
    profile = models.ForeignKey(
        EmailServerProfile, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    owner = models.CharField(max_length=64, blank=True)
    expires_on = models.DateTimeField(null=True, blank=True)
    method = models.CharField(max_length=10, choices=PushMethod.choices, blank=True)
    state = models.CharField(max_length=10, choices=PushState.choices, default=PushState.CONNECTING)
    detail = models.TextField(blank=True)
    changed_on = models.DateTimeField(null=True, blank=True)
    pending_since = models.DateTimeField(null=True, blank=True)
    # Microsoft Graph: the subscription, and a hash of its clientState (the secret Graph echoes).
    subscription_id = models.CharField(max_length=200, blank=True, db_index=True)
    subscription_expires_on = models.DateTimeField(null=True, blank=True)
    client_state_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        indexes = [models.Index(fields=["owner", "expires_on"], name="push_lease_owner")]

    def __str__(self) -> str:
        return f"{self.mailbox_id} push {self.state} by {self.owner or 'nobody'}"


class PushListener(models.Model):
    """A running listener (``manage.py listen``), renewed by its heartbeat: the
    listeners alive share the mailboxes, those that hold none yet included."""

    owner = models.CharField(max_length=64, unique=True)
    started_on = models.DateTimeField()
    expires_on = models.DateTimeField()

    def __str__(self) -> str:
        return self.owner


class OutgoingClaim(models.Model):
    """The engine's hold on an email it is sending. The Message-ID is fixed
    before any network I/O; a claim that expires while the email is Sending
    means the server may have accepted it, so it is never sent again on its own."""

    email = models.OneToOneField(EmailActivity, on_delete=models.CASCADE, related_name="outgoing_claim")
    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="outgoing_claims")
    token = models.UUIDField(default=uuid.uuid4)
    expires_on = models.DateTimeField()
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_on = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"claim on email {self.email_id}"


class TrackingTokenSequence(models.Model):
    """The per-user counter in tracking tokens (``CRM:0001001``)."""

    owner_key = models.CharField(max_length=50, unique=True)
    next_value = models.PositiveBigIntegerField(default=1)

    def __str__(self) -> str:
        return f"{self.owner_key}: {self.next_value}"


class EmailHash(models.Model):
    """Smart matching's fingerprints of an email: its subject keywords and its
    recipients, hashed, so a reply that lost its headers can still be matched."""

    class Kind(models.TextChoices):
        SUBJECT = "subject", "Subject keyword"
        RECIPIENT = "recipient", "Recipient"

    email = models.ForeignKey(EmailActivity, on_delete=models.CASCADE, related_name="hashes")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    value = models.CharField(max_length=64)
    created_on = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["kind", "value", "created_on"], name="email_hash_lookup")]

    def __str__(self) -> str:
        return f"{self.kind} {self.value[:12]} of {self.email_id}"


class HourCounts(models.Model):
    """What one hour of sync runs adds up to (a mailbox's, or a profile's)."""

    hour = models.DateTimeField()
    runs = models.PositiveIntegerField(default=0)
    failed_runs = models.PositiveIntegerField(default=0)
    received = models.PositiveIntegerField(default=0)
    tracked = models.PositiveIntegerField(default=0)
    sent = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    # Latency from the mail server's receive time to the activity being stored:
    # a histogram (upper bound in seconds -> count), so percentiles need no SQL function.
    latency_count = models.PositiveIntegerField(default=0)
    latency_histogram = models.JSONField(default=dict, blank=True)

    class Meta:
        abstract = True


class HourlyRollup(HourCounts):
    """One mailbox's sync runs in one hour, summed for the dashboard."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="rollups")
    profile = models.ForeignKey(
        EmailServerProfile, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-hour"]
        constraints = [models.UniqueConstraint(fields=["hour", "mailbox"], name="rollup_hour_mailbox_unique")]
        indexes = [models.Index(fields=["hour"], name="rollup_hour")]

    def __str__(self) -> str:
        return f"{self.mailbox_id} {self.hour:%Y-%m-%d %H}:00"


class HourlyTotal(HourCounts):
    """All mailboxes of one profile in one hour: the sum of their HourlyRollup rows,
    kept so the administrator's dashboard reads a week in a few hundred rows
    however many mailboxes there are."""

    profile = models.ForeignKey(
        EmailServerProfile, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    mailboxes = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-hour"]
        # One row per hour and profile, the row of mailboxes without a profile (NULL)
        # included. Two partial unique indexes say it on PostgreSQL and SQLite alike;
        # NULLS NOT DISTINCT would say it in one, but SQLite cannot create that (W047).
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "profile"],
                condition=models.Q(profile__isnull=False),
                name="total_hour_profile_unique",
            ),
            models.UniqueConstraint(
                fields=["hour"], condition=models.Q(profile__isnull=True), name="total_hour_no_profile_unique"
            ),
        ]
        indexes = [models.Index(fields=["hour"], name="total_hour")]

    def __str__(self) -> str:
        return f"profile {self.profile_id} {self.hour:%Y-%m-%d %H}:00"


class WorkerHeartbeat(models.Model):
    """A Celery worker's sign of life, for the dashboard and /health/."""

    hostname = models.CharField(max_length=255, unique=True)
    queues = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    started_on = models.DateTimeField()
    last_seen = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.hostname} ({self.last_seen:%H:%M:%S})"


class TestState(models.TextChoices):
    __test__ = False  # a test & enable state, not a pytest test class
    QUEUED = "queued", "Queued"
    TESTING = "testing", "Testing"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


class Rollout(models.Model):
    """Test & enable of many mailboxes at a safe pace: queue mailboxes first, then
    users, at most ``batch_size`` mailboxes per window (Dynamics' 200 per 5 hours)."""

    class State(models.TextChoices):
        PLANNED = "planned", "Planned"
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        CANCELED = "canceled", "Canceled"

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_on = models.DateTimeField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.PLANNED)
    batch_size = models.PositiveIntegerField(default=200)
    window_minutes = models.PositiveIntegerField(default=300)
    round_trip = models.BooleanField(default=False)
    next_batch_number = models.PositiveIntegerField(default=1)
    next_batch_on = models.DateTimeField(null=True, blank=True)
    finished_on = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_on", "-id"]

    def __str__(self) -> str:
        return f"Rollout {self.pk} ({self.state})"


class MailboxTest(models.Model):
    """One test & enable of one mailbox: its progress for the page, and its results."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="tests")
    state = models.CharField(max_length=10, choices=TestState.choices, default=TestState.QUEUED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    rollout = models.ForeignKey(
        Rollout, on_delete=models.SET_NULL, null=True, blank=True, related_name="tests"
    )
    round_trip = models.BooleanField(default=False)
    queued_on = models.DateTimeField()
    started_on = models.DateTimeField(null=True, blank=True)
    finished_on = models.DateTimeField(null=True, blank=True)
    summary = models.TextField(blank=True)
    # Per direction: {"incoming": {"outcome": ..., "code": ..., "message": ..., "fix": ...}, ...}
    results = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-queued_on", "-id"]
        indexes = [models.Index(fields=["mailbox", "queued_on"], name="mailbox_test_recent")]

    def __str__(self) -> str:
        return f"test of {self.mailbox_id}: {self.state}"


class RolloutItem(models.Model):
    """One mailbox's place in a rollout's plan."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="items")
    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="+")
    batch_number = models.PositiveIntegerField()
    position = models.PositiveIntegerField()
    test = models.OneToOneField(
        MailboxTest, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["batch_number", "position"]
        constraints = [models.UniqueConstraint(fields=["rollout", "mailbox"], name="rollout_item_unique")]

    def __str__(self) -> str:
        return f"rollout {self.rollout_id} batch {self.batch_number}: {self.mailbox_id}"


# --- appointments, contacts and tasks ---------------------------------------------------


class ActLinkQuerySet(MailboxRowsQuerySet["ActLink"]):
    pass


class ActItemProblemQuerySet(MailboxRowsQuerySet["ActItemProblem"]):
    pass


class ActLink(models.Model):
    """A CRM record and the server item it syncs with, in one mailbox.

    ``crm_synced`` and ``server_synced`` are the item as each side held it when they were last
    reconciled (``sync.act_items_json``): what a side changed since is what differs from its
    own copy. Two copies, not one, because a server may keep less than the CRM sends (a To Do
    due date without its time): compared with itself, a side never seems to change what it
    merely could not hold. A link whose record was deleted keeps
    its row (the record's key set to null) until the engine applied the delete rules; a
    link whose ``item_id`` is empty is a create the engine started and has not seen
    answered (its UID, fixed before, lets the next run find the item instead of making
    another)."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="act_links")
    entity = models.CharField(max_length=20, choices=SyncEntity.choices)
    appointment = models.ForeignKey(
        Appointment, on_delete=models.SET_NULL, null=True, blank=True, related_name="act_links"
    )
    task = models.ForeignKey(Task, on_delete=models.SET_NULL, null=True, blank=True, related_name="act_links")
    contact = models.ForeignKey(
        Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="act_links"
    )
    item_id = models.TextField(
        blank=True, help_text="The server's id: a DAV href, a Graph id, an EWS ItemId."
    )
    version = models.CharField(max_length=1000, blank=True, help_text="ETag or change key as last read.")
    uid = models.CharField("iCalendar UID", max_length=500)
    crm_synced = models.JSONField(default=dict, blank=True)
    server_synced = models.JSONField(default=dict, blank=True)
    # The item carries the tracking category ("Tracked to CRM"): it syncs even when the
    # record no longer matches the mailbox's filters.
    tracked_on_server = models.BooleanField(default=False)
    created_on = models.DateTimeField(auto_now_add=True)
    synced_on = models.DateTimeField(null=True, blank=True)

    objects = ActLinkQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "entity", "uid"], name="act_link_uid_unique"),
            models.UniqueConstraint(
                fields=["mailbox", "entity", "item_id"],
                condition=~Q(item_id=""),
                name="act_link_item_unique",
            ),
            models.UniqueConstraint(
                fields=["mailbox", "appointment"],
                condition=Q(appointment__isnull=False),
                name="act_link_appointment",
            ),
            models.UniqueConstraint(
                fields=["mailbox", "task"], condition=Q(task__isnull=False), name="act_link_task"
            ),
            models.UniqueConstraint(
                fields=["mailbox", "contact"], condition=Q(contact__isnull=False), name="act_link_contact"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.mailbox_id} {self.entity} {self.record_id} <-> {self.item_id or '(creating)'}"

    @property
    def record_id(self) -> int | None:
        return {"appointment": self.appointment_id, "task": self.task_id, "contact": self.contact_id}[
            self.entity
        ]


class ActCursor(models.Model):
    """How far one entity of one mailbox was read on the server (an opaque connector cursor)."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="act_cursors")
    entity = models.CharField(max_length=20, choices=SyncEntity.choices)
    token = models.TextField(blank=True)
    updated_on = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["mailbox", "entity"], name="act_cursor_unique")]

    def __str__(self) -> str:
        return f"{self.mailbox_id} {self.entity}"


class ActProblemKind(models.TextChoices):
    CONFLICT = "conflict", "Change dropped in a conflict"
    UNREADABLE = "unreadable", "Server item cannot be read"
    REFUSED = "refused", "Refused by the server"
    INVALID = "invalid", "Cannot be stored in the CRM"
    ORGANIZER_MISSING = "organizer_missing", "Appointment without an organizer"
    DUPLICATE = "duplicate", "Duplicate found"


class ActItemProblem(models.Model):
    """Something about one item the engine could not do as asked, kept for the user to see:
    a change dropped in a conflict (which side's, which field, the value lost), or an item
    one side refused. The run goes on."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="act_problems")
    entity = models.CharField(max_length=20, choices=SyncEntity.choices)
    link = models.ForeignKey(
        ActLink, on_delete=models.SET_NULL, null=True, blank=True, related_name="problems"
    )
    kind = models.CharField(max_length=20, choices=ActProblemKind.choices)
    item_id = models.TextField(blank=True)
    record_id = models.BigIntegerField(null=True, blank=True)
    title = models.CharField(max_length=500, blank=True, help_text="The item's subject or name.")
    field = models.CharField(max_length=50, blank=True)
    # A conflict's: the side whose change was dropped ("crm" or "server"), its value and the one kept.
    dropped_side = models.CharField(max_length=10, blank=True)
    dropped_value = models.JSONField(null=True, blank=True)
    kept_value = models.JSONField(null=True, blank=True)
    message = models.TextField()
    created_on = models.DateTimeField(auto_now_add=True)

    objects = ActItemProblemQuerySet.as_manager()

    class Meta:
        ordering = ["-created_on", "-id"]
        indexes = [models.Index(fields=["mailbox", "created_on"], name="act_problem_mailbox_created")]

    def __str__(self) -> str:
        return f"{self.mailbox_id} {self.entity} {self.kind}: {self.title}"


class FieldDirection(models.TextChoices):
    BOTH = "both", "Both ways"
    TO_SERVER = "to_server", "To the server only"
    TO_CRM = "to_crm", "To the CRM only"
    NONE = "none", "Not synchronized"


class ActFieldSetting(models.Model):
    """An administrator's choice of direction for one field of one entity, organization-wide.
    Fields without a row keep their default (``sync.act_fields``); fixed fields have none."""

    entity = models.CharField(max_length=20, choices=SyncEntity.choices)
    field = models.CharField(max_length=50)
    direction = models.CharField(max_length=10, choices=FieldDirection.choices)
    modified_on = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["entity", "field"], name="act_field_setting_unique")]

    def __str__(self) -> str:
        return f"{self.entity}.{self.field}: {self.direction}"
