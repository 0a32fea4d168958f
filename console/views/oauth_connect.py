"""Connecting a mailbox's account at its profile's OAuth provider (profiles whose
mailboxes sign in with their own accounts: Gmail, or a user's own Microsoft 365
mailbox over IMAP / SMTP).

"Connect" on the mailbox page (its owner or an administrator) sends the browser
to the provider's authorization endpoint with a fresh ``state`` and PKCE
challenge, kept in this browser's session; the provider sends it back to the
callback, which redeems the code only when the ``state`` is one this session
started (anything else: a clear error, nothing stored). The tokens are kept on
the mailbox, encrypted (sync/oauth_tokens.py), and never shown."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from console.views.access import HtmxHttpRequest, member_required
from mailboxes.models import Mailbox
from sync import oauth_tokens
from sync.errors import SyncError
from web.roles import visible

# Session key: state -> the mailbox and PKCE verifier of a Connect not yet called back.
PENDING = "oauth_connect_pending"
# A browser starting Connect again and again keeps only this many pending.
MAX_PENDING = 5


@require_POST
@member_required
def mailbox_connect(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    mailbox = get_object_or_404(visible(Mailbox.objects.select_related("profile"), request.user), pk=pk)
    redirect_uri = request.build_absolute_uri(reverse("mailbox-oauth-callback"))
    try:
        started = oauth_tokens.connect_start(mailbox, redirect_uri=redirect_uri)
    except SyncError as error:
        messages.error(request, f"{mailbox.email_address} cannot connect: {error.message}")
        return _to(request, reverse("mailbox-page", args=[mailbox.pk]))
    pending: dict[str, Any] = dict(list(request.session.get(PENDING, {}).items())[-(MAX_PENDING - 1) :])
    pending[started.state] = {
        "mailbox": mailbox.pk,
        "verifier": started.code_verifier,
        "redirect_uri": redirect_uri,
    }
    request.session[PENDING] = pending
    return _to(request, started.url)


@require_GET
@member_required
def mailbox_oauth_callback(request: HtmxHttpRequest) -> HttpResponse:
    pending: dict[str, Any] = request.session.get(PENDING, {})
    started = pending.pop(request.GET.get("state", ""), None)
    request.session[PENDING] = pending
    if started is None:
        return _failed(
            request,
            "This sign-in does not answer a Connect started from this browser (its state does not "
            "match), so nothing was stored. Start again with Connect on the mailbox's page.",
        )
    mailbox = get_object_or_404(
        visible(Mailbox.objects.select_related("profile"), request.user), pk=started["mailbox"]
    )
    page = reverse("mailbox-page", args=[mailbox.pk])
    if "error" in request.GET:
        said = request.GET.get("error_description") or request.GET["error"]
        messages.error(request, f"The provider did not connect {mailbox.email_address}: {said}.")
        return redirect(page)
    try:
        oauth_tokens.connect_finish(
            mailbox,
            code=request.GET.get("code", ""),
            redirect_uri=started["redirect_uri"],
            code_verifier=started["verifier"],
            by=request.user,
        )
    except SyncError as error:
        messages.error(request, f"{mailbox.email_address} was not connected: {error.message}")
        return redirect(page)
    messages.success(request, f"{mailbox.email_address} is connected. Test & enable it to sync with it.")
    return redirect(page)


def _to(request: HtmxHttpRequest, url: str) -> HttpResponse:
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _failed(request: HtmxHttpRequest, reason: str) -> HttpResponse:
    return render(request, "console/oauth_connect_failed.html", {"reason": reason}, status=400)
