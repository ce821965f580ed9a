"""The dashboard pages besides the overview, their CSV downloads and the drill-down. Thin: resolve the viewer
(404 for anyone without a membership), the filters (400 for unreadable ones, 404 for what the viewer may not
see), then hand the page object to a template or a CSV writer."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from apps.accounts.scoping import Viewer, subtree_team_ids, viewer_for_user
from apps.dashboards import pages, selectors
from apps.dashboards.filters import FilterError, Filters, filters_from_request, organisation_today
from apps.dashboards.tables import Column, Kind, Table, TableRow, csv_response
from apps.org.models import Organisation, Task
from apps.org.selectors import person_get, team_get


def _start(request: HttpRequest) -> tuple[Viewer, Organisation, Filters]:
    viewer = viewer_for_user(request.user)
    organisation = Organisation.objects.get(pk=viewer.organisation_id)
    return viewer, organisation, filters_from_request(request, viewer, organisation)


def _bad_filters(request: HttpRequest, error: FilterError, *, csv: bool = False) -> HttpResponse:
    if csv:
        return HttpResponse(f"Bad filters: {error}", status=400, content_type="text/plain; charset=utf-8")
    return render(request, "dashboards/bad_filters.html", {"error": str(error)}, status=400)


def _render(request: HttpRequest, page: pages.Page, template: str, **context) -> HttpResponse:
    choices = selectors.filter_choices(page.viewer, page.filters)
    context.update(
        page=page,
        organisation=page.organisation,
        viewer=page.viewer,
        filters=page.filters,
        choices=choices,
        cards=page.cards(),
        panels=page.panels(),
        drill_all=page.drill(),
    )
    return render(request, template, context)


def _page_view(build):
    """A page view and its CSV view from one builder: (request, viewer, organisation, filters, **kw) -> Page."""

    @login_required
    def page_view(request: HttpRequest, **kwargs) -> HttpResponse:
        try:
            viewer, organisation, filters = _start(request)
        except FilterError as error:
            return _bad_filters(request, error)
        page, template, extra = build(viewer, organisation, filters, **kwargs)
        return _render(request, page, template, **extra)

    @login_required
    def csv_view(request: HttpRequest, table: str, **kwargs) -> HttpResponse:
        try:
            viewer, organisation, filters = _start(request)
        except FilterError as error:
            return _bad_filters(request, error, csv=True)
        page, _, _ = build(viewer, organisation, filters, **kwargs)
        panel = page.panel(table)  # 404 for a table the page does not have
        return csv_response(
            panel.table, file_stem=f"{page.file_stem}-{filters.start:%Y%m%d}-{filters.end:%Y%m%d}"
        )

    return page_view, csv_view


def _teams(viewer, organisation, filters):
    return pages.TeamsPage(viewer, filters, organisation), "dashboards/teams.html", {}


def _team(viewer, organisation, filters, slug: str):
    team = team_get(viewer, slug=slug)  # 404 out of scope; a member sees no team
    page = pages.TeamPage(
        viewer, filters, organisation, team, subtree_team_ids(viewer.organisation_id, {team.pk})
    )
    return (
        page,
        "dashboards/team.html",
        {"team": team, "budgets": page.budgets, "team_roi": _team_roi(viewer, team, filters)},
    )


def _team_roi(viewer: Viewer, team, filters: Filters):
    """The ROI panel's data (business outcomes against AI spend), for those who may see metrics."""
    from apps.metrics.models import Metric
    from apps.metrics.selectors import team_roi

    if not Metric.objects.filter(organisation_id=viewer.organisation_id).exists():
        return None  # one query for organisations that track no business metric
    try:
        return team_roi(viewer, team, filters.start, filters.end)
    except Http404:
        return None


def _person(viewer, organisation, filters, person_id: int):
    person = person_get(viewer, person_id=person_id)
    return (
        pages.PersonPage(viewer, filters, organisation, person),
        "dashboards/person.html",
        {"person": person},
    )


def _models(viewer, organisation, filters):
    return pages.ModelsPage(viewer, filters, organisation), "dashboards/models.html", {}


def _tasks(viewer, organisation, filters):
    return pages.TasksPage(viewer, filters, organisation), "dashboards/tasks.html", {}


def _task(viewer, organisation, filters, key: str):
    task = Task.objects.filter(organisation_id=viewer.organisation_id, key=key).first()
    if task is None:
        raise Http404("no such task")
    return (
        pages.TaskPage(viewer, filters, organisation, task),
        "dashboards/task.html",
        {"task": task, "task_roi": _task_roi(viewer, task, filters)},
    )


def _task_roi(viewer: Viewer, task: Task, filters: Filters):
    """The task page's ROI panel, for CIO/FinOps in organisations that track business metrics."""
    from apps.metrics.models import Metric
    from apps.metrics.selectors import task_roi

    if not viewer.sees_organisation:
        return None  # task metrics are organisation-wide figures
    if not Metric.objects.filter(organisation_id=viewer.organisation_id).exists():
        return None
    roi = task_roi(viewer, task, filters.start, filters.end)
    return roi if roi.rows else None


teams, teams_csv = _page_view(_teams)
team_detail, team_csv = _page_view(_team)
person_detail, person_csv = _page_view(_person)
models, models_csv = _page_view(_models)
tasks, tasks_csv = _page_view(_tasks)
task_detail, task_csv = _page_view(_task)


# --- sources -------------------------------------------------------------------------------------------------

SOURCE_TABLES = ("sources", "runs")


def _sources_tables(viewer: Viewer) -> tuple[dict[str, Table], int]:
    summaries, runs, rejected = selectors.sources_overview(viewer)
    sources = Table(
        "sources",
        "Data sources",
        (
            Column("source", "Source"),
            Column("format", "Format"),
            Column("runs", "Runs", Kind.INT),
            Column("rows", "Rows read", Kind.INT),
            Column("accepted", "Accepted", Kind.INT),
            Column("rejected", "Rejected", Kind.INT),
            Column("last_run", "Last run"),
            Column("last_status", "Last status"),
        ),
        [
            TableRow(
                (
                    summary.source.name,
                    summary.source.format,
                    summary.runs,
                    summary.rows,
                    summary.accepted,
                    summary.rejected,
                    f"{summary.last_run.created_at:%Y-%m-%d %H:%M} UTC" if summary.last_run else "never",
                    summary.last_run.get_status_display() if summary.last_run else "",
                ),
                reverse("ingestion:run", args=[summary.last_run.pk]) if summary.last_run else None,
            )
            for summary in summaries
        ],
        empty="No data sources yet: upload a file or set up a scheduled pull.",
    )
    recent = Table(
        "runs",
        "Recent runs",
        (
            Column("run", "Run"),
            Column("source", "Source"),
            Column("status", "Status"),
            Column("created_utc", "Started (UTC)"),
            Column("rows", "Rows", Kind.INT),
            Column("accepted", "Accepted", Kind.INT),
            Column("duplicates", "Duplicates", Kind.INT),
            Column("replaced", "Replaced", Kind.INT),
            Column("rejected", "Rejected", Kind.INT),
        ),
        [
            TableRow(
                (
                    f"#{run.pk}",
                    run.source.name,
                    run.get_status_display(),
                    f"{run.created_at:%Y-%m-%d %H:%M}",
                    run.rows,
                    run.accepted,
                    run.duplicates,
                    run.replaced,
                    run.rejected,
                ),
                reverse("ingestion:run", args=[run.pk]),
            )
            for run in runs
        ],
        empty="No ingestion runs yet.",
    )
    return {"sources": sources, "runs": recent}, rejected


@login_required
def sources(request: HttpRequest) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    tables, rejected = _sources_tables(viewer)  # 404 for anyone without an organisation-wide role
    organisation = Organisation.objects.get(pk=viewer.organisation_id)
    context = {
        "organisation": organisation,
        "viewer": viewer,
        "tables": [(table, reverse("dashboards:sources-csv", args=[name])) for name, table in tables.items()],
        "rejected_rows": rejected,
        "today": organisation_today(organisation),
    }
    return render(request, "dashboards/sources.html", context)


@login_required
def sources_csv(request: HttpRequest, table: str) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    tables, _ = _sources_tables(viewer)
    if table not in tables:
        raise Http404("no such table")
    organisation = Organisation.objects.get(pk=viewer.organisation_id)
    return csv_response(tables[table], file_stem=f"sources-{organisation_today(organisation):%Y%m%d}")


# --- drill-down ----------------------------------------------------------------------------------------------


@login_required
def facts(request: HttpRequest) -> HttpResponse:
    try:
        viewer, organisation, filters = _start(request)
    except FilterError as error:
        return _bad_filters(request, error)
    page_number = request.GET.get("page", "1")
    if not page_number.isdigit() or int(page_number) < 1:
        return _bad_filters(request, FilterError("page: a page number starts at 1"))
    page = selectors.fact_page(viewer, filters, page=int(page_number))
    context = {
        "organisation": organisation,
        "viewer": viewer,
        "filters": filters,
        "choices": selectors.filter_choices(viewer, filters),
        "page": page,
        "time_zone": organisation.time_zone,
        "next_query": filters.query(page=str(page.page + 1)) if page.has_next else None,
        "previous_query": filters.query(page=str(page.page - 1)) if page.page > 1 else None,
    }
    return render(request, "dashboards/facts.html", context)
