"""How the pages write engine figures."""

from __future__ import annotations

import math

from django import template

register = template.Library()


@register.filter
def latency(seconds: float | None) -> str:
    """A histogram percentile: the upper bound of its bucket ("≤ 2 min")."""
    if seconds is None:
        return "-"
    if math.isinf(seconds):
        return "> 24 h"
    if seconds < 60:
        return f"≤ {seconds:.0f} s"
    if seconds < 3600:
        return f"≤ {seconds / 60:.0f} min"
    return f"≤ {seconds / 3600:.0f} h"


@register.filter
def percent(fraction: float) -> str:
    return f"{fraction:.0%}"
