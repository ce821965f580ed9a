"""What each dashboard page shows: its cards, and its panels (a chart and the table behind it).

A page object holds the viewer, the filters and the page's subject (a team, person or task); each panel is
built on demand from selector output, so the page builds them all and a CSV download builds only its own.
Selector results shared by panels are computed once per request (cached properties).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property

import plotly.graph_objects as go
from django.http import Http404
from django.urls import reverse

from apps.accounts.models import Role
from apps.accounts.scoping import Viewer
from apps.catalog.models import Tier
from apps.dashboards import figures, selectors
from apps.dashboards.filters import NONE, Filters
from apps.dashboards.selectors import Row, Totals, total_of
from apps.dashboards.tables import Column, Kind, Table, TableRow
from apps.org.models import Organisation, Person, Task, Team

# A person above the upper fence of the team's box (Q3 + 1.5 x IQR) and at least this many times its
# median is a heavy user: it names the few who dominate a team's bill, not the usual spread.
HEAVY_MEDIAN_MULTIPLE = 5


@dataclass(frozen=True, slots=True)
class Panel:
    name: str
    table: Table
    chart_html: str | None
    chart_id: str
    csv_url: str


@dataclass(frozen=True, slots=True)
class Card:
    title: str
    value: object
    kind: Kind
    testid: str
    note: str = ""


# --- links ---------------------------------------------------------------------------------------------------


def dimension_value(dimension: str, row: Row) -> str:
    """How a row narrows the drill-down's query string (the parameter is named after its dimension)."""
    if row.object_id is None:
        return NONE
    if dimension == "person":
        return str(row.object_id)
    return row.key or NONE


class Page:
    """The shared machinery: links that keep the filters, drill-downs, CSV links, panels."""

    name = ""  # URL name of the page
    file_stem = ""
    panel_names: tuple[str, ...] = ()

    def __init__(self, viewer: Viewer, filters: Filters, organisation: Organisation) -> None:
        self.viewer = viewer
        self.filters = filters
        self.organisation = organisation

    # Subclasses with a subject (a team, a person, a task) add its URL arguments here.
    def url_args(self) -> tuple:
        return ()

    def page_filters(self) -> dict[str, str | None]:
        """Query values the page's own URL fixes (so links to it leave them out)."""
        return {}

    def csv_url(self, panel: str) -> str:
        return reverse(f"dashboards:{self.name}-csv", args=(*self.url_args(), panel)) + "?" + self.query()

    def query(self, **overrides: str | None) -> str:
        return self.filters.query(**{**self.page_filters(), **overrides})

    def drill(self, **narrow: str | None) -> str:
        """The fact rows behind something on this page: the page's filters narrowed further."""
        return reverse("dashboards:facts") + "?" + self.filters.query(**narrow)

    def drill_row(self, dimension: str | None) -> Callable[[Row], str]:
        def link(row: Row) -> str:
            if row.extra.get("other"):
                return ""  # several series summed: their rows are the day's, less the named series'
            # A filter naming what the viewer may not open answers 404, so such rows get no link: someone
            # whose usage counted in a manager's teams but who belongs elsewhere now; a member's team.
            if dimension == "person" and row.object_id is not None and self.person_link(row) is None:
                return ""
            if dimension == "team" and row.object_id is not None and self.team_link(row) is None:
                return ""
            narrow: dict[str, str | None] = {}
            if dimension:
                narrow[dimension] = dimension_value(dimension, row)
            if row.day is not None:
                narrow.update(start=row.day.isoformat(), end=row.day.isoformat())
            return self.drill(**narrow)

        return link

    def team_link(self, row: Row) -> str | None:
        if (
            row.object_id is None
            or self.viewer.role == Role.MEMBER
            or not self.viewer.can_see_team(row.object_id)
        ):
            return None
        return reverse("dashboards:team", args=[row.key]) + "?" + self.filters.query(team=None)

    def person_link(self, row: Row) -> str | None:
        if row.object_id is None or not self.viewer.can_see_person(row.object_id, row.extra.get("team_id")):
            return None
        return reverse("dashboards:person", args=[row.object_id]) + "?" + self.filters.query(person=None)

    def task_link(self, row: Row) -> str | None:
        if row.object_id is None:
            return None
        return reverse("dashboards:task", args=[row.key]) + "?" + self.filters.query(task=None)

    def panel(self, name: str) -> Panel:
        if name not in self.panel_names:
            raise Http404("no such table")
        table, figure = getattr(self, f"panel_{name.replace('-', '_')}")()
        chart_id = f"chart-{name}"
        chart_html = figures.to_html(figure, element_id=chart_id) if figure is not None else None
        return Panel(name, table, chart_html, chart_id, self.csv_url(name))

    def panels(self) -> list[Panel]:
        return [self.panel(name) for name in self.panel_names]

    def cards(self) -> list[Card]:
        return []


def _spend_cards(totals: Totals) -> list[Card]:
    return [
        Card("Spend", totals.cost_nanos, Kind.USD, "total-usd"),
        Card("Requests", totals.requests, Kind.INT, "requests"),
        Card("Cost per request", totals.cost_per_request_nanos, Kind.USD_FINE, "cost-per-request"),
        Card(
            "Cache hit rate",
            totals.cache_hit_rate,
            Kind.RATIO,
            "cache-hit-rate",
            "Share of input tokens read from the provider's prompt cache.",
        ),
        Card(
            "Unpriced rows",
            totals.unpriced_rows,
            Kind.INT,
            "unpriced-rows",
            "Usage no price list knows: counted as unknown, not as zero.",
        ),
    ]


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


# Column sets used on several pages.
SPEND = Column("cost_usd", "Spend", Kind.USD)
SHARE = Column("share_of_spend", "Share", Kind.RATIO)
REQUESTS = Column("requests", "Requests", Kind.INT)
PER_REQUEST = Column("cost_per_request_usd", "Per request", Kind.USD_FINE)
CACHE_HIT = Column("cache_hit_ratio", "Cache hit rate", Kind.RATIO)
UNPRICED = Column("unpriced_rows", "Unpriced rows", Kind.INT)
# The group's identifier as `manage.py spend` prints it (slug, email, task key, provider/model; empty for
# the rows without one): for joining downloads, not for reading.
KEY = Column("key", "Key", on_page=False)


def _group_table(
    name: str,
    title: str,
    first: Column,
    rows: list[Row],
    *,
    link: Callable[[Row], str | None] | None,
    drill: Callable[[Row], str],
    extra: tuple[tuple[Column, Callable[[Row], object]], ...] = (),
    cache: bool = False,
) -> Table:
    """Label, [extra columns], spend, share, requests, cost per request, [cache hit rate], unpriced rows."""
    whole = sum(row.cost_nanos for row in rows)
    columns = (first, KEY, *(column for column, _ in extra), SPEND, SHARE, REQUESTS, PER_REQUEST)
    columns += (CACHE_HIT,) if cache else ()
    columns += (UNPRICED,)

    def values(row: Row | None, totals: Totals, label: str) -> tuple:
        cells = [label, (row.key or "") if row else "", *(getter(row) if row else "" for _, getter in extra)]
        cells += [
            totals.cost_nanos,
            _share(totals.cost_nanos, whole),
            totals.requests,
            totals.cost_per_request_nanos,
        ]
        cells += [totals.cache_hit_rate] if cache else []
        cells.append(totals.unpriced_rows)
        return tuple(cells)

    table_rows = [
        TableRow(values(row, row.totals, row.label), link(row) if link else None, drill(row) or None)
        for row in rows
    ]
    total = values(None, total_of(rows), "Total") if rows else None
    return Table(name, title, columns, table_rows, total)


def _daily_table(
    name: str, title: str, series: Column | None, rows: list[Row], drill: Callable[[Row], str]
) -> Table:
    columns = (Column("day", "Day", Kind.DATE), *((series,) if series else ()), SPEND, REQUESTS)
    table_rows = [
        TableRow(
            (row.day, *((row.label,) if series else ()), row.cost_nanos, row.totals.requests),
            None,
            drill(row) or None,
        )
        for row in rows
    ]
    total = total_of(rows)
    footer = ("Total", *(("",) if series else ()), total.cost_nanos, total.requests) if rows else None
    return Table(name, title, columns, table_rows, footer)


def _period(filters: Filters) -> str:
    return f"{filters.start:%-d %b %Y} – {filters.end:%-d %b %Y}"


# --- Teams ---------------------------------------------------------------------------------------------------


class TeamsPage(Page):
    name = "teams"
    file_stem = "teams"
    panel_names = ("tree", "trend", "people")

    def __init__(self, viewer: Viewer, filters: Filters, organisation: Organisation) -> None:
        if viewer.role == Role.MEMBER:
            raise Http404("no such page")  # members see their own usage, not their team's
        super().__init__(viewer, filters, organisation)

    @cached_property
    def tree(self) -> list[selectors.TeamNode]:
        return selectors.team_tree(self.viewer, self.filters)

    def cards(self) -> list[Card]:
        total = Totals()
        for node in self.tree:
            total = total + node.own
        with_usage = sum(1 for node in self.tree if node.team_id and node.own.cost_nanos)
        return [
            *_spend_cards(total)[:2],
            Card("Teams with usage", with_usage, Kind.INT, "teams-with-usage"),
        ]

    def panel_tree(self) -> tuple[Table, go.Figure]:
        whole = sum(node.own.cost_nanos for node in self.tree)
        columns = (
            Column("team", "Team"),
            KEY,
            Column("parent", "Part of"),
            Column("own_cost_usd", "Own spend", Kind.USD),
            Column("cost_with_subteams_usd", "With sub-teams", Kind.USD),
            Column("share_of_spend", "Share (own)", Kind.RATIO),
            REQUESTS,
            PER_REQUEST,
            CACHE_HIT,
        )
        names = {node.team_id: node.name for node in self.tree}
        rows = []
        for node in self.tree:
            row = Row(node.team_id, node.slug, node.name, node.own)
            rows.append(
                TableRow(
                    (
                        node.name,
                        node.slug or "",
                        names.get(node.parent_id, "") if node.parent_id else "",
                        node.own.cost_nanos,
                        node.subtree_cost_nanos,
                        _share(node.own.cost_nanos, whole),
                        node.own.requests,
                        node.own.cost_per_request_nanos,
                        node.own.cache_hit_rate,
                    ),
                    self.team_link(row),
                    # A team's rows in the drill-down include its sub-teams', like its page.
                    self.drill(team=node.slug or NONE),
                    node.depth,
                )
            )
        table = Table("tree", "Teams", columns, rows)
        return table, figures.team_treemap(self.tree, title=f"Spend by team, {_period(self.filters)}")

    def panel_trend(self) -> tuple[Table, go.Figure]:
        rows = selectors.daily_top(self.viewer, self.filters, by="team")
        drill = self.drill_row("team")
        table = _daily_table("trend", "Spend per day by team", Column("team", "Team"), rows, drill)
        return table, figures.daily_stacked(rows, title="Spend per day by team", drill=drill)

    def panel_people(self) -> tuple[Table, go.Figure]:
        rows = selectors.top_people(self.viewer, self.filters, limit=20)
        drill = self.drill_row("person")
        table = _group_table(
            "people",
            "Top 20 people",
            Column("person", "Person"),
            rows,
            link=self.person_link,
            drill=drill,
            extra=((Column("team", "Team"), lambda row: row.extra.get("team", "")),),
        )
        named = [row for row in rows if row.object_id is not None]
        return table, figures.bars(named, title="Top 20 people by spend", drill=drill)


# --- one team ------------------------------------------------------------------------------------------------


def heavy_users(rows: list[Row]) -> set[int | None]:
    """People far above their team: above the box's upper fence and at least a few times the median."""
    values = sorted(row.cost_nanos for row in rows if row.object_id is not None)
    if len(values) < 4:
        return set()
    q1, _, q3 = statistics.quantiles(values, n=4)
    median = statistics.median(values)
    fence = q3 + 1.5 * (q3 - q1)
    return {
        row.object_id
        for row in rows
        if row.object_id is not None
        and row.cost_nanos > fence
        and row.cost_nanos >= HEAVY_MEDIAN_MULTIPLE * median
    }


class TeamPage(Page):
    name = "team"
    file_stem = "team"
    panel_names = ("trend", "people", "models", "tasks", "sub-teams")

    def __init__(
        self, viewer: Viewer, filters: Filters, organisation: Organisation, team: Team, subtree
    ) -> None:
        super().__init__(viewer, replace(filters, team=team, team_ids=subtree, no_team=False), organisation)
        self.team = team
        self.file_stem = f"team-{team.slug}"

    def url_args(self) -> tuple:
        return (self.team.slug,)

    def page_filters(self) -> dict[str, str | None]:
        return {"team": None}

    @cached_property
    def people(self) -> list[Row]:
        return selectors.top_people(self.viewer, self.filters, limit=None)

    @cached_property
    def heavy(self) -> set[int | None]:
        return heavy_users(self.people)

    @cached_property
    def models(self) -> list[Row]:
        return selectors.grouped(self.viewer, self.filters, by="model", tokens=True)

    def cards(self) -> list[Card]:
        total = total_of(self.models)
        people = sum(1 for row in self.people if row.object_id is not None)
        return [
            *_spend_cards(total),
            Card("People with usage", people, Kind.INT, "people-with-usage"),
            Card(
                "Heavy users", len(self.heavy), Kind.INT, "heavy-users", "Far above the team's typical spend."
            ),
        ]

    def panel_trend(self) -> tuple[Table, go.Figure]:
        rows = selectors.daily_top(self.viewer, self.filters, by="model")
        drill = self.drill_row("model")
        table = _daily_table("trend", "Spend per day by model", Column("model", "Model"), rows, drill)
        return table, figures.daily_stacked(
            rows, title=f"{self.team.name}: spend per day by model", drill=drill
        )

    def panel_people(self) -> tuple[Table, go.Figure]:
        named = [row.cost_nanos for row in self.people if row.object_id is not None]
        median = statistics.median(named) if named else 0
        drill = self.drill_row("person")
        table = _group_table(
            "people",
            "Spend per person",
            Column("person", "Person"),
            self.people,
            link=self.person_link,
            drill=drill,
            extra=(
                (
                    Column("heavy_user", "Heavy user"),
                    lambda row: "yes" if row.object_id in self.heavy else "",
                ),
                (
                    Column("times_median", "× median"),
                    lambda row: f"{row.cost_nanos / median:.1f}" if median > 0 and row.object_id else "",
                ),
            ),
        )
        figure = figures.spend_distribution(
            [row for row in self.people if row.object_id is not None],
            title=f"{self.team.name}: spend per person",
            heavy=self.heavy,
            drill=drill,
        )
        return table, figure

    def panel_models(self) -> tuple[Table, go.Figure]:
        drill = self.drill_row("model")
        table = _group_table(
            "models",
            "Models",
            Column("model", "Model"),
            self.models,
            link=None,
            drill=drill,
            extra=((Column("provider", "Provider"), lambda row: row.extra.get("provider_name", "")),),
            cache=True,
        )
        return table, figures.bars(self.models, title="Spend by model", drill=drill)

    def panel_tasks(self) -> tuple[Table, go.Figure]:
        rows = selectors.grouped(self.viewer, self.filters, by="task")
        drill = self.drill_row("task")
        table = _group_table("tasks", "Tasks", Column("task", "Task"), rows, link=self.task_link, drill=drill)
        return table, figures.bars(rows, title="Spend by task", drill=drill)

    def panel_sub_teams(self) -> tuple[Table, go.Figure | None]:
        nodes = selectors.team_tree(self.viewer, self.filters)
        columns = (
            Column("team", "Team"),
            Column("own_cost_usd", "Own spend", Kind.USD),
            Column("cost_with_subteams_usd", "With sub-teams", Kind.USD),
            REQUESTS,
        )
        rows = [
            TableRow(
                (node.name, node.own.cost_nanos, node.subtree_cost_nanos, node.own.requests),
                self.team_link(Row(node.team_id, node.slug, node.name, node.own)),
                self.drill(team=node.slug),
                node.depth,
            )
            for node in nodes
        ]
        table = Table("sub-teams", "This team and the teams below it", columns, rows)
        return table, None

    @cached_property
    def budgets(self) -> list | None:
        """The team's budget limits with their status, or None where the budgets app is absent."""
        try:
            from apps.budgets.selectors import limit_rows
        except ImportError:
            return None
        return [row for row in limit_rows(self.viewer) if row.limit.team_id == self.team.pk]


# --- one person ----------------------------------------------------------------------------------------------


class PersonPage(Page):
    name = "person"
    file_stem = "person"
    panel_names = ("trend", "models", "tasks")

    def __init__(self, viewer: Viewer, filters: Filters, organisation: Organisation, person: Person) -> None:
        super().__init__(viewer, replace(filters, person=person, no_person=False), organisation)
        self.person = person
        self.file_stem = f"person-{person.pk}"

    def url_args(self) -> tuple:
        return (self.person.pk,)

    def page_filters(self) -> dict[str, str | None]:
        return {"person": None}

    @cached_property
    def days(self) -> list[Row]:
        return selectors.daily(self.viewer, self.filters, tokens=True)

    def cards(self) -> list[Card]:
        return _spend_cards(total_of(self.days))

    def panel_trend(self) -> tuple[Table, go.Figure]:
        drill = self.drill_row(None)
        table = _daily_table("trend", "Spend per day", None, self.days, drill)
        return table, figures.daily_total(self.days, title=f"{self.person.name}: spend per day", drill=drill)

    def panel_models(self) -> tuple[Table, go.Figure]:
        rows = selectors.grouped(self.viewer, self.filters, by="model", tokens=True)
        drill = self.drill_row("model")
        table = _group_table(
            "models",
            "Models",
            Column("model", "Model"),
            rows,
            link=None,
            drill=drill,
            extra=((Column("provider", "Provider"), lambda row: row.extra.get("provider_name", "")),),
            cache=True,
        )
        return table, figures.bars(rows, title="Spend by model", drill=drill)

    def panel_tasks(self) -> tuple[Table, go.Figure]:
        rows = selectors.grouped(self.viewer, self.filters, by="task")
        drill = self.drill_row("task")
        table = _group_table("tasks", "Tasks", Column("task", "Task"), rows, link=self.task_link, drill=drill)
        return table, figures.bars(rows, title="Spend by task", drill=drill)


# --- models --------------------------------------------------------------------------------------------------


class ModelsPage(Page):
    name = "models"
    file_stem = "models"
    panel_names = ("models", "requests", "tiers", "trend")

    @cached_property
    def models(self) -> list[selectors.ModelRow]:
        return selectors.models_breakdown(self.viewer, self.filters)

    @cached_property
    def tiers(self) -> list[selectors.TierRow]:
        return selectors.tiers_breakdown(self.models)

    def cards(self) -> list[Card]:
        total = total_of(model.row for model in self.models)
        frontier = sum(tier.totals.cost_nanos for tier in self.tiers if tier.tier == Tier.FRONTIER)
        saved = [model.cache_saved_nanos for model in self.models]
        unknown = sum(1 for value in saved if value is None)
        return [
            *_spend_cards(total)[:4],
            Card(
                "Frontier share",
                _share(frontier, total.cost_nanos),
                Kind.RATIO,
                "frontier-share",
                "Spend on frontier-tier models.",
            ),
            Card(
                "Caching saved",
                sum(value for value in saved if value is not None),
                Kind.USD,
                "cache-saved",
                "Cache reads at the uncached input price minus what they cost, at list prices"
                + (
                    f"; {unknown} model{'s' if unknown != 1 else ''} without a price not included."
                    if unknown
                    else "."
                ),
            ),
        ]

    def panel_models(self) -> tuple[Table, go.Figure]:
        drill = self.drill_row("model")
        rows = [model.row for model in self.models]
        by_id = {model.row.object_id: model for model in self.models}
        table = _group_table(
            "models",
            "Spend by model",
            Column("model", "Model"),
            rows,
            link=None,
            drill=drill,
            extra=(
                (Column("provider", "Provider"), lambda row: by_id[row.object_id].provider_name),
                (Column("tier", "Tier"), lambda row: by_id[row.object_id].tier),
                (
                    Column("cache_read_tokens", "Cache reads", Kind.TOKENS),
                    lambda row: row.totals.cache_read_tokens,
                ),
                (
                    Column("cache_saved_usd", "Caching saved", Kind.USD),
                    lambda row: by_id[row.object_id].cache_saved_nanos,
                ),
            ),
            cache=True,
        )
        figure = figures.bars(
            rows,
            title="Spend by model",
            drill=drill,
            colour_by=lambda row: Tier(by_id[row.object_id].tier).label,
        )
        return table, figure

    def panel_requests(self) -> tuple[Table, go.Figure]:
        drill = self.drill_row("model")
        rows = sorted((model.row for model in self.models), key=lambda row: -(row.totals.requests or 0))
        whole = sum(row.totals.requests or 0 for row in rows)
        columns = (
            Column("model", "Model"),
            REQUESTS,
            Column("share_of_requests", "Share", Kind.RATIO),
            PER_REQUEST,
        )
        table_rows = [
            TableRow(
                (
                    row.label,
                    row.totals.requests,
                    _share(row.totals.requests or 0, whole),
                    row.totals.cost_per_request_nanos,
                ),
                None,
                drill(row) or None,
            )
            for row in rows
        ]
        table = Table("requests", "Requests by model", columns, table_rows)
        return table, figures.bars(rows, title="Requests by model", measure="requests", drill=drill)

    def panel_tiers(self) -> tuple[Table, go.Figure]:
        whole = sum(tier.totals.cost_nanos for tier in self.tiers)
        columns = (
            Column("tier", "Tier"),
            Column("models", "Models", Kind.INT),
            SPEND,
            SHARE,
            REQUESTS,
            PER_REQUEST,
            CACHE_HIT,
        )
        rows = [
            TableRow(
                (
                    Tier(tier.tier).label,
                    tier.models,
                    tier.totals.cost_nanos,
                    _share(tier.totals.cost_nanos, whole),
                    tier.totals.requests,
                    tier.totals.cost_per_request_nanos,
                    tier.totals.cache_hit_rate,
                )
            )
            for tier in self.tiers
        ]
        table = Table(
            "tiers",
            "Spend by model tier",
            columns,
            rows,
            note="Tiers as of the last day of the period: the organisation's overrides, the dated tier rules, "
            "else a band of the list price.",
        )
        tier_rows = [Row(None, tier.tier, Tier(tier.tier).label, tier.totals) for tier in self.tiers]
        return table, figures.bars(tier_rows, title="Spend by model tier")

    def panel_trend(self) -> tuple[Table, go.Figure]:
        daily_models = selectors.daily(self.viewer, self.filters, by="model")
        rows = selectors.daily_by_tier(daily_models, self.models)
        table = _daily_table(
            "trend",
            "Spend per day by tier",
            Column("tier", "Tier"),
            rows,
            lambda row: self.drill(start=row.day.isoformat(), end=row.day.isoformat()),
        )
        return table, figures.daily_stacked(rows, title="Spend per day by model tier")


# --- tasks ---------------------------------------------------------------------------------------------------


class TasksPage(Page):
    name = "tasks"
    file_stem = "tasks"
    panel_names = ("tasks", "trend")

    @cached_property
    def tasks_and_owners(self) -> tuple[list[Row], dict[int | None, Row]]:
        return selectors.tasks_with_owners(self.viewer, self.filters)

    @property
    def tasks(self) -> list[Row]:
        return self.tasks_and_owners[0]

    def cards(self) -> list[Card]:
        total = total_of(self.tasks)
        untasked = sum(row.cost_nanos for row in self.tasks if row.object_id is None)
        return [
            *_spend_cards(total)[:3],
            Card(
                "Without a task",
                _share(untasked, total.cost_nanos),
                Kind.RATIO,
                "untasked-share",
                "Spend no rule or tag ties to a use case.",
            ),
        ]

    def panel_tasks(self) -> tuple[Table, go.Figure]:
        owners = self.tasks_and_owners[1]
        drill = self.drill_row("task")
        table = _group_table(
            "tasks",
            "Spend by task",
            Column("task", "Task"),
            self.tasks,
            link=self.task_link,
            drill=drill,
            extra=(
                (
                    Column("top_team", "Top team"),
                    lambda row: owners[row.object_id].label if row.object_id in owners else "",
                ),
            ),
        )
        return table, figures.bars(self.tasks, title="Spend by task", drill=drill)

    def panel_trend(self) -> tuple[Table, go.Figure]:
        rows = selectors.daily_top(self.viewer, self.filters, by="task")
        drill = self.drill_row("task")
        table = _daily_table("trend", "Spend per day by task", Column("task", "Task"), rows, drill)
        return table, figures.daily_stacked(rows, title="Spend per day by task", drill=drill)


class TaskPage(Page):
    name = "task"
    file_stem = "task"
    panel_names = ("trend", "teams", "people", "models")

    def __init__(self, viewer: Viewer, filters: Filters, organisation: Organisation, task: Task) -> None:
        super().__init__(viewer, replace(filters, task=task, no_task=False), organisation)
        self.task = task
        self.file_stem = f"task-{task.key}"

    def url_args(self) -> tuple:
        return (self.task.key,)

    def page_filters(self) -> dict[str, str | None]:
        return {"task": None}

    @cached_property
    def days(self) -> list[Row]:
        return selectors.daily(self.viewer, self.filters, tokens=True)

    def cards(self) -> list[Card]:
        return _spend_cards(total_of(self.days))[:4]

    def panel_trend(self) -> tuple[Table, go.Figure]:
        drill = self.drill_row(None)
        table = _daily_table("trend", "Spend per day", None, self.days, drill)
        return table, figures.daily_total(self.days, title=f"{self.task.name}: spend per day", drill=drill)

    def panel_teams(self) -> tuple[Table, go.Figure]:
        rows = selectors.grouped(self.viewer, self.filters, by="team")
        drill = self.drill_row("team")
        table = _group_table(
            "teams", "Teams using it", Column("team", "Team"), rows, link=self.team_link, drill=drill
        )
        return table, figures.bars(rows, title="Spend by team", drill=drill)

    def panel_people(self) -> tuple[Table, go.Figure]:
        rows = selectors.top_people(self.viewer, self.filters, limit=20)
        drill = self.drill_row("person")
        table = _group_table(
            "people",
            "Top 20 people",
            Column("person", "Person"),
            rows,
            link=self.person_link,
            drill=drill,
            extra=((Column("team", "Team"), lambda row: row.extra.get("team", "")),),
        )
        named = [row for row in rows if row.object_id is not None]
        return table, figures.bars(named, title="Top 20 people", drill=drill)

    def panel_models(self) -> tuple[Table, go.Figure]:
        rows = selectors.grouped(self.viewer, self.filters, by="model", tokens=True)
        drill = self.drill_row("model")
        table = _group_table(
            "models", "Models", Column("model", "Model"), rows, link=None, drill=drill, cache=True
        )
        return table, figures.bars(rows, title="Spend by model", drill=drill)
