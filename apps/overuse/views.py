"""The Savings page. Thin: resolve the viewer, build the report, hand it to figures and the template."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from apps.accounts.scoping import viewer_for_user
from apps.catalog.pricing import Pricer
from apps.dashboards.figures import to_html
from apps.org.models import Organisation
from apps.overuse import figures, selectors, services
from apps.overuse.evaluation import base_evaluation

PERIODS = (30, 90)


@login_required
def savings(request: HttpRequest) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    organisation = Organisation.objects.get(pk=viewer.organisation_id)
    days = int(request.GET.get("days", "30")) if request.GET.get("days") in {str(p) for p in PERIODS} else 30
    today = timezone.now().astimezone(ZoneInfo(organisation.time_zone)).date()
    start = today - dt.timedelta(days=days - 1)
    pricer = Pricer()
    report = selectors.overuse_report(viewer, start=start, end=today, pricer=pricer)
    trend_start = min(start, today - dt.timedelta(days=89)).replace(day=1)
    trend = selectors.overuse_report(viewer, start=trend_start, end=today, pricer=pricer).savings_by("month")
    by_team = report.routable_by("team")
    by_model = report.routable_by("model")
    examples = selectors.example_requests(report)
    services.excerpt_views_record(
        viewer=viewer,
        user=request.user,
        observations=[example.observation for example in examples],
        page="savings",
    )
    routable = report.routable_totals
    evaluation = base_evaluation()
    context = {
        "organisation": organisation,
        "viewer": viewer,
        "days": days,
        "periods": PERIODS,
        "start": start,
        "today": today,
        "routable": routable,
        "routable_low_nanos": report.routable_low_nanos,
        "avoidable_nanos": report.avoidable_nanos,
        "non_work_requests": report.non_work_requests,
        "by_team": by_team,
        "by_model": by_model,
        "by_task": report.routable_by("task"),
        "non_work_by_team": report.non_work_by("team"),
        "non_work_by_model": report.non_work_by("model"),
        "repeated": selectors.repeated_prompts(viewer, start=start, end=today),
        "context_tax": selectors.context_tax(viewer, start=start, end=today, pricer=pricer, limit=10),
        "heuristic": selectors.metadata_heuristic(viewer, start=start, end=today, pricer=pricer),
        "examples": examples,
        "examples_allowed": selectors.examples_allowed(viewer),
        "evaluation": evaluation,
        "trend_chart": to_html(
            figures.savings_trend(
                trend, title="Savings per month: routable range and avoidable non-work spend"
            ),
            element_id="chart-savings-trend",
        ),
        "teams_chart": to_html(
            figures.opportunities_by_group(
                by_team, title=f"Frontier models on trivial prompts, by team, last {days} days"
            ),
            element_id="chart-savings-teams",
        ),
    }
    return render(request, "overuse/savings.html", context)


@login_required
@require_POST
def not_trivial(request: HttpRequest, observation_id: int) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    services.feedback_not_trivial(viewer=viewer, user=request.user, observation_id=observation_id)
    messages.success(
        request, "Thanks: that request is no longer counted, and your correction is kept for training."
    )
    return redirect(reverse("overuse:savings"))
