"""The webhook Microsoft Graph calls (``PUSH_GRAPH_WEBHOOK_URL``): an entry point,
thin as the others. No sign-in: each notification proves itself with its
subscription's clientState (``sync.graph_notifications``)."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from sync import graph_notifications


@csrf_exempt
@require_POST
def notifications(request: HttpRequest) -> HttpResponse:
    token = request.GET.get("validationToken")
    if token is not None:
        # Graph's handshake when a subscription is made: the token back, as plain text, at once.
        return HttpResponse(token, content_type="text/plain; charset=utf-8")
    try:
        document = json.loads(request.body)
    except ValueError:
        return HttpResponse("Not a JSON notification collection.", status=400, content_type="text/plain")
    taken = graph_notifications.take(document)
    if taken.refused and not taken.accepted:
        return HttpResponse("No notification with a known subscription and its clientState.", status=403)
    return HttpResponse(status=202)
