"""Proves the integration harness: a real celery worker, reached through Redis, on the test database."""

import json
import signal
import time
from pathlib import Path

import pytest
from celery import shared_task

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PROBE_TASK = "tests.integration.probe_database"


@shared_task(name=PROBE_TASK)
def probe_database(username: str, out_path: str) -> None:
    """Runs in the worker: reports which database it uses and whether it sees the test's user."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    report = {
        "vendor": connection.vendor,
        "name": str(connection.settings_dict["NAME"]),
        "sees_user": get_user_model().objects.filter(username=username).exists(),
    }
    Path(out_path).write_text(json.dumps(report), encoding="utf-8")


def wait_for_file(path: Path, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text(encoding="utf-8"):
        assert time.monotonic() < deadline, f"{path} was not written in {timeout}s"
        time.sleep(0.1)
    return path.read_text(encoding="utf-8")


def test_worker_answers_ping_and_runs_tasks_on_the_test_database(celery_worker_process, tmp_path):
    from django.contrib.auth import get_user_model
    from django.db import connection

    from spendwatch.celery import app

    # The worker imports this module (by its path from the project root) to know the probe task.
    worker = celery_worker_process(include=["tests.integration.test_worker_smoke"])

    # Remote control through the broker: needs no result backend.
    assert app.control.ping(destination=[worker.nodename], timeout=5) == [{worker.nodename: {"ok": "pong"}}]

    # A built-in task, sent by name to the ingest queue, runs in the worker.
    sent = app.send_task("celery.accumulate", args=(1, 2), queue="ingest")
    worker.wait_for_log(f"celery.accumulate[{sent.id}] succeeded")

    # Data committed by the test is visible to the worker, which uses the test database.
    get_user_model().objects.create_user(username="smoke", password="x" * 12)
    out = tmp_path / "probe.json"
    app.send_task(PROBE_TASK, args=("smoke", str(out)), queue="rollup")
    report = json.loads(wait_for_file(out))
    assert report == {
        "vendor": connection.vendor,
        "name": str(connection.settings_dict["NAME"]),
        "sees_user": True,
    }
    assert worker.is_alive()


def test_a_killed_worker_is_gone_and_a_new_one_answers(celery_worker_process):
    from spendwatch.celery import app

    first = celery_worker_process(concurrency=2)
    assert len(first.child_pids()) == 2
    first.kill(signal.SIGKILL)
    assert first.wait(timeout=10) == -signal.SIGKILL

    second = celery_worker_process()
    assert app.control.ping(destination=[second.nodename], timeout=5) == [{second.nodename: {"ok": "pong"}}]
