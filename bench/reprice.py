"""Re-pricing benchmark: re-price N stored facts after a price change and refresh their rollups, on PostgreSQL.

    make bench                                     # 10M facts, DATABASE_URL from scripts/with_services.sh
    .venv/bin/python bench/reprice.py [--rows N] [--days D] [--keep-db]

Setup (not timed): drop and create the database `spendwatch_reprice_bench` next to the one DATABASE_URL
names (127.0.0.1 only), migrate it, create one organisation with 50 teams, 2,000 people and a gateway
source, then load N facts by COPY of CSV generated here (never through the pipeline): request-sized
token counts over D days on 12 models - tiered prices (claude-sonnet-4-5, gemini-2.5-pro, gpt-5.5),
time-of-day prices (deepseek-chat), 1% batch rows, one model no price knows - priced at list price
exactly as ingestion prices them (apps.catalog.prices.vector_segment_cost), and their rollups.

Timed: a 15 % discount on every provider from the first day is saved, then one re-pricing run (the
Celery task's code, `services.repricing_run_execute`) re-prices every priced fact in SQL and refreshes
the rollups of every day. Checked afterwards: the fact count and list total are unchanged, the net
total moved, the rollups equal the facts, and 2,000 random facts equal the Python price to the nano.
The report goes to stdout and var/bench/reprice.json. Target: <= 5 minutes for 10M facts (issue 4).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import numpy as np
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BENCH_DB = "spendwatch_reprice_bench"
MANAGE = [sys.executable, str(ROOT / "manage.py")]
TARGET_SECONDS = 300
CHUNK = 1_000_000
START = dt.date(2026, 9, 1)
# (provider, model, share of rows): request mix of a gateway; the last one no price knows.
MODELS = [
    ("openai", "gpt-4.1-mini", 0.22),
    ("openai", "gpt-5", 0.10),
    ("openai", "gpt-5.5", 0.04),
    ("anthropic", "claude-sonnet-4-5", 0.16),
    ("anthropic", "claude-haiku-4-5", 0.12),
    ("google", "gemini-2.5-flash", 0.10),
    ("google", "gemini-2.5-pro", 0.05),
    ("aws", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", 0.06),
    ("azure", "gpt-4o", 0.06),
    ("deepseek", "deepseek-chat", 0.04),
    ("mistral", "mistral-large-latest", 0.04),
    ("acme", "acme-llm-2027", 0.01),
]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def server_urls() -> tuple[str, dict]:
    url = os.environ.get("DATABASE_URL", "")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        sys.exit("bench: DATABASE_URL must name a PostgreSQL server (run `make bench`)")
    if parts.hostname != "127.0.0.1":
        sys.exit(f"bench: refusing to benchmark against {parts.hostname!r}: only 127.0.0.1 is allowed")
    admin = {
        "host": "127.0.0.1",
        "port": parts.port or 5432,
        "user": urllib.parse.unquote(parts.username or ""),
        "password": urllib.parse.unquote(parts.password or ""),
        "dbname": urllib.parse.unquote(parts.path.lstrip("/")) or "postgres",
        "autocommit": True,
    }
    if admin["dbname"] == BENCH_DB:
        admin["dbname"] = "postgres"
    return urllib.parse.urlunsplit(parts._replace(path=f"/{BENCH_DB}")), admin


def recreate(admin: dict, *, drop_only: bool = False) -> None:
    with psycopg.connect(**admin) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DB)))
        if not drop_only:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DB)))


def setup_django(url: str) -> None:
    os.environ.update(DATABASE_URL=url, DJANGO_SETTINGS_MODULE="spendwatch.settings", DEBUG="0")
    done = subprocess.run([*MANAGE, "migrate", "--noinput"], cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"bench: migrate failed:\n{done.stdout}\n{done.stderr}")
    import django

    django.setup()


def create_world() -> dict:
    from apps.catalog.models import AIModel
    from apps.catalog.services import provider_for
    from apps.ingestion.services import source_get_or_create
    from apps.org.models import Organisation, Person, Team

    organisation = Organisation.objects.create(name="Northwind", slug="northwind", time_zone="Europe/Berlin")
    teams = Team.objects.bulk_create(
        Team(organisation=organisation, name=f"Team {n}", slug=f"team-{n}") for n in range(50)
    )
    people = Person.objects.bulk_create(
        Person(
            organisation=organisation, name=f"Person {n}", email=f"p{n}@northwind.example", team=teams[n % 50]
        )
        for n in range(2_000)
    )
    source = source_get_or_create(organisation=organisation, name="gateway", format="litellm_spend_logs")
    models = [AIModel.objects.get_or_create(provider=provider_for(p), name=m)[0] for p, m, _ in MODELS]
    return {
        "organisation": organisation,
        "source": source,
        "people": np.array([person.pk for person in people], dtype=np.int64),
        "person_team": np.array([person.team_id for person in people], dtype=np.int64),
        "models": models,
    }


def generate_and_copy(world: dict, rows: int, days: int, seed: int) -> dict:
    """COPY `rows` facts in chunks of CSV made with NumPy, priced at list price; returns their totals."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    from django.db import connection

    from apps.catalog.prices import OrganisationPrices, vector_segment_cost
    from apps.catalog.services import override_set_get_or_create  # noqa: F401 - warms the app registry
    from apps.usage.partitions import ensure_partitions
    from apps.usage.services import STORED_COLUMNS

    rng = np.random.default_rng(seed)
    organisation, source, models = world["organisation"], world["source"], world["models"]
    # The COPY below bypasses store_facts: make the months' partitions it would have made.
    ensure_partitions(START + dt.timedelta(days=n) for n in range(days + 1))
    prices = OrganisationPrices(organisation.pk)
    shares = np.array([share for _, _, share in MODELS])
    span = days * 86_400
    start = int(dt.datetime.combine(START, dt.time(), tzinfo=dt.UTC).timestamp())
    zone_offset = 7_200  # Europe/Berlin in September and October (CEST)
    refs: dict = {}
    totals = {"rows": 0, "list": 0, "unpriced": 0}
    for offset in range(0, rows, CHUNK):
        n = min(CHUNK, rows - offset)
        seconds = np.sort(rng.integers(0, span, n)) + start
        model = rng.choice(len(MODELS), n, p=shares / shares.sum())
        prompt = np.minimum(rng.lognormal(7.3, 1.2, n).astype(np.int64) + 8, 190_000)
        long_context = rng.random(n) < 0.003  # a few prompts past the 200k/272k tiers
        prompt = np.where(long_context, rng.integers(200_001, 600_000, n), prompt)
        cache_read = np.where(rng.random(n) < 0.45, (prompt * rng.uniform(0.2, 0.9, n)).astype(np.int64), 0)
        write_5m = np.where(rng.random(n) < 0.1, ((prompt - cache_read) * 0.5).astype(np.int64), 0)
        uncached = prompt - cache_read - write_5m
        output = rng.lognormal(5.7, 1.0, n).astype(np.int64) + 1
        reasoning = np.where(rng.random(n) < 0.2, (output * 0.5).astype(np.int64), 0)
        batch = rng.random(n) < 0.01
        person_index = rng.integers(0, len(world["people"]), n)
        tokens = [uncached, cache_read, write_5m, np.zeros(n, dtype=np.int64), output, reasoning]
        # Prices once per (model, UTC day or time-of-day slot, batch), as the pipeline does.
        cost = np.zeros(n, dtype=np.int64)
        priced = np.zeros(n, dtype=bool)
        price_ref = np.zeros(n, dtype=np.int64)
        for index, (provider, name, _) in enumerate(MODELS):
            period = prices.pricer.period_seconds(provider, name) or 86_400
            for is_batch in (False, True):
                rows_of_model = np.flatnonzero((model == index) & (batch == is_batch))
                slots = seconds[rows_of_model] // period
                for slot in np.unique(slots):
                    chosen = rows_of_model[slots == slot]
                    price = prices.group_price(
                        provider=provider,
                        model=name,
                        at=dt.datetime.fromtimestamp(int(slot) * period, tz=dt.UTC),
                        batch=is_batch,
                    )
                    if not price.priced:
                        continue
                    values, exact = vector_segment_cost(price.list_segments, [t[chosen] for t in tokens])
                    assert exact.all()
                    cost[chosen] = values
                    priced[chosen] = True
                    if price.match not in refs:
                        from apps.catalog.models import PriceRef

                        refs[price.match] = PriceRef.objects.get_or_create(
                            source=price.match.source,
                            provider_ref=price.match.provider_ref,
                            model_ref=price.match.model_ref,
                            context=price.match.context,
                        )[0].pk
                    price_ref[chosen] = refs[price.match]
        model_ids = np.array([m.pk for m in models], dtype=np.int64)[model]
        provider_ids = np.array([m.provider_id for m in models], dtype=np.int64)[model]
        ts = pa.array(seconds * 1_000_000, pa.timestamp("us", tz="UTC"))
        local_day = pa.array(((seconds + zone_offset) // 86_400).astype(np.int32), pa.date32())
        table = pa.table(
            {
                "source_id": pa.array(np.full(n, source.pk, dtype=np.int64)),
                "ts": ts,
                "record_key": pa.array([f"r{offset + i}" for i in range(n)]),
                "organisation_id": pa.array(np.full(n, organisation.pk, dtype=np.int64)),
                "day": local_day,
                "grain": pa.array(np.zeros(n, dtype=np.int16)),
                "run_id": pa.array(np.ones(n, dtype=np.int64)),
                "provider_id": pa.array(provider_ids),
                "model_id": pa.array(model_ids),
                "team_id": pa.array(world["person_team"][person_index]),
                "person_id": pa.array(world["people"][person_index]),
                "task_id": pa.nulls(n, pa.int64()),
                "raw_identity_id": pa.nulls(n, pa.int64()),
                "input_uncached_tokens": pa.array(uncached),
                "cache_read_tokens": pa.array(cache_read),
                "cache_write_5m_tokens": pa.array(write_5m),
                "cache_write_1h_tokens": pa.array(tokens[3]),
                "output_tokens": pa.array(output),
                "reasoning_tokens": pa.array(reasoning),
                "requests": pa.array(np.ones(n, dtype=np.int64)),
                "failed": pa.array(np.zeros(n, dtype=bool)),
                "batch": pa.array(batch),
                "cost_nanos": pa.array(cost, mask=~priced),
                "reported_cost_nanos": pa.nulls(n, pa.int64()),
                "price_ref_id": pa.array(price_ref, mask=~priced),
                "list_cost_nanos": pa.array(cost, mask=~priced),
                "override_set_id": pa.nulls(n, pa.int64()),
            }
        )
        buffer = io.BytesIO()
        pa_csv.write_csv(
            table.select(list(STORED_COLUMNS)), buffer, pa_csv.WriteOptions(include_header=False)
        )
        columns = ", ".join(STORED_COLUMNS)
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy(f"COPY usage_usagefact ({columns}) FROM STDIN (FORMAT csv)") as copy,
        ):
            copy.write(buffer.getbuffer())
        totals["rows"] += n
        totals["list"] += int(cost[priced].sum())
        totals["unpriced"] += int((~priced).sum())
        log(f"  copied {offset + n:,} / {rows:,} facts")
    return totals


def fact_totals() -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*), SUM(list_cost_nanos), SUM(cost_nanos), COUNT(*) - COUNT(cost_nanos) FROM usage_usagefact"
        )
        rows, listed, net, unpriced = cursor.fetchone()
        cursor.execute("SELECT SUM(fact_rows), SUM(cost_nanos), SUM(list_cost_nanos) FROM usage_dailyrollup")
        rollup_rows, rollup_net, rollup_list = cursor.fetchone()
    return {
        "rows": int(rows), "list": int(listed or 0), "net": int(net or 0), "unpriced": int(unpriced),
        "rollup_rows": int(rollup_rows or 0), "rollup_net": int(rollup_net or 0), "rollup_list": int(rollup_list or 0),
    }  # fmt: skip


def sample_check(organisation_id: int, size: int = 2_000) -> int:
    """Random facts against the Python price (GroupPrice.net_cost / list_cost): returns the mismatches."""
    from apps.catalog.prices import OrganisationPrices
    from apps.usage.columns import TOKEN_COLUMNS
    from apps.usage.models import UsageFact

    prices = OrganisationPrices(organisation_id)
    wrong = 0
    ids = UsageFact.objects.order_by("?").values_list("pk", flat=True)[:size]
    for fact in UsageFact.objects.filter(pk__in=list(ids)).select_related("model__provider"):
        provider, name = fact.model.provider.slug, fact.model.name
        period = prices.pricer.period_seconds(provider, name) or 86_400
        slot = dt.datetime.fromtimestamp(int(fact.ts.timestamp()) // period * period, tz=dt.UTC)
        price = prices.group_price(provider=provider, model=name, at=slot, batch=fact.batch)
        counts = [getattr(fact, column) for column in TOKEN_COLUMNS]
        want = (price.list_cost(counts), price.net_cost(counts)) if price.priced else (None, None)
        wrong += (fact.list_cost_nanos, fact.cost_nanos) != want
    return wrong


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rows", type=int, default=10_000_000, help="facts to load and re-price (default 10M)"
    )
    parser.add_argument("--days", type=int, default=30, help="days the facts span (default 30)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep-db", action="store_true", help="keep the bench database afterwards")
    args = parser.parse_args(argv)

    url, admin = server_urls()
    log(f"setting up {BENCH_DB} on 127.0.0.1:{admin['port']} (drop, create, migrate)")
    recreate(admin)
    try:
        setup_django(url)
        from decimal import Decimal

        from django.db import connection, transaction

        from apps.accounts.scoping import organisation_viewer
        from apps.catalog import services
        from apps.catalog.models import OverrideKind, Provider
        from apps.usage.services import refresh_rollups

        world = create_world()
        organisation = world["organisation"]
        log(f"loading {args.rows:,} facts over {args.days} days by COPY (not timed)")
        started = time.perf_counter()
        loaded = generate_and_copy(world, args.rows, args.days, args.seed)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE usage_usagefact")
        days = {START - dt.timedelta(days=1) + dt.timedelta(days=n) for n in range(args.days + 2)}
        refresh_rollups(organisation_id=organisation.pk, days=days)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE usage_dailyrollup")
            cursor.execute("CHECKPOINT")
        setup_seconds = time.perf_counter() - started
        before = fact_totals()
        assert (before["rows"], before["list"], before["unpriced"]) == (
            args.rows,
            loaded["list"],
            loaded["unpriced"],
        )
        log(
            f"loaded in {setup_seconds:.0f} s: list total ${loaded['list'] / 1e9:,.2f}, {loaded['unpriced']:,} unpriced"
        )

        editor = services.PriceEditor(viewer=organisation_viewer(organisation), label="bench")
        with transaction.atomic():
            for provider in Provider.objects.filter(slug__in={p for p, _, _ in MODELS}):
                services.override_save(
                    editor,
                    values={"kind": OverrideKind.DISCOUNT, "provider": provider, "model": None,
                            "percent": Decimal(15), "valid_from": START},
                )  # fmt: skip
            # The terms are saved together; one run re-prices everything they reach.
            run = services.repricing_run_request(
                editor, reason="15 % off every provider", since=START, model_ids=None, enqueue=False
            )
        log("re-pricing every fact after a 15 % discount on every provider, then refreshing the rollups")
        started = time.perf_counter()
        run = services.repricing_run_execute(run_id=run.pk)
        total_seconds = time.perf_counter() - started
        after = fact_totals()
        mismatches = sample_check(organisation.pk)
        report = {
            "rows": args.rows,
            "days": args.days,
            "setup_seconds": round(setup_seconds, 1),
            "reprice_seconds": round(total_seconds, 1),
            "rows_changed": run.rows_changed,
            "days_refreshed": run.days_refreshed,
            "steps_seconds": getattr(run, "seconds", {}),
            "rows_per_second": round(args.rows / total_seconds),
            "list_before": before["list"],
            "list_after": after["list"],
            "net_before": before["net"],
            "net_after": after["net"],
            "rollups_equal_facts": (after["rollup_net"], after["rollup_list"], after["rollup_rows"])
            == (after["net"], after["list"], after["rows"]),
            "sample_mismatches": mismatches,
            "target_seconds": TARGET_SECONDS,
            "machine": f"{platform.machine()} {os.cpu_count()} cores",
        }
        ok = (
            after["rows"] == before["rows"]
            and after["list"] == before["list"]
            and after["net"] < before["net"]
            and report["rollups_equal_facts"]
            and mismatches == 0
        )
        print(json.dumps(report, indent=2))
        log(
            f"re-priced {args.rows:,} facts and refreshed their rollups in {total_seconds:.1f} s "
            f"({report['rows_per_second']:,} facts/s; target {TARGET_SECONDS} s for 10M): "
            f"net ${before['net'] / 1e9:,.2f} -> ${after['net'] / 1e9:,.2f}, list unchanged, "
            f"{'all checks passed' if ok else 'A CHECK FAILED'}"
        )
        (ROOT / "var" / "bench").mkdir(parents=True, exist_ok=True)
        (ROOT / "var" / "bench" / "reprice.json").write_text(json.dumps(report, indent=2))
        return 0 if ok else 1
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep_db:
            recreate(admin, drop_only=True)


if __name__ == "__main__":
    sys.exit(main())
