"""Who may open a page: the same roles as the API (web.roles).

Anonymous visitors are sent to the login page; a signed-in login that is
neither an administrator nor linked to an active CRM user gets 403.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django_htmx.middleware import HtmxDetails

from web.roles import crm_user_for, is_administrator

# HttpResponseBase: a page may also stream a file (FileResponse).
View = Callable[..., HttpResponseBase]


class HtmxHttpRequest(HttpRequest):
    """A request as django-htmx's middleware leaves it (for type checking)."""

    htmx: HtmxDetails


def _requires(check: Callable[[Any], bool]) -> Callable[[View], View]:
    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not check(request.user):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return login_required(wrapped)

    return decorator


def _is_member(user: Any) -> bool:
    return is_administrator(user) or crm_user_for(user) is not None


member_required = _requires(_is_member)
administrator_required = _requires(is_administrator)
