from __future__ import annotations

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from crm.choices import ActMethod, IncomingMethod, OutgoingMethod, ProcessEmailUsing
from crm.models.base import TimestampedModel

SINGLETON_ID = 1


def _is_http_url(url: str) -> bool:
    """An http(s) URL with a host. Unlike Django's URLValidator this accepts
    single-label intranet hosts (``http://crmserver:5555/Org``), which is how
    on-premises CRM and the Email Router addressed an organization."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number in range
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not any(c.isspace() for c in url)


# The sections of Dynamics' "System Settings > Email" tab: the settings page and the admin show these.
EMAIL_SETTINGS_SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Configure email processing",
        ("process_email_using", "default_incoming_method", "default_outgoing_method", "default_act_method"),
    ),
    (
        "Email processing for unapproved users and queues",
        ("process_email_only_for_approved_users", "process_email_only_for_approved_queues"),
    ),
    (
        "Email correlation",
        (
            "correlation_enabled",
            "tracking_token_enabled",
            "tracking_token_prefix",
            "tracking_token_base_number",
            "tracking_token_user_digits",
            "tracking_token_counter_digits",
        ),
    ),
    (
        "Smart matching",
        (
            "smart_matching_enabled",
            "smart_matching_filter_keywords",
            "smart_matching_max_hash_count",
            "smart_matching_min_recipient_matches",
            "smart_matching_subject_delta",
        ),
    ),
    (
        "Email options",
        (
            "track_email_between_users_as_two_activities",
            "set_unresolved_when_multiple_matches",
            "max_attachment_size_kb",
        ),
    ),
    (
        "Alerts",
        ("record_error_alerts", "record_warning_alerts", "record_information_alerts", "notify_mailbox_owner"),
    ),
    (
        "Appointments, contacts and tasks",
        ("act_tracking_category", "sync_all_contact_addresses"),
    ),
    ("Email Router migration", ("crm_urls",)),
)


class OrganizationSettings(TimestampedModel):
    """The one row behind "System Settings > Email"."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_ID, editable=False)
    process_email_using = models.CharField(
        max_length=20, choices=ProcessEmailUsing.choices, default=ProcessEmailUsing.SERVER_SIDE_SYNC
    )
    default_incoming_method = models.CharField(
        "default incoming email sync method",
        max_length=20,
        choices=IncomingMethod.choices,
        default=IncomingMethod.SERVER_SIDE_SYNC,
    )
    default_outgoing_method = models.CharField(
        "default outgoing email sync method",
        max_length=20,
        choices=OutgoingMethod.choices,
        default=OutgoingMethod.SERVER_SIDE_SYNC,
    )
    default_act_method = models.CharField(
        "default appointments, contacts and tasks sync method",
        max_length=20,
        choices=ActMethod.choices,
        default=ActMethod.NONE,
    )
    process_email_only_for_approved_users = models.BooleanField(default=True)
    process_email_only_for_approved_queues = models.BooleanField(default=True)

    correlation_enabled = models.BooleanField("use correlation to track email conversations", default=True)
    tracking_token_enabled = models.BooleanField("use tracking token", default=True)
    tracking_token_prefix = models.CharField(max_length=20, default="CRM")
    tracking_token_base_number = models.PositiveIntegerField(default=0)
    tracking_token_user_digits = models.PositiveSmallIntegerField(
        "number of digits for user numbers",
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(10)],
    )
    tracking_token_counter_digits = models.PositiveSmallIntegerField(
        "number of digits for incremental message counter",
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(9)],
    )
    smart_matching_enabled = models.BooleanField("use smart matching", default=False)
    smart_matching_filter_keywords = models.TextField(
        "hash filter keywords",
        default="re\nfw\nfwd\naw\nwg\nsv\nvs\ntr",
        blank=True,
        help_text="Subject words smart matching ignores (reply and forward prefixes), one per line.",
    )
    smart_matching_max_hash_count = models.PositiveSmallIntegerField(
        "maximum number of subject keywords or recipients", default=20, validators=[MinValueValidator(1)]
    )
    smart_matching_min_recipient_matches = models.PositiveSmallIntegerField(
        "minimum number of recipients that must match", default=2, validators=[MinValueValidator(1)]
    )
    smart_matching_subject_delta = models.PositiveSmallIntegerField(
        "maximum difference allowed between subject keywords", default=0
    )
    track_email_between_users_as_two_activities = models.BooleanField(
        "track email sent between two CRM users as two activities", default=False
    )
    set_unresolved_when_multiple_matches = models.BooleanField(
        "set To, cc, bcc fields as unresolved values if multiple matches are found", default=False
    )
    max_attachment_size_kb = models.PositiveIntegerField(
        "maximum file size for attachments (KB)",
        default=5120,
        validators=[MinValueValidator(0), MaxValueValidator(131072)],
    )

    record_error_alerts = models.BooleanField("record Error alerts", default=True)
    record_warning_alerts = models.BooleanField("record Warning alerts", default=True)
    record_information_alerts = models.BooleanField("record Information alerts", default=True)
    notify_mailbox_owner = models.BooleanField("notify mailbox owner of alerts", default=False)

    act_tracking_category = models.CharField(
        "category that tracks an item",
        max_length=255,
        default="Tracked to CRM",
        help_text="An appointment or task a user gives this category in their calendar or task list "
        "is tracked to the CRM; removing it untracks the item without deleting the record.",
    )
    sync_all_contact_addresses = models.BooleanField(
        "synchronize all three contact addresses",
        default=False,
        help_text="Off: only a contact's mailing address (the business address on the server) syncs.",
    )

    crm_urls = models.TextField(
        "CRM URLs",
        blank=True,
        help_text="The addresses this organization was known by, one per line; "
        "Email Router migration keeps only router entries for these.",
    )

    class Meta:
        verbose_name = "organization settings"
        verbose_name_plural = "organization settings"
        constraints = [
            models.CheckConstraint(condition=Q(id=SINGLETON_ID), name="organization_settings_singleton"),
            models.CheckConstraint(
                condition=Q(tracking_token_user_digits__gte=1, tracking_token_user_digits__lte=10),
                name="organization_token_user_digits_range",
            ),
            models.CheckConstraint(
                condition=Q(tracking_token_counter_digits__gte=1, tracking_token_counter_digits__lte=9),
                name="organization_token_counter_digits_range",
            ),
        ]

    def __str__(self) -> str:
        return "Organization email settings"

    @classmethod
    def load(cls) -> OrganizationSettings:
        settings, _ = cls.objects.get_or_create(id=SINGLETON_ID)
        return settings

    @property
    def crm_url_list(self) -> list[str]:
        return [line.strip() for line in self.crm_urls.splitlines() if line.strip()]

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        prefix = self.tracking_token_prefix or ""
        if not 1 <= len(prefix) <= 20 or prefix != prefix.strip():
            errors["tracking_token_prefix"] = [
                "The tracking token prefix must be 1 to 20 characters, no spaces."
            ]
        for url in self.crm_url_list:
            if not _is_http_url(url):
                errors.setdefault("crm_urls", []).append(f"{url!r} is not an http(s) URL.")
        if errors:
            raise ValidationError(errors)
