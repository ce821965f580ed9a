"""Metrics pages. Thin: resolve the viewer, call selectors and services, hand their output to templates."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from apps.accounts.scoping import Viewer, viewer_for_user
from apps.metrics import figures, selectors, services
from apps.metrics.forms import AdoptionForm, MetricForm, ValuesUploadForm
from apps.metrics.method import LABEL
from apps.metrics.models import MetricScope
from apps.metrics.periods import grain_noun
from apps.org.models import Organisation

DEFAULT_DAYS = 90
MAX_DAYS = 731


def _window(request: HttpRequest, organisation: Organisation) -> tuple[dt.date, dt.date]:
    """start..end from ?start=&end= (organisation-local days, inclusive); the last 90 days by default."""
    today = timezone.now().astimezone(ZoneInfo(organisation.time_zone)).date()
    try:
        end = dt.date.fromisoformat(request.GET["end"]) if request.GET.get("end") else today
        start = (
            dt.date.fromisoformat(request.GET["start"])
            if request.GET.get("start")
            else end - dt.timedelta(days=DEFAULT_DAYS - 1)
        )
    except ValueError:
        raise Http404("bad dates") from None
    if start > end or (end - start).days >= MAX_DAYS:
        raise Http404("bad dates")
    return start, end


def _context(viewer: Viewer, organisation: Organisation, start: dt.date, end: dt.date) -> dict:
    return {
        "viewer": viewer,
        "organisation": organisation,
        "start": start,
        "end": end,
        "label": LABEL,
        "may_define": viewer.sees_organisation,
        "min_people": selectors.method_settings().min_people,
        "min_periods": selectors.method_settings().min_periods,
    }


@login_required
def home(request: HttpRequest) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    metrics = list(selectors.metrics_for(viewer))
    organisation = Organisation.objects.get(pk=viewer.organisation_id)
    start, end = _window(request, organisation)
    sections = []
    for metric in metrics:
        summaries = [
            selectors.roi_summary(
                metric, subject, selectors.outcome_points(viewer, metric, subject, start=start, end=end)
            )
            for subject in selectors.subjects_for(viewer, metric)
        ]
        sections.append({"metric": metric, "summaries": summaries, "period": grain_noun(metric.grain)})
    context = _context(viewer, organisation, start, end) | {"sections": sections}
    return render(request, "metrics/home.html", context)


@login_required
def detail(request: HttpRequest, key: str) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    metric = selectors.metric_get(viewer, key=key)
    organisation = Organisation.objects.get(pk=viewer.organisation_id)
    start, end = _window(request, organisation)
    subjects = selectors.subjects_for(viewer, metric)
    chosen = selectors.subject_pick(subjects, request.GET.get("subject"))
    rows, chosen_points = [], []
    for subject in subjects:
        points = selectors.outcome_points(viewer, metric, subject, start=start, end=end)
        row = {"summary": selectors.roi_summary(metric, subject, points), "payroll": None}
        if subject.kind == MetricScope.TEAM and viewer.sees_organisation:
            team = selectors.team_for_metrics(viewer, slug=subject.key)
            row["payroll"] = selectors.payroll_share(viewer, team, start=start, end=end)
        rows.append(row)
        if subject == chosen:
            chosen_points = points
    context = _context(viewer, organisation, start, end) | {
        "metric": metric,
        "rows": rows,
        "chosen": chosen,
        "period": grain_noun(metric.grain),
        "show_payroll": viewer.sees_organisation and metric.scope == MetricScope.TEAM,
    }
    if chosen is not None:
        name = f"{metric.name}, {chosen.name}"
        context["charts"] = [
            figures.to_html(
                figures.spend_and_metric_over_time(
                    chosen_points,
                    title=f"{name}: AI spend and outcome per {grain_noun(metric.grain)}",
                    metric_name=metric.name,
                    unit=metric.unit,
                ),
                element_id="chart-spend-metric",
            ),
            figures.to_html(
                figures.spend_vs_metric_scatter(
                    chosen_points,
                    title=f"{name}: outcome against AI spend, one dot per {grain_noun(metric.grain)}",
                    metric_name=metric.name,
                    unit=metric.unit,
                ),
                element_id="chart-scatter",
            ),
        ]
        if metric.has_cost_per_outcome:
            context["charts"].insert(
                0,
                figures.to_html(
                    figures.cost_per_outcome_over_time(
                        chosen_points, title=f"{name}: AI spend per {metric.unit}", unit=metric.unit
                    ),
                    element_id="chart-cost-per-outcome",
                ),
            )
        if chosen.kind == MetricScope.TEAM:
            context.update(_team_sections(viewer, metric, chosen, start, end))
    return render(request, "metrics/detail.html", context)


def _team_sections(viewer: Viewer, metric, subject: selectors.Subject, start: dt.date, end: dt.date) -> dict:
    team = selectors.team_for_metrics(viewer, slug=subject.key)
    comparison = selectors.comparison(viewer, metric, team)
    weeks = selectors.adoption_weeks(viewer, team, start=start, end=end)
    heavy = selectors.heavy_spenders(viewer, team, start=start, end=end)
    sections: dict = {"comparison": comparison, "weeks": weeks, "heavy": heavy, "team": team}
    if comparison.estimate is not None and comparison.adopted_on is not None:
        sections["comparison_chart"] = figures.to_html(
            figures.comparison_over_time(
                comparison.estimate,
                title=f"{metric.name}, {team.name} and matched teams",
                team=team.name,
                unit=comparison.unit_text,
                adopted_on=comparison.adopted_on,
            ),
            element_id="chart-comparison",
        )
    if weeks:
        sections["adoption_chart"] = figures.to_html(
            figures.adoption_over_time(
                weeks, title=f"{team.name}: weekly active people and spend per active person"
            ),
            element_id="chart-adoption",
        )
    sections["token_maxing"] = bool(heavy.people) and comparison.did_not_improve is True
    return sections


@login_required
def upload(request: HttpRequest) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    metrics = selectors.metrics_for(viewer)  # 404 for anyone who may not see metrics
    services.require_writer(viewer)
    form = ValuesUploadForm(viewer, request.POST or None, request.FILES or None, metrics=metrics)
    result, file_error, status = None, None, 200
    if request.method == "POST":
        if form.is_valid():
            upload_file = form.cleaned_data["file"]
            file_name = upload_file.name.rsplit("/", 1)[-1][:200]
            try:
                rows = services.read_values_csv(upload_file.read(services.MAX_UPLOAD_BYTES + 1), file_name)
                result = services.metric_values_import(
                    viewer=viewer,
                    rows=rows,
                    source=f"upload: {file_name} by {request.user.email}"[:200],
                    metric=form.cleaned_data.get("metric"),
                )
            except services.ValuesFileError as error:
                file_error, status = str(error), 400
        else:
            status = 400
    context = {"form": form, "result": result, "file_error": file_error, "viewer": viewer}
    return render(request, "metrics/upload.html", context, status=status)


@login_required
def metric_new(request: HttpRequest) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    if not viewer.sees_organisation:
        raise Http404("no such page")
    form = MetricForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                metric = services.metric_create(viewer=viewer, actor=request.user, spec=form.spec())
                return redirect("metrics:detail", key=metric.key)
            except services.MetricInvalid as error:
                form.add_error(None, str(error))
    return render(request, "metrics/form.html", {"form": form, "metric": None}, status=status)


@login_required
def metric_edit(request: HttpRequest, key: str) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    metric = selectors.metric_get(viewer, key=key)
    if not viewer.sees_organisation:
        raise Http404("no such page")
    form = MetricForm(request.POST or None, metric=metric)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                services.metric_update(viewer=viewer, actor=request.user, metric=metric, spec=form.spec())
                return redirect("metrics:detail", key=metric.key)
            except services.MetricInvalid as error:
                form.add_error(None, str(error))
    return render(request, "metrics/form.html", {"form": form, "metric": metric}, status=status)


@login_required
def adoption(request: HttpRequest) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    teams = selectors.adoptions_for(viewer)  # 404 unless CIO/FinOps
    form = AdoptionForm(viewer, request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            services.adoption_set(
                viewer=viewer,
                actor=request.user,
                team=data["team"],
                adopted_on=data["adopted_on"],
                note=data["note"],
            )
            return redirect("metrics:adoption")
    return render(
        request, "metrics/adoption.html", {"form": form, "teams": teams, "label": LABEL}, status=status
    )
