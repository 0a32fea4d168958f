"""REST actions of test & enable and approval, on the mailbox and profile routes.

The mailbox and profile viewsets live in lower apps that must not import the
engine, so the engine subclasses them here and config/api_urls.py registers
these subclasses under the same routes: ``/api/v1/mailboxes/{id}/test-and-enable/``,
``/api/v1/mailboxes/{id}/approve/`` and ``/reject/``,
``/api/v1/mailboxes/apply-default-email-settings/`` and
``/api/v1/profiles/{id}/test-connection/``.

Who may do what:
- test & enable: administrators on any mailbox, and a mailbox's own user (a
  queue owner also the queue's) on that mailbox, as they may set its
  credentials; anyone else gets 404 (the mailbox is not theirs to see);
- approve / reject: holders of ``mailboxes.approve_email`` (administrators
  have it), on any mailbox; 403 for everyone else;
- apply default email settings and test connection: administrators only.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from mailboxes import api as mailboxes_api
from mailboxes.models import ApprovalStatus, Mailbox
from mailboxes.serializers import MailboxSerializer
from mailboxes.services import apply_default_email_settings, mailbox_set_approval
from profiles import api as profiles_api
from sync import checks
from sync.api import RolloutViewSet
from sync.models import MailboxTest
from sync.rollout import RolloutError, profile_rollout
from sync.serializers import NoBodySerializer, RolloutDetailSerializer
from web.api_base import ApiConventions
from web.roles import can_approve_email

MAX_MAILBOXES = 10_000


class TestAndEnableSerializer(serializers.Serializer[None]):  # input only: no instance
    round_trip = serializers.BooleanField(
        default=False, help_text="Also send a test message to the mailbox itself and see it arrive."
    )


class MailboxTestSerializer(serializers.ModelSerializer[MailboxTest]):
    class Meta:
        model = MailboxTest
        fields = (
            "id",
            "mailbox",
            "state",
            "requested_by",
            "rollout",
            "round_trip",
            "queued_on",
            "started_on",
            "finished_on",
            "summary",
            "results",
        )
        read_only_fields = fields


class MailboxIdsSerializer(serializers.Serializer[None]):  # input only: no instance
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), allow_empty=False, max_length=MAX_MAILBOXES
    )

    def validate_ids(self, ids: list[int]) -> list[int]:
        found = set(Mailbox.objects.filter(pk__in=ids).values_list("pk", flat=True))
        missing = sorted(set(ids) - found)
        if missing:
            raise serializers.ValidationError(f"No mailbox has the id {', '.join(map(str, missing[:20]))}.")
        return list(dict.fromkeys(ids))


class DirectionResultSerializer(serializers.Serializer[checks.DirectionResult]):
    direction = serializers.CharField()
    outcome = serializers.ChoiceField(choices=["success", "failure", "not_supported", "skipped"])
    code = serializers.CharField()
    message = serializers.CharField()
    fix = serializers.CharField()


class ProfileTestSerializer(serializers.Serializer[dict[str, Any]]):
    last_test_started_on = serializers.DateTimeField()
    last_test_result = serializers.CharField()
    last_test_message = serializers.CharField()
    results = DirectionResultSerializer(many=True)


def _no_body(request: Request) -> None:
    NoBodySerializer(data=request.data).is_valid(raise_exception=True)


class MailboxViewSet(mailboxes_api.MailboxViewSet):
    admin_actions = mailboxes_api.MailboxViewSet.admin_actions | {"apply_default_email_settings"}

    def get_queryset(self) -> models.QuerySet[Any]:
        if self.action in ("approve", "reject") and can_approve_email(self.request.user):
            # Approvers decide on every address, not only the mailboxes they own.
            return Mailbox.objects.select_related("user", "queue", "profile")
        return super().get_queryset()

    @extend_schema(request=TestAndEnableSerializer, responses=MailboxTestSerializer)
    @action(detail=True, methods=["post"], url_path="test-and-enable")
    def test_and_enable(self, request: Request, pk: Any = None) -> Response:
        """Queue a test & enable of this mailbox; the answer's ``state`` goes on from queued."""
        body = TestAndEnableSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        mailbox = self.get_object()
        (test,) = checks.queue_test_and_enable(
            mailbox_ids=[mailbox.pk], requested_by=request.user, round_trip=body.validated_data["round_trip"]
        )
        return Response(MailboxTestSerializer(test).data)

    @extend_schema(request=None, responses=MailboxSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: Any = None) -> Response:
        return self._decide(request, ApprovalStatus.APPROVED)

    @extend_schema(request=None, responses=MailboxSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: Any = None) -> Response:
        return self._decide(request, ApprovalStatus.REJECTED)

    def _decide(self, request: Request, decision: str) -> Response:
        if not can_approve_email(request.user):
            raise PermissionDenied("Approving email addresses needs the permission to approve email.")
        _no_body(request)
        mailbox = mailbox_set_approval(mailbox=self.get_object(), status=decision, by=request.user)
        return Response(self.get_serializer(mailbox).data)

    @extend_schema(request=MailboxIdsSerializer, responses=MailboxSerializer(many=True))
    @action(detail=False, methods=["post"], url_path="apply-default-email-settings")
    def apply_default_email_settings(self, request: Request) -> Response:
        """Set the organization's default profile and sync methods on these mailboxes."""
        body = MailboxIdsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        mailboxes = Mailbox.objects.filter(pk__in=body.validated_data["ids"]).order_by("pk")
        changed = apply_default_email_settings(mailboxes=mailboxes)
        return Response(self.get_serializer(changed, many=True).data, status=status.HTTP_200_OK)


class EmailServerProfileViewSet(ApiConventions, profiles_api.EmailServerProfileViewSet):
    @extend_schema(request=None, responses=ProfileTestSerializer)
    @action(detail=True, methods=["post"], url_path="test-connection")
    def test_connection(self, request: Request, pk: Any = None) -> Response:
        """Test both directions with the profile's own credentials (administrators)."""
        _no_body(request)
        profile = self.get_object()
        results = checks.profile_test_connection(profile=profile)
        return Response(
            ProfileTestSerializer(
                {
                    "last_test_started_on": profile.last_test_started_on,
                    "last_test_result": profile.last_test_result,
                    "last_test_message": profile.last_test_message,
                    "results": results,
                }
            ).data
        )

    @extend_schema(request=None, responses=RolloutDetailSerializer)
    @action(detail=True, methods=["post"], url_path="test-and-enable-mailboxes")
    def test_and_enable_mailboxes(self, request: Request, pk: Any = None) -> Response:
        """ "Test & Enable Mailboxes": every mailbox of this profile, as one background
        job — a rollout, paced like any other, whose first batch starts at the next tick."""
        _no_body(request)
        try:
            plan = profile_rollout(profile=self.get_object(), created_by=request.user)
        except RolloutError as error:
            raise ValidationError({"detail": str(error)}) from error
        return Response(RolloutDetailSerializer(RolloutViewSet.queryset.get(pk=plan.pk)).data)
