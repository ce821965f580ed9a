"""The dashboards work under the Content-Security-Policy (TESTPLAN K2), in a real Chromium.

Each page is opened with its CSP header as served; the browser reports every blocked script, style, image
or connection as a `securitypolicyviolation` event (recorded from before the page's first script runs) and
as a console error. A page passes when it reported none and every Plotly chart drew its SVG.
"""

from __future__ import annotations

import pytest

from tests.browser.test_dashboards import CIO, PERIOD, charts_drawn
from tests.browser.test_other_pages import demo_with_outcomes  # noqa: F401 - the fixture

RECORD_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => window.cspViolations.push({
    directive: event.effectiveDirective, blocked: event.blockedURI, sample: event.sample,
    source: event.sourceFile + ":" + event.lineNumber,
}));
"""


@pytest.fixture(autouse=True)
def no_mfa_enrolment(settings):
    # The CSP is what is under test here: the demo's CIO opens the pages without enrolling an authenticator.
    settings.SPENDWATCH_MFA_REQUIRED_ROLES = []


def open_with_csp_watch(open_as, email: str):
    page = open_as(email)
    page.add_init_script(RECORD_VIOLATIONS)
    page.csp_console = []
    page.on(
        "console",
        lambda message: "Content Security Policy" in message.text and page.csp_console.append(message.text),
    )
    return page


# (name, path, charts expected; None: at least one, the count depends on the metric's data)
PAGES = [
    ("teams", f"/teams/?{PERIOD}", 3),
    ("team", f"/teams/engineering/?{PERIOD}", 4),
    ("savings", "/savings/", 2),
    ("budgets", "/budgets/", 0),
    ("budget", "/budgets/{limit}/", 1),
    ("metric", "/metrics/tickets-resolved/", None),
    ("overview", "/", 2),
]


def test_the_dashboards_draw_under_the_csp_without_a_violation(demo_with_outcomes, open_as):  # noqa: F811
    from apps.budgets.models import Limit

    page = open_with_csp_watch(open_as, CIO)
    limit = Limit.objects.order_by("pk").values_list("pk", flat=True).first()
    drawn_charts = 0
    for name, path, charts in PAGES:
        response = page.goto(path.format(limit=limit))
        page.wait_for_load_state("networkidle")

        assert response.status == 200, name
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-eval" not in policy, policy
        assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0], policy
        drawn = charts_drawn(page)
        assert len(drawn) == charts if charts is not None else drawn, (name, drawn)
        assert all(chart["drawn"] and chart["traces"] >= 1 for chart in drawn), (name, drawn)
        assert page.evaluate("window.cspViolations") == [], name
        assert page.csp_console == [], name
        assert page.console_errors == [], (name, page.console_errors)
        drawn_charts += len(drawn)
    assert drawn_charts >= 13


def test_the_api_docs_load_swagger_ui_from_our_own_static_files(demo_with_outcomes, open_as):  # noqa: F811
    page = open_with_csp_watch(open_as, CIO)

    response = page.goto("/api/docs/")
    page.wait_for_selector(".swagger-ui .opblock", timeout=15_000)

    assert response.status == 200
    assert page.locator(".swagger-ui .opblock").count() >= 1  # the API's operations, drawn from the schema
    assert page.evaluate("window.cspViolations") == []
    assert page.csp_console == [] and page.console_errors == [], page.console_errors
