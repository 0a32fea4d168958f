"""The mailbox test-and-enable page (/mailboxes/): filter, select, test & enable
or approve, and watch each test's progress live (htmx polling)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Max, Prefetch, Q, QuerySet
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRefresh

from crm.api_base import visible
from crm.roles import can_approve_email, is_administrator
from mailboxes.models import ApprovalStatus, Mailbox
from mailboxes.services import mailbox_set_approval
from sync.checks import queue_test_and_enable
from sync.models import MailboxTest, Rollout, TestState
from sync.rollout import rollout_plan
from sync.views.access import HtmxHttpRequest, member_required
from sync.views.filters import MailboxFilter

PAGE_SIZE = 50
UNFINISHED = (TestState.QUEUED, TestState.TESTING)
DIRECTION_NAMES = {"incoming": "Incoming", "outgoing": "Outgoing", "act": "Appointments, contacts, tasks"}
DECISIONS = {"approve": ApprovalStatus.APPROVED, "reject": ApprovalStatus.REJECTED}


@require_GET
@member_required
def mailbox_list(request: HtmxHttpRequest) -> HttpResponse:
    filterset = MailboxFilter(request.GET, queryset=visible(Mailbox.objects.all(), request.user))
    rows = filterset.qs.select_related("user", "queue", "profile").prefetch_related(_latest_test())
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    test_ids = _ids(request.GET.getlist("test"))
    return render(
        request,
        "sync/mailboxes/list.html",
        {
            "filter": filterset,
            "page": page,
            "query": urlencode([(k, v) for k, v in request.GET.items() if k != "page" and v]),
            "can_approve": can_approve_email(request.user),
            "progress": _progress(request, test_ids) if test_ids else None,
            "rollouts": _rollouts(request),
            "batch_size": settings.SYNC_ROLLOUT_BATCH_SIZE,
        },
    )


@require_POST
@member_required
def mailbox_test_and_enable(request: HtmxHttpRequest) -> HttpResponse:
    """Test & enable the selection: at once for a batch's worth, as a paced rollout beyond."""
    ids = _selected_ids(request)
    if len(ids) > settings.SYNC_ROLLOUT_BATCH_SIZE:
        rollout = rollout_plan(mailbox_ids=ids, created_by=request.user)
        messages.success(request, f"Planned a rollout of {len(ids)} mailboxes (rollout {rollout.pk}).")
        return _back_to_list(request)
    tests = queue_test_and_enable(mailbox_ids=ids, requested_by=request.user)
    test_ids = [test.pk for test in tests]
    if not request.htmx:
        return redirect(reverse("mailboxes") + "?" + urlencode([("test", pk) for pk in test_ids]))
    return render(request, "sync/mailboxes/_progress.html", {"progress": _progress(request, test_ids)})


@require_POST
@member_required
def mailbox_approval(request: HtmxHttpRequest) -> HttpResponse:
    if not can_approve_email(request.user):
        raise PermissionDenied
    decision = DECISIONS.get(request.POST.get("decision", ""))
    if decision is None:
        return HttpResponse("Choose approve or reject.", status=400)
    ids = _selected_ids(request)
    for mailbox in Mailbox.objects.filter(pk__in=ids):
        mailbox_set_approval(mailbox=mailbox, status=decision, by=request.user)
    messages.success(request, f"{ApprovalStatus(decision).label}: {len(ids)} mailbox(es).")
    return _back_to_list(request)


@require_GET
@member_required
def mailbox_progress(request: HtmxHttpRequest) -> HttpResponse:
    """The live progress panel; polls itself until every test has finished."""
    progress = _progress(request, _ids(request.GET.getlist("test")))
    return render(request, "sync/mailboxes/_progress.html", {"progress": progress})


# --- selection -----------------------------------------------------------------------------------


def _selected_ids(request: HtmxHttpRequest) -> list[int]:
    """The mailboxes an action applies to: the ticked ones, or all matching the
    filters the form repeats. Any id the viewer may not see answers 404."""
    mine = visible(Mailbox.objects.all(), request.user)
    if request.POST.get("all_matching") == "1":
        ids = list(MailboxFilter(request.POST, queryset=mine).qs.values_list("pk", flat=True))
    else:
        wanted = set(_ids(request.POST.getlist("mailbox")))
        ids = list(mine.filter(pk__in=wanted).values_list("pk", flat=True))
        if len(ids) != len(wanted):
            raise Http404("No such mailbox.")
    if not ids:
        raise Http404("No mailbox selected.")
    return sorted(ids)


def _ids(values: list[str]) -> list[int]:
    return [int(value) for value in values if value.isdigit()]


def _back_to_list(request: HtmxHttpRequest) -> HttpResponse:
    if request.htmx:
        return HttpResponseClientRefresh()
    return redirect(request.POST.get("next") or reverse("mailboxes"))


# --- what the page shows -----------------------------------------------------------------------


def _latest_test() -> Prefetch[Any]:
    # A sliced prefetch is one query for the whole page (a window function per mailbox).
    latest = MailboxTest.objects.order_by("-queued_on", "-id")[:1]
    return Prefetch("tests", queryset=latest, to_attr="latest_tests")


@dataclass
class Problem:
    direction: str
    message: str
    fix: str
    link: str
    link_text: str


@dataclass
class ProgressRow:
    test: MailboxTest
    problems: list[Problem]


@dataclass
class Progress:
    rows: list[ProgressRow]
    query: str

    @property
    def running(self) -> bool:
        return any(row.test.state in UNFINISHED for row in self.rows)


def _progress(request: HtmxHttpRequest, test_ids: list[int]) -> Progress:
    tests = (
        MailboxTest.objects.filter(pk__in=test_ids, mailbox__in=visible(Mailbox.objects.all(), request.user))
        .select_related("mailbox", "mailbox__profile")
        .order_by("mailbox__name", "id")
    )
    admin = is_administrator(request.user)
    rows = [ProgressRow(test, _problems(test, admin=admin)) for test in tests]
    return Progress(rows=rows, query=urlencode([("test", row.test.pk) for row in rows]))


def _problems(test: MailboxTest, *, admin: bool) -> list[Problem]:
    if test.state != TestState.FAILED:
        return []
    found = []
    for direction, result in (test.results or {}).items():
        if not isinstance(result, dict) or result.get("outcome") not in ("failure", "failed"):
            continue
        link, link_text = _fix_link(test.mailbox, str(result.get("code", "")), admin=admin)
        found.append(
            Problem(
                direction=DIRECTION_NAMES.get(direction, direction),
                message=str(result.get("message", "")),
                fix=str(result.get("fix", "")),
                link=link,
                link_text=link_text,
            )
        )
    return found


# Causes fixed on the mailbox's own credentials (unless the profile holds them).
CREDENTIAL_CODES = frozenset({"authentication_failed", "authentication_required", "credentials_missing"})


def _fix_link(mailbox: Mailbox, code: str, *, admin: bool) -> tuple[str, str]:
    """Where the fix is made: the mailbox's credentials, or its server profile."""
    in_profile = mailbox.profile is not None and mailbox.profile.holds_credentials
    about_credentials = not in_profile and code in CREDENTIAL_CODES
    if about_credentials:
        if admin:
            return reverse("admin:mailboxes_mailbox_change", args=[mailbox.pk]), "Fix the credentials"
        return reverse("mailbox-detail", args=[mailbox.pk]), "Set your credentials"
    if admin and mailbox.profile_id:
        return reverse(
            "admin:profiles_emailserverprofile_change", args=[mailbox.profile_id]
        ), "Fix the profile"
    return reverse("profiles") if admin else "", "Fix the profile" if admin else ""


def _rollouts(request: HtmxHttpRequest) -> QuerySet[Rollout]:
    rollouts = Rollout.objects.filter(state__in=(Rollout.State.PLANNED, Rollout.State.RUNNING))
    if not is_administrator(request.user):
        rollouts = rollouts.filter(created_by_id=request.user.pk)
    return rollouts.annotate(
        total=Count("items"),
        started=Count("items", filter=Q(items__test__isnull=False)),
        batches=Max("items__batch_number"),
    ).select_related("created_by")
