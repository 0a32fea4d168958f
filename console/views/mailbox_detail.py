"""The mailbox page (/mailboxes/<id>/): its settings (credentials only as set or
not set), statuses, recent sync runs, folder cursors, alerts and quarantined
messages, which can be downloaded as .eml or reprocessed; its appointments, contacts
and tasks (ACT runs, linked items, item problems a page at a time, ``?page=N``); and
the mailbox's details as a text file for a support ticket.

Administrators and the mailbox's owner (a queue owner for the queue's) only;
anyone else gets 404, so a mailbox's existence does not leak."""

from __future__ import annotations

from django.contrib import messages
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from console.mailbox_overview import MailboxOverview, mailbox_overview
from console.support_report import support_report
from console.views.access import HtmxHttpRequest, member_required
from mailboxes.models import Mailbox
from sync import push_leases
from sync.errors import MessageError
from sync.incoming import reprocess_quarantined
from sync.models import QuarantinedMessage
from web.roles import is_administrator, visible

MAILBOX_RELATED = ("user", "queue", "queue__owner", "profile", "approval_changed_by")


@require_GET
@member_required
def mailbox_page(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    overview = _overview(request, pk, act_problems_page=request.GET.get("page"))
    push = push_leases.status_of(overview.mailbox)
    context = {"overview": overview, "mailbox": overview.mailbox, "push": push}
    return render(request, "console/mailbox_detail.html", context)


@require_GET
@member_required
def mailbox_details_download(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The support report, as a file to attach to a ticket."""
    overview = _overview(request, pk)
    report = support_report(overview=overview, with_versions=is_administrator(request.user))
    response = HttpResponse(report, content_type="text/plain; charset=utf-8")
    filename = f"serversync-mailbox-{overview.mailbox.pk}-details.txt"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_GET
@member_required
def quarantined_download(request: HtmxHttpRequest, pk: int) -> FileResponse:
    """The quarantined message exactly as the server returned it."""
    held = _quarantined(request, pk)
    if not held.raw:
        raise Http404("This message was over the size limit and was not downloaded.")
    return FileResponse(
        held.raw.open("rb"),
        as_attachment=True,
        filename=f"quarantined-{held.pk}.eml",
        content_type="message/rfc822",
    )


@require_POST
@member_required
def quarantined_reprocess(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    held = _quarantined(request, pk)
    try:
        receipt = reprocess_quarantined(quarantined_id=held.pk)
    except MessageError as error:
        messages.error(request, f"Message #{held.pk} is still quarantined: {error.message}")
    else:
        messages.success(request, f"Message #{held.pk} reprocessed: {receipt.get_outcome_display()}.")
    url = reverse("mailbox-page", args=[held.mailbox_id])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _overview(request: HtmxHttpRequest, pk: int, *, act_problems_page: str | None = None) -> MailboxOverview:
    mailboxes = visible(Mailbox.objects.select_related(*MAILBOX_RELATED), request.user)
    mailbox = get_object_or_404(mailboxes, pk=pk)
    return mailbox_overview(
        mailbox=mailbox, administrator=is_administrator(request.user), act_problems_page=act_problems_page
    )


def _quarantined(request: HtmxHttpRequest, pk: int) -> QuarantinedMessage:
    return get_object_or_404(visible(QuarantinedMessage.objects.all(), request.user), pk=pk)
