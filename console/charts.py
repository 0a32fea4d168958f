"""The dashboard's charts: SVG drawn on the server by pygal, so the page needs no
JavaScript chart library (and running it, no Node.js)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pygal
from django.utils.safestring import SafeString, mark_safe
from pygal.style import Style

from console.dashboard import Period

_STYLE = Style(
    background="transparent",
    plot_background="#ffffff",
    foreground="#1d2430",
    foreground_strong="#1d2430",
    foreground_subtle="#d9dee5",
    colors=("#1f5fbf", "#1c7c3c", "#7b4fb3", "#b3261e"),
    font_family="system-ui, sans-serif",
    label_font_size=11,
    major_label_font_size=11,
    legend_font_size=12,
    title_font_size=14,
)
_OPTIONS = {
    "style": _STYLE,
    "js": [],  # pygal's tooltip script would be fetched from the internet
    "disable_xml_declaration": True,
    "width": 640,
    "height": 260,
    "legend_at_bottom": True,
    "legend_at_bottom_columns": 4,
    "print_zeroes": False,
    "min_scale": 2,
    "max_scale": 6,
    "margin": 8,
}


def throughput(periods: Sequence[Period], *, labels: Sequence[str], title: str) -> SafeString:
    """Emails received, tracked and sent, and failures, per period."""
    chart = pygal.Bar(title=title, x_labels=labels, x_label_rotation=0, **_OPTIONS)
    chart.add("Received", [period.received for period in periods])
    chart.add("Tracked", [period.tracked for period in periods])
    chart.add("Sent", [period.sent for period in periods])
    chart.add("Failures", [period.failures for period in periods])
    return _svg(chart)


def latency(periods: Sequence[Period], *, labels: Sequence[str], title: str) -> SafeString:
    """p50 and p95 latency per period, in seconds; gaps where nothing was stored."""
    options = _OPTIONS | {"legend_at_bottom_columns": 2}
    chart = pygal.Line(
        title=title,
        x_labels=labels,
        logarithmic=True,
        allow_interruptions=True,
        value_formatter=lambda seconds: f"{seconds:g} s",
        **options,
    )
    chart.add("p50", [_plottable(period.latency_p50) for period in periods])
    chart.add("p95", [_plottable(period.latency_p95) for period in periods])
    return _svg(chart)


def _plottable(seconds: float | None) -> float | None:
    # Above the histogram's last bound the percentile is infinite: drawn as a gap.
    return None if seconds is None or math.isinf(seconds) else seconds


def _svg(chart: pygal.graph.graph.Graph) -> SafeString:
    # pygal's inline config script, useless without its tooltip script, would break
    # the page's Content-Security-Policy (no inline script): dropped from the SVG.
    chart.add_xml_filter(_without_scripts)
    # pygal escapes every label and value it writes; the titles are ours.
    svg: str = chart.render(is_unicode=True)  # pygal is untyped; with is_unicode, a str
    return mark_safe(svg)  # noqa: S308


def _without_scripts(root: Any) -> Any:
    """pygal's SVG tree without its <script> elements (lxml or ElementTree nodes)."""
    for node in list(root.iter()):
        for child in list(node):
            if str(child.tag).rsplit("}", 1)[-1] == "script":
                node.remove(child)
    return root
