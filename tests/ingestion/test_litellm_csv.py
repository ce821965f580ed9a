"""A CSV dump of LiteLLM_SpendLogs (JSON columns as text, timestamps without zone) reads like the API JSON."""

import csv
import json

from django.db.models import Sum

from apps.ingestion.models import RejectedRow
from apps.usage.models import UsageFact
from tests.conftest import FIXTURES

SAMPLE = FIXTURES / "litellm_spend_logs" / "spend_logs_normal.json"
COLUMNS = [
    "request_id",
    "call_type",
    "api_key",
    "spend",
    "total_tokens",
    "prompt_tokens",
    "completion_tokens",
    "startTime",
    "endTime",
    "model",
    "custom_llm_provider",
    "user",
    "metadata",
    "cache_hit",
    "request_tags",
    "team_id",
    "end_user",
    "status",
]


def write_dump(path, records, *, bom=True):
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\r\n")
        writer.writeheader()
        for record in records:
            row = {column: record.get(column) for column in COLUMNS}
            row["metadata"] = json.dumps(record["metadata"], indent=1)  # quoted newlines inside a cell
            row["request_tags"] = json.dumps(record["request_tags"])
            # PostgreSQL's timestamp(3) without time zone, as psql's COPY writes it.
            row["startTime"] = record["startTime"].replace("T", " ").replace("+00:00", "")
            writer.writerow(row)


def totals():
    return UsageFact.objects.aggregate(
        rows=Sum("requests"),
        cost=Sum("cost_nanos"),
        cached=Sum("cache_read_tokens"),
        out=Sum("output_tokens"),
    )


def test_csv_dump_gives_the_same_totals_as_the_json(ingest, tmp_path):
    records = json.loads(SAMPLE.read_text())
    dump = tmp_path / "spend_logs.csv"
    write_dump(dump, records)

    run = ingest("litellm_spend_logs", dump)
    assert (run.accepted, run.rejected) == (16, 0)
    from_csv = totals()
    again = ingest("litellm_spend_logs", SAMPLE)  # the same requests as JSON: all duplicates
    assert (again.accepted, again.duplicates) == (0, 16)
    assert totals() == from_csv == {"rows": 16, "cost": 198_305_380, "cached": 29_051, "out": 12_763}


def test_a_bad_csv_row_names_its_line_and_field(ingest, tmp_path):
    records = json.loads(SAMPLE.read_text())[:3]
    records[1]["prompt_tokens"] = "lots"
    dump = tmp_path / "dump.csv"
    write_dump(dump, records)

    run = ingest("litellm_spend_logs", dump)
    assert (run.accepted, run.rejected) == (2, 1)
    error = RejectedRow.objects.get()
    # The header is line 1; the first record spans the lines its quoted metadata needs.
    first_record_lines = 1 + json.dumps(records[0]["metadata"], indent=1).count("\n")
    assert (error.file, error.line, error.field) == ("dump.csv", 2 + first_record_lines, "prompt_tokens")
    assert "expected a token count" in error.reason
