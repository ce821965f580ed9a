"""Integration tests: real services (Redis, a real celery worker process) next to the test database.

The fixtures live in tests/conftest_services.py (see its docstring); importing them here makes them
available to every test in this folder. Without SPENDWATCH_TEST_REDIS_URL (the SQLite pass of
`make test`) the tests that need Redis skip themselves; the PostgreSQL pass runs them.
"""

import glob
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest_services import celery_worker_process, redis_url

__all__ = ["celery_worker_process", "redis_url"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder carries the `integration` marker (select or skip with -m)."""
    here = __file__.rsplit("/", 1)[0]
    for item in items:
        if str(item.path).startswith(here + "/"):
            item.add_marker(pytest.mark.integration)


class PostgresCluster:
    """The PostgreSQL cluster that scripts/pg.sh started for this test run, to stop and start it (B3)."""

    def __init__(self, data: Path, log: Path, pg_ctl: str) -> None:
        self.data = data
        self.log = log
        self.pg_ctl = pg_ctl

    def _ctl(self, *args: str, check: bool = True) -> int:
        command = [self.pg_ctl, "-D", str(self.data), *args]
        if os.geteuid() == 0:  # the server runs as the postgres user (see scripts/pg.sh)
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, cwd="/", capture_output=True, text=True, timeout=120)  # noqa: S603
        if check and done.returncode:
            pytest.fail(f"{' '.join(command)} exited {done.returncode}: {done.stdout}{done.stderr}")
        return done.returncode

    def stop(self) -> None:
        """Fast shutdown: every session is ended and its open transaction rolled back, as in a restart."""
        self._ctl("-m", "fast", "-w", "-t", "60", "stop")

    def start(self) -> None:
        """Start on the same port and data; returns once it accepts connections."""
        self._ctl("-l", str(self.log), "-w", "-t", "60", "start")

    def is_running(self) -> bool:
        return self._ctl("status", check=False) == 0


def _pg_ctl() -> str | None:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: [int(n) for n in re.findall(r"\d+", p)]
    )
    return candidates[-1] if candidates else shutil.which("pg_ctl")


@pytest.fixture
def postgres_cluster(transactional_db: None) -> Iterator[PostgresCluster]:
    """The test database's PostgreSQL cluster, when scripts/pg.sh (scripts/with_services.sh) started it.

    Found by its port among the state directories under var/services.*/pg (or SPENDWATCH_TEST_PG_STATE,
    a directory given to `scripts/pg.sh start`). Skips otherwise: restarting someone else's server is
    never done. If a test leaves the server stopped, it is started again at teardown.
    """
    from django.conf import settings
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("needs the PostgreSQL that scripts/with_services.sh --pg starts")
    port = str(connection.settings_dict.get("PORT") or 5432)
    states = (
        [Path(os.environ["SPENDWATCH_TEST_PG_STATE"])] if os.environ.get("SPENDWATCH_TEST_PG_STATE") else []
    )
    states += sorted(Path(settings.VAR_DIR).glob("services.*/pg"))
    state = next(
        (s for s in states if (s / "port").is_file() and (s / "port").read_text().strip() == port), None
    )
    pg_ctl = _pg_ctl()
    if state is None or pg_ctl is None:
        pytest.skip(f"no cluster started by scripts/pg.sh listens on port {port}")
    base = Path((state / "base").read_text().strip())
    cluster = PostgresCluster(base / "data", base / "postgres.log", pg_ctl)
    yield cluster
    if not cluster.is_running():
        cluster.start()
    connection.close()
