"""The upload page: drop files, watch the run, download rejected rows, fix and resubmit (TESTPLAN C2, C6, I1)."""

import csv
import io

import orjson
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Sum

from apps.ingestion.csvsafe import safe_cell
from apps.ingestion.models import IngestionRun
from apps.usage.models import UsageFact
from spendwatch.celery import app
from tests.conftest import litellm_record, write_jsonl


@pytest.fixture
def tasks_run_inline():
    """Unit tests of the view: run the queued task in-process (real workers are in tests/integration)."""
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def upload(client, name: str, lines: list, capture) -> IngestionRun:
    body = b"".join((line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines)
    with capture(execute=True):
        response = client.post(
            "/sources/upload/",
            {"format": "litellm_spend_logs", "files": [SimpleUploadedFile(name, body)]},
        )
    assert response.status_code == 302, response.content
    return IngestionRun.objects.get(pk=int(response["Location"].rstrip("/").split("/")[-1]))


def test_upload_watch_download_fix_and_resubmit(
    as_persona, tasks_run_inline, django_capture_on_commit_callbacks, tmp_path, settings
):
    settings.SPENDWATCH_UPLOAD_DIR = tmp_path
    client = as_persona("cio")
    lines = [litellm_record(f"r{i}") for i in range(50)]
    good_40 = lines[40]
    lines[40] = orjson.dumps({**good_40, "prompt_tokens": '=HYPERLINK("http://x")'})
    run = upload(client, "../../=cmd.jsonl", lines, django_capture_on_commit_callbacks)

    assert run.summary() == {
        "run": run.pk,
        "rows": 50,
        "accepted": 49,
        "duplicates": 0,
        "replaced": 0,
        "rejected": 1,
    }
    [stored] = list((tmp_path / "acme").iterdir())
    assert stored.name.endswith(".jsonl") and "cmd" not in stored.name  # a server-chosen name

    page = client.get(f"/sources/runs/{run.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    # Django keeps only the base name of an upload; it is shown as text, never used as a path.
    assert "=cmd.jsonl" in html and "../" not in html

    rejected = client.get(f"/sources/runs/{run.pk}/rejected.csv")
    assert rejected["Content-Disposition"] == f'attachment; filename="run-{run.pk}-rejected.csv"'
    assert rejected["Cache-Control"] == "no-store"
    [header, row] = list(csv.reader(io.StringIO(rejected.content.decode())))
    assert header == ["file", "line", "field", "reason", "raw"]
    assert row[:3] == ["'=cmd.jsonl", "41", "prompt_tokens"]  # a spreadsheet will not run it
    assert row[3].startswith("expected a token count")

    # Fix the rejected line and upload it again: the totals become those of the all-good file.
    sent = client.get(f"/sources/runs/{run.pk}/rejected.jsonl").content.decode().splitlines()
    fixed = [orjson.loads(line) | {"prompt_tokens": good_40["prompt_tokens"]} for line in sent]
    again = upload(client, "fixed.jsonl", fixed, django_capture_on_commit_callbacks)
    assert (again.accepted, again.rejected) == (1, 0)
    assert UsageFact.objects.aggregate(cost=Sum("cost_nanos"))["cost"] == 50 * 500_000


@pytest.mark.parametrize("persona", ["eng_manager", "alice", "outsider"])
def test_only_organisation_roles_reach_uploads_and_runs(as_persona, acme, persona, ingest, tmp_path):
    run = ingest("litellm_spend_logs", write_jsonl(tmp_path / "a.jsonl", [litellm_record("r1")]))
    client = as_persona(persona)
    # Another organisation's CIO has an upload page of their own, but none of our runs.
    assert client.get("/sources/upload/").status_code == (200 if persona == "outsider" else 404)
    for path in (
        f"/sources/runs/{run.pk}/",
        f"/sources/runs/{run.pk}/rejected.csv",
        f"/sources/runs/{run.pk}/rejected.jsonl",
    ):
        assert client.get(path).status_code == 404, path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("=HYPERLINK(1)", "'=HYPERLINK(1)"),
        ("+1", "'+1"),
        ("-cmd", "'-cmd"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=x", "'\t=x"),
        ("\r=x", "'\r=x"),
        (" =x", "' =x"),
        ("\u00a0=x", "'\u00a0=x"),
        ("ok\n=cmd", "ok\n'=cmd"),
        ("plain", "plain"),
        (-12, -12),
    ],
)
def test_csv_cells_cannot_start_a_formula(text, expected):
    assert safe_cell(text) == expected
