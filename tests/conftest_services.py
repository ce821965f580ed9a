"""Fixtures for tests that need real services: a Redis broker and real `celery worker` processes.

`make test` runs the suite twice: on SQLite with no services (these fixtures skip their tests), then on
a throwaway PostgreSQL and Redis started by scripts/with_services.sh, which exports DATABASE_URL and
SPENDWATCH_TEST_REDIS_URL (these fixtures run). By hand:

    scripts/with_services.sh --pg --redis -- .venv/bin/pytest tests/integration

tests/integration/conftest.py imports the fixtures below; to offer them to the whole suite instead, add
`pytest_plugins = ["tests.conftest_services"]` to tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

import kombu.pools
import pytest

REDIS_URL_ENV = "SPENDWATCH_TEST_REDIS_URL"
BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_QUEUES = ("ingest", "rollup")


def database_url_for(settings_dict: dict) -> str | None:
    """A DATABASE_URL naming the database of `settings_dict` (after pytest-django: the TEST database).

    None when another process cannot open it (an in-memory SQLite database) or the engine is unknown.
    """
    engine = settings_dict["ENGINE"]
    name = str(settings_dict["NAME"])
    if engine.endswith("postgresql"):
        user = quote(settings_dict.get("USER") or "", safe="")
        password = quote(settings_dict.get("PASSWORD") or "", safe="")
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = settings_dict.get("HOST") or "127.0.0.1"
        port = settings_dict.get("PORT") or 5432
        options = {k: v for k, v in (settings_dict.get("OPTIONS") or {}).items() if isinstance(v, str | int)}
        query = f"?{urlencode(options)}" if options else ""
        return f"postgres://{auth}{host}:{port}/{quote(name, safe='')}{query}"
    if engine.endswith("sqlite3"):
        if name == ":memory:" or name.startswith("file:") or "mode=memory" in name:
            return None
        # Absolute path: sqlite:////abs/path.sqlite3 (dj-database-url keeps the leading slash).
        return f"sqlite:///{Path(name).resolve()}"
    return None


def flush_redis(url: str) -> None:
    """Empty the Redis database of `url`: queued tasks, unacked messages and bindings from earlier tests."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=10)
    try:
        client.flushdb()
    finally:
        client.close()


@contextlib.contextmanager
def app_using_broker(app, url: str) -> Iterator[None]:
    """Point a Celery app of this (test) process at another broker for a while, then back.

    Code under test that calls `task.delay()` then reaches the real worker. Celery caches its broker
    connections (connection pool, producer pool, and the control mailbox's producer pool), so those are
    dropped on the way in and on the way out.
    """
    keys = ("broker_url", "broker_transport_options", "task_always_eager")
    saved = {key: app.conf[key] for key in keys}

    def drop_cached_connections() -> None:
        # kombu keeps its pools in a registry keyed by broker URL: closing one and leaving it there would
        # hand the next test a closed pool. reset() closes them all and empties the registry.
        kombu.pools.reset()
        app._pool = None
        if "amqp" in app.__dict__:
            app.__dict__["amqp"]._producer_pool = None
        app.__dict__.pop("control", None)

    drop_cached_connections()
    app.conf.broker_url = url
    # As settings.py sets it for a Redis broker.
    app.conf.broker_transport_options = {
        "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600"))
    }
    app.conf.task_always_eager = False
    try:
        yield
    finally:
        drop_cached_connections()
        for key, value in saved.items():
            app.conf[key] = value


class WorkerProcess:
    """A running `celery worker` subprocess (see the `celery_worker_process` fixture)."""

    def __init__(self, popen: subprocess.Popen, nodename: str, log_path: Path, env: dict[str, str]):
        self.popen = popen
        self.nodename = nodename
        self.log_path = log_path
        self.env = env

    @property
    def pid(self) -> int:
        """Pid of the worker's main process (its pool processes are its children)."""
        return self.popen.pid

    def is_alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the main process only: SIGKILL simulates a crash, SIGTERM a warm shutdown."""
        if self.is_alive():
            os.kill(self.pid, sig)

    def child_pids(self) -> list[int]:
        """Pids of the main process's children (the prefork pool), to kill one mid-task."""
        children: list[int] = []
        for task in Path(f"/proc/{self.pid}/task").glob("*"):
            with contextlib.suppress(OSError):
                children += [int(pid) for pid in (task / "children").read_text().split()]
        return children

    def wait(self, timeout: float = 30) -> int:
        """Wait for the worker to exit; returns its exit code."""
        return self.popen.wait(timeout=timeout)

    def log_text(self) -> str:
        """Everything the worker wrote so far (stdout and stderr, INFO level)."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, text: str, timeout: float = 30) -> str:
        """Wait until `text` appears in the log; returns the log. Fails with the log if it does not."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log_text()
            if text in log:
                return log
            if not self.is_alive():
                pytest.fail(
                    f"worker {self.nodename} exited ({self.popen.returncode}) before logging "
                    f"{text!r}; its log:\n{log}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"worker {self.nodename} did not log {text!r} in {timeout}s; its log:\n{log}")
            time.sleep(0.1)

    def stop(self, timeout: float = 20) -> None:
        """Warm shutdown of the whole process group (main process and pool), then kill what is left."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        # Pool processes orphaned by a killed main process stay in the group: kill them too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the test Redis, from SPENDWATCH_TEST_REDIS_URL; skips the test when it is not set."""
    url = os.environ.get(REDIS_URL_ENV)
    if not url:
        pytest.skip(
            f"{REDIS_URL_ENV} is not set: this test needs Redis (`make test` starts one for the "
            f"PostgreSQL pass; by hand: scripts/with_services.sh --pg --redis -- .venv/bin/pytest)"
        )
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"{REDIS_URL_ENV}={url} is set but Redis does not answer: {exc}")
    finally:
        client.close()
    return url


@pytest.fixture
def celery_worker_process(
    redis_url: str, transactional_db: None, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory: start REAL `celery -A spendwatch worker` processes on the test Redis and test database.

    Tests that use it must be marked `@pytest.mark.django_db(transaction=True)`: the worker is another
    process with its own connection and sees only committed data, never the data of a test wrapped in a
    transaction. (The fixture requests `transactional_db` itself, so the test database is transactional
    even if the mark is forgotten; the mark makes that visible to the reader.)

        def test_x(celery_worker_process):
            worker = celery_worker_process()                 # returns once the worker logged "ready"
            some_task.delay(...)                              # reaches it: the app points at Redis
            worker.wait_for_log("succeeded")
            worker.kill(signal.SIGKILL); worker.log_text(); worker.pid; worker.child_pids()

    Arguments: queues (default ingest, rollup), concurrency (1), pool ("prefork"), env (extra variables
    for the worker, e.g. {"CELERY_VISIBILITY_TIMEOUT": "5"}), include (extra modules with tasks the worker
    imports), extra_args, ready_timeout (60 s).

    Each test starts from an empty Redis database (flushed before and after), so queued or unacked
    messages never leak between tests. While the test runs, the project's Celery app in this process
    sends to that Redis (not the filesystem broker) and is not eager. Every worker started is stopped
    (its whole process group) at teardown, before the test database is flushed.
    """
    from django.conf import settings
    from django.db import connection

    from spendwatch.celery import app

    database_url = database_url_for(connection.settings_dict)
    if database_url is None:
        pytest.skip(f"the test database ({connection.settings_dict['NAME']}) cannot be shared with a worker")

    flush_redis(redis_url)
    workers: list[WorkerProcess] = []

    def start(
        queues: Iterable[str] = DEFAULT_QUEUES,
        concurrency: int = 1,
        pool: str = "prefork",
        env: dict[str, str] | None = None,
        include: Iterable[str] = (),
        extra_args: Iterable[str] = (),
        ready_timeout: float = 60,
    ) -> WorkerProcess:
        nodename = f"sw-test-{uuid.uuid4().hex[:8]}@localhost"
        worker_env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "spendwatch.settings"),
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": redis_url,
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "SPENDWATCH_VAR_DIR": str(settings.VAR_DIR),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(BASE_DIR), os.environ.get("PYTHONPATH")])),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        command = [
            sys.executable, "-m", "celery", "-A", "spendwatch", "worker",
            "--queues", ",".join(queues), "--pool", pool, "--concurrency", str(concurrency),
            "--hostname", nodename, "--loglevel", "INFO",
            # No waiting for or chatting with other workers: faster start, and tests stay independent.
            "--without-mingle", "--without-gossip", "--without-heartbeat",
        ]  # fmt: skip
        if include:
            command += ["--include", ",".join(include)]
        command += list(extra_args)
        log_path = tmp_path / f"worker-{len(workers) + 1}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                command,
                cwd=BASE_DIR,
                env=worker_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: teardown stops the pool with it
            )
        worker = WorkerProcess(popen, nodename, log_path, worker_env)
        workers.append(worker)
        worker.wait_for_log(f"{nodename} ready.", timeout=ready_timeout)
        return worker

    with app_using_broker(app, redis_url):
        try:
            yield start
        finally:
            for worker in workers:
                worker.stop()
            flush_redis(redis_url)
