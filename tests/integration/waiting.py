"""Waiting on what another process (a worker, beat) does to the database."""

import time

from apps.ingestion.models import IngestionRun


def state_of(run_id: int) -> IngestionRun:
    return IngestionRun.objects.get(pk=run_id)


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(0.1)
    return value
