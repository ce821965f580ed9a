"""Steady-state ingestion benchmark: PERFORMANCE.md ING-3, into a fact table already holding 10M rows.

    make bench BENCH=steady                       # DATABASE_URL exported by scripts/with_services.sh
    .venv/bin/python bench/steady.py [--rows N] [--lines N] [--rounds R] [--quick]

Both figures are the product itself, `manage.py ingest --format litellm_spend_logs --source bench FILE`
(a subprocess, wall time), on the same file, measured in the same run:

- empty   into an empty fact table;
- full    into a fact table that already holds --rows rows (default 10,000,000) of earlier months.

ING-3 asks full >= 0.9 x empty (the median of the per-round ratios). The earlier months are not made by
the pipeline: a first, untimed ingest of the file leaves its fact rows (real ids for the catalog, the
identities and the run, real value distributions); those are kept as a seed, and each full round streams
`COPY (SELECT ... the seed shifted back by 30, 60, 90 ... days ...) TO STDOUT` straight into
`COPY usage_usagefact FROM STDIN`: generated CSV, loaded at COPY speed, through every index and foreign
key of the real table. The table is then VACUUM ANALYZEd, as autovacuum would have done in a year of
steady ingestion, so that the timed ingest does not share the server with it.

Identities (org_rawidentity) are kept across rounds in both cases: in a steady state they are known.
The rollups of the earlier months are not built (they are not read by an ingest: it refreshes only the
days it touched). bench/run.py's data, database and measuring functions are imported, not copied.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as ingest_bench  # noqa: E402 - bench/run.py: data files, database set-up, measuring
from api import drop_bench_database  # noqa: E402 - bench/api.py

ROOT = ingest_bench.ROOT
VAR = ingest_bench.VAR
FACT_COLUMNS = ingest_bench.FACT_COLUMNS
SEED_TABLE = "bench_history_seed"
SHIFT_DAYS = ingest_bench.SPAN_DAYS  # each copy of the seed is one span earlier than the one after it

DEFAULT_ROWS = 10_000_000
DEFAULT_LINES = 1_000_000
QUICK_ROWS = 1_000_000
QUICK_LINES = 50_000
GOAL_ING3_RATIO = 0.9

log = ingest_bench.log


def reset(conn, seed_run_id: int) -> None:
    """Empty the fact table and what the last ingest wrote; keep the seed, its run and the identities."""
    conn.execute("TRUNCATE usage_usagefact, usage_dailyrollup, ingestion_rejectedrow")
    conn.execute("DELETE FROM ingestion_ingestionrun WHERE id <> %s", [seed_run_id])


def make_seed(conn, server, files) -> int:
    """Ingest the file once (untimed) and keep its fact rows as the seed of the earlier months."""
    log("seed: one untimed ingest of the file")
    first = ingest_bench.run_measured(
        ingest_bench.ingest_command(files.jsonl), ingest_bench.child_env(server)
    )
    if first.returncode:
        sys.exit(f"bench: the seed ingest failed: {first.stderr[-2000:]}")
    columns = sql.SQL(", ").join(map(sql.Identifier, FACT_COLUMNS))
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(SEED_TABLE)))
    conn.execute(
        sql.SQL("CREATE UNLOGGED TABLE {} AS SELECT {} FROM usage_usagefact").format(
            sql.Identifier(SEED_TABLE), columns
        )
    )
    return first.summary()["run"]


def fill_history(conn, copy_conn, rows: int, seed_rows: int) -> tuple[int, float]:
    """COPY `rows` (rounded up to whole copies of the seed) earlier-month rows into usage_usagefact."""
    copies = math.ceil(rows / seed_rows)
    shifted = {
        "ts": sql.SQL("ts - make_interval(days => k * {})").format(sql.Literal(SHIFT_DAYS)),
        "day": sql.SQL("((ts - make_interval(days => k * {})) AT TIME ZONE {})::date").format(
            sql.Literal(SHIFT_DAYS), sql.Literal(ingest_bench.ORG_TZ)
        ),
    }
    select = sql.SQL(", ").join(shifted.get(column, sql.Identifier(column)) for column in FACT_COLUMNS)
    out = sql.SQL("COPY (SELECT {} FROM {}, generate_series(1, {}) AS k) TO STDOUT (FORMAT csv)").format(
        select, sql.Identifier(SEED_TABLE), sql.Literal(copies)
    )
    into = sql.SQL("COPY usage_usagefact ({}) FROM STDIN (FORMAT csv)").format(
        sql.SQL(", ").join(map(sql.Identifier, FACT_COLUMNS))
    )
    started = time.perf_counter()
    with conn.cursor().copy(out) as source, copy_conn.cursor().copy(into) as sink:
        for block in source:
            sink.write(block)
    return copies * seed_rows, time.perf_counter() - started


def new_rows_totals(conn, seed_run_id: int) -> dict:
    """Totals of the rows the timed ingest stored (not the earlier months'), as fact_totals reports them."""
    conn.execute(
        sql.SQL("CREATE TEMP VIEW bench_new_rows AS SELECT * FROM usage_usagefact WHERE run_id <> {}").format(
            sql.Literal(seed_run_id)
        )
    )
    try:
        return ingest_bench.fact_totals(conn, "bench_new_rows")
    finally:
        conn.execute("DROP VIEW bench_new_rows")


def make_history_partitions(conn, env: dict, copies: int) -> None:
    """The monthly partitions of the earlier months, as the store path would have made them (a COPY
    bypasses it, and its rows would otherwise all land in the default partition)."""
    first, last = conn.execute(
        sql.SQL("SELECT min(ts) - make_interval(days => {}), max(ts) FROM {}").format(
            sql.Literal(copies * SHIFT_DAYS), sql.Identifier(SEED_TABLE)
        )
    ).fetchone()
    months = [f"{first.astimezone(dt.UTC):%Y-%m}", f"{last.astimezone(dt.UTC):%Y-%m}"]
    done = subprocess.run(
        [*ingest_bench.MANAGE, "fact_partitions", "--months", *months],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        sys.exit(f"bench: making the history's partitions failed:\n{done.stdout}\n{done.stderr}")


def table_mib(conn) -> float:
    # The sum over the partitions (a partitioned table itself has no storage).
    return (
        conn.execute(
            "SELECT COALESCE(SUM(pg_total_relation_size(relid)), 0)::bigint FROM pg_partition_tree('usage_usagefact')"
        ).fetchone()[0]
        / 2**20
    )


def run_rounds(args: argparse.Namespace, server, files, caps) -> dict:
    lines, rejects = files.meta["lines"], files.meta["expected_rejects"]
    env = ingest_bench.child_env(server)
    checks = ingest_bench.Checks()
    rounds: list[dict] = []
    reference: dict | None = None
    with ingest_bench.connect(server.params) as conn, ingest_bench.connect(server.params) as copy_conn:
        seed_run_id = make_seed(conn, server, files)
        seed_rows = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(SEED_TABLE))
        ).fetchone()[0]
        make_history_partitions(conn, env, math.ceil(args.rows / seed_rows))
        for number in range(1, args.rounds + 1):
            log(f"round {number}/{args.rounds}")
            result: dict = {"round": number, "loadavg_1m_at_start": os.getloadavg()[0]}
            for step in ("empty", "full") if number % 2 else ("full", "empty"):
                reset(conn, seed_run_id)
                if step == "full":
                    history, seconds = fill_history(conn, copy_conn, args.rows, seed_rows)
                    log(
                        f"  filled {history:,} earlier rows by COPY in {seconds:.0f} s ({history / seconds:,.0f} rows/s)"
                    )
                    result.update(history_rows=history, fill_s=seconds)
                conn.execute("VACUUM ANALYZE usage_usagefact")
                if step == "full":
                    result["table_mib_before"] = table_mib(conn)
                ingest_bench.checkpoint(conn, caps)
                timed = ingest_bench.run_measured(ingest_bench.ingest_command(files.jsonl), env)
                ingest_bench._check_product(checks, f"round {number} {step}", timed, lines, rejects, False)
                totals = new_rows_totals(conn, seed_run_id)
                reference = reference or totals
                checks.expect(totals == reference, f"round {number} {step}: the new rows' totals differ")
                stored = conn.execute("SELECT count(*) FROM usage_usagefact").fetchone()[0]
                expected = totals["rows"] + (result["history_rows"] if step == "full" else 0)
                checks.expect(stored == expected, f"round {number} {step}: {stored} fact rows != {expected}")
                result.update({f"{step}_s": timed.seconds, f"{step}_lines_s": lines / timed.seconds,
                               f"{step}_rss_mib": timed.max_rss_mib})  # fmt: skip
                log(
                    f"  {step}: {timed.seconds:.1f} s ({lines / timed.seconds:,.0f} lines/s) into {stored:,} rows"
                )
            result["ratio_full_empty"] = result["full_lines_s"] / result["empty_lines_s"]
            rounds.append(result)
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(SEED_TABLE)))
    return {"rounds": rounds, "checks": checks, "seed_rows": seed_rows}


def print_report(report: dict) -> None:
    med = report["medians"]
    print()
    print(f"Steady state (ING-3): {report['data']['lines']:,}-line LiteLLM file into an empty fact table and into "
          f"one holding {report['rounds'][0]['history_rows']:,} earlier rows; {len(report['rounds'])} round(s)")  # fmt: skip
    print(
        f"{'round':>5} {'empty lines/s':>14} {'full lines/s':>13} {'full/empty':>10} {'table MiB':>10} {'fill rows/s':>12}"
    )
    for r in report["rounds"]:
        print(f"{r['round']:>5} {r['empty_lines_s']:>14,.0f} {r['full_lines_s']:>13,.0f} {r['ratio_full_empty']:>10.3f} "
              f"{r['table_mib_before']:>10,.0f} {r['history_rows'] / r['fill_s']:>12,.0f}")  # fmt: skip
    print(
        f"{'med':>5} {med['empty_lines_s']:>14,.0f} {med['full_lines_s']:>13,.0f} {med['ratio_full_empty']:>10.3f}"
    )
    goal = report["goals"][0]
    print(
        f"{goal['id']} {goal['what']}: {goal['value']:.3f} (target {goal['target']}) {'PASS' if goal['pass'] else 'MISS'}"
    )
    checks = report["checks"]
    print(
        f"checks: {checks['passed']} passed, {len(checks['failures'])} failed; report: {report['report_path']}"
    )
    if report["machine"]["loadavg_before"][0] > 0.5:
        print(
            f"WARNING: load average {report['machine']['loadavg_before'][0]:.2f} at the start: figures are noisy"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rows", type=int, default=None, help=f"rows already in the table (default {DEFAULT_ROWS:,})"
    )
    parser.add_argument(
        "--lines", type=int, default=None, help=f"lines in the file ingested (default {DEFAULT_LINES:,})"
    )
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3; --quick: 1)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke check: {QUICK_LINES:,} lines into {QUICK_ROWS:,} rows, 1 round")  # fmt: skip
    parser.add_argument("--shape", choices=("full", "lean"), default="full", help="as bench/run.py's --shape")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep-db", action="store_true", help=f"leave the {ingest_bench.BENCH_DB} database")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when the goal is missed, not only a check"
    )
    args = parser.parse_args(argv)
    args.rows = args.rows or (QUICK_ROWS if args.quick else DEFAULT_ROWS)
    args.lines = args.lines or (QUICK_LINES if args.quick else DEFAULT_LINES)
    args.rounds = args.rounds or (1 if args.quick else 3)
    if args.lines < 1_000 or args.rows < 1 or args.rounds < 1:
        parser.error("--lines must be at least 1,000; --rows and --rounds at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    load_before = os.getloadavg()
    if load_before[0] > 0.5:
        log(f"WARNING: load average {load_before[0]:.2f} before starting: other work shares these CPUs")
    server = ingest_bench.server_from_env()
    VAR.mkdir(parents=True, exist_ok=True)
    files = ingest_bench.data_files(args.lines, args.seed, args.shape)
    log(f"setting up {ingest_bench.BENCH_DB} on 127.0.0.1:{server.params['port']}")
    ingest_bench.recreate_database(server)
    ingest_bench.migrate(server)
    ingest_bench.setup_organisation(server, ingest_bench.World.build(args.seed))
    with ingest_bench.connect(server.params) as conn:
        caps = ingest_bench.probe_server(conn)
    measured = run_rounds(args, server, files, caps)
    rounds, checks = measured["rounds"], measured["checks"]
    keys = ("empty_lines_s", "full_lines_s", "ratio_full_empty", "empty_s", "full_s", "fill_s")
    medians = {key: statistics.median(r[key] for r in rounds) for key in keys}
    ratio = medians["ratio_full_empty"]
    report_path = VAR / "steady.json"
    report = {
        "benchmark": "ingest-steady-state",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git": ingest_bench.git_state(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": load_before,
        },
        "args": vars(args),
        "data": {**files.meta, "path": str(files.jsonl)},
        "server": caps.settings,
        "seed_rows": measured["seed_rows"],
        "rounds": rounds,
        "medians": medians,
        "goals": [
            {
                "id": "ING-3",
                "what": "full-table / empty-table lines/s (median of rounds)",
                "value": ratio,
                "target": GOAL_ING3_RATIO,
                "pass": ratio >= GOAL_ING3_RATIO,
            }
        ],  # fmt: skip
        "checks": {"passed": checks.passed, "failures": checks.failures},
        "elapsed_s": time.perf_counter() - started,
        "report_path": str(report_path.relative_to(ROOT)),
    }
    report_path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print_report(report)
    if not args.keep_db:
        drop_bench_database(server)
    if checks.failures:
        return 1
    return 1 if args.strict and ratio < GOAL_ING3_RATIO else 0


if __name__ == "__main__":
    sys.exit(main())
