"""Redis (the broker) restarts with tasks queued and one running (TESTPLAN B4).

The test Redis keeps nothing on disk (scripts/redis.sh: no RDB, no AOF), so a restart loses every
queued and unacknowledged message: the harshest case. The database is what remembers the runs: beat's
sweeper (spendwatch/celery.py, every SPENDWATCH_RUN_SWEEP_SECONDS) re-enqueues each run that is pending,
or running without a fresh heartbeat, for longer than SPENDWATCH_RUN_STALE_SECONDS. With the stale time
at most the sweep interval, every run is finished within 2 × the sweep interval of the broker's return.

Real processes: a `celery worker` and a `celery beat`, both on the test Redis, which this test stops and
starts again on the same port. `make soak` repeats the restart SPENDWATCH_B4_RESTARTS times.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db.models import Count, Sum

from apps.ingestion.models import RunStatus
from apps.ingestion.services import run_create, source_get_or_create
from apps.ingestion.tasks import process_run
from apps.usage.models import DailyRollup, UsageFact
from tests.conftest import litellm_record, write_jsonl
from tests.integration.waiting import state_of, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

SWEEP_SECONDS = 8
STALE_SECONDS = 3  # at most SWEEP_SECONDS: a lost run is found by the first sweep after the restart
BIG_ROWS = 20_000
SMALL_ROWS = 500
COST = 500_000  # nano-dollars per litellm_record
RESTARTS = int(os.environ.get("SPENDWATCH_B4_RESTARTS", "1"))
WORKER_ENV = {
    "SPENDWATCH_INGEST_BATCH_ROWS": "2000",
    "SPENDWATCH_RUN_STALE_SECONDS": str(STALE_SECONDS),
    "SPENDWATCH_RUN_SWEEP_SECONDS": str(SWEEP_SECONDS),
}


class RedisServer:
    """The Redis that scripts/redis.sh started for this test run, stopped and started on the same port."""

    def __init__(self, state: Path, port: int) -> None:
        self.state = state
        self.port = port

    def _cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(  # noqa: S603 - fixed arguments
            ["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), *args],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=10,
        )

    def ping(self) -> bool:
        return self._cli("ping").stdout.strip() == "PONG"

    def stop(self) -> None:
        """SHUTDOWN NOSAVE: the server and everything it held are gone (queued and unacked messages)."""
        self._cli("shutdown", "nosave")
        deadline = time.monotonic() + 10
        while self.ping():
            assert time.monotonic() < deadline, "Redis did not stop"
            time.sleep(0.1)

    def start(self) -> None:
        """As scripts/redis.sh starts it, on the same port, pidfile and log (its `stop` still finds it)."""
        subprocess.run(  # noqa: S603
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly",  # noqa: S607
             "no", "--daemonize", "yes", "--pidfile", str(self.state / "redis.pid"), "--logfile",
             str(self.state / "redis.log"), "--dir", str(self.state), "--protected-mode", "yes"],
            check=True,
            timeout=30,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not self.ping():
            assert time.monotonic() < deadline, "Redis did not start again"
            time.sleep(0.1)

    def restart(self, down_seconds: float = 1.0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()


@pytest.fixture
def redis_server(redis_url: str) -> Iterator[RedisServer]:
    """The test Redis when scripts/with_services.sh started it (found by its port); skips otherwise."""
    port = urlsplit(redis_url).port
    states = sorted(Path(settings.VAR_DIR).glob("services.*/redis"))
    state = next(
        (s for s in states if (s / "port").is_file() and (s / "port").read_text().strip() == str(port)), None
    )
    if state is None:
        pytest.skip(f"no Redis started by scripts/redis.sh listens on port {port}")
    server = RedisServer(state, port)
    yield server
    if not server.ping():
        server.start()


@pytest.fixture
def celery_beat_process(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], subprocess.Popen]]:
    """Factory: a real `celery beat` with the worker's environment (pass worker.env); stopped at teardown."""
    started: list[subprocess.Popen] = []

    def start(env: dict[str, str]) -> subprocess.Popen:
        log = (tmp_path / "beat.log").open("wb")
        command = [sys.executable, "-m", "celery", "-A", "spendwatch", "beat", "--loglevel", "INFO",
                   "--schedule", str(tmp_path / "beat-schedule")]  # fmt: skip
        popen = subprocess.Popen(  # noqa: S603
            command, cwd=env["PYTHONPATH"].split(os.pathsep)[0], env=env, stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        started.append(popen)
        return popen

    yield start
    for popen in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGTERM)
        try:
            popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait(timeout=5)


def test_runs_queued_and_running_during_a_broker_restart_all_finish_from_the_database(
    celery_worker_process, celery_beat_process, redis_server, acme, tmp_path
):
    worker = celery_worker_process(concurrency=2, env=WORKER_ENV)
    beat = celery_beat_process(worker.env)
    beat_log = tmp_path / "beat.log"
    wait_until(lambda: "beat: Starting..." in beat_log.read_text(errors="replace"), 60, "beat to start")
    expected_rows = 0

    for restart in range(RESTARTS):
        big_file = write_jsonl(
            tmp_path / f"big-{restart}.jsonl",
            (
                litellm_record(f"big-{restart}-{i}", startTime=f"2026-08-{1 + i % 28:02d}T10:00:00+00:00")
                for i in range(BIG_ROWS)
            ),
        )
        gateway = source_get_or_create(organisation=acme, name="gateway", format="litellm_spend_logs")
        runs = [run_create(source=gateway, format="litellm_spend_logs", paths=[big_file])]
        for n in range(4):
            records = [litellm_record(f"small-{restart}-{n}-{i}") for i in range(SMALL_ROWS)]
            source = source_get_or_create(organisation=acme, name=f"team-{n}", format="litellm_spend_logs")
            path = write_jsonl(tmp_path / f"small-{restart}-{n}.jsonl", records)
            runs.append(run_create(source=source, format="litellm_spend_logs", paths=[path]))
        expected_rows += BIG_ROWS + 4 * SMALL_ROWS

        big_id = runs[0].pk
        process_run.delay(big_id)
        wait_until(lambda big_id=big_id: state_of(big_id).rows >= 2_000, 60, "the big run to be under way")
        for run in runs[1:]:
            process_run.delay(run.pk)  # queued behind it (and one small run beside it, concurrency 2)

        redis_server.restart()
        back = time.monotonic()
        print(f"restart {restart + 1}: broker back at {time.time():.3f}")

        deadline = 2 * SWEEP_SECONDS
        try:
            for run in runs:
                wait_until(
                    lambda run=run: state_of(run.pk).status in (RunStatus.COMPLETED, RunStatus.FAILED),
                    deadline - (time.monotonic() - back),
                    f"run {run.pk} to finish within 2 × the sweep interval ({deadline}s) of the broker's return",
                )
        except AssertionError:
            print(
                "worker log:", worker.log_text(), "beat log:", (tmp_path / "beat.log").read_text(), sep="\n"
            )
            raise
        finished_after = time.monotonic() - back
        print(f"restart {restart + 1}: every run finished {finished_after:.1f}s after the broker was back")
        for run in runs:
            done = state_of(run.pk)
            assert done.status == RunStatus.COMPLETED, done.error
            rows = BIG_ROWS if run.pk == runs[0].pk else SMALL_ROWS
            assert (done.rows, done.accepted, done.duplicates, done.rejected) == (rows, rows, 0, 0)
        assert finished_after < deadline
        assert worker.is_alive() and beat.poll() is None

    totals = UsageFact.objects.aggregate(rows=Count("id"), cost=Sum("cost_nanos"))
    assert totals == {"rows": expected_rows, "cost": expected_rows * COST}
    assert UsageFact.objects.values("source_id", "record_key").distinct().count() == expected_rows
    assert DailyRollup.objects.aggregate(rows=Sum("fact_rows"), cost=Sum("cost_nanos")) == totals
    assert "Sending due task sweep-stuck-ingestion-runs" in beat_log.read_text(errors="replace")
