"""The same batch POSTed by 8 clients at once to a real server: one copy of each row, no 5xx (TESTPLAN A4)."""

import threading
import urllib.error
import urllib.request

import orjson
import pytest
from django.db.models import Count, Sum

from apps.accounts.models import KeyScope
from apps.accounts.services import machine_key_create
from apps.usage.models import DailyRollup, UsageFact
from tests.conftest import litellm_record

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CLIENTS = 8
ROWS = 1_000


def test_eight_clients_sending_the_same_batch_store_it_once(live_server, acme):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers are a PostgreSQL matter; SQLite serialises them")
    _, key = machine_key_create(organisation=acme, name="gw", scopes=[KeyScope.INGEST])
    body = b"".join(
        orjson.dumps(litellm_record(f"r{i}", user=f"u{i % 37}@acme.example")) + b"\n" for i in range(ROWS)
    )
    # Each client sends the rows in its own order, to provoke lock-order deadlocks if there were any.
    bodies = []
    lines = body.splitlines(keepends=True)
    for client in range(CLIENTS):
        rotated = lines[client * 97 :] + lines[: client * 97]
        bodies.append(b"".join(rotated if client % 2 else reversed(rotated)))
    results: list[tuple[int, dict]] = []
    start = threading.Barrier(CLIENTS)

    def send(payload: bytes) -> None:
        request = urllib.request.Request(
            f"{live_server.url}/api/v1/ingest/litellm_spend_logs/",
            data=payload,
            method="POST",
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"},
        )
        start.wait()
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                results.append((response.status, orjson.loads(response.read())))
        except urllib.error.HTTPError as error:
            results.append((error.code, {"body": error.read().decode(errors="replace")[:500]}))

    threads = [threading.Thread(target=send, args=(payload,)) for payload in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [status for status, _ in results] == [200] * CLIENTS, results
    for _, summary in results:
        assert summary["accepted"] + summary["duplicates"] + summary["rejected"] == summary["rows"] == ROWS
    assert sum(summary["accepted"] for _, summary in results) == ROWS
    totals = {"n": ROWS, "cost": ROWS * 500_000}
    assert UsageFact.objects.aggregate(n=Count("id"), cost=Sum("cost_nanos")) == totals
    assert DailyRollup.objects.aggregate(n=Sum("fact_rows"), cost=Sum("cost_nanos")) == totals
