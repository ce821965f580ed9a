"""Charts for digests: Plotly figures rendered to PNG offline, each with a text alternative.

Email clients run no JavaScript, so the figures travel as inline PNG images (multipart/related,
referenced by Content-ID). They are drawn by Plotly's static export, kaleido 1.x, which drives a
Chromium that is already installed (SPENDWATCH_CHROMIUM_PATH, /usr/bin/chromium by default): kaleido
never downloads a browser by itself, and it is given the plotly.js that ships inside the plotly package
and no MathJax, so rendering needs no network. One browser serves a whole send run.

When the browser is missing or fails, `ChartRenderer.available` is False with a reason, and digests
go out without images: every chart's text alternative is in the email either way.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import plotly.graph_objects as go

from apps.digests import text
from apps.digests.selectors import Digest, SpendLine
from apps.digests.weeks import IsoWeek

logger = logging.getLogger(__name__)
# kaleido and choreographer narrate every tab at INFO; a send run's log should show our lines only.
for _chatty in ("kaleido", "choreographer", "logistro"):
    logging.getLogger(_chatty).setLevel(logging.WARNING)

WIDTH, HEIGHT = 600, 260  # CSS pixels: the email's content width
SCALE = 2  # rendered at twice the size, so the image stays sharp on high-density screens
BAR = "#3a5bd9"
BAR_MUTED = "#b8c2dc"
MAX_BARS = 8


@dataclass(frozen=True)
class Chart:
    cid: str  # Content-ID without angle brackets
    title: str
    alt: str  # short: the img alt attribute
    description: str  # the text alternative: every number the chart shows, in words
    figure: go.Figure
    height: int = HEIGHT


def _layout(figure: go.Figure, *, title: str, height: int) -> go.Figure:
    figure.update_layout(
        title=dict(text=title, x=0, xanchor="left", pad=dict(l=6), font=dict(size=15)),
        template="plotly_white",
        width=WIDTH,
        height=height,
        margin=dict(l=10, r=20, t=40, b=10),
        showlegend=False,
        font=dict(family="Helvetica, Arial, sans-serif", size=12, color="#1d2433"),
    )
    return figure


def weekly_trend_chart(trend: list[tuple[IsoWeek, int]], *, scope: str, cid: str) -> Chart:
    """Bars of the last weeks' totals, the reported week highlighted."""
    weeks = [week for week, _ in trend]
    values = [float(text.dollars(nanos)) for _, nanos in trend]
    colours = [BAR_MUTED] * len(trend)
    if colours:
        colours[-1] = BAR
    figure = go.Figure(
        go.Bar(
            x=[week.short_label for week in weeks],
            y=values,
            marker_color=colours,
            text=[text.usd(nanos) for _, nanos in trend],
            textposition="outside",
            cliponaxis=False,
        )
    )
    figure.update_yaxes(tickprefix="$", tickformat=",.2f", rangemode="tozero")
    title = f"Spend per week, {scope}: last {len(trend)} weeks"
    _layout(figure, title=title, height=HEIGHT)
    description = "; ".join(f"week of {week.short_label}: {text.usd(nanos)}" for week, nanos in trend)
    return Chart(cid, title, f"Bar chart: {title}", f"{title}. {description}.", figure)


def groups_chart(lines: list[SpendLine], *, what: str, cid: str) -> Chart:
    """Horizontal bars of this week per group (largest first) with last week beside each."""
    shown = [line for line in lines if not line.hidden][:MAX_BARS]
    labels = [line.label for line in shown][::-1]
    figure = go.Figure()
    figure.add_bar(
        y=labels,
        x=[float(text.dollars(line.last_week_nanos or 0)) for line in shown][::-1],
        orientation="h",
        name="Last week",
        marker_color=BAR_MUTED,
    )
    figure.add_bar(
        y=labels,
        x=[float(text.dollars(line.this_week_nanos or 0)) for line in shown][::-1],
        orientation="h",
        name="This week",
        marker_color=BAR,
    )
    figure.update_layout(barmode="group", bargap=0.25)
    figure.update_xaxes(tickprefix="$", tickformat=",.2f", rangemode="tozero")
    height = max(160, 44 * len(shown) + 80)
    title = f"Spend by {what}: this week (dark) and last week (light)"
    _layout(figure, title=title, height=height)
    figure.update_layout(showlegend=False)
    description = "; ".join(
        f"{line.label}: {line.this_week} this week, {line.last_week} last week" for line in shown
    )
    return Chart(cid, title, f"Bar chart: {title}", f"{title}. {description}.", figure, height)


def digest_charts(digest: Digest, *, cid_suffix: str) -> list[Chart]:
    """The charts of one digest. Content-IDs are unique per message (RFC 2392) via the suffix."""
    charts = [weekly_trend_chart(digest.trend, scope=digest.headline.scope, cid=f"trend.{cid_suffix}")]
    if digest.kind == "organisation" and any(not line.hidden for line in digest.teams):
        charts.append(groups_chart(digest.teams, what="team", cid=f"teams.{cid_suffix}"))
    elif digest.kind == "manager" and len([line for line in digest.teams if not line.hidden]) > 1:
        charts.append(groups_chart(digest.teams, what="team", cid=f"teams.{cid_suffix}"))
    elif digest.kind == "member" and digest.models:
        charts.append(groups_chart(digest.models, what="model", cid=f"models.{cid_suffix}"))
    return charts


class ChartRenderer:
    """Renders figures to PNG with one headless Chromium for its lifetime (a `with` block).

    The browser starts on the first chart, so a run with nothing to send starts none. Kaleido is
    asynchronous; a private event loop on a background thread runs it, so callers stay synchronous and
    every call has a timeout (a hung browser cannot hang a send run).
    """

    def __init__(self, browser_path: str, *, timeout: float = 60.0):
        self.browser_path = browser_path
        self.timeout = timeout
        self.reason = ""  # why charts are unavailable, once that is known
        self._started = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._browser = None

    def __enter__(self) -> ChartRenderer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def available(self) -> bool:
        """Whether charts can be drawn (starts the browser if that is not known yet)."""
        self._start()
        return self._browser is not None

    def png(self, chart: Chart) -> bytes | None:
        """The chart as PNG, or None when the renderer is unavailable or this chart fails."""
        self._start()
        if self._browser is None:
            return None
        opts = {"format": "png", "width": WIDTH, "height": chart.height, "scale": SCALE}
        try:
            return self._run(self._browser.calc_fig(chart.figure.to_dict(), opts=opts))
        except Exception as error:
            logger.warning("digest chart %s failed: %s: %s", chart.cid, type(error).__name__, error)
            return None

    def close(self) -> None:
        if self._browser is not None:
            try:
                self._run(self._browser.close())
            except Exception:
                logger.warning("the digest chart browser did not close cleanly", exc_info=True)
            self._browser = None
        self._stop_loop()

    def _start(self) -> None:
        if self._started:
            return
        self._started = True
        if not self.browser_path:
            self.reason = "no browser is configured (SPENDWATCH_CHROMIUM_PATH is empty)"
            return
        if not Path(self.browser_path).is_file():
            self.reason = f"no browser at {self.browser_path}"
            return
        try:
            import kaleido
        except ImportError:
            self.reason = "kaleido is not installed"
            return
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="digest-charts", daemon=True)
        self._thread.start()

        async def open_browser():
            # mathjax=False: the default would load MathJax from a CDN. plotly.js comes from the plotly
            # package (kaleido's default when plotly is installed), never from the network.
            browser = kaleido.Kaleido(n=1, timeout=self.timeout, mathjax=False, path=self.browser_path)
            await browser.open()
            return browser

        try:
            self._browser = self._run(open_browser())
        except Exception as error:  # any failure to start means: send without images
            self.reason = f"the browser did not start ({type(error).__name__}: {error})"[:300]
            logger.warning("digest charts unavailable: %s", self.reason)
            self._stop_loop()

    def _run(self, coroutine):
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout=self.timeout + 10)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def _stop_loop(self) -> None:
        if self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop.close()
        self._loop, self._thread = None, None
