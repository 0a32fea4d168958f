from __future__ import annotations

from typing import Any

from rest_framework.serializers import BaseSerializer

from mailboxes.models import Mailbox
from mailboxes.serializers import MailboxSerializer, OwnerMailboxSerializer
from web.api_base import ScopedModelViewSet


class MailboxViewSet(ScopedModelViewSet[Mailbox]):
    """Mailboxes. Users see their own (queue owners also the queue's) and may set
    its credentials; administrators manage all."""

    queryset = Mailbox.objects.select_related("user", "queue", "profile")
    filterset_fields = (
        "profile",
        "approval_status",
        "incoming_method",
        "outgoing_method",
        "act_method",
        "incoming_status",
        "outgoing_status",
        "act_status",
        "incoming_enabled",
        "outgoing_enabled",
        "act_enabled",
        "is_forward_mailbox",
        "needs_credentials",
    )
    search_fields = ("name", "email_address")
    ordering_fields = ("name", "email_address", "created_on")
    admin_actions = frozenset({"create", "update", "destroy"})

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        return MailboxSerializer if self.is_admin else OwnerMailboxSerializer
