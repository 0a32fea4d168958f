from __future__ import annotations

from typing import Any

from rest_framework import serializers

from mailboxes.models import Mailbox
from mailboxes.services import mailbox_create, mailbox_update
from profiles.serializers import SecretsWriteOnlyMixin

OWNER_WRITABLE = ("allow_credentials_for_email_processing", "username", "password")


class MailboxSerializer(SecretsWriteOnlyMixin[Mailbox], serializers.ModelSerializer[Mailbox]):
    owner_kind = serializers.CharField(read_only=True)
    profile_name = serializers.CharField(source="profile.name", read_only=True, default=None, allow_null=True)

    class Meta:
        model = Mailbox
        fields = "__all__"
        read_only_fields: tuple[str, ...] = ("created_on", "modified_on")
        extra_kwargs = {
            "email_address": {"required": False},
            "name": {"required": False},
        }

    def create(self, validated_data: dict[str, Any]) -> Mailbox:
        return mailbox_create(data=validated_data)

    def update(self, instance: Mailbox, validated_data: dict[str, Any]) -> Mailbox:
        return mailbox_update(mailbox=instance, data=validated_data)


class OwnerMailboxSerializer(MailboxSerializer):
    """What a mailbox's own user (or queue owner) may change: the credentials
    it processes email with."""

    class Meta(MailboxSerializer.Meta):
        fields = "__all__"
        read_only_fields = tuple(
            field.name for field in Mailbox._meta.fields if field.name not in OWNER_WRITABLE
        )
