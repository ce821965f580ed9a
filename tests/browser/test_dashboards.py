"""The dashboards in a real browser: every page draws its charts without a console error, filters live in
the URL and change the numbers, a chart click and a table row reach the fact rows, the CSV holds the
table's figures, and a member cannot open a colleague's page. Screenshots: test-artifacts/browser/."""

from __future__ import annotations

import csv
import datetime as dt
import io

from django.db.models import Sum

from apps.org.models import Person
from apps.usage.models import DailyRollup
from apps.usage.money import usd_text
from tests.browser.conftest import DEMO_TODAY, screenshot

START = DEMO_TODAY - dt.timedelta(days=89)
PERIOD = f"start={START}&end={DEMO_TODAY}"
CIO = "cio@northwind.example"
MEMBER = "dana.kowalski@northwind.example"


def charts_drawn(page) -> list[dict]:
    """Each Plotly chart on the page: its id, how many traces it has, and whether an SVG was drawn."""
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(chart => ({
            id: chart.id,
            traces: (chart.data || []).length,
            points: (chart.data || []).reduce((n, trace) => n + ((trace.x || trace.values || []).length), 0),
            drawn: !!chart.querySelector('svg.main-svg'),
        }))"""
    )


def test_every_page_draws_its_charts_without_console_errors(demo, open_as):
    page = open_as(CIO)
    dana = Person.objects.get(email=MEMBER)
    expected_charts = {
        "overview": ("/", 2),
        "teams": (f"/teams/?{PERIOD}", 3),
        "team": (f"/teams/engineering/?{PERIOD}", 4),
        "person": (f"/people/{dana.pk}/?{PERIOD}", 3),
        "models": (f"/models/?{PERIOD}", 4),
        "tasks": (f"/tasks/?{PERIOD}", 2),
        "task": (f"/tasks/code-review/?{PERIOD}", 4),
        "sources": ("/sources/", 0),
        "facts": (f"/facts/?{PERIOD}", 0),
    }
    for name, (path, count) in expected_charts.items():
        response = page.goto(path)
        assert response.status == 200, path
        page.wait_for_load_state("networkidle")
        charts = charts_drawn(page)
        assert len(charts) == count, (name, charts)
        for chart in charts:
            assert chart["drawn"] and chart["traces"] >= 1 and chart["points"] >= 1, (name, chart)
        screenshot(page, name)
        assert page.console_errors == [], (name, page.console_errors)
    # A phone-sized screen: the same page still draws, nothing wider than the screen but the tables.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"/teams/engineering/?{PERIOD}")
    page.wait_for_load_state("networkidle")
    assert all(chart["drawn"] for chart in charts_drawn(page))
    # Wide tables scroll inside their own box; the page itself never scrolls sideways.
    assert page.evaluate("document.documentElement.scrollWidth") == 390
    screenshot(page, "team-phone")
    assert page.console_errors == []


def test_a_filter_change_updates_the_url_and_the_numbers(demo, open_as):
    page = open_as(CIO)
    page.goto(f"/models/?{PERIOD}")
    everything = page.get_attribute('[data-testid="total-usd"]', "data-exact")
    rows = DailyRollup.objects.filter(day__gte=START, day__lte=DEMO_TODAY)
    assert everything == usd_text(rows.aggregate(total=Sum("cost_nanos"))["total"])

    page.select_option('[data-testid="filter-provider"]', "anthropic")
    page.select_option('[data-testid="filter-task"]', "code-review")
    with page.expect_navigation():
        page.click('[data-testid="filter-apply"]')
    assert (
        "provider=anthropic" in page.url and "task=code-review" in page.url and f"start={START}" in page.url
    )
    narrowed = rows.filter(provider__slug="anthropic", task__key="code-review").aggregate(
        total=Sum("cost_nanos")
    )
    assert page.get_attribute('[data-testid="total-usd"]', "data-exact") == usd_text(narrowed["total"])
    assert narrowed["total"] < rows.aggregate(total=Sum("cost_nanos"))["total"]
    # The URL is the view: opened afresh (shared), it shows the same numbers.
    shared = open_as(CIO)
    shared.goto(page.url)
    assert shared.get_attribute('[data-testid="total-usd"]', "data-exact") == usd_text(narrowed["total"])
    screenshot(page, "models-filtered")
    assert page.console_errors == []


def test_a_chart_click_and_a_table_row_reach_the_fact_rows(demo, open_as):
    page = open_as(CIO)
    page.goto(f"/teams/engineering/?{PERIOD}")
    page.wait_for_load_state("networkidle")
    bar = page.locator("#chart-models .barlayer .point path").last  # the largest model's bar
    bar.scroll_into_view_if_needed()
    box = bar.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)  # Plotly finds the point under the pointer on hover, then reports it on click
    page.wait_for_selector("#chart-models .hoverlayer .hovertext")
    with page.expect_navigation():
        page.mouse.click(x, y)
    assert "/facts/" in page.url and "team=engineering" in page.url and "model=" in page.url
    assert page.locator('[data-testid="fact-row"]').count() >= 1
    screenshot(page, "facts-from-chart")

    page.goto(f"/tasks/?{PERIOD}")
    link = page.locator('[data-testid="table-tasks"] [data-testid="drill"]').first
    link.focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")  # the table is the keyboard's way to the same rows
    assert "/facts/" in page.url and "task=" in page.url
    assert page.locator('[data-testid="fact-row"]').count() >= 1
    assert page.console_errors == []


def test_the_csv_holds_the_tables_figures(demo, open_as):
    page = open_as(CIO)
    page.goto(f"/tasks/?{PERIOD}")
    shown = page.evaluate(
        """() => Array.from(document.querySelectorAll('[data-testid="table-tasks"] tbody tr')).map(row =>
            Object.fromEntries(Array.from(row.querySelectorAll('[data-col]')).map(cell =>
                [cell.dataset.col, cell.dataset.exact === undefined ? cell.innerText.trim() : cell.dataset.exact])))"""
    )
    href = page.get_attribute('[data-testid="csv-tasks"]', "href")
    download = page.request.get(href)
    assert download.status == 200 and download.headers["cache-control"] == "no-store"
    rows = list(csv.DictReader(io.StringIO(download.text())))
    assert len(rows) == len(shown) > 5
    for on_page, in_csv in zip(shown, rows, strict=True):
        assert on_page == {column: in_csv[column] for column in on_page}
    # The page rounds to the cent what the CSV holds exactly.
    first_cost = page.locator('[data-testid="table-tasks"] tbody tr').first.locator('[data-col="cost_usd"]')
    assert first_cost.inner_text() == f"${float(rows[0]['cost_usd']):,.2f}"


def test_a_member_cannot_reach_a_colleagues_page(demo, open_as):
    page = open_as(MEMBER)
    dana = Person.objects.get(email=MEMBER)
    colleague = Person.objects.filter(team=dana.team).exclude(pk=dana.pk).first()
    assert page.goto(f"/people/{colleague.pk}/?{PERIOD}").status == 404
    assert page.goto(f"/people/{colleague.pk}/trend.csv?{PERIOD}").status == 404
    assert page.goto(f"/teams/{dana.team.slug}/").status == 404
    assert page.goto(f"/facts/?person={colleague.pk}").status == 404
    page = open_as(MEMBER)  # a fresh tab: the browser logs each 404 above as a console error, late
    response = page.goto(f"/people/{dana.pk}/?{PERIOD}")
    assert response.status == 200
    page.wait_for_load_state("networkidle")
    assert len(charts_drawn(page)) == 3
    assert page.locator("nav[aria-label=Main] >> text=Teams").count() == 0  # no menu entry that would 404
    screenshot(page, "member-own-page")
    assert page.console_errors == []
