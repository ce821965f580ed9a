"""Budget check API benchmark: p50/p99 at a fixed 500 req/s under gunicorn on loopback, also while an
ingestion runs, and a check that every answer given during the run was right.

    make bench                                             # DATABASE_URL set: a throwaway PostgreSQL
    .venv/bin/python bench/check_api.py [--rate 500] [--seconds 30] [--scale 0.25] [--ingest-rows 60000]

Without DATABASE_URL it runs on SQLite in a temporary directory. With DATABASE_URL (PostgreSQL on
127.0.0.1 only), it drops and creates a database `spendwatch_checkbench` next to the one named, and drops it
at the end. Either way: migrate, load the demo (which sets its budgets), create a gateway key, start
gunicorn on 127.0.0.1, then drive GET /api/v1/budgets/check/ with wrk.

How the rate is held: wrk 4.1 (Debian) has no fixed-rate mode, so a Lua script paces it. Each wrk thread
owns a schedule (one request every threads/rate seconds from its start, by CLOCK_MONOTONIC through LuaJIT's
FFI) and `delay()` returns the time until the next slot; with enough connections idle at every slot, a
slow answer does not hold back the next request, so the schedule is the offered rate and the latency wrk
reports (send to full response) is the latency at that rate. Sends that left more than 1 ms after their
slot are counted and reported ("late"); if more than 1 % were late the rate was not held and the figures
would understate the tail (coordinated omission), which the report then says. A reference phase at the
same rate on the same server (the check asked about nobody: key, middleware and JSON, no data) shows what
the machine itself allows: on a shared 2-core machine the tail is set by CPU contention, not by the lookup.

Correctness: the Lua script tallies every (scope, spent) answered. During the ingestion each must equal
that scope's ledger total before or after it (the state changes in one transaction); after it, every scope
answered must equal the ledger, recomputed here straight from the daily rollups, to the nano-dollar.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
GUNICORN = str(ROOT / ".venv" / "bin" / "gunicorn")
MANAGE = [PYTHON, str(ROOT / "manage.py")]
BENCH_DB = "spendwatch_checkbench"
GOAL_P99_MS = 10.0

LUA = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local paths = {PATHS}
local header = {["Authorization"] = "Bearer KEY"}
local interval = INTERVAL_MS
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  started = nil
  sent = 0
  late = 0
  worst_late = 0
  answers = {}
  bad = 0
  index = math.random(#paths)
end

function request()
  index = index % #paths + 1
  return wrk.format("GET", paths[index], header)
end

function delay()
  local now = now_ms()
  if started == nil then started = now end
  sent = sent + 1
  local wait = started + sent * interval - now
  if wait < -1 then
    late = late + 1
    if -wait > worst_late then worst_late = -wait end
  end
  if wait < 0 then return 0 end
  return wait
end

function response(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
    return
  end
  local scope = string.match(body, '"scope":"(.-)"') or "none"
  local spent = string.match(body, '"spent_usd":"(.-)"') or string.match(body, '"spent_tokens":(%-?%d+)') or "none"
  local key = scope .. "=" .. spent
  answers[key] = (answers[key] or 0) + 1
end

function done(summary, latency, requests)
  local merged, late_total, worst, bad_total = {}, 0, 0, 0
  for _, thread in ipairs(threads) do
    for key, count in pairs(thread:get("answers")) do merged[key] = (merged[key] or 0) + count end
    late_total = late_total + thread:get("late")
    bad_total = bad_total + thread:get("bad")
    if thread:get("worst_late") > worst then worst = thread:get("worst_late") end
  end
  local parts = {}
  for key, count in pairs(merged) do table.insert(parts, string.format("%q:%d", key, count)) end
  io.write(string.format(
    'BENCH {"late":%d,"worst_late_ms":%.1f,"non200":%d,"p50_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,' ..
    '"requests":%d,"seconds":%.3f,"errors":%d,"answers":{%s}}\n',
    late_total, worst, bad_total, latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    latency.max, summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status +
      summary.errors.timeout,
    table.concat(parts, ",")))
end
"""

LEDGER_SCRIPT = r"""
import json, sys
from django.db.models import Sum
from apps.budgets.models import LimitState, ScopeKind
from apps.budgets.selectors import TOKEN_SUM, team_tree, limit_covered_teams
from apps.usage.models import DailyRollup

# Each scope's spend in its period, summed from the daily rollups directly (not from the budget states).
result = {}
for state in LimitState.objects.select_related("limit"):
    limit = state.limit
    rows = DailyRollup.objects.filter(organisation_id=state.organisation_id, day__gte=state.period_start,
                                      day__lte=state.period_end)
    if limit.scope_kind == ScopeKind.TEAM:
        rows = rows.filter(team_id__in=limit_covered_teams(limit, team_tree(state.organisation_id)))
    elif limit.scope_kind == ScopeKind.TASK:
        rows = rows.filter(task_id=limit.task_id)
    else:
        rows = rows.filter(person_id=state.person_id or limit.person_id)
    total = rows.aggregate(cost=Sum("cost_nanos"), tokens=Sum(TOKEN_SUM))
    if state.unit == "usd":
        nanos = total["cost"] or 0
        value = f"{nanos // 10**9}.{nanos % 10**9:09d}"
    else:
        value = str(total["tokens"] or 0)
    result.setdefault(state.scope, set()).add(value)
print("LEDGER " + json.dumps({scope: sorted(values) for scope, values in result.items()}))
"""

SUBJECTS_SCRIPT = r"""
import json
from apps.budgets.models import CheckEntry, LimitState
from apps.org.models import Organisation, Person, Team, Task
org = Organisation.objects.get(slug="northwind")
people = list(Person.objects.filter(organisation=org, team__isnull=False).values_list("email", "team__slug"))
tasks = list(Task.objects.filter(organisation=org).values_list("key", flat=True))
print("SUBJECTS " + json.dumps({"people": people, "tasks": tasks}))
"""


def log(message: str) -> None:
    print(f"[check-bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(args: list[str], env: dict, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(args, env=env, cwd=ROOT, text=True, capture_output=True, **kwargs)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args[1:3])} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return done


def shell(script: str, env: dict, marker: str) -> dict:
    output = run([*MANAGE, "shell", "-c", script], env).stdout
    line = next(line for line in output.splitlines() if line.startswith(marker + " "))
    return json.loads(line[len(marker) + 1 :])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prepare_database(env: dict) -> str | None:
    """With DATABASE_URL: a fresh `spendwatch_checkbench` beside it (returns the admin URL to drop it)."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        return None
    import psycopg

    parts = urllib.parse.urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost"):
        sys.exit(f"refusing a database that is not on loopback: {parts.hostname}")
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {BENCH_DB}")
        connection.execute(f"CREATE DATABASE {BENCH_DB}")
    env["DATABASE_URL"] = urllib.parse.urlunsplit(parts._replace(path="/" + BENCH_DB))
    return url


def drop_database(admin_url: str | None) -> None:
    if admin_url:
        import psycopg

        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


def write_ingest_file(path: Path, people: list[str], rows: int, day: dt.date) -> None:
    """Gateway traffic for today, in the LiteLLM spend-log format (the demo's gateway)."""
    start = dt.datetime.combine(day, dt.time(9, 0), tzinfo=dt.UTC)
    with path.open("w") as handle:
        for n in range(rows):
            record = {
                "request_id": f"checkbench-{day.isoformat()}-{n}",
                "startTime": (start + dt.timedelta(milliseconds=200 * n)).isoformat(),
                "model": "gpt-4.1-mini-2025-04-14",
                "custom_llm_provider": "openai",
                "user": people[n % len(people)],
                "spend": 0.00052,
                "prompt_tokens": 1000,
                "completion_tokens": 100,
                "status": "success",
                "cache_hit": "False",
                "request_tags": [],
                "metadata": {
                    "usage_object": {
                        "prompt_tokens": 1000,
                        "completion_tokens": 100,
                        "prompt_tokens_details": {"cached_tokens": 200},
                        "completion_tokens_details": {"reasoning_tokens": 0},
                    },
                    "spend_logs_metadata": {},
                },
            }
            handle.write(json.dumps(record) + "\n")


def wrk(
    url: str, paths: list[str], key: str, rate: int, seconds: int, connections: int, threads: int, work: Path
):
    script = work / "paced.lua"
    lua_paths = ", ".join(json.dumps(path) for path in paths)
    script.write_text(
        LUA.replace("{PATHS}", "{" + lua_paths + "}")
        .replace("KEY", key)
        .replace("INTERVAL_MS", f"{1000.0 * threads / rate:.6f}")
    )
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "2s",
               "--latency", "-s", str(script), url]  # fmt: skip
    output = subprocess.run(command, check=True, text=True, capture_output=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("BENCH "))
    result = json.loads(line[len("BENCH ") :])
    result["rate"] = result["requests"] / result["seconds"]
    return result


def report(name: str, result: dict, rate: int) -> str:
    late_share = result["late"] / max(1, result["requests"])
    held = "held" if late_share <= 0.01 and result["rate"] >= 0.98 * rate else "NOT held"
    p99 = result["p99_us"] / 1000
    return (
        f"{name:<22} {result['rate']:7.1f} req/s (target {rate}, {held}; {result['late']} sends >1 ms late, "
        f"worst {result['worst_late_ms']:.1f} ms)  p50 {result['p50_us'] / 1000:6.2f} ms  p99 {p99:6.2f} ms  "
        f"p99.9 {result['p999_us'] / 1000:6.2f} ms  max {result['max_us'] / 1000:6.1f} ms  "
        f"non-200 {result['non200']}  socket errors {result['errors']}  "
        f"{'OK' if p99 <= GOAL_P99_MS else 'MISSED'} (goal p99 <= {GOAL_P99_MS:.0f} ms)"
    )


def split_answers(answers: dict[str, int]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for key in answers:
        scope, _, spent = key.rpartition("=")
        found.setdefault(scope, set()).add(spent)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=30, help="length of each measured phase")
    parser.add_argument("--scale", type=float, default=0.25, help="demo volume (1.0 = the full 90-day demo)")
    parser.add_argument(
        "--ingest-rows", type=int, default=60_000, help="rows ingested during the second phase"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker (gthread)")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")

    work = Path(tempfile.mkdtemp(prefix="spendwatch-checkbench-"))
    env = {
        **os.environ,
        "SPENDWATCH_VAR_DIR": str(work / "var"),
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        "CELERY_TASK_ALWAYS_EAGER": "1",  # alert delivery runs inline ...
        "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",  # ... and sends nothing
        "DJANGO_SETTINGS_MODULE": "spendwatch.settings",
    }
    env.pop("DATABASE_URL", None)
    admin_url = prepare_database(env)
    server = None
    try:
        log(f"database: {'PostgreSQL ' + BENCH_DB if admin_url else 'SQLite in ' + str(work)}")
        run([*MANAGE, "migrate", "-v0"], env)
        started = time.monotonic()
        demo = run([*MANAGE, "load_demo", "--scale", str(args.scale), "--directory", str(work / "demo")], env)
        budgets_line = next(line for line in demo.stdout.splitlines() if line.startswith("Budgets:"))
        log(f"demo loaded at scale {args.scale} in {time.monotonic() - started:.0f}s; {budgets_line}")
        key = run(
            [
                *MANAGE,
                "create_machine_key",
                "--organisation",
                "northwind",
                "--name",
                "bench",
                "--scope",
                "gateway",
            ],
            env,
        ).stdout.strip()
        subjects = shell(SUBJECTS_SCRIPT, env, "SUBJECTS")
        engineers = [
            email for email, team in subjects["people"] if team in ("platform", "payments", "mobile")
        ]
        paths = []
        for n, (email, team) in enumerate(subjects["people"]):
            task = subjects["tasks"][n % len(subjects["tasks"])]
            query = {"person": email, "team": team, "task": task, "model": "gpt-4.1-mini"}
            paths.append("/api/v1/budgets/check/?" + urllib.parse.urlencode(query))

        port = free_port()
        command = [GUNICORN, "spendwatch.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(args.workers), "-k", "gthread",
                   "--threads", str(args.threads), "--keep-alive", "30", "--log-level", "warning"]  # fmt: skip
        server = subprocess.Popen(command, env=env, cwd=ROOT)
        base = f"http://127.0.0.1:{port}"
        probe = urllib.request.Request(base + paths[0], headers={"Authorization": f"Bearer {key}"})
        for _ in range(100):
            try:
                urllib.request.urlopen(probe, timeout=1).read()
                break
            except OSError:  # not listening yet
                time.sleep(0.1)
        log(
            f"gunicorn on 127.0.0.1:{port}: {args.workers} workers x {args.threads} threads; {len(paths)} queries"
        )

        wrk(base, paths, key, args.rate, 5, args.connections, 1, work)  # warm-up: caches, connections
        # Reference, same server and rate: the same view asked about nobody (key, middleware, JSON; no data).
        reference = wrk(
            base, ["/api/v1/budgets/check/"], key, args.rate, args.seconds, args.connections, 1, work
        )
        steady = wrk(base, paths, key, args.rate, args.seconds, args.connections, 1, work)
        before = shell(LEDGER_SCRIPT, env, "LEDGER")

        today = dt.datetime.now(dt.UTC).date()
        ingest_file = work / "live.jsonl"
        write_ingest_file(ingest_file, engineers, args.ingest_rows, today)
        ingest = subprocess.Popen(
            [*MANAGE, "ingest", "--format", "litellm_spend_logs", "--source", "bench-live", str(ingest_file)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        ingest_started = time.monotonic()
        during = wrk(base, paths, key, args.rate, args.seconds, args.connections, 1, work)
        summary = ingest.communicate()[0].strip()
        ingest_seconds = time.monotonic() - ingest_started
        after = shell(LEDGER_SCRIPT, env, "LEDGER")
        final = wrk(base, paths, key, args.rate, 5, args.connections, 1, work)

        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
        print(
            f"Budget check API at {args.rate} req/s, gunicorn {args.workers}x{args.threads} gthread, wrk paced; "
            f"load average {load} (2 cores: above 1.0 the machine was shared with other work)"
        )
        print(report("reference (no lookup)", reference, args.rate))
        print(report("steady", steady, args.rate))
        print(report("during ingestion", during, args.rate))
        print(
            f"ingestion: {summary} in {ingest_seconds:.1f}s (finished {'within' if ingest_seconds < args.seconds else 'after'} the phase)"
        )

        failures = []
        for name, result, allowed in (
            ("steady", steady, before),
            ("during", during, None),
            ("after", final, after),
        ):
            for scope, spent_values in split_answers(result["answers"]).items():
                if scope == "none":
                    continue
                valid = (
                    set(after.get(scope, [])) | set(before.get(scope, []))
                    if allowed is None
                    else set(allowed.get(scope, []))
                )
                wrong = spent_values - valid
                if wrong:
                    failures.append(f"{name}: {scope} answered {sorted(wrong)}, ledger {sorted(valid)}")
        changed = sum(1 for scope in after if after[scope] != before.get(scope))
        answered = len({s for s in split_answers(during["answers"]) if s != "none"})
        print(f"correctness: {answered} scopes answered during the ingestion, {changed} of them changed spend; "
              f"{'every answer equals the ledger before or after it' if not failures else 'WRONG ANSWERS'}")  # fmt: skip
        for failure in failures[:20]:
            print("  " + failure)
        return 1 if failures or during["non200"] or steady["non200"] else 0
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        drop_database(admin_url)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
