"""The LiteLLM columnar reader gives exactly what the row reader gives: rows, values and errors.

The file mixes the common shape with every variation the column code hands back to the row logic
(and pieces small enough that splitting on unreadable lines is exercised many times).
"""

import io
import random

import orjson
import pytest

from apps.ingestion.adapters import get_adapter, litellm_columns
from apps.ingestion.adapters.base import RowError
from apps.ingestion.frames import rows_to_table
from tests.conftest import litellm_record

TIMESTAMPS = [
    "2026-08-03T10:00:00+00:00",
    "2026-08-03T10:00:00.5Z",
    "2026-08-03T23:30:00.123456-02:00",
    "2026-08-03T10:00:00",  # naive: UTC, by the row logic
    "2026-08-03 10:00:00+00:00",
    "2026-13-03T10:00:00+00:00",  # impossible month
    "yesterday",
    1_785_000_000,
    None,
]


def variant(rng: random.Random, number: int) -> bytes | dict:
    record = litellm_record(f"req-{number % 1_900}")  # some request ids repeat
    usage = record["metadata"]["usage_object"]
    roll = rng.random()
    if roll < 0.55:
        return record  # the common shape
    choice = rng.randrange(25)
    if choice == 0:
        record["startTime"] = rng.choice(TIMESTAMPS)
    elif choice == 1:
        record["spend"] = rng.choice(["0.00052", "1.5e-2", 0.0000000005, 2.5e-10, None, 1e300, -0.001])
    elif choice == 2:
        usage["cache_read_input_tokens"] = rng.choice([0, 300, None])
        usage["cache_creation_input_tokens"] = rng.choice([0, 100, None])
        usage["cache_creation"] = {"ephemeral_1h_input_tokens": rng.choice([0, 40, 150])}
    elif choice == 3:
        usage["completion_tokens_details"] = {"reasoning_tokens": rng.choice([0, 50, 101])}
    elif choice == 4:
        record["cache_hit"] = rng.choice(["True", "true", "FALSE", True, None])
    elif choice == 5:
        record["status"] = rng.choice(["failure", "", " success ", "error", None])
        record["metadata"]["status"] = rng.choice(["failure", None])
    elif choice == 6:
        record["request_id"] = rng.choice([" padded ", "", None, "é-ünïcode-✓"])
    elif choice == 7:
        record["model"] = rng.choice(["", None, "  gpt-4o  ", "unknown-model-x"])
        record["model_group"] = rng.choice([None, "gpt-4o-mini", ""])
    elif choice == 8:
        record["prompt_tokens"] = rng.choice([-1, 2**40, 2**63 - 1, "1000", 1000.0, 150])
    elif choice == 9:
        record["request_tags"] = rng.choice(
            [["task:triage", "app:x"], ["app:y"], None, ["a", None, "task:z"], "task:str", ["task:a\x1eb"]]
        )
        record["metadata"]["spend_logs_metadata"] = rng.choice([{}, {"task": "triage"}, None, {"task": ""}])
    elif choice == 10:
        record["user"] = rng.choice(["Zoë@acme.example", " alice@acme.example ", "", None, "x\x1fy"])
        record["team_id"] = rng.choice(["team-1", None])
        record["api_key"] = rng.choice(["hash-1", None, ""])
        record["metadata"]["user_api_key_alias"] = rng.choice(["alias", None])
    elif choice == 11:
        record["metadata"] = rng.choice([None, "{}", {"usage_object": None}, {}])
    elif choice == 12:
        return b'{"request_id": "broken'
    elif choice == 13:
        return b""
    elif choice == 14:
        return b"   "
    elif choice == 15:
        return b"[1, 2]"
    elif choice == 16:
        return "not utf-8: \xff".encode("latin-1")
    elif choice == 17:
        record["custom_llm_provider"] = rng.choice(["anthropic", "", None, "bedrock"])
        record["model"] = "claude-sonnet-4-5"
    elif choice == 18:
        record["end_user"] = rng.choice(["customer-9", None])
    elif choice == 19:
        usage["prompt_tokens_details"] = rng.choice([None, {"cached_tokens": None}, {"cached_tokens": 1200}])
    elif choice == 20:
        record["completion_tokens"] = rng.choice([None, 0, 7])
    elif choice == 21:
        record["extra_field"] = {"nested": [1, 2, {"deep": True}]}
    elif choice == 23:
        record["messages"] = rng.choice(
            [
                [{"role": "user", "content": "how's it going?"}],
                [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "Übersetze: guten Morgen"},
                ],
                [{"role": "user", "content": [{"type": "text", "text": "part one"}, {"type": "image"}]}],
                [{"role": "assistant", "content": "no user here"}],
                {},
                '[{"role": "user", "content": "a JSON string"}]',
            ]
        )
    elif choice == 22:
        record["spend"] = rng.choice([0.0000000015, 0.0000000025, 123.4567890125])  # half-nano boundaries
    return record


def write(lines: list) -> bytes:
    out = []
    for line in lines:
        out.append(line if isinstance(line, bytes) else orjson.dumps(line))
    return b"\n".join(out) + b"\n"


def comparable(items) -> tuple[list[dict], list[tuple]]:
    rows, errors = [], []
    for item in items:
        if isinstance(item, RowError):
            errors.append((item.file, item.line, item.field, item.reason, item.raw))
        elif isinstance(item, tuple):
            table, piece_errors = item
            rows.extend(table.to_pylist())
            errors.extend((e.file, e.line, e.field, e.reason, e.raw) for e in piece_errors)
        else:
            rows.extend(rows_to_table([item]).to_pylist())
    return sorted(rows, key=lambda row: row["line"]), sorted(errors)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_columnar_reader_equals_row_reader(seed, monkeypatch, settings):
    settings.SPENDWATCH_MAX_LINE_BYTES = 600  # some lines are over it
    monkeypatch.setattr(litellm_columns, "PIECE_BYTES", 40_000)
    monkeypatch.setattr(litellm_columns, "SMALLEST_PIECE", 8)
    rng = random.Random(seed)
    first = litellm_record("first")  # line 1 is plain JSONL, so the columnar reader takes the file
    lines = [first, *(variant(rng, number) for number in range(3_000))]
    lines.insert(1_500, {**litellm_record("long"), "padding": "x" * 700})
    data = write(lines)
    adapter = get_adapter("litellm_spend_logs")

    by_row = comparable(adapter.parse(io.BytesIO(data), "gw.jsonl"))
    pieces = adapter.parse_columns(io.BytesIO(data), "gw.jsonl")
    assert pieces is not None
    by_column = comparable(pieces)

    assert len(by_row[0]) > 1_500 and len(by_row[1]) > 200  # the file exercises both
    assert by_column[1] == by_row[1]
    assert by_column[0] == by_row[0]


def test_documents_and_csv_stay_with_the_row_reader():
    adapter = get_adapter("litellm_spend_logs")
    record = orjson.dumps(litellm_record("a"))
    assert adapter.parse_columns(io.BytesIO(b"[" + record + b"]"), "logs.json") is None
    assert adapter.parse_columns(io.BytesIO(b'{"data": [' + record + b"]}"), "logs.json") is None
    assert adapter.parse_columns(io.BytesIO(b"request_id,spend\na,1\n"), "dump.csv") is None
