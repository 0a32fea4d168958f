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
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRefresh

from console.views.access import HtmxHttpRequest, administrator_required, member_required
from console.views.filters import MailboxFilter
from console.views.querystring import query_without
from mailboxes.models import ApprovalStatus, Mailbox
from mailboxes.services import mailbox_set_approval
from sync.checks import queue_test_and_enable
from sync.models import MailboxTest, Rollout, TestState
from sync.rollout import RolloutError, rollout_cancel, rollout_plan
from web.roles import can_approve_email, is_administrator, visible

PAGE_SIZE = 50
UNFINISHED = (TestState.QUEUED, TestState.TESTING)
DIRECTION_NAMES = {"incoming": "Incoming", "outgoing": "Outgoing", "act": "Appointments, contacts, tasks"}
DECISIONS = {"approve": ApprovalStatus.APPROVED, "reject": ApprovalStatus.REJECTED}


@require_GET
@member_required
def mailbox_list(request: HtmxHttpRequest) -> HttpResponse:
    filterset = MailboxFilter(request.GET, queryset=visible(Mailbox.objects.all(), request.user))
    page = Paginator(table_rows(filterset.qs), PAGE_SIZE).get_page(request.GET.get("page"))
    test_ids = _ids(request.GET.getlist("test"))
    return render(
        request,
        "console/mailboxes/list.html",
        {
            "filter": filterset,
            "page": page,
            "query": query_without(request, "page"),
            "can_approve": can_approve_email(request.user),
            # The page shows every row as it is now: the panel refreshes none of them.
            "progress": _progress(request, test_ids, shown=None) if test_ids else None,
            "open_credentials": next(iter(_ids(request.GET.getlist("credentials"))), None),
            "rollouts": _rollouts(request),
            "batch_size": settings.SYNC_ROLLOUT_BATCH_SIZE,
        },
    )


@require_POST
@member_required
def mailbox_test_and_enable(request: HtmxHttpRequest) -> HttpResponse:
    """Test & enable the selection: at once for a batch's worth, as a paced rollout beyond."""
    ids = _selected_ids(request)
    round_trip = request.POST.get("round_trip") == "1"
    if len(ids) > settings.SYNC_ROLLOUT_BATCH_SIZE:
        rollout = rollout_plan(mailbox_ids=ids, created_by=request.user, round_trip=round_trip)
        messages.success(request, f"Planned a rollout of {len(ids)} mailboxes (rollout {rollout.pk}).")
        return _back_to_list(request)
    tests = queue_test_and_enable(mailbox_ids=ids, requested_by=request.user, round_trip=round_trip)
    test_ids = [test.pk for test in tests]
    if not request.htmx:
        return redirect(reverse("mailboxes") + "?" + urlencode([("test", pk) for pk in test_ids]))
    progress = _progress(request, test_ids, shown=set())
    return render(request, "console/mailboxes/_progress.html", {"progress": progress})


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
    """The live progress panel; polls itself until every test has finished, and
    brings the table rows of the tests that finished since its last answer."""
    shown = set(_ids(request.GET.getlist("done")))
    progress = _progress(request, _ids(request.GET.getlist("test")), shown=shown)
    return render(request, "console/mailboxes/_progress.html", {"progress": progress})


@require_POST
@administrator_required
def mailbox_rollout_cancel(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The rollout plan's "Cancel rollout": queued tests and batches not started are canceled."""
    try:
        rollout = rollout_cancel(rollout=get_object_or_404(Rollout, pk=pk))
    except RolloutError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Rollout {rollout.pk} is canceled; tests already running finish.")
    return _back_to_list(request)


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
    # ASCII digits only ("²" is a digit to isdigit(), not to int()), within the database's 64 bits.
    return [int(value) for value in values if _is_id(value)]


def _is_id(value: str) -> bool:
    return value.isascii() and value.isdigit() and int(value) < 2**63


def _back_to_list(request: HtmxHttpRequest) -> HttpResponse:
    if request.htmx:
        return HttpResponseClientRefresh()
    back = request.POST.get("next", "")
    # Only back to a page of this site: "next" comes from the browser.
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = reverse("mailboxes")
    return redirect(back)


# --- what the page shows -----------------------------------------------------------------------


def table_rows(mailboxes: QuerySet[Mailbox]) -> QuerySet[Mailbox]:
    """What a row of the table (_row.html) shows, in the same few queries for any number of rows."""
    return mailboxes.select_related("user", "queue", "profile").prefetch_related(_latest_test())


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
    # Table rows to swap in out of band: their tests finished since the panel last showed them.
    refreshed: list[Mailbox]

    @property
    def running(self) -> bool:
        return any(row.test.state in UNFINISHED for row in self.rows)


def _progress(request: HtmxHttpRequest, test_ids: list[int], *, shown: set[int] | None) -> Progress:
    """The panel for these tests. ``shown``: the finished tests whose rows the page
    already shows (None: all of them, as on a page just rendered)."""
    mine = visible(Mailbox.objects.all(), request.user)
    tests = (
        MailboxTest.objects.filter(pk__in=test_ids, mailbox__in=mine)
        .select_related("mailbox", "mailbox__profile")
        .order_by("mailbox__name", "id")
    )
    admin = is_administrator(request.user)
    rows = [ProgressRow(test, _problems(test, admin=admin)) for test in tests]
    done = [row.test for row in rows if row.test.state not in UNFINISHED]
    new = [test.mailbox_id for test in done if shown is not None and test.pk not in shown]
    return Progress(
        rows=rows,
        # Each poll names the finished tests it has seen, so each row is refreshed once.
        query=urlencode([("test", row.test.pk) for row in rows] + [("done", test.pk) for test in done]),
        refreshed=list(table_rows(mine.filter(pk__in=new))) if new else [],
    )


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
# Causes fixed by connecting the mailbox's account at its OAuth provider again (on its page).
CONNECT_CODES = frozenset({"reauthorize", "oauth_not_connected"})


def _fix_link(mailbox: Mailbox, code: str, *, admin: bool) -> tuple[str, str]:
    """Where the fix is made: the mailbox's credentials, or its server profile.
    Administrators fix either; an owner sets the mailbox's own credentials on
    this page and, for a profile's fault, gets the mailbox page to show it."""
    if code in CONNECT_CODES:
        return f"{reverse('mailbox-page', args=[mailbox.pk])}#oauth", "Connect the account"
    in_profile = mailbox.profile is not None and mailbox.profile.holds_credentials
    if not in_profile and code in CREDENTIAL_CODES:
        if admin:
            return reverse("admin:mailboxes_mailbox_change", args=[mailbox.pk]), "Fix the credentials"
        return _credentials_form_url(mailbox), "Set your credentials"
    if not admin:
        return reverse("mailbox-page", args=[mailbox.pk]), "Mailbox details"
    if code == "approval_missing":
        return f"{reverse('mailboxes')}?{urlencode({'q': mailbox.email_address})}", "Approve the address"
    if mailbox.profile_id:
        return reverse("profiles-edit", args=[mailbox.profile_id]), "Fix the profile"
    return reverse("admin:mailboxes_mailbox_change", args=[mailbox.pk]), "Choose a profile"


def _credentials_form_url(mailbox: Mailbox) -> str:
    """This page showing just that mailbox, its credentials form open."""
    query = urlencode({"q": mailbox.email_address, "credentials": mailbox.pk})
    return f"{reverse('mailboxes')}?{query}#credentials-{mailbox.pk}"


def _rollouts(request: HtmxHttpRequest) -> QuerySet[Rollout]:
    rollouts = Rollout.objects.filter(state__in=(Rollout.State.PLANNED, Rollout.State.RUNNING))
    if not is_administrator(request.user):
        rollouts = rollouts.filter(created_by_id=request.user.pk)
    return rollouts.annotate(
        total=Count("items"),
        started=Count("items", filter=Q(items__test__isnull=False)),
        batches=Max("items__batch_number"),
    ).select_related("created_by")
