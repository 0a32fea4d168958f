"""The shell's other pages: what exists so far, as simple honest lists."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from sync.views.access import administrator_required


@require_GET
@administrator_required
def migration(request: HttpRequest) -> HttpResponse:
    return render(request, "sync/migration.html")
