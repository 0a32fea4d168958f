"""How the engine's records read in the API. All read-only: the engine writes them,
people act on them only through the routes' actions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from mailboxes.filter_criteria import SyncEntity
from sync.models import (
    ActItemProblem,
    ActLink,
    FieldDirection,
    MailboxAlert,
    QuarantinedMessage,
    Receipt,
    Rollout,
    SyncRun,
)
from sync.rollout import BatchProgress, rollout_progress

# Serializer[None]: a serializer that only reads a request's input (or only documents a
# response) is never given an instance to read from or save to.


class NoBodySerializer(serializers.Serializer[None]):
    """An action that takes no input: any JSON object is accepted and ignored,
    anything else (a list, a scalar, a broken document) is a 400."""


class SyncedQuerySerializer(serializers.Serializer[None]):
    """``?synced=true``: a link with each side's copy of the item as last reconciled."""

    synced = serializers.BooleanField(default=False)


class SyncErrorSerializer(serializers.Serializer[None]):
    """Why an action on a message could not be done (``code`` as in sync.errors)."""

    detail = serializers.CharField()
    code = serializers.CharField()


class AlertSerializer(serializers.ModelSerializer[MailboxAlert]):
    acknowledged = serializers.SerializerMethodField()
    resolved = serializers.SerializerMethodField()
    acknowledged_by = serializers.CharField(
        source="acknowledged_by.username", default=None, allow_null=True, read_only=True
    )
    resolved_by = serializers.CharField(
        source="resolved_by.username", default=None, allow_null=True, read_only=True
    )

    class Meta:
        model = MailboxAlert
        fields = (
            "id",
            "level",
            "category",
            "code",
            "message",
            "mailbox",
            "profile",
            "subject_key",
            "count",
            "first_seen",
            "last_seen",
            "acknowledged",
            "acknowledged_on",
            "acknowledged_by",
            "resolved",
            "resolved_on",
            "resolved_by",
        )
        read_only_fields = fields

    def get_acknowledged(self, alert: MailboxAlert) -> bool:
        return alert.acknowledged_on is not None

    def get_resolved(self, alert: MailboxAlert) -> bool:
        return alert.resolved_on is not None


class ReceiptSerializer(serializers.ModelSerializer[Receipt]):
    class Meta:
        model = Receipt
        fields = (
            "id",
            "mailbox",
            "folder",
            "server_id",
            "message_identity",
            "message_id",
            "subject",
            "sender",
            "outcome",
            "email",
            "quarantined",
            "server_received_on",
            "created_on",
            "updated_on",
        )
        read_only_fields = fields


class QuarantinedMessageSerializer(serializers.ModelSerializer[QuarantinedMessage]):
    # The raw message stays out of JSON (a download of its own comes later);
    # whether it was kept and how big it is are enough to decide on a reprocess.
    raw_stored = serializers.SerializerMethodField()

    class Meta:
        model = QuarantinedMessage
        fields = (
            "id",
            "mailbox",
            "folder",
            "server_id",
            "message_identity",
            "raw_stored",
            "size",
            "error_code",
            "error_text",
            "state",
            "attempts",
            "server_received_on",
            "created_on",
            "reprocessed_on",
        )
        read_only_fields = fields

    def get_raw_stored(self, message: QuarantinedMessage) -> bool:
        return bool(message.raw)


class SyncRunSerializer(serializers.ModelSerializer[SyncRun]):
    class Meta:
        model = SyncRun
        fields = (
            "id",
            "mailbox",
            "kind",
            "started_on",
            "finished_on",
            "outcome",
            "received",
            "tracked",
            "linked",
            "not_tracked",
            "quarantined",
            "sent",
            "failed",
            "error_code",
            "error_text",
        )
        read_only_fields = fields


class RolloutCreateSerializer(serializers.Serializer[None]):
    """Which mailboxes to roll out: their ids, or every mailbox matching the
    mailbox list's filters (``{"approval_status": "approved", "owner_type": "queue"}``)."""

    mailboxes = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**31 - 1),
        required=False,
        allow_empty=False,
        max_length=100_000,
    )
    all_matching = serializers.DictField(child=serializers.CharField(max_length=320), required=False)
    round_trip = serializers.BooleanField(default=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("mailboxes" in attrs) == ("all_matching" in attrs):
            raise serializers.ValidationError("Give either mailboxes or all_matching.")
        return attrs


class BatchProgressSerializer(serializers.Serializer[BatchProgress]):
    number = serializers.IntegerField()
    mailboxes = serializers.IntegerField()
    started = serializers.BooleanField()
    counts = serializers.DictField(child=serializers.IntegerField())


class RolloutSerializer(serializers.ModelSerializer[Rollout]):
    created_by = serializers.CharField(
        source="created_by.username", default=None, allow_null=True, read_only=True
    )
    mailbox_count = serializers.IntegerField()

    class Meta:
        model = Rollout
        fields: tuple[str, ...] = (
            "id",
            "state",
            "created_by",
            "created_on",
            "mailbox_count",
            "batch_size",
            "window_minutes",
            "round_trip",
            "next_batch_number",
            "next_batch_on",
            "finished_on",
        )
        read_only_fields = fields


class RolloutDetailSerializer(RolloutSerializer):
    """A rollout with its progress per batch (``counts`` per test state)."""

    batches = serializers.SerializerMethodField()

    class Meta(RolloutSerializer.Meta):
        fields = (*RolloutSerializer.Meta.fields, "batches")
        read_only_fields = fields

    @extend_schema_field(BatchProgressSerializer(many=True))
    def get_batches(self, rollout: Rollout) -> list[dict[str, Any]]:
        progress = rollout_progress(rollout=rollout)
        # many=True makes DRF build a ListSerializer of the list (in __new__), whose .data is
        # a list; the stubs model neither, so they see one BatchProgress in and a dict out.
        return BatchProgressSerializer(progress, many=True).data  # type: ignore[arg-type, return-value]


class ActItemProblemSerializer(serializers.ModelSerializer[ActItemProblem]):
    """Something the engine could not do for one item. A conflict (``kind`` "conflict")
    names the ``field``, whose change was dropped (``dropped_side``: "crm" or "server"),
    the value dropped and the value kept; other kinds say why in ``message``."""

    class Meta:
        model = ActItemProblem
        fields = (
            "id",
            "mailbox",
            "entity",
            "kind",
            "link",
            "item_id",
            "record_id",
            "title",
            "field",
            "dropped_side",
            "dropped_value",
            "kept_value",
            "message",
            "created_on",
        )
        read_only_fields = fields


class ActLinkSerializer(serializers.ModelSerializer[ActLink]):
    """A CRM record and the server item it syncs with. ``record_id`` is the appointment's,
    task's or contact's id (``entity`` says which); null while the engine applies the
    delete rules to a deleted record. ``item_id`` empty: a create not yet answered."""

    record_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = ActLink
        fields: tuple[str, ...] = (
            "id",
            "mailbox",
            "entity",
            "record_id",
            "item_id",
            "uid",
            "tracked_on_server",
            "created_on",
            "synced_on",
        )
        read_only_fields = fields


class ActLinkWithSyncedSerializer(ActLinkSerializer):
    """With ``crm_synced`` and ``server_synced``: the item as each side held it when they
    were last reconciled (for support: what a side changed since differs from its copy)."""

    # Not read-only, so the schema does not call them required: the API's one documented
    # shape is this one, and a plain answer (no ``?synced=true``) leaves them out.
    crm_synced = serializers.JSONField(
        required=False, help_text="The item as the CRM held it when last reconciled (?synced=true only)."
    )
    server_synced = serializers.JSONField(
        required=False, help_text="The item as the server held it when last reconciled (?synced=true only)."
    )

    class Meta(ActLinkSerializer.Meta):
        fields = (*ActLinkSerializer.Meta.fields, "crm_synced", "server_synced")
        read_only_fields = ActLinkSerializer.Meta.fields


@dataclass(frozen=True)
class FieldState:
    """One synced field of one entity (``sync.act_fields``) and its direction now."""

    entity: str
    field: str
    label: str
    direction: str
    default: str
    fixed: bool

    @property
    def key(self) -> str:
        return f"{self.entity}.{self.field}"


class ActFieldDirectionSerializer(serializers.Serializer[FieldState]):
    """One synced field of one entity and the way its changes travel, for every mailbox:
    ``both``, ``to_server`` (the CRM's changes only), ``to_crm`` (the server's only) or
    ``none``. Fixed fields always sync both ways."""

    key = serializers.CharField(read_only=True, help_text="entity.field: this field's address in the API.")
    entity = serializers.ChoiceField(choices=SyncEntity.choices, read_only=True)
    field = serializers.CharField(read_only=True)
    # The metaclass takes declared fields off the class, so "label" does not shadow
    # Field.label at run time; the stubs cannot know that.
    label = serializers.CharField(read_only=True)  # type: ignore[assignment]
    direction = serializers.ChoiceField(choices=FieldDirection.choices, read_only=True)
    default = serializers.ChoiceField(choices=FieldDirection.choices, read_only=True)
    fixed = serializers.BooleanField(read_only=True)


class ActFieldDirectionUpdateSerializer(serializers.Serializer[None]):
    """The direction an administrator chooses (checked by ``act_fields.setting_errors``)."""

    direction = serializers.CharField(
        max_length=10, help_text="both, to_server, to_crm or none; fixed fields cannot be changed."
    )
