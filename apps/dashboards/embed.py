"""How a Plotly figure goes into a page: a div carrying the figure as JSON, drawn by dashboards/charts.js.

Plotly's own `to_html` writes an inline <script> per chart; the Content-Security-Policy allows no inline
script (README "Secrets, headers and supply chain"), so the figure travels as data and one static script,
loaded after plotly.js, draws every such div. The JSON is HTML-escaped inside the attribute, so a label
holding `"` or `</script>` stays text.
"""

from __future__ import annotations

import json

import plotly.graph_objects as go
from django.utils.html import format_html
from django.utils.safestring import SafeString

CONFIG = json.dumps({"displaylogo": False, "responsive": True})


def figure_div(figure: go.Figure, *, element_id: str) -> SafeString:
    """A div for a page that loads plotly.js (from static/, never a CDN) and dashboards/charts.js."""
    return format_html(
        '<div id="{}" class="plotly-graph-div" data-figure="{}" data-config="{}"></div>',
        element_id,
        figure.to_json(),
        CONFIG,
    )
