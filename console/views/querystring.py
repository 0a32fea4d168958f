"""Query strings for a list's links (pages, outcome tabs)."""

from __future__ import annotations

from django.http import HttpRequest


def query_without(request: HttpRequest, *names: str) -> str:
    """The request's query string without these parameters. Blank values stay:
    a filter the viewer cleared (say /emails/' "received from") stays cleared on
    the next page instead of falling back to its default."""
    query = request.GET.copy()
    for name in names:
        query.pop(name, None)
    return query.urlencode()
