"""Ingest API benchmark: TESTPLAN E2, 1,000-line JSONL batches to POST /api/v1/ingest/litellm_spend_logs/.

    make bench BENCH=api                          # DATABASE_URL exported by scripts/with_services.sh
    .venv/bin/python bench/api.py [--lines N] [--batch 1000] [--workers 4] [--clients 4] [--rounds R] [--quick]

The product is gunicorn (sync workers) on 127.0.0.1 serving the real app against PostgreSQL; the client
is this process: `--clients` threads, each with one keep-alive connection, taking the next batch of the
file in order and POSTing it with a machine key (scope ingest). Figures per round:

- API        accepted lines/s end to end (the first request sent to the last answer received), and the
             p50 / p99 / max time per batch as the client saw it;
- R_copy     one COPY of the same rows, already in the fact table's layout, into an empty copy of the
             fact table (bench/run.py's reference, measured here in the same run).

Every round starts from empty tables and the two steps take turns at going first; the goals are checked
on the median of the per-round figures. The data, the database set-up and the COPY reference are
bench/run.py's own functions, imported: this file adds only the HTTP side.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as ingest_bench  # noqa: E402 - bench/run.py: data files, database set-up, R_copy

ROOT = ingest_bench.ROOT
VAR = ingest_bench.VAR
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
URL_PATH = f"/api/v1/ingest/{ingest_bench.FORMAT}/?source={ingest_bench.SOURCE}"

DEFAULT_LINES = 200_000
QUICK_LINES = 50_000
# Goals (TESTPLAN E2).
GOAL_LINES_S = 10_000
GOAL_P99_S = 2.0

log = ingest_bench.log


@dataclass(slots=True)
class Phase:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    rows: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    failures: list[str] = field(default_factory=list)


def read_batches(path: Path, batch_lines: int) -> list[bytes]:
    """The JSONL file cut into bodies of `batch_lines` lines, in file order (held in memory)."""
    batches: list[bytes] = []
    lines: list[bytes] = []
    with path.open("rb") as stream:
        for line in stream:
            lines.append(line)
            if len(lines) == batch_lines:
                batches.append(b"".join(lines))
                lines = []
    if lines:
        batches.append(b"".join(lines))
    return batches


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def create_ingest_key() -> str:
    """A machine key with scope ingest for the bench organisation (Django is set up by setup_organisation)."""
    from django.db import connections

    from apps.accounts.models import KeyScope
    from apps.accounts.services import machine_key_create
    from apps.org.models import Organisation

    organisation = Organisation.objects.get(slug="bench")
    _, text = machine_key_create(organisation=organisation, name="bench-api", scopes=[KeyScope.INGEST])
    connections.close_all()
    return text


class Gunicorn:
    """The app under gunicorn on 127.0.0.1 (sync workers), its kept payloads in a throwaway directory."""

    def __init__(self, server: ingest_bench.Server, workers: int, extra_env: dict | None = None) -> None:
        self.port = free_port()
        self.var_dir = Path(tempfile.mkdtemp(prefix="spendwatch-apibench-"))
        self.log_path = VAR / "api-gunicorn.log"
        env = ingest_bench.child_env(server)
        env.update(
            SPENDWATCH_VAR_DIR=str(self.var_dir),
            ALLOWED_HOSTS="127.0.0.1",
            LOG_LEVEL="WARNING",
            CELERY_BROKER_URL="filesystem://",  # nothing on the ingest path waits for a worker
        )
        env.update(extra_env or {})
        self.env = env
        command = [GUNICORN, "spendwatch.wsgi", "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers),
                   "--worker-class", "sync", "--timeout", "120", "--log-level", "warning"]  # fmt: skip
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(  # noqa: S603
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"bench: gunicorn exited ({self.process.returncode}); see {self.log_path}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        sys.exit(f"bench: gunicorn did not listen on 127.0.0.1:{self.port} in {timeout:.0f} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(timeout=10)
        shutil.rmtree(self.var_dir, ignore_errors=True)


def post_batches(port: int, key: str, batches: list[bytes], clients: int) -> Phase:
    """POST every batch once, `clients` at a time, each client on one keep-alive connection."""
    phase = Phase()
    lock = threading.Lock()
    next_index = iter(range(len(batches)))
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"}

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            while True:
                with lock:
                    index = next(next_index, None)
                if index is None:
                    return
                started = time.perf_counter()
                connection.request("POST", URL_PATH, body=batches[index], headers=headers)
                response = connection.getresponse()
                payload = response.read()
                seconds = time.perf_counter() - started
                with lock:
                    phase.latencies.append(seconds)
                    if response.status != 200:
                        phase.failures.append(f"batch {index}: HTTP {response.status}: {payload[:300]!r}")
                        continue
                    summary = orjson.loads(payload)
                    phase.rows += summary["rows"]
                    phase.accepted += summary["accepted"]
                    phase.duplicates += summary["duplicates"]
                    phase.rejected += summary["rejected"]
        finally:
            connection.close()

    threads = [threading.Thread(target=client, name=f"client-{n}") for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    phase.seconds = time.perf_counter() - started
    return phase


def warm_up(port: int, key: str, workers: int) -> None:
    """Every gunicorn worker loads the app and opens its database connection before the clock starts."""
    phase = post_batches(port, key, [b""] * (workers * 4), workers)
    if phase.failures:
        sys.exit(f"bench: warm-up failed: {phase.failures[0]}")


def drop_bench_database(server: ingest_bench.Server, attempts: int = 10) -> None:
    """bench/run.py's drop, retried: DROP ... WITH (FORCE) is refused while autovacuum (a superuser's
    process) works in the database, which it often does right after a benchmark's writes."""
    import psycopg

    for attempt in range(attempts):
        try:
            ingest_bench.drop_database(server)
            return
        except psycopg.errors.InsufficientPrivilege:
            if attempt == attempts - 1:
                log(f"could not drop {ingest_bench.BENCH_DB} (autovacuum is still in it); drop it by hand")
                return
            time.sleep(3)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def run_rounds(args: argparse.Namespace, server, files, caps, port: int, key: str) -> dict:
    lines, rejects, fact_rows = files.meta["lines"], files.meta["expected_rejects"], files.meta["fact_rows"]
    batches = read_batches(files.jsonl, args.batch)
    log(
        f"{len(batches):,} batches of up to {args.batch:,} lines ({sum(map(len, batches)) / len(batches) / 1024:.0f} KiB each)"
    )
    checks = ingest_bench.Checks()
    rounds: list[dict] = []
    reference: dict | None = None
    with ingest_bench.connect(server.params) as conn:
        for number in range(1, args.rounds + 1):
            log(f"round {number}/{args.rounds}")
            result: dict = {"round": number, "loadavg_1m_at_start": os.getloadavg()[0]}
            ingest_bench.truncate_all(conn)
            for step in ("api", "copy") if number % 2 else ("copy", "api"):
                ingest_bench.checkpoint(conn, caps)
                if step == "api":
                    phase = post_batches(port, key, batches, args.clients)
                    for failure in phase.failures[:5]:
                        checks.expect(False, f"round {number}: {failure}")
                    checks.expect(not phase.failures, f"round {number}: {len(phase.failures)} batches failed")
                    checks.expect(phase.rows == lines, f"round {number}: rows {phase.rows} != {lines}")
                    checks.expect(
                        phase.rejected == rejects, f"round {number}: rejected {phase.rejected} != {rejects}"
                    )
                    checks.expect(
                        phase.accepted == fact_rows,
                        f"round {number}: accepted {phase.accepted} != {fact_rows}",
                    )
                    totals = ingest_bench.fact_totals(conn)
                    checks.expect(totals["rows"] == fact_rows, f"round {number}: {totals['rows']} fact rows")
                    rollups = ingest_bench.rollup_totals(conn)
                    for name, value in rollups.items():
                        checks.expect(value == totals[name], f"round {number}: rollup {name} != facts")
                    reference = reference or totals
                    checks.expect(totals == reference, f"round {number}: totals differ from round 1's")
                    result.update(
                        api_s=phase.seconds,
                        api_lines_s=phase.accepted / phase.seconds,
                        api_sent_lines_s=phase.rows / phase.seconds,
                        batch_p50_s=statistics.median(phase.latencies),
                        batch_p99_s=percentile(phase.latencies, 0.99),
                        batch_max_s=max(phase.latencies),
                        batches=len(phase.latencies),
                    )
                    log(
                        f"  API {phase.seconds:.1f} s: {result['api_lines_s']:,.0f} accepted lines/s; per batch "
                        f"p50 {result['batch_p50_s']:.3f} s, p99 {result['batch_p99_s']:.3f} s"
                    )
                else:
                    conn.execute("TRUNCATE usage_usagefact_ref RESTART IDENTITY")
                    ingest_bench.checkpoint(conn, caps)
                    seconds = ingest_bench.measure_copy(conn, files.csv, caps.copy_from_file)
                    copied = ingest_bench.fact_totals(conn, "usage_usagefact_ref")["rows"]
                    checks.expect(
                        copied == fact_rows, f"round {number}: R_copy stored {copied} != {fact_rows}"
                    )
                    result.update(copy_s=seconds, copy_rows_s=fact_rows / seconds)
                    log(f"  R_copy {seconds:.1f} s ({fact_rows / seconds:,.0f} rows/s)")
                    conn.execute("TRUNCATE usage_usagefact_ref")
            result["ratio_api_copy"] = result["api_lines_s"] / result["copy_rows_s"]
            rounds.append(result)
    return {"rounds": rounds, "checks": checks, "batches": len(batches)}


def summarise(rounds: list[dict]) -> dict:
    keys = ("api_lines_s", "api_sent_lines_s", "copy_rows_s", "ratio_api_copy", "batch_p50_s", "batch_p99_s",
            "batch_max_s", "api_s", "copy_s")  # fmt: skip
    return {key: statistics.median(r[key] for r in rounds) for key in keys}


def goals(medians: dict) -> list[dict]:
    return [
        {"id": "E2", "what": "accepted lines/s, 1,000-line batches", "value": medians["api_lines_s"],
         "target": GOAL_LINES_S, "pass": medians["api_lines_s"] >= GOAL_LINES_S},
        {"id": "E2", "what": "p99 seconds per batch", "value": medians["batch_p99_s"],
         "target": GOAL_P99_S, "pass": medians["batch_p99_s"] < GOAL_P99_S},
    ]  # fmt: skip


def print_report(report: dict) -> None:
    med = report["medians"]
    print()
    print(f"Ingest API (E2): {report['data']['lines']:,} lines in {report['batches']:,} batches of "
          f"{report['args']['batch']:,}; gunicorn {report['args']['workers']} sync workers, "
          f"{report['args']['clients']} clients; {len(report['rounds'])} round(s)")  # fmt: skip
    print(f"R_copy: {report['copy_mode']}")
    print(
        f"{'round':>5} {'API lines/s':>12} {'p50 s':>7} {'p99 s':>7} {'max s':>7} {'R_copy rows/s':>14} {'API/R_copy':>10}"
    )
    for r in report["rounds"]:
        print(f"{r['round']:>5} {r['api_lines_s']:>12,.0f} {r['batch_p50_s']:>7.3f} {r['batch_p99_s']:>7.3f} "
              f"{r['batch_max_s']:>7.3f} {r['copy_rows_s']:>14,.0f} {r['ratio_api_copy']:>10.3f}")  # fmt: skip
    print(f"{'med':>5} {med['api_lines_s']:>12,.0f} {med['batch_p50_s']:>7.3f} {med['batch_p99_s']:>7.3f} "
          f"{med['batch_max_s']:>7.3f} {med['copy_rows_s']:>14,.0f} {med['ratio_api_copy']:>10.3f}")  # fmt: skip
    for goal in report["goals"]:
        verdict = "PASS" if goal["pass"] else "MISS"
        print(f"{goal['id']} {goal['what']}: {goal['value']:,.3f} (target {goal['target']:,}) {verdict}")
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
        "--lines", type=int, default=None, help=f"lines sent per round (default {DEFAULT_LINES:,})"
    )
    parser.add_argument("--batch", type=int, default=1_000, help="lines per request (default 1,000)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers (default 4)")
    parser.add_argument("--clients", type=int, default=None, help="concurrent clients (default: --workers)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3; --quick: 1)")
    parser.add_argument("--quick", action="store_true", help=f"smoke check: {QUICK_LINES:,} lines, 1 round")
    parser.add_argument("--shape", choices=("full", "lean"), default="lean",
                        help="lean (default): ~0.7 kB/line, the closest to E2's ~310 KB per 1,000; full: ~1.7 kB/line")  # fmt: skip
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep-db", action="store_true", help=f"leave the {ingest_bench.BENCH_DB} database")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when a goal is missed, not only a check"
    )
    args = parser.parse_args(argv)
    args.lines = args.lines or (QUICK_LINES if args.quick else DEFAULT_LINES)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.clients = args.clients or args.workers
    if args.lines < args.batch or args.rounds < 1 or args.workers < 1 or args.clients < 1:
        parser.error("--lines must be at least one batch; --rounds, --workers and --clients at least 1")
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
    key = create_ingest_key()
    with ingest_bench.connect(server.params) as conn:
        ingest_bench.create_reference_table(conn)
        caps = ingest_bench.probe_server(conn)
    gunicorn = Gunicorn(server, args.workers)
    try:
        gunicorn.wait_ready()
        warm_up(gunicorn.port, key, args.workers)
        log(f"gunicorn on 127.0.0.1:{gunicorn.port}: {args.workers} sync workers; {args.clients} clients")
        measured = run_rounds(args, server, files, caps, gunicorn.port, key)
    finally:
        gunicorn.stop()
    checks = measured["checks"]
    medians = summarise(measured["rounds"])
    report_path = VAR / "api.json"
    report = {
        "benchmark": "ingest-api",
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
        "copy_mode": caps.copy_note,
        "batches": measured["batches"],
        "rounds": measured["rounds"],
        "medians": medians,
        "goals": goals(medians),
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
    return 1 if args.strict and not all(goal["pass"] for goal in report["goals"]) else 0


if __name__ == "__main__":
    sys.exit(main())
