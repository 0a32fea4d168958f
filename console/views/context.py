"""What every page's layout needs to know about the viewer."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from web.roles import is_administrator


def roles(request: HttpRequest) -> dict[str, Any]:
    # The navigation hides administrator-only pages from everyone else.
    return {"viewer_is_administrator": is_administrator(getattr(request, "user", None))}
