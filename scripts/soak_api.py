"""E7 soak (TESTPLAN): the ingest API at a steady rate for SOAK_MINUTES; run by scripts/soak.sh.

    scripts/with_services.sh --pg --redis -- .venv/bin/python scripts/soak_api.py

gunicorn (sync workers, as bench/api.py starts it) serves the real app against PostgreSQL on 127.0.0.1,
with one Celery worker and Redis (bench/single.py's deployment); this process POSTs one LiteLLM record per
request with `Prefer: respond-async` (SOAK_BUFFERED=0: synchronously) at SOAK_RATE requests/s (default
150, half E1's 300) from SOAK_CLIENTS keep-alive connections. After a one-minute warm-up (or a tenth of the run, whichever is
shorter) it measures the resident memory of gunicorn's processes and the database's sessions, and again
at the end. Pass: RSS growth < 10 %, 0 errors, sessions at the end <= sessions after the warm-up, and the
ledger holds exactly the rows sent. Prints one JSON report; exits 1 if a check fails.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import threading
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import api as api_bench  # noqa: E402 - bench/api.py: gunicorn, the machine key
import run as ingest_bench  # noqa: E402 - bench/run.py: the database and organisation set-up
import single as single_bench  # noqa: E402 - bench/single.py: the worker, Redis, the drain wait

MINUTES = float(os.environ.get("SOAK_MINUTES", "30"))
RATE = float(os.environ.get("SOAK_RATE", "150"))
CLIENTS = int(os.environ.get("SOAK_CLIENTS", "8"))
WORKERS = int(os.environ.get("SOAK_GUNICORN_WORKERS", "4"))
# As a gateway pushing each request would: `Prefer: respond-async`, drained by a real worker (0: a run per
# request, synchronously).
BUFFERED = os.environ.get("SOAK_BUFFERED", "1") != "0"
URL_PATH = f"/api/v1/ingest/{ingest_bench.FORMAT}/?source={ingest_bench.SOURCE}"
COST = 500_000  # nano-dollars of the record below (gpt-4.1-mini, 800 uncached + 200 cached + 100 output)


def record(n: int) -> bytes:
    """bench/single.py's record: live traffic, each of the last hour."""
    return single_bench.record(n)


def group_rss_kib(leader: int) -> int:
    """Resident memory of the process group led by `leader` (gunicorn's master and its workers)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == leader:  # pgrp
                status = (stat.parent / "status").read_text()
                total += int(
                    next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))
                )
        except (OSError, StopIteration, ValueError, IndexError):
            continue
    return total


def sessions(server) -> int:
    with ingest_bench.connect(server.admin_params) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [ingest_bench.BENCH_DB]
        ).fetchone()
    return int(row[0])


class Load:
    """CLIENTS threads sharing one schedule: request n is due at start + n / RATE."""

    def __init__(self, port: int, key: str) -> None:
        self.port = port
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"}
        if BUFFERED:
            self.headers["Prefer"] = "respond-async"
        self.lock = threading.Lock()
        self.next = 0
        self.sent = 0
        self.errors: list[str] = []
        self.stop_at = 0.0
        self.start = 0.0

    def take(self) -> int | None:
        with self.lock:
            n = self.next
            self.next += 1
        due = self.start + n / RATE
        if (
            due >= self.stop_at or time.monotonic() >= self.stop_at
        ):  # a server that falls behind: stop on time
            return None
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        return n

    def client(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            while (n := self.take()) is not None:
                try:
                    connection.request("POST", URL_PATH, body=record(n), headers=self.headers)
                    response = connection.getresponse()
                    body = response.read()
                    if BUFFERED:
                        ok = response.status == 202
                    else:
                        ok = response.status == 200 and orjson.loads(body)["accepted"] == 1
                except (OSError, http.client.HTTPException, ValueError) as error:
                    ok, body = False, repr(error).encode()
                    connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                with self.lock:
                    self.sent += 1
                    if not ok:
                        self.errors.append(f"request {n}: {body[:200]!r}")
        finally:
            connection.close()

    def run(self, seconds: float) -> None:
        self.start = time.monotonic()
        self.stop_at = self.start + seconds
        threads = [threading.Thread(target=self.client) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def main() -> int:
    server = ingest_bench.server_from_env()
    ingest_bench.recreate_database(server)
    ingest_bench.migrate(server)
    ingest_bench.setup_organisation(server, ingest_bench.World.build(7))
    key = api_bench.create_ingest_key()
    gunicorn = api_bench.Gunicorn(
        server, WORKERS, extra_env=single_bench.deployment_env() if BUFFERED else None
    )
    worker = single_bench.start_worker(gunicorn) if BUFFERED else None
    drain_s = 0.0
    try:
        gunicorn.wait_ready()
        api_bench.warm_up(gunicorn.port, key, WORKERS)
        load = Load(gunicorn.port, key)
        total = MINUTES * 60
        warm = min(60.0, total / 10)
        thread = threading.Thread(target=load.run, args=(total,))
        thread.start()
        time.sleep(warm)
        rss_start, sessions_start = group_rss_kib(gunicorn.process.pid), sessions(server)
        thread.join()
        time.sleep(1)
        rss_end, sessions_end = group_rss_kib(gunicorn.process.pid), sessions(server)
        if BUFFERED:
            drain_s, _ = single_bench.wait_for_drain(server, load.sent, timeout=600)
    finally:
        if worker is not None:
            single_bench.stop(worker)
        gunicorn.stop()
    with ingest_bench.connect(server.params) as conn:
        rows, cost = conn.execute(
            "SELECT count(*), coalesce(sum(cost_nanos), 0) FROM usage_usagefact"
        ).fetchone()
    ingest_bench.drop_database(server)
    growth = (rss_end - rss_start) / rss_start if rss_start else 0.0
    report = {
        "minutes": MINUTES,
        "buffered": BUFFERED,
        "drain_after_load_s": round(drain_s, 2),
        "rate_target": RATE,
        "rate_achieved": round(load.sent / total, 1),
        "requests": load.sent,
        "errors": len(load.errors),
        "first_errors": load.errors[:5],
        "rss_kib_after_warm_up": rss_start,
        "rss_kib_at_end": rss_end,
        "rss_growth_pct": round(growth * 100, 2),
        "db_sessions_after_warm_up": sessions_start,
        "db_sessions_at_end": sessions_end,
        "fact_rows": rows,
        "fact_cost_nanos": int(cost),
    }
    checks = {
        "rss growth < 10 %": growth < 0.10,
        "0 errors": not load.errors,
        "no connection leak": sessions_end <= sessions_start,
        "rate within 5 % of the target": load.sent >= 0.95 * RATE * total,
        "every accepted row stored once": (rows, int(cost)) == (load.sent, load.sent * COST),
    }
    report["checks"] = checks
    print(json.dumps(report, indent=2))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
