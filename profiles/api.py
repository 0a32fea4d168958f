from __future__ import annotations

from rest_framework import permissions, viewsets

from profiles.models import EmailServerProfile
from profiles.serializers import EmailServerProfileSerializer
from web.api_base import IsAdministrator


class EmailServerProfileViewSet(viewsets.ModelViewSet[EmailServerProfile]):
    """Email server profiles: incoming and outgoing settings in one. Administrators only;
    secrets are write-only."""

    queryset = EmailServerProfile.objects.select_related("owner")
    serializer_class = EmailServerProfileSerializer
    permission_classes = [permissions.IsAuthenticated, IsAdministrator]
    filterset_fields = ("server_type", "is_active", "is_default", "credentials_source")
    search_fields = ("name", "incoming_server_location", "outgoing_server_location")
    ordering_fields = ("name", "created_on")
