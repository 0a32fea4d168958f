"""/health/ for load balancers and /health/status/ for monitoring systems (console.health).

Neither renders a template nor touches the session unless it must, so they
answer while the database is down: /health/ is public and says only which
checks fail; /health/status/ takes the bearer token of SERVERSYNC_STATUS_TOKEN
or an administrator's session, and answers 404 to everyone else while no
token is configured (401 once one is).
"""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from console.health import check_health, status_report
from web.roles import is_administrator

PLAIN = "text/plain; charset=utf-8"


@never_cache
@require_safe
def health(request: HttpRequest) -> HttpResponse:
    result = check_health()
    if result.healthy:
        return HttpResponse("ok\n", content_type=PLAIN)
    return HttpResponse(f"failing: {', '.join(result.failing)}\n", status=503, content_type=PLAIN)


@never_cache
@require_safe
def health_status(request: HttpRequest) -> HttpResponse:
    """Always 200 once admitted: whether all is well is in the body ("healthy"),
    so a monitoring system reads the numbers even while a check fails."""
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    return JsonResponse(status_report(check_health()))


def _refusal(request: HttpRequest) -> HttpResponse | None:
    offered = _bearer_token(request)
    if offered is not None:
        if _token_matches(offered):
            return None
    elif _is_administrator(request):
        return None
    if not settings.SERVERSYNC_STATUS_TOKEN:
        return HttpResponse("Not found.\n", status=404, content_type=PLAIN)
    response = HttpResponse("A valid bearer token is required.\n", status=401, content_type=PLAIN)
    response["WWW-Authenticate"] = 'Bearer realm="serversync status"'
    return response


def _bearer_token(request: HttpRequest) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _token_matches(offered: str) -> bool:
    expected = settings.SERVERSYNC_STATUS_TOKEN
    if not expected:
        return False
    # Digests of equal length, compared in constant time: neither content nor length leaks.
    return hmac.compare_digest(
        hashlib.sha256(offered.encode()).digest(), hashlib.sha256(expected.encode()).digest()
    )


def _is_administrator(request: HttpRequest) -> bool:
    try:
        return is_administrator(request.user)
    except DatabaseError:
        return False  # the session cannot be read; a token still works
