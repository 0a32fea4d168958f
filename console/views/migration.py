"""The Email Router migration wizard (``/migration/``), administrators only:
upload up to four routers' files -> "Select Email Server Profiles to Migrate" ->
"Migration Review Summary" -> Start -> the summary, with the way on to test &
enable (queue mailboxes first) and to switch "Process email using".

Each step calls one function of mailboxes.router_import.service; the review
those functions keep is what the pages show.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from console.views.access import HtmxHttpRequest, administrator_required
from crm.models import OrganizationSettings
from mailboxes.models import RouterMigration, RouterMigrationSource
from mailboxes.router_import.errors import RouterImportError
from mailboxes.router_import.files import MAX_ROUTERS, RouterUpload
from mailboxes.router_import.service import (
    router_migration_abandon,
    router_migration_apply,
    router_migration_create,
    router_migration_select,
)
from sync.rollout import RolloutError, rollout_plan

EARLIER_SHOWN = 20
ROUTER_NUMBERS = range(1, MAX_ROUTERS + 1)


@require_http_methods(["GET", "POST"])
@administrator_required
def migration_upload(request: HtmxHttpRequest) -> HttpResponse:
    """Step 1: each router's three files; "More Email Routers" adds a router, up to four."""
    problems: list[str] = []
    if request.method == "POST":
        try:
            migration = router_migration_create(
                routers=_routers(request), created_by=request.user, source=RouterMigrationSource.WIZARD
            )
        except RouterImportError as error:
            problems = error.problems
        else:
            return _go(request, "migration-profiles", migration.pk)
    earlier = RouterMigration.objects.select_related("created_by")[:EARLIER_SHOWN]
    organization = OrganizationSettings.objects.filter().first() or OrganizationSettings()
    return render(
        request,
        "console/migration/upload.html",
        {
            "problems": problems,
            "routers": ROUTER_NUMBERS,
            "earlier": earlier,
            "crm_urls": organization.crm_url_list,
        },
    )


@require_http_methods(["GET", "POST"])
@administrator_required
def migration_profiles(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Step 2: "Select Email Server Profiles to Migrate" (Migrate server profile: Yes / No)."""
    migration = get_object_or_404(RouterMigration, pk=pk)
    if not migration.is_pending:
        return redirect("migration-detail", pk=pk)
    if request.method == "POST":
        answers = {
            profile["key"]: request.POST[f"migrate-{profile['key']}"] == "yes"
            for profile in migration.review.get("profiles", [])
            if f"migrate-{profile['key']}" in request.POST
        }
        try:
            router_migration_select(migration=migration, selection=answers)
        except RouterImportError as error:
            messages.error(request, str(error))
        return _go(request, "migration-review", pk)
    return render(
        request, "console/migration/profiles.html", {"migration": migration, "review": migration.review}
    )


@require_GET
@administrator_required
def migration_review(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Step 3: "Migration Review Summary", and Start."""
    migration = get_object_or_404(RouterMigration, pk=pk)
    if not migration.is_pending:
        return redirect("migration-detail", pk=pk)
    return render(request, "console/migration/review.html", _review_context(migration))


@require_POST
@administrator_required
def migration_apply(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    migration = get_object_or_404(RouterMigration, pk=pk)
    try:
        router_migration_apply(migration=migration, by=request.user)
    except RouterImportError as error:
        messages.error(request, str(error))
        return _go(request, "migration-review" if migration.is_pending else "migration-detail", pk)
    messages.success(request, "The migration is done. Nothing is enabled until it is tested.")
    return _go(request, "migration-detail", pk)


@require_POST
@administrator_required
def migration_abandon(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    migration = get_object_or_404(RouterMigration, pk=pk)
    try:
        router_migration_abandon(migration=migration, by=request.user)
    except RouterImportError as error:
        messages.error(request, str(error))
        return _go(request, "migration-detail", pk)
    messages.success(request, f"Migration {pk} abandoned; its files are deleted and nothing was migrated.")
    return _go(request, "migration")


@require_GET
@administrator_required
def migration_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """What became of a migration: the summary once applied, with the next steps."""
    migration = get_object_or_404(RouterMigration.objects.select_related("created_by", "finished_by"), pk=pk)
    context = _review_context(migration)
    context["organization"] = OrganizationSettings.objects.filter().first() or OrganizationSettings()
    context["migrated"] = _migrated(migration.result)
    return render(request, "console/migration/detail.html", context)


@require_POST
@administrator_required
def migration_rollout(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Test & enable every migrated mailbox as a paced rollout: queue mailboxes first."""
    migration = get_object_or_404(RouterMigration, pk=pk)
    ids = [row["id"] for row in _migrated(migration.result)]
    try:
        rollout = rollout_plan(mailbox_ids=ids, created_by=request.user)
    except RolloutError as error:
        messages.error(request, f"{error} (only an applied migration has mailboxes to test).")
        return _go(request, "migration-detail", pk)
    messages.success(
        request, f"Planned rollout {rollout.pk}: {len(ids)} migrated mailboxes, queue mailboxes first."
    )
    return _go(request, "mailboxes")


def _routers(request: HtmxHttpRequest) -> list[RouterUpload]:
    routers = []
    for number in ROUTER_NUMBERS:
        files = request.FILES.getlist(f"router{number}")
        if files:
            name = request.POST.get(f"router{number}_name", "").strip()[:100] or f"Router {number}"
            routers.append(RouterUpload(name=name, files=list(files)))
    return routers


def _review_context(migration: RouterMigration) -> dict[str, Any]:
    review = migration.review
    mailboxes = [{**m, "process_from": _when(m["process_email_from"])} for m in review.get("mailboxes", [])]
    return {
        "migration": migration,
        "review": review,
        "hours_back": settings.ROUTER_MIGRATION_PROCESS_EMAIL_HOURS,
        "process_from": _when(review.get("process_email_from")),
        "counts": review.get("counts", {}),
        "to_create": [p for p in review.get("profiles", []) if p["migrate"] and not p["existing_profile"]],
        "to_reuse": [p for p in review.get("profiles", []) if p["migrate"] and p["existing_profile"]],
        "answered_no": [p for p in review.get("profiles", []) if not p["migrate"]],
        "updates": [
            m for m in mailboxes if m["owner_kind"] != "forward" and m["action"] in ("update", "create")
        ],
        "forwards": [
            m for m in mailboxes if m["owner_kind"] == "forward" and m["action"] in ("update", "create")
        ],
        "unchanged": [m for m in mailboxes if m["action"] == "unchanged"],
        "warnings": [*review.get("warnings", []), *_profile_warnings(review)],
    }


def _when(iso: str | None) -> datetime | None:
    return datetime.fromisoformat(iso) if iso else None


def _profile_warnings(review: dict[str, Any]) -> list[str]:
    return [f"{p['name']}: {w}" for p in review.get("profiles", []) if p["migrate"] for w in p["warnings"]]


def _migrated(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The mailboxes the migration created or changed, queue mailboxes first."""
    rows = [
        row
        for key in (
            "mailboxes_created",
            "mailboxes_updated",
            "forward_mailboxes_created",
            "forward_mailboxes_updated",
        )
        for row in result.get(key, [])
    ]
    order = {"queue": 0, "user": 1, "forward": 2}
    return sorted(rows, key=lambda row: (order.get(row["owner_kind"], 3), row["email_address"]))


def _go(request: HtmxHttpRequest, name: str, pk: int | None = None) -> HttpResponse:
    url = reverse(name, args=[pk] if pk is not None else [])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
