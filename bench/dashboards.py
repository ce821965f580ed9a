"""Dashboard read benchmark: PERFORMANCE.md DASH-1 (page and chart p95), DASH-2 (flat in volume), DASH-3
(a one-day drill-down's first page) and the narrow rollups' refresh (ING-7), on PostgreSQL.

    make bench BENCH=dashboards                   # DATABASE_URL exported by scripts/with_services.sh
    .venv/bin/python bench/dashboards.py [--low N] [--high N] [--rounds R] [--quick]

The organisation: 250 teams (25 departments of 9 teams), 10,000 people, 40 models of 5 providers, 30 tasks
(each team uses 6 models and 4 tasks), 90 days. The ledger's daily rollup (usage_dailyrollup) is generated, not ingested: per day, --low (then
--high) rows of day x team x person x task x model with per-person activity from a heavy-tailed law,
COPYed in. A daily-rollup row stands for about 1.9 fact rows (PERFORMANCE.md), so the default volumes
(30,000 and 90,000 rows a day) stand for about 5M and 15M events over the 90 days. The narrow rollups
are then built by the product's own refresh (apps.dashboards.services), and timed.

What is timed, in the bench process (Django in-process, the product's selectors and page objects, a CIO's
viewer, the 90 days): each of DASH-1's six queries (daily total, by team, by model, daily by model, top 20
people, by task), the six run one after another (the "page data" of DASH-1), every chart of the Teams,
Models, Tasks, a team's, a task's and a person's page (selector + table + figure), and each page whole
through Django's test client (HTTP handling, every query, the template). Rounds are interleaved: each
round runs every measurement once. p95 is the nearest-rank 95th percentile of the rounds. DASH-2's figure
is p95(high) / p95(low). For DASH-3, --fact-days days of fact rows (--facts-per-day each) are COPYed into
usage_usagefact and the first page of one day's drill-down (whole organisation; one team and model) timed.

Report: printed and written to var/bench/dashboards.json. Exit 1 when a correctness check fails (the
narrow tables' totals must equal the daily rollup's); with --strict also when a goal is missed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as ingest_bench  # noqa: E402 - bench/run.py: database set-up, logging, git state

ROOT = ingest_bench.ROOT
VAR = ingest_bench.VAR
log = ingest_bench.log

DAYS = 90
LAST_DAY = dt.date(2026, 11, 20)
DEPARTMENTS, TEAMS_PER_DEPARTMENT = 25, 9  # 25 + 225 = 250 teams
PEOPLE = 10_000
PROVIDERS = ("openai", "anthropic", "google", "aws", "mistral")
MODELS_PER_PROVIDER = 8  # 40 models
TASKS = 30
DEFAULT_LOW, DEFAULT_HIGH = 30_000, 90_000
QUICK_LOW, QUICK_HIGH = 5_000, 15_000
DEFAULT_ROUNDS, QUICK_ROUNDS = 20, 5
FACTS_PER_DAY = 111_000  # 10M events over 90 days
GOALS = {"page_p95_ms": 500.0, "chart_p95_ms": 150.0, "flatness": 1.2, "drill_1day_p95_ms": 100.0}

ROLLUP_COLUMNS = (
    "organisation_id", "day", "team_id", "person_id", "task_id", "provider_id", "model_id",
    "fact_rows", "unpriced_rows", "failed_rows", "requests",
    "input_uncached_tokens", "cache_read_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens",
    "output_tokens", "reasoning_tokens", "cost_nanos", "reported_cost_nanos", "list_cost_nanos",
    "billed_cost_nanos", "estimated_cost_nanos", "unpriced_reported_nanos", "adjustment",
)  # fmt: skip
NARROW_TABLES = (
    "dashboards_dayteammodel",
    "dashboards_dayteamtask",
    "dashboards_dayperson",
    "dashboards_daypersonmodel",
    "dashboards_daypersontask",
    "dashboards_monthperson",
)


# --------------------------------------------------------------------------------------------------
# The organisation (ORM) and its rollup rows (generated, COPYed)
# --------------------------------------------------------------------------------------------------


class World:
    """Ids of the organisation's dimension rows and each person's habits (all fixed by the seed)."""

    def __init__(self, seed: int) -> None:
        from django.db import transaction

        from apps.catalog.models import AIModel, Provider
        from apps.ingestion.models import DataSource
        from apps.org.models import Organisation, Person, Task, Team

        rng = np.random.default_rng(seed)
        with transaction.atomic():
            org = Organisation.objects.create(
                name="Northwind (dashboard bench)", slug="bench", time_zone="UTC"
            )
            departments = Team.objects.bulk_create(
                Team(organisation=org, name=f"Department {d:02}", slug=f"dept-{d:02}")
                for d in range(DEPARTMENTS)
            )
            teams = Team.objects.bulk_create(
                Team(
                    organisation=org, name=f"Team {d:02}-{t}", slug=f"team-{d:02}-{t}", parent=departments[d]
                )
                for d in range(DEPARTMENTS)
                for t in range(TEAMS_PER_DEPARTMENT)
            )
            all_teams = [*departments, *teams]
            person_team = rng.integers(0, len(all_teams), PEOPLE)
            people = Person.objects.bulk_create(
                Person(organisation=org, email=f"p{i}@bench.example", name=f"Person {i}", team=all_teams[t])
                for i, t in enumerate(person_team)
            )
            providers = [
                Provider.objects.get_or_create(slug=slug, defaults={"name": slug})[0] for slug in PROVIDERS
            ]
            models = [
                AIModel.objects.get_or_create(provider=provider, name=f"bench-{provider.slug}-{m}")[0]
                for provider in providers
                for m in range(MODELS_PER_PROVIDER)
            ]
            tasks = Task.objects.bulk_create(
                Task(organisation=org, key=f"task-{k:02}", name=f"Task {k:02}") for k in range(TASKS)
            )
            self.source = DataSource.objects.create(
                organisation=org, name="bench", format="litellm_spend_logs"
            )
        self.organisation = org
        self.team_ids = np.array([team.pk for team in all_teams], dtype=np.int64)
        self.person_ids = np.array([person.pk for person in people], dtype=np.int64)
        self.person_team = self.team_ids[person_team]
        self.model_ids = np.array([model.pk for model in models], dtype=np.int64)
        self.model_provider = np.array([model.provider_id for model in models], dtype=np.int64)
        self.task_ids = np.array([task.pk for task in tasks], dtype=np.int64)
        # Habits: a heavy-tailed activity (a few people make most requests); each team works with six
        # models and four tasks (a support team triages, an engineering team reviews code), and each person
        # with three and two of their team's.
        self.activity = rng.lognormal(0.0, 1.2, PEOPLE)
        self.activity /= self.activity.sum()
        model_weights = rng.zipf(1.6, len(models)).astype(float)
        model_weights /= model_weights.sum()
        team_models = np.array(
            [rng.choice(len(models), 6, replace=False, p=model_weights) for _ in all_teams]
        )
        team_tasks = np.array([rng.choice(TASKS, 4, replace=False) for _ in all_teams])
        self.person_models = np.take_along_axis(
            team_models[person_team], rng.integers(0, 6, (PEOPLE, 3)), axis=1
        )
        self.person_tasks = np.take_along_axis(
            team_tasks[person_team], rng.integers(0, 4, (PEOPLE, 2)), axis=1
        )
        self.first_day = LAST_DAY - dt.timedelta(days=DAYS - 1)


def rollup_day(world: World, day: dt.date, rows: int, rng: np.random.Generator) -> pa.Table:
    """One day's daily-rollup rows: distinct (team, person, task, model) combinations with their sums."""
    who = rng.choice(PEOPLE, rows, p=world.activity)
    person = world.person_ids[who]
    team = world.person_team[who]
    model_index = world.person_models[who, rng.integers(0, 3, rows)]
    task = world.task_ids[world.person_tasks[who, rng.integers(0, 2, rows)]].astype(float)
    task[rng.random(rows) < 0.1] = np.nan  # usage without a task
    shared = rng.random(rows) < 0.05  # service keys: a team, no person
    person = np.where(shared, -1, person)
    key = np.stack([team, person, np.nan_to_num(task, nan=-1).astype(np.int64), model_index], axis=1)
    key = np.unique(key, axis=0)
    n = len(key)
    fact_rows = rng.geometric(1 / 1.9, n).astype(np.int64)
    unpriced = rng.random(n) < 0.01
    input_tokens = (fact_rows * rng.lognormal(8.5, 1.0, n)).astype(np.int64)
    cache_read = (input_tokens * rng.uniform(0, 0.6, n)).astype(np.int64)
    output = (fact_rows * rng.lognormal(6.5, 0.8, n)).astype(np.int64)
    cost = np.where(unpriced, 0, input_tokens * 2_000 + cache_read * 200 + output * 10_000) // 1_000
    zeros = np.zeros(n, dtype=np.int64)
    null_ids = pa.array(np.where(key[:, 1] < 0, 0, key[:, 1]), mask=key[:, 1] < 0)
    return pa.table(
        {
            "organisation_id": np.full(n, world.organisation.pk, dtype=np.int64),
            "day": pa.array([day] * n, pa.date32()),
            "team_id": key[:, 0],
            "person_id": null_ids,
            "task_id": pa.array(np.where(key[:, 2] < 0, 0, key[:, 2]), mask=key[:, 2] < 0),
            "provider_id": world.model_provider[key[:, 3]],
            "model_id": world.model_ids[key[:, 3]],
            "fact_rows": fact_rows,
            "unpriced_rows": np.where(unpriced, fact_rows, 0),
            "failed_rows": zeros,
            "requests": fact_rows,
            "input_uncached_tokens": input_tokens - cache_read,
            "cache_read_tokens": cache_read,
            "cache_write_5m_tokens": zeros,
            "cache_write_1h_tokens": zeros,
            "output_tokens": output,
            "reasoning_tokens": zeros,
            "cost_nanos": cost,
            "reported_cost_nanos": pa.nulls(n, pa.int64()),
            "list_cost_nanos": cost,
            "billed_cost_nanos": zeros,
            "estimated_cost_nanos": zeros,
            "unpriced_reported_nanos": zeros,
            "adjustment": pa.array([False] * n),
        }
    )


def copy_table(cursor, table: str, columns: tuple[str, ...], frame: pa.Table) -> None:
    buffer = io.BytesIO()
    pa_csv.write_csv(frame.select(list(columns)), buffer, pa_csv.WriteOptions(include_header=False))
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT csv)") as copy:
        copy.write(buffer.getbuffer())


def load_rollups(world: World, rows_per_day: int, seed: int) -> int:
    from django.db import connection

    rng = np.random.default_rng(seed)
    written = 0
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE usage_dailyrollup, {', '.join(NARROW_TABLES)}")
        for offset in range(DAYS):
            frame = rollup_day(world, world.first_day + dt.timedelta(days=offset), rows_per_day, rng)
            copy_table(cursor.cursor, "usage_dailyrollup", ROLLUP_COLUMNS, frame)
            written += frame.num_rows
    return written


def load_facts(world: World, days: int, per_day: int, seed: int) -> int:
    """--fact-days of fact rows for DASH-3 (request grain, a distinct key each, spread over each day)."""
    from django.db import connection

    from apps.usage.partitions import ensure_partitions
    from apps.usage.services import STORED_COLUMNS

    rng = np.random.default_rng(seed)
    written = 0
    # The COPY below bypasses store_facts: make the months' partitions it would have made.
    ensure_partitions(LAST_DAY - dt.timedelta(days=offset) for offset in range(days))
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE usage_usagefact")
        for offset in range(days):
            day = LAST_DAY - dt.timedelta(days=offset)
            who = rng.choice(PEOPLE, per_day, p=world.activity)
            model_index = world.person_models[who, rng.integers(0, 3, per_day)]
            seconds = np.sort(rng.integers(0, 86_400, per_day))
            start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
            ts = pa.array(
                [start + dt.timedelta(seconds=int(s)) for s in seconds], pa.timestamp("us", tz="UTC")
            )
            tokens = rng.integers(100, 20_000, per_day)
            zeros = np.zeros(per_day, dtype=np.int64)
            columns = {
                "source_id": np.full(per_day, world.source.pk),
                "ts": ts,
                "record_key": pa.array([f"{day}-{i}" for i in range(per_day)]),
                "organisation_id": np.full(per_day, world.organisation.pk),
                "day": pa.array([day] * per_day, pa.date32()),
                "grain": zeros,
                "run_id": zeros,
                "provider_id": world.model_provider[model_index],
                "model_id": world.model_ids[model_index],
                "team_id": world.person_team[who],
                "person_id": world.person_ids[who],
                "task_id": world.task_ids[world.person_tasks[who, 0]],
                "raw_identity_id": pa.nulls(per_day, pa.int64()),
                "input_uncached_tokens": tokens,
                "cache_read_tokens": zeros,
                "cache_write_5m_tokens": zeros,
                "cache_write_1h_tokens": zeros,
                "output_tokens": tokens // 10,
                "reasoning_tokens": zeros,
                "requests": np.ones(per_day, dtype=np.int64),
                "failed": pa.array([False] * per_day),
                "batch": pa.array([False] * per_day),
                "cost_nanos": tokens * 3_000,
                "reported_cost_nanos": pa.nulls(per_day, pa.int64()),
                "price_ref_id": pa.nulls(per_day, pa.int64()),
                "list_cost_nanos": tokens * 3_000,
                "override_set_id": pa.nulls(per_day, pa.int64()),
            }
            copy_table(cursor.cursor, "usage_usagefact", STORED_COLUMNS, pa.table(columns))
            written += per_day
    return written


# --------------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------------


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def measurements(world: World) -> dict[str, Callable[[], object]]:
    """name -> a callable doing one measured read (the queries run inside; results are materialised)."""
    from django.test import Client

    from apps.accounts.models import Membership, Role
    from apps.accounts.scoping import organisation_viewer, subtree_team_ids
    from apps.dashboards import pages, selectors
    from apps.dashboards.filters import Filters
    from apps.org.models import Person, Task, Team

    viewer = organisation_viewer(world.organisation)
    period = Filters(start=world.first_day, end=LAST_DAY, today=LAST_DAY)
    team = Team.objects.get(organisation=world.organisation, slug="dept-03")
    subtree = subtree_team_ids(world.organisation.pk, {team.pk})
    task = Task.objects.get(organisation=world.organisation, key="task-07")
    person = Person.objects.get(pk=int(world.person_ids[int(np.argmax(world.activity))]))
    org = world.organisation
    reads: dict[str, Callable[[], object]] = {
        "dash1 daily total": lambda: selectors.daily(viewer, period),
        "dash1 by team": lambda: selectors.grouped(viewer, period, by="team"),
        "dash1 by model": lambda: selectors.grouped(viewer, period, by="model"),
        "dash1 daily by model": lambda: selectors.daily(viewer, period, by="model"),
        "dash1 top 20 people": lambda: selectors.top_people(viewer, period, limit=20),
        "dash1 by task": lambda: selectors.grouped(viewer, period, by="task"),
    }
    builders = {
        "teams": lambda: pages.TeamsPage(viewer, period, org),
        "models": lambda: pages.ModelsPage(viewer, period, org),
        "tasks": lambda: pages.TasksPage(viewer, period, org),
        "team": lambda: pages.TeamPage(viewer, period, org, team, subtree),
        "task": lambda: pages.TaskPage(viewer, period, org, task),
        "person": lambda: pages.PersonPage(viewer, period, org, person),
    }
    for page_name, build in builders.items():
        for panel in build().panel_names:
            reads[f"chart {page_name}/{panel}"] = lambda build=build, panel=panel: build().panel(panel)

    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(username="cio@bench.example", email="cio@bench.example")
    Membership.objects.create(user=user, organisation=org, role=Role.CIO)
    client = Client()
    client.force_login(user)
    query = f"?start={world.first_day}&end={LAST_DAY}"
    urls = {
        "teams": f"/teams/{query}",
        "models": f"/models/{query}",
        "tasks": f"/tasks/{query}",
        "team": f"/teams/{team.slug}/{query}",
        "task": f"/tasks/{task.key}/{query}",
        "person": f"/people/{person.pk}/{query}",
    }

    def get(url: str) -> None:
        response = client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")

    for name, url in urls.items():
        reads[f"page {name}"] = lambda url=url: get(url)
    return reads


def drill_reads(world: World) -> dict[str, Callable[[], object]]:
    from dataclasses import replace

    from apps.accounts.scoping import organisation_viewer, subtree_team_ids
    from apps.catalog.models import AIModel
    from apps.dashboards import selectors
    from apps.dashboards.filters import Filters
    from apps.org.models import Team

    viewer = organisation_viewer(world.organisation)
    day = Filters(start=LAST_DAY, end=LAST_DAY, today=LAST_DAY)
    team = Team.objects.get(pk=int(world.person_team[int(np.argmax(world.activity))]))
    model = AIModel.objects.get(pk=int(world.model_ids[0]))
    narrowed = replace(
        day, team=team, team_ids=subtree_team_ids(world.organisation.pk, {team.pk}), model=model
    )
    return {
        "drill 1 day, first page": lambda: selectors.fact_page(viewer, day),
        "drill 1 day x team x model, first page": lambda: selectors.fact_page(viewer, narrowed),
    }


def run_rounds(reads: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    for read in reads.values():  # warm: the first read of a table is not a dashboard's steady state
        read()
    times: dict[str, list[float]] = {name: [] for name in reads}
    times["dash1 page (six queries)"] = []
    for _ in range(rounds):
        page = 0.0
        for name, read in reads.items():
            started = time.perf_counter()
            read()
            elapsed = (time.perf_counter() - started) * 1000
            times[name].append(elapsed)
            if name.startswith("dash1 "):
                page += elapsed
        times["dash1 page (six queries)"].append(page)
    return times


def table_rows() -> dict[str, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        counts = {}
        for table in ("usage_dailyrollup", *NARROW_TABLES, "usage_usagefact"):
            cursor.execute(f"SELECT COUNT(*) FROM {table}")  # noqa: S608 - constant names
            counts[table] = cursor.fetchone()[0]
    return counts


def narrow_totals_match(organisation_id: int) -> bool:
    from django.db import connection

    with connection.cursor() as cursor:
        sums = []
        for table in ("usage_dailyrollup", *NARROW_TABLES):
            cursor.execute(
                f"SELECT SUM(cost_nanos), SUM(requests), SUM(cache_read_tokens) FROM {table} "  # noqa: S608
                "WHERE organisation_id = %s",
                [organisation_id],
            )
            sums.append(cursor.fetchone())
    return all(row == sums[0] for row in sums)


def run_volume(world: World, label: str, rows_per_day: int, args: argparse.Namespace) -> dict:
    from django.db import connection

    from apps.dashboards.services import rebuild_narrow_rollups, refresh_narrow_rollups

    log(f"{label}: generating and COPYing {rows_per_day:,} daily-rollup rows a day for {DAYS} days")
    started = time.perf_counter()
    loaded = load_rollups(world, rows_per_day, args.seed)
    load_s = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE usage_dailyrollup")
    log(f"{label}: {loaded:,} rows in {load_s:.1f} s; building the narrow rollups (all {DAYS} days)")
    started = time.perf_counter()
    rebuild_narrow_rollups(organisation_id=world.organisation.pk)
    rebuild_s = time.perf_counter() - started
    started = time.perf_counter()
    refresh_narrow_rollups(organisation_id=world.organisation.pk, days=[LAST_DAY])
    one_day_s = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE usage_dailyrollup, {', '.join(NARROW_TABLES)}")
    consistent = narrow_totals_match(world.organisation.pk)
    log(f"{label}: narrow rollups in {rebuild_s:.1f} s (one day {one_day_s * 1000:.0f} ms); measuring")
    times = run_rounds(measurements(world), args.rounds)
    from django.contrib.auth import get_user_model

    get_user_model().objects.filter(username="cio@bench.example").delete()
    return {
        "rows_per_day": rows_per_day,
        "rows": table_rows(),
        "load_s": load_s,
        "narrow_rebuild_s": rebuild_s,
        "narrow_refresh_one_day_ms": one_day_s * 1000,
        "narrow_totals_equal_ledger": consistent,
        "p50_ms": {name: statistics.median(values) for name, values in times.items()},
        "p95_ms": {name: p95(values) for name, values in times.items()},
    }


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def goals(report: dict) -> list[dict]:
    low, high = report["volumes"]["low"]["p95_ms"], report["volumes"]["high"]["p95_ms"]
    page = "dash1 page (six queries)"
    charts = [name for name in high if name.startswith("dash1 ") and name != page]
    result = [
        {"id": "DASH-1 page", "figure": high[page], "goal": f"<= {GOALS['page_p95_ms']:.0f} ms p95",
         "met": high[page] <= GOALS["page_p95_ms"]},
        {"id": "DASH-1 each chart", "figure": max(high[name] for name in charts),
         "goal": f"<= {GOALS['chart_p95_ms']:.0f} ms p95", "met": all(high[n] <= GOALS["chart_p95_ms"] for n in charts)},
        {"id": "DASH-2 flatness", "figure": high[page] / low[page], "goal": f"<= {GOALS['flatness']} x",
         "met": high[page] / low[page] <= GOALS["flatness"]},
    ]  # fmt: skip
    drill = report.get("drill_p95_ms")
    if drill:
        worst = max(drill.values())
        result.append(
            {
                "id": "DASH-3 one day",
                "figure": worst,
                "goal": f"<= {GOALS['drill_1day_p95_ms']:.0f} ms p95",
                "met": worst <= GOALS["drill_1day_p95_ms"],
            }  # fmt: skip
        )
    return result


def print_report(report: dict) -> None:
    low, high = report["volumes"]["low"], report["volumes"]["high"]
    print(f"\nDashboards on PostgreSQL: {DAYS} days, {PEOPLE:,} people, 250 teams, 40 models, {TASKS} tasks")
    print(f"{'table rows':<32}{'low':>14}{'high':>14}")
    for table in low["rows"]:
        print(f"  {table:<30}{low['rows'][table]:>14,}{high['rows'][table]:>14,}")
    print(
        f"  {'narrow rebuild, 90 days (s)':<30}{low['narrow_rebuild_s']:>14.1f}{high['narrow_rebuild_s']:>14.1f}"
    )
    print(f"  {'narrow refresh, one day (ms)':<30}{low['narrow_refresh_one_day_ms']:>14.0f}"
          f"{high['narrow_refresh_one_day_ms']:>14.0f}")  # fmt: skip
    print(f"\n{'p95 ms (p50)':<44}{'low':>16}{'high':>16}{'high/low':>10}")
    for name in high["p95_ms"]:
        ratio = high["p95_ms"][name] / low["p95_ms"][name] if low["p95_ms"][name] else float("nan")
        print(
            f"  {name:<42}{low['p95_ms'][name]:>9.1f} ({low['p50_ms'][name]:>4.0f})"
            f"{high['p95_ms'][name]:>9.1f} ({high['p50_ms'][name]:>4.0f}){ratio:>10.2f}"
        )
    for name, value in report.get("drill_p95_ms", {}).items():
        print(f"  {name:<42}{'':>16}{value:>9.1f}")
    print("\nGoals (the high volume):")
    for goal in report["goals"]:
        print(
            f"  {goal['id']:<20} {goal['figure']:>9.2f}  {goal['goal']:<16} {'met' if goal['met'] else 'MISSED'}"
        )
    print(f"\nChecks: narrow totals equal the daily rollup's: low {low['narrow_totals_equal_ledger']}, "
          f"high {high['narrow_totals_equal_ledger']}")  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--low", type=int, help=f"daily-rollup rows a day, low volume (default {DEFAULT_LOW:,})"
    )
    parser.add_argument("--high", type=int, help=f"... high volume (default {DEFAULT_HIGH:,})")
    parser.add_argument("--rounds", type=int, help=f"interleaved rounds (default {DEFAULT_ROUNDS})")
    parser.add_argument("--fact-days", type=int, default=2, help="days of fact rows for DASH-3 (0: skip)")
    parser.add_argument("--facts-per-day", type=int, default=FACTS_PER_DAY)
    parser.add_argument("--quick", action="store_true", help="smoke check: small volumes, few rounds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep-db", action="store_true", help=f"leave the {ingest_bench.BENCH_DB} database")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when a goal is missed, not only a check"
    )
    args = parser.parse_args(argv)
    args.low = args.low or (QUICK_LOW if args.quick else DEFAULT_LOW)
    args.high = args.high or (QUICK_HIGH if args.quick else DEFAULT_HIGH)
    args.rounds = args.rounds or (QUICK_ROUNDS if args.quick else DEFAULT_ROUNDS)
    if args.quick and args.facts_per_day == FACTS_PER_DAY:
        args.facts_per_day = 20_000
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()
    if load_before[0] > 0.5:
        log(f"WARNING: load average {load_before[0]:.2f} before starting: other work shares these CPUs")
    server = ingest_bench.server_from_env()
    log(f"setting up {ingest_bench.BENCH_DB} on 127.0.0.1:{server.params['port']}")
    ingest_bench.recreate_database(server)
    ingest_bench.migrate(server)
    os.environ.update(DATABASE_URL=server.url, DJANGO_SETTINGS_MODULE="spendwatch.settings", DEBUG="0")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connections

    try:
        world = World(args.seed)
        report: dict = {
            "benchmark": "dashboards",
            "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "git": ingest_bench.git_state(),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "loadavg_before": load_before,
            },
            "args": vars(args),
            "volumes": {},
        }
        for label, rows in (("low", args.low), ("high", args.high)):
            report["volumes"][label] = run_volume(world, label, rows, args)
        if args.fact_days:
            log(f"DASH-3: COPYing {args.fact_days} days x {args.facts_per_day:,} fact rows")
            load_facts(world, args.fact_days, args.facts_per_day, args.seed)
            with connections["default"].cursor() as cursor:
                cursor.execute("VACUUM ANALYZE usage_usagefact")
            drill = run_rounds(drill_reads(world), args.rounds)
            report["drill_p95_ms"] = {
                name: p95(values) for name, values in drill.items() if not name.startswith("dash1")
            }
        report["goals"] = goals(report)
        report["machine"]["loadavg_after"] = os.getloadavg()
    finally:
        connections.close_all()
        if not args.keep_db:
            from api import drop_bench_database

            drop_bench_database(server)
    VAR.mkdir(parents=True, exist_ok=True)
    (VAR / "dashboards.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print_report(report)
    checks = all(volume["narrow_totals_equal_ledger"] for volume in report["volumes"].values())
    if not checks:
        return 1
    if args.strict and not all(goal["met"] for goal in report["goals"]):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
