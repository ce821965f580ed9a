"""The overview page. Thin: resolve the viewer, call selectors, hand their output to figures and templates.

The other pages, their CSVs and the drill-down are in views_pages.py."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from apps.accounts.models import Role
from apps.accounts.scoping import viewer_for_user
from apps.dashboards import figures
from apps.org.models import Organisation
from apps.usage.money import usd_text
from apps.usage.selectors import daily_spend, spend, total_buckets


def _organisation_today(organisation: Organisation) -> dt.date:
    return timezone.now().astimezone(ZoneInfo(organisation.time_zone)).date()


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    organisation = Organisation.objects.get(pk=viewer.organisation_id)
    today = _organisation_today(organisation)
    start_30, start_90 = today - dt.timedelta(days=29), today - dt.timedelta(days=89)
    teams = spend(viewer, group_by="team", start=start_30, end=today)
    total = sum(group.cost_nanos for group in teams)
    unattributed = sum(group.cost_nanos for group in teams if group.key is None)
    context = {
        "organisation": organisation,
        "viewer": viewer,
        # Members see their own usage only: their team's page is not theirs to open.
        "can_open_teams": viewer.role != Role.MEMBER,
        "start_30": start_30,
        "start_90": start_90,
        "today": today,
        "total_nanos": total,
        "unattributed_nanos": unattributed,
        "total_usd": usd_text(total),
        "unattributed_usd": usd_text(unattributed),
        "unpriced_rows": sum(group.unpriced_rows for group in teams),
        "buckets": total_buckets(teams),  # where the total comes from: no extra query
        "teams": teams,
        "trend_chart": figures.to_html(
            figures.spend_over_time(
                daily_spend(viewer, series="provider", start=start_90, end=today),
                title="Spend per day by provider, last 90 days",
            ),
            element_id="chart-trend-provider",
        ),
        "teams_chart": figures.to_html(
            figures.spend_by_group(teams, title="Spend by team, last 30 days"), element_id="chart-teams"
        ),
    }
    return render(request, "dashboards/overview.html", context)
