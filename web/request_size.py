"""A cap on request bodies, per route: a body larger than the route allows is
refused with 413 from its Content-Length, before anything reads it.

Every route allows ``REQUEST_MAX_BYTES``; the routes that take file uploads
(``UPLOAD_URL_NAMES``: the Email Router migration upload, the server profile form
with its certificate, the API's router-migration upload) allow ``UPLOAD_MAX_BYTES``.
API clients get the API's JSON error shape, browsers a short page."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.template.loader import render_to_string
from django.urls import Resolver404, resolve

API_PREFIX = "/api/"


class RequestSizeLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        size = _content_length(request)
        limit = route_limit(request.path_info)
        if size > limit:
            return too_large(request, limit)
        return self.get_response(request)


def route_limit(path: str) -> int:
    """The largest body the route at PATH accepts, in bytes."""
    try:
        name = resolve(path).url_name
    except Resolver404:
        return int(settings.REQUEST_MAX_BYTES)
    if name in settings.UPLOAD_URL_NAMES:
        return int(settings.UPLOAD_MAX_BYTES)
    return int(settings.REQUEST_MAX_BYTES)


def too_large(request: HttpRequest, limit: int) -> HttpResponseBase:
    message = f"The request is too large: this address accepts at most {_size(limit)}."
    if request.path_info.startswith(API_PREFIX) or "json" in request.headers.get("Accept", ""):
        return JsonResponse({"detail": message}, status=413)
    page = render_to_string("errors/request_too_large.html", {"message": message})
    return HttpResponse(page, status=413)


def _content_length(request: HttpRequest) -> int:
    # A body sent without a length (chunked) is not read by Django at all: nothing to cap.
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


def _size(limit: int) -> str:
    mib = limit / (1024 * 1024)
    return f"{mib:g} MiB" if mib >= 1 else f"{limit // 1024} KiB"
