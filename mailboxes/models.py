"""Mailboxes: one per CRM user or queue, plus forward mailboxes with no owner."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from crm.choices import ActMethod, IncomingMethod, OutgoingMethod, SyncStatus
from crm.models import CrmUser, OrganizationSettings, Queue
from crm.models.base import TimestampedModel
from mailboxes.filter_criteria import SyncEntity, validate_criteria
from profiles.fields import EncryptedTextField
from profiles.models import EmailServerProfile
from profiles.server_types import facts


@dataclass(frozen=True)
class DirectionFields:
    """The fields of a Mailbox that hold one direction's state: its sync method,
    status, enabled flag, transient failures (retries spent) and backoff. Code
    that works on "the direction's status" names it through this, never by
    gluing the direction onto a suffix, so grep finds every use of a field and a
    misspelt part is an error mypy reports."""

    method: str
    status: str
    enabled: str
    transient_failures: str
    postponed_until: str

    def status_of(self, mailbox: Mailbox) -> str:
        return cast(str, getattr(mailbox, self.status))

    def enabled_of(self, mailbox: Mailbox) -> bool:
        return cast(bool, getattr(mailbox, self.enabled))

    def transient_failures_of(self, mailbox: Mailbox) -> int:
        return cast(int, getattr(mailbox, self.transient_failures))

    def postponed_until_of(self, mailbox: Mailbox) -> datetime | None:
        return cast("datetime | None", getattr(mailbox, self.postponed_until))


# By direction: the values of sync.models.SyncKind (incoming, outgoing, appointments-contacts-tasks).
DIRECTION_FIELDS: dict[str, DirectionFields] = {
    "incoming": DirectionFields(
        method="incoming_method",
        status="incoming_status",
        enabled="incoming_enabled",
        transient_failures="incoming_transient_failures",
        postponed_until="incoming_postponed_until",
    ),
    "outgoing": DirectionFields(
        method="outgoing_method",
        status="outgoing_status",
        enabled="outgoing_enabled",
        transient_failures="outgoing_transient_failures",
        postponed_until="outgoing_postponed_until",
    ),
    "act": DirectionFields(
        method="act_method",
        status="act_status",
        enabled="act_enabled",
        transient_failures="act_transient_failures",
        postponed_until="act_postponed_until",
    ),
}
SYNC_DIRECTIONS = tuple(DIRECTION_FIELDS)


class ApprovalStatus(models.TextChoices):
    EMPTY = "empty", "Empty"
    PENDING_APPROVAL = "pending_approval", "Pending Approval"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class FolderScope(models.TextChoices):
    ROOT_INBOX = "root_inbox", "Root inbox only"
    INBOX_AND_SUBFOLDERS = "inbox_and_subfolders", "Inbox and sub-folders"


OWNER_TYPES = (("user", "User"), ("queue", "Queue"), ("forward", "Forward mailbox"))
_OWNED_BY = {
    "user": Q(user__isnull=False),
    "queue": Q(queue__isnull=False),
    "forward": Q(is_forward_mailbox=True),
}
# "Process email only for approved users / queues": which setting governs which owner.
_APPROVAL_SETTING = {
    "user": "process_email_only_for_approved_users",
    "queue": "process_email_only_for_approved_queues",
}


class MailboxQuerySet(models.QuerySet["Mailbox"]):
    def visible_to(self, crm_user: CrmUser) -> MailboxQuerySet:
        """A user sees their own mailbox; a queue owner also sees the queue's."""
        return self.filter(Q(user=crm_user) | Q(queue__owner=crm_user))

    def for_active_owners(self) -> MailboxQuerySet:
        """Mailboxes whose owner may sync: a deactivated CRM user's mailbox stops."""
        return self.exclude(user__is_active=False).exclude(queue__is_active=False)

    def sending_as(self, *, user_id: int | None, queue_id: int | None) -> MailboxQuerySet:
        """The mailbox an email's sender sends through: its user's, or its queue's."""
        if user_id:
            return self.filter(user_id=user_id)
        if queue_id:
            return self.filter(queue_id=queue_id)
        return self.none()

    def search(self, text: str) -> MailboxQuerySet:
        return self.filter(Q(name__icontains=text) | Q(email_address__icontains=text))

    def of_owner_type(self, owner_type: str) -> MailboxQuerySet:
        """``user``, ``queue`` or ``forward`` (OWNER_TYPES)."""
        return self.filter(_OWNED_BY[owner_type])

    def approved_where_required(self, organization: OrganizationSettings) -> MailboxQuerySet:
        """Leave out mailboxes whose address the organization requires approved and is not."""
        mailboxes = self
        for owner_type, setting in _APPROVAL_SETTING.items():
            if getattr(organization, setting):
                unapproved = _OWNED_BY[owner_type] & ~Q(approval_status=ApprovalStatus.APPROVED)
                mailboxes = mailboxes.exclude(unapproved)
        return mailboxes


class Mailbox(TimestampedModel):
    name = models.CharField(max_length=200)
    email_address = models.EmailField(max_length=320)
    user = models.OneToOneField(
        CrmUser, on_delete=models.CASCADE, null=True, blank=True, related_name="mailbox"
    )
    queue = models.OneToOneField(
        Queue, on_delete=models.CASCADE, null=True, blank=True, related_name="mailbox"
    )
    is_forward_mailbox = models.BooleanField(
        default=False, help_text="Receives mail that users' server rules forward; has no owner."
    )
    profile = models.ForeignKey(
        EmailServerProfile,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="mailboxes",
        verbose_name="server profile",
    )

    approval_status = models.CharField(
        "email address status", max_length=20, choices=ApprovalStatus.choices, default=ApprovalStatus.EMPTY
    )
    approval_changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )
    approval_changed_on = models.DateTimeField(null=True, blank=True, editable=False)

    incoming_method = models.CharField(
        "incoming email",
        max_length=20,
        choices=IncomingMethod.choices,
        default=IncomingMethod.SERVER_SIDE_SYNC,
    )
    outgoing_method = models.CharField(
        "outgoing email",
        max_length=20,
        choices=OutgoingMethod.choices,
        default=OutgoingMethod.SERVER_SIDE_SYNC,
    )
    act_method = models.CharField(
        "appointments, contacts and tasks", max_length=20, choices=ActMethod.choices, default=ActMethod.NONE
    )

    incoming_status = models.CharField(
        max_length=10, choices=SyncStatus.choices, default=SyncStatus.NOT_RUN, editable=False
    )
    outgoing_status = models.CharField(
        max_length=10, choices=SyncStatus.choices, default=SyncStatus.NOT_RUN, editable=False
    )
    act_status = models.CharField(
        "ACT status", max_length=10, choices=SyncStatus.choices, default=SyncStatus.NOT_RUN, editable=False
    )
    incoming_enabled = models.BooleanField(default=False, editable=False)
    outgoing_enabled = models.BooleanField(default=False, editable=False)
    act_enabled = models.BooleanField("ACT enabled", default=False, editable=False)
    disabled_reason = models.TextField(blank=True, editable=False)
    incoming_transient_failures = models.PositiveIntegerField(default=0, editable=False)
    outgoing_transient_failures = models.PositiveIntegerField(default=0, editable=False)
    act_transient_failures = models.PositiveIntegerField("ACT transient failures", default=0, editable=False)
    incoming_postponed_until = models.DateTimeField(null=True, blank=True, editable=False)
    outgoing_postponed_until = models.DateTimeField(null=True, blank=True, editable=False)
    act_postponed_until = models.DateTimeField("ACT postponed until", null=True, blank=True, editable=False)

    folders = models.CharField(
        "folders to process", max_length=30, choices=FolderScope.choices, default=FolderScope.ROOT_INBOX
    )
    allow_credentials_for_email_processing = models.BooleanField(
        "allow to use credentials for email processing", default=False
    )
    username = models.CharField("user name", max_length=320, blank=True)
    password = EncryptedTextField()
    needs_credentials = models.BooleanField(
        default=False, help_text="Set when a migration could not bring the password over."
    )
    delete_email_after_processing = models.BooleanField(
        default=False, help_text="Queue and forward mailboxes only."
    )
    process_email_received_after = models.DateTimeField(null=True, blank=True)
    test_completed_on = models.DateTimeField(
        "mailbox test completed on", null=True, blank=True, editable=False
    )

    last_sync_error_code = models.CharField(max_length=100, blank=True, editable=False)
    last_sync_error_text = models.TextField(blank=True, editable=False)
    last_sync_error_count = models.PositiveIntegerField(default=0, editable=False)
    last_sync_error_on = models.DateTimeField(null=True, blank=True, editable=False)
    items_processed_last_sync = models.PositiveIntegerField(default=0, editable=False)
    items_failed_last_sync = models.PositiveIntegerField(default=0, editable=False)
    # Bumped by the mailbox service whenever the address or profile changes, so
    # the engine ignores folder cursors saved for the old configuration.
    configuration_generation = models.PositiveIntegerField(default=1, editable=False)

    objects = MailboxQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "mailboxes"
        ordering = ["name", "id"]
        permissions = [("approve_email", "Can approve or reject email addresses")]
        constraints = [
            models.UniqueConstraint(
                Lower("email_address"),
                name="mailbox_email_address_unique",
                violation_error_message="A mailbox with this email address already exists.",
            ),
            models.CheckConstraint(
                condition=Q(user__isnull=True) | Q(queue__isnull=True), name="mailbox_single_owner"
            ),
        ]
        # The mailbox list shows a page in this order: read from the index, not a sort of all.
        indexes = [
            models.Index(fields=["name", "id"], name="mailbox_name_order"),
            # Every successful run asks whether its profile's mailboxes wait out an outage
            # (sync.outages.server_answered): an index lookup, not a scan of the profile.
            models.Index(fields=["profile", "last_sync_error_code"], name="mailbox_profile_error"),
        ]

    def __str__(self) -> str:
        return f"{self.name} <{self.email_address}>"

    @property
    def owner_kind(self) -> str:
        if self.user_id:
            return "user"
        if self.queue_id:
            return "queue"
        return "forward"

    def validate_constraints(self, exclude: Collection[str] | None = None) -> None:
        # clean() reports a duplicate address on its field; skip the generic
        # constraint message that would repeat it without naming the field.
        super().validate_constraints(exclude={*(exclude or ()), "email_address"})

    @property
    def awaits_credentials(self) -> bool:
        """A migration could not bring the password over, and none has been entered
        since (on the profile, where it holds the credentials, or on the mailbox)."""
        if not self.needs_credentials:
            return False
        profile = self._profile()
        if profile is not None and profile.holds_credentials:
            return profile.lacks_credentials
        return not self.password

    def awaits_approval(self, organization: OrganizationSettings) -> bool:
        """The organization processes only approved addresses of this kind of owner, and this one is not."""
        setting = _APPROVAL_SETTING.get(self.owner_kind)
        required = bool(setting and getattr(organization, setting))
        return required and self.approval_status != ApprovalStatus.APPROVED

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        for field, message in self._rule_violations():
            errors.setdefault(field, []).append(message)
        if errors:
            raise ValidationError(errors)

    def _rule_violations(self) -> list[tuple[str, str]]:
        found = self._owner_violations()
        duplicates = Mailbox.objects.filter(email_address__iexact=self.email_address.strip()).exclude(
            pk=self.pk
        )
        if self.email_address and duplicates.exists():
            found.append(("email_address", "A mailbox with this email address already exists."))
        if self.act_method == ActMethod.SERVER_SIDE_SYNC:
            if self.queue_id:
                found.append(
                    ("act_method", "Queue mailboxes cannot synchronize appointments, contacts and tasks.")
                )
            profile = self._profile()
            if profile and not facts(profile.server_type).syncs_act:
                # In Dynamics' words; POP3/SMTP is today's one such type.
                found.append(
                    ("act_method", "A POP3/SMTP profile cannot synchronize appointments, contacts and tasks.")
                )
        if self.delete_email_after_processing and self.user_id:
            found.append(
                (
                    "delete_email_after_processing",
                    "Only queue and forward mailboxes may delete email after processing.",
                )
            )
        if self.incoming_method == IncomingMethod.FORWARD_MAILBOX and self.is_forward_mailbox:
            found.append(
                ("incoming_method", "A forward mailbox itself receives with server-side synchronization.")
            )
        return found

    def _owner_violations(self) -> list[tuple[str, str]]:
        if self.user_id and self.queue_id:
            return [("queue", "A mailbox belongs to a user or a queue, not both.")]
        if self.is_forward_mailbox:
            if self.user_id or self.queue_id:
                return [("is_forward_mailbox", "A forward mailbox has no user or queue.")]
            return []
        if not (self.user_id or self.queue_id):
            return [
                ("user", "Choose the user or queue this mailbox belongs to (or mark it a forward mailbox).")
            ]
        return []

    def _profile(self) -> EmailServerProfile | None:
        if not self.profile_id:
            return None
        try:
            return self.profile
        except EmailServerProfile.DoesNotExist:
            return None


class OAuthGrant(TimestampedModel):
    """A mailbox's account connected at its profile's OAuth provider (authorization code):
    the refresh token the sign-in gave, and the access token it last bought, both
    encrypted; and its health, which the mailbox page shows.

    Its own row, not the mailbox's: a refresh holds this row's lock while it asks the
    provider (``sync.oauth_tokens``), and the engine's writes to the mailbox go on meanwhile."""

    mailbox = models.OneToOneField(Mailbox, on_delete=models.CASCADE, related_name="oauth_grant")
    refresh_token = EncryptedTextField()
    access_token = EncryptedTextField()
    access_token_expires_on = models.DateTimeField(null=True, blank=True)
    scopes = models.CharField(max_length=1000, blank=True, help_text="What the provider granted.")
    connected_on = models.DateTimeField(null=True, blank=True)
    connected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    refreshed_on = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_on = models.DateTimeField(null=True, blank=True)
    # The provider refused the refresh token (revoked, expired, password changed): nothing
    # is asked of it again until the mailbox is connected anew.
    needs_reauthorization = models.BooleanField(default=False)

    class Meta:
        verbose_name = "OAuth grant"

    def __str__(self) -> str:
        return f"OAuth grant of mailbox {self.mailbox_id}"


class RouterMigrationState(models.TextChoices):
    PENDING = "pending", "Awaiting review"
    APPLIED = "applied", "Applied"
    ABANDONED = "abandoned", "Abandoned"


class RouterMigrationSource(models.TextChoices):
    WIZARD = "wizard", "Migration wizard"
    API = "api", "REST API"
    COMMAND = "command", "import_email_router command"


class RouterMigration(TimestampedModel):
    """One Email Router migration: the uploaded files' checksums, the review
    built from them, the administrator's choice of profiles and the result.
    Kept for good; the files' contents only until it is applied or abandoned."""

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    source = models.CharField(max_length=10, choices=RouterMigrationSource.choices)
    state = models.CharField(
        max_length=10, choices=RouterMigrationState.choices, default=RouterMigrationState.PENDING
    )
    # sha256 over the files' own checksums: the same files uploaded again have the same one.
    fingerprint = models.CharField(max_length=64, db_index=True)
    routers = models.JSONField(default=list, help_text="Per router: its name and the files it ignored.")
    selection = models.JSONField(
        default=dict, help_text="Profile key -> migrate (true) or not (false); unlisted profiles migrate."
    )
    review = models.JSONField(default=dict)
    result = models.JSONField(default=dict)
    apply_error = models.TextField(blank=True, help_text="Why the last attempt to apply changed nothing.")
    finished_on = models.DateTimeField(null=True, blank=True)
    finished_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_on", "-id"]

    def __str__(self) -> str:
        return f"Email Router migration {self.pk} ({self.get_state_display()})"

    @property
    def is_pending(self) -> bool:
        return self.state == RouterMigrationState.PENDING


class RouterMigrationFile(models.Model):
    """One uploaded router file. ``content`` (base64 of the bytes, encrypted at
    rest like every credential) is emptied once the migration is applied or
    abandoned; name, size and checksum stay."""

    migration = models.ForeignKey(RouterMigration, on_delete=models.CASCADE, related_name="files")
    router = models.PositiveSmallIntegerField(help_text="The router's position in the upload, from 1.")
    router_name = models.CharField(max_length=200)
    name = models.CharField(max_length=100, help_text="The file's name as the Email Router spells it.")
    uploaded_name = models.CharField(max_length=255)
    size = models.PositiveIntegerField()
    sha256 = models.CharField("SHA-256", max_length=64)
    content = EncryptedTextField()

    class Meta:
        ordering = ["router", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["migration", "router", "name"], name="router_file_once_per_router"
            )
        ]

    def __str__(self) -> str:
        return f"{self.router_name}: {self.name}"


class SyncFilterQuerySet(models.QuerySet["SyncFilter"]):
    def visible_to(self, crm_user: CrmUser) -> SyncFilterQuerySet:
        """A user sees and edits their own mailbox's filters (queue mailboxes have none)."""
        return self.filter(mailbox__user=crm_user)


class SyncFilterTemplateQuerySet(models.QuerySet["SyncFilterTemplate"]):
    def visible_to(self, crm_user: CrmUser) -> SyncFilterTemplateQuerySet:
        return self.none()  # the organization's defaults are administrators' to see and edit


class FilterCriteriaModel(TimestampedModel):
    """A named set of criteria over one entity's CRM records (mailboxes.filter_criteria)."""

    entity = models.CharField(max_length=20, choices=SyncEntity.choices)
    name = models.CharField(max_length=200)
    criteria = models.JSONField(default=dict, blank=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.name} ({self.get_entity_display()})"

    def clean(self) -> None:
        validate_criteria(self.entity, self.criteria)


class SyncFilterTemplate(FilterCriteriaModel):
    """One of the organization's default sync filters, copied onto every new user's mailbox
    (Dynamics' "organization filter templates"); editing it changes later copies only."""

    objects = SyncFilterTemplateQuerySet.as_manager()

    class Meta:
        verbose_name = "default sync filter"
        ordering = ["entity", "name", "id"]


class SyncFilter(FilterCriteriaModel):
    """A mailbox's synchronization filter: which of an entity's CRM records go to its server.
    A mailbox's filters of one entity are OR-ed; none: nothing of that entity syncs."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="sync_filters")

    objects = SyncFilterQuerySet.as_manager()

    class Meta:
        verbose_name = "sync filter"
        ordering = ["mailbox", "entity", "name", "id"]
        indexes = [models.Index(fields=["mailbox", "entity"], name="sync_filter_mailbox_entity")]

    def clean(self) -> None:
        super().clean()
        if self.mailbox_id and not self.mailbox.user_id:
            # As Dynamics: only a user's mailbox synchronizes appointments, contacts and tasks.
            raise ValidationError(
                {"mailbox": ["Only a user's mailbox synchronizes appointments, contacts and tasks."]}
            )
