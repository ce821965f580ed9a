"""Single-record ingest benchmark: TESTPLAN E1, one LiteLLM record per POST, 32 connections, 60 s.

    make bench BENCH=single                      # DATABASE_URL exported by scripts/with_services.sh
    .venv/bin/python bench/single.py [--seconds 60] [--clients 32] [--workers 4] [--quick]

The product is gunicorn (sync workers) on 127.0.0.1 serving the real app against PostgreSQL, and one real
Celery worker (prefork, concurrency 1), Redis as broker and shared cache, all on this machine with the
client. The
client is this process: `--clients` threads, each with one keep-alive connection, each POSTing one record
after another until the time is up. Phases, one after another:

- R_auth     GET of a receipt that does not exist, with the key, for `--reference-seconds`: the same
             server, framework, key check and one indexed lookup, nothing stored: the floor of this API on
             this machine with this client. The E1 figure is quoted as a ratio to it.
- sync       POST without a preference for `--sync-seconds`: each request is a whole run (for contrast).
- E1         POST with `Prefer: respond-async` for `--seconds`: stored and answered 202; the worker drains
             the waiting bodies into runs while the load goes on.
- drain      after the load, the time until every record is in the ledger and every run has finished.

Checks (exit 1 when one fails): no error answer, and the ledger holds exactly the records sent (count and
cost to the nano-dollar, facts and rollups). Goals (TESTPLAN E1): >= 300 req/s sustained, p99 < 250 ms;
reported in var/bench/single.json, `--strict` makes a missed goal fail too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import api as api_bench  # noqa: E402 - bench/api.py: gunicorn, the machine key
import run as ingest_bench  # noqa: E402 - bench/run.py: the database and organisation set-up

ROOT = ingest_bench.ROOT
VAR = ingest_bench.VAR
CELERY = str(Path(sys.executable).with_name("celery"))
URL_PATH = f"/api/v1/ingest/{ingest_bench.FORMAT}/?source=single"
COST = 500_000  # nano-dollars of one record below (gpt-4.1-mini, 800 uncached + 200 cached + 100 output)
GOAL_REQUESTS_S = 300
GOAL_P99_S = 0.250
log = ingest_bench.log


# A gateway pushes requests as they happen: each record is of the last hour, as live traffic is (so a
# drained run touches a day or two, and refreshes those days' rollups only).
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def record(n: int) -> bytes:
    return orjson.dumps(
        {
            "request_id": f"single-{n}",
            "startTime": (NOW - dt.timedelta(seconds=n % 3600)).isoformat(),
            "model": "gpt-4.1-mini-2025-04-14",
            "custom_llm_provider": "openai",
            "user": f"user{n % 50}@bench.example",
            "spend": 0.00052,
            "prompt_tokens": 1000,
            "completion_tokens": 100,
            "status": "success",
            "metadata": {
                "usage_object": {
                    "prompt_tokens": 1000,
                    "completion_tokens": 100,
                    "prompt_tokens_details": {"cached_tokens": 200},
                }
            },
        }
    )


@dataclass(slots=True)
class Phase:
    name: str
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def figures(self, ok: int) -> dict:
        answered = self.statuses.get(ok, 0)
        ordered = sorted(self.latencies)
        return {
            "requests": len(ordered),
            "ok": answered,
            "errors": len(ordered) - answered,
            "requests_s": answered / self.seconds if self.seconds else 0.0,
            "p50_ms": 1000 * statistics.median(ordered) if ordered else None,
            "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else None,
            "max_ms": 1000 * ordered[-1] if ordered else None,
            "first_errors": self.errors[:5],
        }


class Numbers:
    """Record numbers handed out across all client threads, so no record is sent twice."""

    def __init__(self, start: int = 0) -> None:
        self._next = start
        self._lock = threading.Lock()

    def take(self) -> int:
        with self._lock:
            self._next += 1
            return self._next

    @property
    def taken(self) -> int:
        return self._next


def hammer(port: int, key: str, clients: int, seconds: float, name: str, request: callable, ok: int) -> Phase:
    """`clients` threads, each on one keep-alive connection, sending `request()`s until the time is up."""
    phase = Phase(name)
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        latencies, statuses, errors = [], {}, []
        try:
            while time.perf_counter() < deadline:
                method, path, body, headers = request()
                started = time.perf_counter()
                try:
                    connection.request(
                        method, path, body=body, headers={"Authorization": f"Bearer {key}", **headers}
                    )
                    response = connection.getresponse()
                    payload = response.read()
                    status = response.status
                except (OSError, http.client.HTTPException) as error:
                    connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    status, payload = 0, repr(error).encode()
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
                if status != ok and len(errors) < 5:
                    errors.append(f"HTTP {status}: {payload[:200]!r}")
        finally:
            connection.close()
            with lock:
                phase.latencies.extend(latencies)
                phase.errors.extend(errors)
                for status, count in statuses.items():
                    phase.statuses[status] = phase.statuses.get(status, 0) + count

    threads = [threading.Thread(target=client, name=f"{name}-{n}") for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    phase.seconds = time.perf_counter() - started
    return phase


def deployment_env() -> dict:
    """Redis as broker and shared cache, as deployed (README "Deploying"): with the filesystem broker a
    worker polls for messages once a second, and each web process would ask for drains of its own."""
    redis_url = os.environ.get("SPENDWATCH_TEST_REDIS_URL")
    if not redis_url:
        sys.exit("bench: SPENDWATCH_TEST_REDIS_URL is not set (make bench starts Redis for this benchmark)")
    return {"CELERY_BROKER_URL": redis_url, "SPENDWATCH_CACHE_URL": redis_url.rsplit("/", 1)[0] + "/1"}


def start_worker(gunicorn: api_bench.Gunicorn) -> subprocess.Popen:
    """One Celery worker with the web processes' environment (database, broker, cache)."""
    env = {**gunicorn.env, "LOG_LEVEL": "WARNING"}
    command = [CELERY, "-A", "spendwatch", "worker", "--queues", "ingest,rollup", "--pool", "prefork",
               "--concurrency", "1", "--without-mingle", "--without-gossip", "--without-heartbeat",
               "--loglevel", "WARNING"]  # fmt: skip
    out = (VAR / "single-worker.log").open("wb")
    return subprocess.Popen(  # noqa: S603
        command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def ledger(server: ingest_bench.Server) -> dict:
    with ingest_bench.connect(server.params) as conn:
        facts = conn.execute("SELECT count(*), coalesce(sum(cost_nanos), 0) FROM usage_usagefact").fetchone()
        rollup = conn.execute(
            "SELECT coalesce(sum(fact_rows), 0), coalesce(sum(cost_nanos), 0) FROM usage_dailyrollup"
        ).fetchone()
        waiting = conn.execute(
            "SELECT (SELECT count(*) FROM ingestion_bufferedrequest WHERE run_id IS NULL),"
            " (SELECT count(*) FROM ingestion_ingestionrun WHERE status IN ('pending', 'running')),"
            " (SELECT count(*) FROM ingestion_ingestionrun)"
        ).fetchone()
    return {
        "facts": int(facts[0]),
        "cost_nanos": int(facts[1]),
        "rollup_rows": int(rollup[0]),
        "rollup_cost_nanos": int(rollup[1]),
        "bodies_waiting": int(waiting[0]),
        "runs_unfinished": int(waiting[1]),
        "runs": int(waiting[2]),
    }


def wait_for_drain(server: ingest_bench.Server, expected: int, timeout: float) -> tuple[float, dict]:
    started = time.perf_counter()
    while True:
        state = ledger(server)
        settled = state["bodies_waiting"] == 0 and state["runs_unfinished"] == 0
        if settled and state["facts"] >= expected:
            return time.perf_counter() - started, state
        if time.perf_counter() - started > timeout:
            return float("nan"), state
        time.sleep(0.25)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(timeout=10)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=None, help="E1 load duration (default 60)")
    parser.add_argument("--sync-seconds", type=float, default=None, help="synchronous contrast (default 10)")
    parser.add_argument("--reference-seconds", type=float, default=None, help="R_http duration (default 10)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent connections (default 32)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers (default 4)")
    parser.add_argument("--drain-timeout", type=float, default=600)
    parser.add_argument("--quick", action="store_true", help="15 s of load, 5 s per other phase")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when a goal is missed, not only a check"
    )
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (15 if args.quick else 60)
    args.sync_seconds = args.sync_seconds if args.sync_seconds is not None else (5 if args.quick else 10)
    args.reference_seconds = args.reference_seconds or (5 if args.quick else 10)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()
    if load_before[0] > 0.5:
        log(f"WARNING: load average {load_before[0]:.2f} before starting: other work shares these CPUs")
    server = ingest_bench.server_from_env()
    VAR.mkdir(parents=True, exist_ok=True)
    log(f"setting up {ingest_bench.BENCH_DB} on 127.0.0.1:{server.params['port']}")
    ingest_bench.recreate_database(server)
    ingest_bench.migrate(server)
    ingest_bench.setup_organisation(server, ingest_bench.World.build(1))
    key = api_bench.create_ingest_key()
    gunicorn = api_bench.Gunicorn(server, args.workers, extra_env=deployment_env())
    worker = start_worker(gunicorn)
    numbers = Numbers()
    jsonl = {"Content-Type": "application/x-ndjson"}
    buffered = {**jsonl, "Prefer": "respond-async"}
    try:
        gunicorn.wait_ready()
        log(f"gunicorn on 127.0.0.1:{gunicorn.port}: {args.workers} sync workers, one Celery worker; "
            f"{args.clients} clients")  # fmt: skip
        hammer(gunicorn.port, key, args.workers * 2, 2, "warm-up", lambda: ("GET", "/healthz", None, {}), 200)

        reference = hammer(gunicorn.port, key, args.clients, args.reference_seconds, "R_auth",
                           lambda: ("GET", "/api/v1/ingest/receipts/0/", None, {}), 404)  # fmt: skip
        log(f"R_auth: {reference.figures(404)['requests_s']:.0f} req/s")
        sync = hammer(gunicorn.port, key, args.clients, args.sync_seconds, "sync",
                      lambda: ("POST", URL_PATH, record(numbers.take()), jsonl), 200)  # fmt: skip
        sync_sent = numbers.taken
        log(f"synchronous: {sync.figures(200)['requests_s']:.0f} req/s")
        e1 = hammer(gunicorn.port, key, args.clients, args.seconds, "E1",
                    lambda: ("POST", URL_PATH, record(numbers.take()), buffered), 202)  # fmt: skip
        log(f"E1 (Prefer: respond-async): {e1.figures(202)['requests_s']:.0f} req/s; waiting for the drain")
        drain_s, state = wait_for_drain(server, numbers.taken, args.drain_timeout)
    finally:
        stop(worker)
        gunicorn.stop()
    # Every record sent was answered (a client counts a record only once it sent it); the ledger must
    # hold exactly the ones answered 200 or 202.
    accepted = sync.statuses.get(200, 0) + e1.statuses.get(202, 0)
    figures = {"R_auth": reference.figures(404), "sync": sync.figures(200), "E1": e1.figures(202)}
    e1_figures = figures["E1"]
    ratio = (
        e1_figures["requests_s"] / figures["R_auth"]["requests_s"]
        if figures["R_auth"]["requests_s"]
        else None
    )
    checks = {
        "no error answers": e1_figures["errors"] == 0 and figures["sync"]["errors"] == 0,
        "every record sent was answered": accepted == numbers.taken,
        "ledger facts = records accepted": state["facts"] == accepted,
        "ledger cost = records x cost, to the nano-dollar": state["cost_nanos"] == accepted * COST,
        "rollups = ledger": (state["rollup_rows"], state["rollup_cost_nanos"]) == (accepted, accepted * COST),
        "buffer drained, every run finished": state["bodies_waiting"] == 0 and state["runs_unfinished"] == 0,
    }
    goals = {
        f"E1 >= {GOAL_REQUESTS_S} req/s": e1_figures["requests_s"] >= GOAL_REQUESTS_S,
        f"E1 p99 < {GOAL_P99_S * 1000:.0f} ms": (e1_figures["p99_ms"] or 1e9) < GOAL_P99_S * 1000,
    }
    report = {
        "benchmark": "ingest-single-records",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git": ingest_bench.git_state(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },  # fmt: skip
        "args": vars(args),
        "figures": figures,
        "E1_over_R_auth": ratio,
        "sync_records_sent": sync_sent,
        "drain_after_load_s": drain_s,
        "ledger": state,
        "checks": checks,
        "goals": goals,
    }
    (VAR / "single.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(orjson.dumps({k: report[k] for k in ("figures", "E1_over_R_auth", "drain_after_load_s", "ledger",
                                               "checks", "goals")}, option=orjson.OPT_INDENT_2).decode())  # fmt: skip
    log(f"report: {VAR / 'single.json'}")
    failed = [name for name, ok in checks.items() if not ok]
    missed = [name for name, ok in goals.items() if not ok]
    for name in failed:
        log(f"CHECK FAILED: {name}")
    for name in missed:
        log(f"goal missed: {name}")
    return 1 if failed or (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
