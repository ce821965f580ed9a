"""The per-key request rate holds across worker processes (TESTPLAN D4).

D4 runs 4 real processes (subprocesses running the pull service, as a Celery worker's pool children
would) against the same SQLite file database, each pulling its own source with the same admin key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Count

from apps.ingestion import ratelimit
from apps.ingestion.models import PullSource
from apps.usage.models import UsageFact
from tests.ingestion.pulls.conftest import CANARY, KEY_A, NOW, OPENAI_USAGE_PAGES
from tests.ingestion.pulls.fakeprovider import Reply, Seen

ROOT = Path(__file__).resolve().parents[3]
PAGE_2 = json.loads(OPENAI_USAGE_PAGES[1].read_bytes())
PAGES_PER_PULL = 6
RATE = 4  # requests per second per key

WORKER = """
import datetime, json, sys
import django
django.setup()
from apps.ingestion import pulls
result = pulls.pull_run(source_id=int(sys.argv[1]), now=datetime.datetime.fromisoformat(sys.argv[2]))
print(json.dumps(result.summary()))
"""


def database_url() -> str:
    """The test database, for the worker processes (SQLite file or the throwaway PostgreSQL)."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    return f"postgres://{settings['USER']}:{settings['PASSWORD']}@{settings['HOST']}:{settings['PORT']}/{settings['NAME']}"


def most_in_any_second(arrivals: list[float]) -> int:
    arrivals = sorted(arrivals)
    return max(sum(1 for later in arrivals[i:] if later < start + 1.0) for i, start in enumerate(arrivals))


def test_reservations_are_spaced_by_the_interval_whatever_the_caller(db):
    clock = iter([100.0, 100.0, 100.0, 100.2, 105.0])
    waits = [ratelimit.reserve("key", interval=0.25, clock=lambda: next(clock)) for _ in range(5)]

    assert waits == pytest.approx([0.0, 0.25, 0.5, 0.55, 0.0])
    assert ratelimit.interval_seconds(4, 100) == pytest.approx(0.275)


def test_most_in_any_second_counts_a_sliding_window():
    assert most_in_any_second([0.0, 0.5, 0.99, 1.0, 1.2]) == 4  # [0.5, 1.5) holds four
    assert most_in_any_second([0.0, 1.0, 2.0]) == 1


@pytest.mark.django_db(transaction=True)
def test_d4_four_processes_with_one_key_never_exceed_its_rate(make_pull_source, fake_provider, tmp_path):
    def handler(seen: Seen) -> Reply:
        number = int((seen.param("page") or "p1")[1:])
        if number < PAGES_PER_PULL:
            return Reply(200, {"object": "page", "data": [], "has_more": True, "next_page": f"p{number + 1}"})
        return Reply(200, PAGE_2)  # the last page: 5 August's 7 rows

    server = fake_provider(handler)
    sources = [make_pull_source(server.url, name=f"org-{n}") for n in range(4)]
    assert len({source.credential_fingerprint for source in PullSource.objects.all()}) == 1
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "spendwatch.settings",
        "DATABASE_URL": database_url(),
        "SPENDWATCH_VAR_DIR": str(tmp_path / "var"),
        "SPENDWATCH_CREDENTIAL_KEYS": KEY_A,
        "SPENDWATCH_PULL_REQUESTS_PER_SECOND": str(RATE),
        "SPENDWATCH_PULL_RATE_MARGIN_MS": "100",
    }

    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(source.pk), NOW.isoformat()],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for source in sources
    ]
    outputs = [worker.communicate(timeout=120) for worker in workers]

    assert [worker.returncode for worker in workers] == [0, 0, 0, 0], [err[-2000:] for _, err in outputs]
    assert [json.loads(out)["status"] for out, _ in outputs] == ["ok"] * 4
    arrivals = server.times()
    assert len(arrivals) == 4 * PAGES_PER_PULL
    assert most_in_any_second(arrivals) <= RATE
    # Without the shared limit, 24 requests would have arrived in well under a second.
    assert max(arrivals) - min(arrivals) >= (len(arrivals) - 1) / RATE
    assert {seen.headers["authorization"] for seen in server.requests} == {f"Bearer {CANARY}"}
    assert UsageFact.objects.aggregate(rows=Count("id")) == {"rows": 4 * 7}
