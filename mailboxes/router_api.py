"""REST API of Email Router migrations (administrators only):

- ``POST /api/v1/router-migrations/`` (multipart): up to four routers' files in the
  fields ``router1`` … ``router4``, three files each; answers the review (201);
- ``GET /api/v1/router-migrations/{id}/``: the review, the choice of profiles, the result;
- ``POST /api/v1/router-migrations/{id}/apply/`` with an optional
  ``{"profiles": {"<key>": true|false}}`` ("Migrate server profile: Yes / No");
- ``POST /api/v1/router-migrations/{id}/abandon/``.

Bad files answer 400 with every problem named; a finished migration, or one the
database refused to apply (nothing changed), answers 409.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from mailboxes.models import RouterMigration, RouterMigrationFile, RouterMigrationSource
from mailboxes.router_import.errors import RouterImportError, RouterMigrationConflict
from mailboxes.router_import.files import MAX_ROUTERS, RouterUpload
from mailboxes.router_import.service import (
    router_migration_abandon,
    router_migration_apply,
    router_migration_create,
)
from web.api_base import ApiConventions, IsAdministrator
from web.api_parsers import BoundedJSONParser

ROUTER_FIELDS = tuple(f"router{number}" for number in range(1, MAX_ROUTERS + 1))


class RouterMigrationFileSerializer(serializers.ModelSerializer[RouterMigrationFile]):
    class Meta:
        model = RouterMigrationFile
        fields = ("router", "router_name", "name", "uploaded_name", "size", "sha256")


class RouterMigrationSerializer(serializers.ModelSerializer[RouterMigration]):
    counts = serializers.SerializerMethodField()

    class Meta:
        model = RouterMigration
        fields: tuple[str, ...] = (
            "id",
            "state",
            "source",
            "created_on",
            "created_by",
            "finished_on",
            "finished_by",
            "counts",
        )

    def get_counts(self, migration: RouterMigration) -> dict[str, int]:
        return dict(migration.review.get("counts", {}))


class RouterMigrationDetailSerializer(RouterMigrationSerializer):
    files = RouterMigrationFileSerializer(many=True, read_only=True)

    class Meta(RouterMigrationSerializer.Meta):
        fields = (
            *RouterMigrationSerializer.Meta.fields,
            "fingerprint",
            "files",
            "selection",
            "review",
            "result",
            "apply_error",
        )


class RouterMigrationUploadSerializer(serializers.Serializer[None]):  # input only: no instance
    """One list of files per router; each router's three files exactly once."""

    router1 = serializers.ListField(child=serializers.FileField(), required=False)
    router2 = serializers.ListField(child=serializers.FileField(), required=False)
    router3 = serializers.ListField(child=serializers.FileField(), required=False)
    router4 = serializers.ListField(child=serializers.FileField(), required=False)


class RouterMigrationApplySerializer(serializers.Serializer[None]):  # input only: no instance
    profiles = serializers.DictField(
        child=serializers.BooleanField(),
        required=False,
        help_text="Profile key -> migrate it (true) or not (false); profiles not named migrate.",
    )


class RouterMigrationViewSet(
    ApiConventions, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[RouterMigration]
):
    """Email Router migrations: upload, review, apply or abandon (administrators only)."""

    queryset = RouterMigration.objects.select_related("created_by", "finished_by").prefetch_related("files")
    permission_classes = [IsAuthenticated, IsAdministrator]
    parser_classes = [MultiPartParser, FormParser, BoundedJSONParser]
    filterset_fields = ("state", "source")
    ordering_fields = ("created_on",)

    def get_serializer_class(self) -> type[serializers.BaseSerializer[Any]]:
        return RouterMigrationSerializer if self.action == "list" else RouterMigrationDetailSerializer

    @extend_schema(request=RouterMigrationUploadSerializer, responses={201: RouterMigrationDetailSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        unknown = sorted(set(request.FILES) - set(ROUTER_FIELDS))
        if unknown:
            raise ValidationError(
                {"detail": f"Unknown file field(s) {', '.join(unknown)}; use {', '.join(ROUTER_FIELDS)}."}
            )
        routers = [
            RouterUpload(name=f"Router {number}", files=list(request.FILES.getlist(field)))
            for number, field in enumerate(ROUTER_FIELDS, start=1)
            if request.FILES.getlist(field)
        ]
        try:
            migration = router_migration_create(
                routers=routers, created_by=request.user, source=RouterMigrationSource.API
            )
        except RouterImportError as error:
            raise ValidationError({"detail": str(error), "problems": error.problems}) from None
        return Response(self.get_serializer(migration).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=RouterMigrationApplySerializer, responses=RouterMigrationDetailSerializer)
    @action(detail=True, methods=["post"])
    def apply(self, request: Request, pk: Any = None) -> Response:
        given = RouterMigrationApplySerializer(data=request.data)
        given.is_valid(raise_exception=True)
        selection = given.validated_data.get("profiles")
        return self._act(
            lambda migration: router_migration_apply(
                migration=migration, by=request.user, selection=selection
            )
        )

    @extend_schema(request=None, responses=RouterMigrationDetailSerializer)
    @action(detail=True, methods=["post"])
    def abandon(self, request: Request, pk: Any = None) -> Response:
        return self._act(lambda migration: router_migration_abandon(migration=migration, by=request.user))

    def _act(self, step: Any) -> Response:
        try:
            migration = step(self.get_object())
        except RouterMigrationConflict as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        except RouterImportError as error:
            raise ValidationError({"detail": str(error), "problems": error.problems}) from None
        return Response(RouterMigrationDetailSerializer(migration).data)
