from __future__ import annotations

from typing import Any, TypeVar

from django.db import models, transaction
from rest_framework import serializers

from crm.html import sanitize_email_html
from crm.models import (
    Account,
    ActivityParty,
    Appointment,
    AppointmentParty,
    Contact,
    CrmUser,
    EmailActivity,
    EmailAttachment,
    Lead,
    OrganizationSettings,
    Queue,
    Task,
)
from crm.models.appointments import CATEGORY_MAX_LENGTH
from crm.models.records import ADDRESS_KINDS, ADDRESS_PARTS, OwnedRecord
from crm.services import Party, appointment_save, email_create
from web.api_base import CleanModelSerializer, ScopedRelatedField

_Owned = TypeVar("_Owned", bound=OwnedRecord)
_Activity = TypeVar("_Activity", bound=models.Model)

TIMESTAMPS = ("created_on", "modified_on")
# The query parameter with which a viewer asks for an email's remote images.
REMOTE_IMAGES = "remote_images"


class OrganizationSettingsSerializer(CleanModelSerializer[OrganizationSettings]):
    class Meta:
        model = OrganizationSettings
        exclude = ("id",)
        read_only_fields = TIMESTAMPS


class CrmUserSerializer(CleanModelSerializer[CrmUser]):
    username = serializers.CharField(source="user.username", read_only=True, default=None, allow_null=True)

    class Meta:
        model = CrmUser
        fields = (
            "id",
            "full_name",
            "email",
            "is_active",
            "external_id",
            "track_incoming_email",
            "auto_create_contacts",
            "time_zone",
            "user",
            "username",
            *TIMESTAMPS,
        )
        read_only_fields: tuple[str, ...] = TIMESTAMPS
        extra_kwargs = {"user": {"required": False, "allow_null": True}}


class PersonalOptionsSerializer(CrmUserSerializer):
    """What users may change on their own record: their personal email options."""

    class Meta(CrmUserSerializer.Meta):
        read_only_fields: tuple[str, ...] = tuple(
            f
            for f in CrmUserSerializer.Meta.fields
            if f not in {"track_incoming_email", "auto_create_contacts"}
        )


class QueueSerializer(CleanModelSerializer[Queue]):
    class Meta:
        model = Queue
        fields = (
            "id",
            "name",
            "email",
            "owner",
            "external_id",
            "convert_incoming_email",
            "is_active",
            *TIMESTAMPS,
        )
        read_only_fields = TIMESTAMPS


class OwnedRecordSerializer(CleanModelSerializer[_Owned]):
    """Accounts, contacts and leads. A user's records are their own: only
    administrators choose another owner."""

    owner = ScopedRelatedField(queryset=CrmUser.objects.all(), required=False, allow_null=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        view = self.context["view"]
        if not view.is_admin:
            attrs["owner"] = view.crm_user
        return attrs


class AccountSerializer(OwnedRecordSerializer[Account]):
    class Meta:
        model = Account
        fields = ("id", "name", "email", "phone", "website", "owner", "is_active", *TIMESTAMPS)
        read_only_fields = TIMESTAMPS


class ContactSerializer(OwnedRecordSerializer[Contact]):
    account = ScopedRelatedField(queryset=Account.objects.all(), required=False, allow_null=True)

    class Meta:
        model = Contact
        fields = (
            "id",
            "first_name",
            "last_name",
            "email",
            "account",
            "email2",
            "email3",
            "middle_name",
            "nickname",
            "company_name",
            "job_title",
            "department",
            "phone",
            "mobile_phone",
            "home_phone",
            "business_fax",
            *(f"{kind}_{part}" for kind in ADDRESS_KINDS for part in ADDRESS_PARTS),
            "birthday",
            "notes",
            "owner",
            "is_active",
            *TIMESTAMPS,
        )
        read_only_fields = TIMESTAMPS
        extra_kwargs = {"phone": {"help_text": "The business phone."}}


class LeadSerializer(OwnedRecordSerializer[Lead]):
    class Meta:
        model = Lead
        fields = (
            "id",
            "first_name",
            "last_name",
            "company_name",
            "topic",
            "email",
            "status",
            "owner",
            "is_active",
            *TIMESTAMPS,
        )
        read_only_fields = TIMESTAMPS


class ActivityPartySerializer(serializers.ModelSerializer[ActivityParty]):
    record_type = serializers.SerializerMethodField()
    record_id = serializers.SerializerMethodField()

    class Meta:
        model = ActivityParty
        fields = ("role", "address", "display_name", "record_type", "record_id")

    def get_record_type(self, party: ActivityParty) -> str | None:
        record = party.record
        return record._meta.model_name if record else None

    def get_record_id(self, party: ActivityParty) -> int | None:
        record = party.record
        return record.pk if record else None


class EmailAttachmentSerializer(serializers.ModelSerializer[EmailAttachment]):
    stored = serializers.SerializerMethodField()

    class Meta:
        model = EmailAttachment
        fields = ("id", "filename", "content_type", "size", "stored", "skipped_reason")

    def get_stored(self, attachment: EmailAttachment) -> bool:
        return bool(attachment.content)


class EmailSerializer(serializers.ModelSerializer[EmailActivity]):
    """Read: the whole activity. Write: a new outgoing draft or pending send."""

    body_html_sanitized = serializers.SerializerMethodField(
        help_text="body_html sanitized, safe to display: no scripts, event handlers, frames, forms or "
        "javascript: links; links open in a new window. Inline images (cid:) stay; remote images "
        f"are removed unless the request says ?{REMOTE_IMAGES}=true."
    )
    parties = ActivityPartySerializer(many=True, read_only=True)
    attachments = EmailAttachmentSerializer(many=True, read_only=True)
    to = serializers.ListField(
        child=serializers.EmailField(), write_only=True, required=False, max_length=500
    )
    cc = serializers.ListField(
        child=serializers.EmailField(), write_only=True, required=False, max_length=500
    )
    bcc = serializers.ListField(
        child=serializers.EmailField(), write_only=True, required=False, max_length=500
    )
    status = serializers.ChoiceField(
        choices=[EmailActivity.Status.DRAFT, EmailActivity.Status.PENDING_SEND],
        default=EmailActivity.Status.DRAFT,
        help_text="Create as draft or pending send; later states are set by the engine.",
    )
    owner = ScopedRelatedField(queryset=CrmUser.objects.all(), required=False, allow_null=True)
    sender_queue = ScopedRelatedField(
        queryset=Queue.objects.all(),
        required=False,
        allow_null=True,
        write_only=True,
        help_text="Send from this queue's mailbox instead of the owner's.",
    )
    regarding_account = ScopedRelatedField(queryset=Account.objects.all(), required=False, allow_null=True)
    regarding_contact = ScopedRelatedField(queryset=Contact.objects.all(), required=False, allow_null=True)
    regarding_lead = ScopedRelatedField(queryset=Lead.objects.all(), required=False, allow_null=True)
    reply_to = ScopedRelatedField(
        queryset=EmailActivity.objects.all(),
        required=False,
        allow_null=True,
        write_only=True,
        help_text="The email this one answers: sets In-Reply-To and References and, unless given, "
        "the regarding record.",
    )

    class Meta:
        model = EmailActivity
        fields = (
            "id",
            "direction",
            "status",
            "owner",
            "sender_queue",
            "reply_to",
            "subject",
            "body_text",
            "body_html",
            "body_html_sanitized",
            "to",
            "cc",
            "bcc",
            "parties",
            "attachments",
            "message_id",
            "in_reply_to",
            "references",
            "tracking_token",
            "conversation_id",
            "regarding_account",
            "regarding_contact",
            "regarding_lead",
            "correlation_method",
            "correlated_email",
            "received_on",
            "sent_on",
            "failure_reason",
            *TIMESTAMPS,
        )
        read_only_fields = (
            "direction",
            "message_id",
            "in_reply_to",
            "references",
            "tracking_token",
            "conversation_id",
            "correlation_method",
            "correlated_email",
            "received_on",
            "sent_on",
            "failure_reason",
            *TIMESTAMPS,
        )
        extra_kwargs = {
            "body_html": {
                "help_text": "The HTML body, raw: as received (or as written for outgoing email), not "
                "sanitized. Never render it; display body_html_sanitized."
            }
        }

    def get_body_html_sanitized(self, email: EmailActivity) -> str:
        return sanitize_email_html(email.body_html, remote_images=self._remote_images_asked())

    def _remote_images_asked(self) -> bool:
        # Anything but an explicit yes keeps remote images (trackers) out.
        request = self.context.get("request")
        asked = request.query_params.get(REMOTE_IMAGES, "") if request is not None else ""
        return asked.strip().lower() in {"true", "1"}

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        view = self.context["view"]
        if not view.is_admin:
            attrs["owner"] = view.crm_user
        if not attrs.get("owner") and not attrs.get("sender_queue"):
            raise serializers.ValidationError(
                {"owner": ["Choose the user (or queue) the email is sent from."]}
            )
        regarding = [f for f in ("regarding_account", "regarding_contact", "regarding_lead") if attrs.get(f)]
        if len(regarding) > 1:
            raise serializers.ValidationError({regarding[1]: ["An email is regarding one record at most."]})
        if attrs.get("status") == EmailActivity.Status.PENDING_SEND and not any(
            attrs.get(role) for role in ("to", "cc", "bcc")
        ):
            raise serializers.ValidationError({"to": ["An email to send needs at least one recipient."]})
        return attrs

    @transaction.atomic
    def create(self, validated_data: dict[str, Any]) -> EmailActivity:
        return email_create(**validated_data)


REGARDING = ("regarding_account", "regarding_contact", "regarding_lead")


class ActivitySerializer(CleanModelSerializer[_Activity]):
    """Appointments and tasks: a user's are their own; only administrators choose another owner."""

    owner = ScopedRelatedField(queryset=CrmUser.objects.all(), required=False, allow_null=True)
    regarding_account = ScopedRelatedField(queryset=Account.objects.all(), required=False, allow_null=True)
    regarding_contact = ScopedRelatedField(queryset=Contact.objects.all(), required=False, allow_null=True)
    regarding_lead = ScopedRelatedField(queryset=Lead.objects.all(), required=False, allow_null=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        view = self.context["view"]
        if not view.is_admin:
            attrs["owner"] = view.crm_user
        return attrs


class PartyInputSerializer(serializers.Serializer[Party]):
    """An organizer or attendee to set: an address, a record (which gives the address
    when none is given), or both."""

    address = serializers.EmailField(required=False, allow_blank=True, max_length=320)
    display_name = serializers.CharField(required=False, allow_blank=True, max_length=300)
    user = ScopedRelatedField(queryset=CrmUser.objects.all(), required=False, allow_null=True)
    contact = ScopedRelatedField(queryset=Contact.objects.all(), required=False, allow_null=True)
    account = ScopedRelatedField(queryset=Account.objects.all(), required=False, allow_null=True)
    lead = ScopedRelatedField(queryset=Lead.objects.all(), required=False, allow_null=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        records = [attrs[name] for name in ("user", "contact", "account", "lead") if attrs.get(name)]
        if len(records) > 1:
            raise serializers.ValidationError("A party is one record at most.")
        return {
            "party": Party(
                address=attrs.get("address", ""),
                display_name=attrs.get("display_name", ""),
                record=records[0] if records else None,
            )
        }


class AppointmentPartySerializer(serializers.ModelSerializer[AppointmentParty]):
    record_type = serializers.SerializerMethodField()
    record_id = serializers.SerializerMethodField()

    class Meta:
        model = AppointmentParty
        fields = ("role", "address", "display_name", "record_type", "record_id")

    def get_record_type(self, party: AppointmentParty) -> str | None:
        record = party.record
        return record._meta.model_name if record else None

    def get_record_id(self, party: AppointmentParty) -> int | None:
        record = party.record
        return record.pk if record else None


PARTY_INPUTS = ("organizer", "required_attendees", "optional_attendees")


class AppointmentSerializer(ActivitySerializer[Appointment]):
    """Read: the appointment with its parties. Write: the appointment, and the organizer or
    attendee lists given (each replaces the parties of its role)."""

    body_html_sanitized = serializers.SerializerMethodField(
        help_text="body_html sanitized, safe to display (as an email's; remote images removed)."
    )
    parties = AppointmentPartySerializer(many=True, read_only=True)
    # Declared: the model keeps both as JSON (the same on PostgreSQL and SQLite).
    categories = serializers.ListField(
        child=serializers.CharField(max_length=CATEGORY_MAX_LENGTH, allow_blank=True, trim_whitespace=False),
        required=False,
    )
    deleted_occurrences = serializers.ListField(
        child=serializers.DateTimeField(),
        required=False,
        help_text="A series master's deleted occurrences (EXDATE): their original starts.",
    )
    organizer = PartyInputSerializer(
        write_only=True,
        required=False,
        help_text="Required when creating, except for an exception of a series (it takes the master's).",
    )
    required_attendees = PartyInputSerializer(many=True, write_only=True, required=False)
    optional_attendees = PartyInputSerializer(many=True, write_only=True, required=False)
    series_master = ScopedRelatedField(
        queryset=Appointment.objects.all(),
        required=False,
        allow_null=True,
        help_text="An exception's series: the master whose occurrence (original_start) this one replaces.",
    )

    class Meta:
        model = Appointment
        fields = (
            "id",
            "status",
            "owner",
            "subject",
            "body_text",
            "body_html",
            "body_html_sanitized",
            "location",
            "start",
            "start_time_zone",
            "end",
            "end_time_zone",
            "all_day",
            "start_date",
            "end_date",
            "show_as",
            "reminder_minutes_before",
            "categories",
            *REGARDING,
            "organizer",
            "required_attendees",
            "optional_attendees",
            "parties",
            "recurrence_rule",
            "deleted_occurrences",
            "series_master",
            "original_start",
            *TIMESTAMPS,
        )
        read_only_fields = TIMESTAMPS
        # The one-exception-per-occurrence constraint is checked by full_clean(); DRF's own
        # validator for it would make series_master and original_start required on every appointment.
        validators: list[Any] = []
        extra_kwargs = {
            "body_html": {"help_text": "The HTML body, raw. Never render it; display body_html_sanitized."}
        }

    def get_body_html_sanitized(self, appointment: Appointment) -> str:
        return sanitize_email_html(appointment.body_html)

    def create(self, validated_data: dict[str, Any]) -> Appointment:
        parties = self._pop_parties(validated_data)
        return appointment_save(Appointment(**validated_data), **parties)

    def update(self, instance: Appointment, validated_data: dict[str, Any]) -> Appointment:
        parties = self._pop_parties(validated_data)
        for field, value in validated_data.items():
            setattr(instance, field, value)
        return appointment_save(instance, **parties)

    @staticmethod
    def _pop_parties(validated_data: dict[str, Any]) -> dict[str, Any]:
        given = {name: validated_data.pop(name) for name in PARTY_INPUTS if name in validated_data}
        if "organizer" in given:
            given["organizer"] = given["organizer"]["party"]
        for name in ("required_attendees", "optional_attendees"):
            if name in given:
                given[name] = [item["party"] for item in given[name]]
        return given


class TaskSerializer(ActivitySerializer[Task]):
    class Meta:
        model = Task
        fields = (
            "id",
            "subject",
            "body_text",
            "start",
            "due",
            "status",
            "percent_complete",
            "priority",
            "completed_on",
            "owner",
            *REGARDING,
            *TIMESTAMPS,
        )
        read_only_fields = ("completed_on", *TIMESTAMPS)
