"""Every adapter, fed anything, gives only rows or row errors naming line and field (TESTPLAN L2).

Two kinds of input per adapter: arbitrary bytes and text (also behind the sample's own first line, so
CSV adapters get past their header), and records derived from the adapter's sample with fields
retyped, dropped, renamed or filled with huge, negative, non-finite or malformed values, odd
timestamps, unicode and nested junk, then written back in the sample's own form (and sometimes cut
short, re-encoded or gzipped). The input goes through the entry point the pipeline uses: `parse`
over a buffered file object, and `parse_columns` where the adapter has one (whose output must equal
`parse`'s). Rows must convert to the pipeline's Arrow batch.

The one exception an adapter may raise is the whole-file rejection of an unusable CSV header: a
ValueError whose message starts with the file's name (the run fails with that message).

FUZZ_EXAMPLES sets the examples per adapter and input kind (T1 default below); `make fuzz` raises it.
Hypothesis' deadline is 1 s per example, i.e. per whole file of a few lines.
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import gzip
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from apps.ingestion.adapters import ADAPTERS, NormalisedRow, RowError, get_adapter
from apps.ingestion.adapters.base import MAX_TOKENS
from apps.ingestion.frames import NORMALISED, rows_to_table

FIXTURES = Path(__file__).resolve().parent.parent.parent / "fixtures" / "sources"

# 250 examples of each of the two input kinds = 500 inputs per adapter (and per extra form: the LiteLLM
# JSONL/CSV paths, the Azure APIM CSV, gzipped Bedrock): about 60 s for the whole file on SQLite.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "250"))
# In CI the same inputs every run (a red build is reproducible); `make fuzz` sets FUZZ_RANDOM=1.
DERANDOMIZE = os.environ.get("FUZZ_RANDOM", "") != "1"

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=dt.timedelta(seconds=1),
    derandomize=DERANDOMIZE,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# (format, sample under fixtures/sources, the file name the adapter is given). Every registered
# adapter needs at least one line; a second line covers another reading path of the same adapter.
FORMS: list[tuple[str, str, str]] = [
    ("anthropic_costs", "anthropic_admin_usage/cost_report_normal.json", "cost_report.json"),
    ("anthropic_usage", "anthropic_admin_usage/usage_report_messages_normal_page1.json", "usage.json"),
    ("azure_apim_llm_log", "azure_openai/apim_llm_log_normal.json", "apim.json"),
    ("azure_apim_llm_log", "azure_openai/apim_llm_log_portal.csv", "apim.csv"),
    ("azure_costs", "azure_openai/cost_details_ea_normal.csv", "cost_details.csv"),
    ("bedrock_invocations", "bedrock_invocation_logs/model_invocation_logs_normal.jsonl", "bedrock.jsonl"),
    ("bedrock_invocations", "bedrock_invocation_logs/model_invocation_logs_normal.jsonl", "bedrock.json.gz"),
    ("claude_code_usage", "anthropic_admin_usage/claude_code_usage_2026-08-04.json", "claude_code.json"),
    ("csv", "csv/usage_requests.csv", "usage.csv"),
    ("focus", "focus/focus_1_3_export_normal.csv", "focus.csv"),
    ("gemini_usage", "vertex_gemini/generate_content_responses_normal.jsonl", "gemini.jsonl"),
    ("helicone", "helicone/requests_query_normal_page1.json", "helicone.json"),
    ("litellm_spend_logs", "litellm_spend_logs/spend_logs_normal.json", "spend_logs.json"),
    # The same records as JSONL: the columnar reader takes this form.
    ("litellm_spend_logs", "litellm_spend_logs/spend_logs_normal.json", "spend_logs.jsonl"),
    ("litellm_spend_logs", "litellm_spend_logs/spend_logs_normal.json", "spend_logs.csv"),
    ("openai_costs", "openai_admin_usage/costs_normal_page1.json", "costs.json"),
    ("openai_usage", "openai_admin_usage/completions_usage_normal_page1.json", "completions.json"),
    ("openrouter_activity", "openrouter/activity_normal.json", "activity.json"),
    ("openrouter_generations", "openrouter/generations_normal.jsonl", "generations.jsonl"),
    ("otel_genai", "otel_genai/otlp_traces_normal.json", "traces.json"),
    ("vertex_billing", "vertex_gemini/billing_export_vertex_normal.jsonl", "billing.jsonl"),
]
FORM_IDS = [f"{name}:{file_name}" for name, _, file_name in FORMS]
SAMPLE_ITEMS = 3  # records kept from each list of a sample: enough structure, small inputs


# --- running an adapter the way the pipeline does, and judging what comes out --------------------------


def run_adapter(name: str, data: bytes, file_name: str) -> None:
    """Parse `data` as the pipeline would; fail on anything but rows and row errors."""
    adapter = get_adapter(name)
    try:
        by_row = _check_items(adapter.parse(_stream(data), file_name), file_name)
    except ValueError as error:
        # The whole-file rejection of an unusable header, named by file; nothing else may escape.
        if not str(error).startswith(f"{file_name}:"):
            raise
        return
    pieces = adapter.parse_columns(_stream(data), file_name)
    if pieces is not None:
        by_column = _check_items(pieces, file_name)
        assert by_column[1] == by_row[1], "the columnar reader's errors differ from parse's"
        assert by_column[0] == by_row[0], "the columnar reader's rows differ from parse's"


def _stream(data: bytes) -> io.BufferedReader:
    return io.BufferedReader(io.BytesIO(data))  # what Path.open("rb") gives the pipeline


def _check_items(items, file_name: str) -> tuple[list[dict], list[tuple]]:
    rows: list[dict] = []
    errors: list[tuple] = []
    for item in items:
        if isinstance(item, tuple):  # a columnar piece: (normalised table, row errors)
            table, piece_errors = item
            assert table.schema.equals(NORMALISED), table.schema
            rows.extend(table.to_pylist())
            errors.extend(_checked_error(error, file_name) for error in piece_errors)
        elif isinstance(item, RowError):
            errors.append(_checked_error(item, file_name))
        else:
            assert isinstance(item, NormalisedRow), f"an adapter yielded {type(item).__name__}"
            _check_row(item)
            rows.extend(rows_to_table([item]).to_pylist())  # the pipeline's conversion must take it
    return sorted(rows, key=lambda row: row["line"]), sorted(errors)


def _checked_error(error: RowError, file_name: str) -> tuple:
    assert isinstance(error, RowError), f"a row error of type {type(error).__name__}"
    assert error.file == file_name, error
    assert isinstance(error.line, int) and error.line >= 1, error
    assert isinstance(error.field, str) and error.field.strip(), error
    assert isinstance(error.reason, str) and error.reason.strip(), error
    assert isinstance(error.raw, str), error
    _assert_storable(error.field, error.reason, error.raw)
    return (error.file, error.line, error.field, error.reason, error.raw)


COUNTS = (
    "input_uncached_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
)


def _check_row(row: NormalisedRow) -> None:
    assert isinstance(row.ts, dt.datetime) and row.ts.utcoffset() == dt.timedelta(0), row.ts
    assert isinstance(row.line, int) and row.line >= 1, row.line
    assert isinstance(row.record_key, str) and row.record_key, row.record_key
    assert isinstance(row.provider, str) and isinstance(row.model, str), row
    for name in COUNTS:
        value = getattr(row, name)
        assert type(value) is int and 0 <= value <= MAX_TOKENS, (name, value)
    assert row.requests is None or (type(row.requests) is int and 0 <= row.requests <= MAX_TOKENS), row
    cost = row.reported_cost_nanos
    assert cost is None or (type(cost) is int and -(2**63) <= cost < 2**63), cost
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in row.identity.items()), row.identity
    _assert_storable(
        row.record_key, row.provider, row.model, row.service_tier, row.prompt, *row.identity.values()
    )


def _assert_storable(*texts: str | None) -> None:
    """Text the ledger stores must be valid UTF-8 (a lone surrogate fails the database driver)."""
    for text in texts:
        if text is not None:
            text.encode("utf-8")


# --- samples, parsed into a structure to mutate ----------------------------------------------------------


def _shrink(node: Any) -> Any:
    if isinstance(node, list):
        return [_shrink(item) for item in node[:SAMPLE_ITEMS]]
    if isinstance(node, dict):
        return {key: _shrink(value) for key, value in node.items()}
    return node


def load_sample(sample: str, file_name: str) -> tuple[str, Any]:
    """("csv", [header, *rows]) | ("jsonl", [records]) | ("json", document), kept small."""
    raw = (FIXTURES / sample).read_bytes()
    if sample.endswith(".csv"):
        text = raw.decode("utf-8-sig")
        delimiter = ";" if text.split("\n", 1)[0].count(";") > text.split("\n", 1)[0].count(",") else ","
        table = list(csv.reader(io.StringIO(text), delimiter=delimiter))
        return "csv", table[: SAMPLE_ITEMS + 1]
    if sample.endswith(".jsonl"):
        records = [json.loads(line) for line in raw.splitlines() if line.strip()]
        return "jsonl", _shrink(records)
    document = _shrink(json.loads(raw))
    if file_name.endswith(".jsonl"):
        return "jsonl", document if isinstance(document, list) else [document]
    if file_name.endswith(".csv"):  # a table dump of JSON records: nested values as JSON text
        records = document if isinstance(document, list) else document["data"]
        header = sorted({key for record in records for key in record})
        rows = [[_cell(record.get(key)) for key in header] for record in records]
        return "csv", [header, *rows]
    return "json", document


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


# --- junk values ----------------------------------------------------------------------------------------

ODD_TIMESTAMPS = [
    "2026-02-30T00:00:00Z",
    "2026-08-03T24:00:00Z",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00Z",
    "2026-08-03T10:00:00+25:00",
    "2026-08-03T10:00:00.1234567Z",
    "2026-08-03 10:00:00 UTC",
    "8/5/2026, 11:00:00.123 AM",
    "13/13/2026",
    "2026-W32-1",
    "2026-08-03T10:00:00\u2212 02:00",
    "\u0662\u0660\u0662\u0666-08-03",
    "1785715200",
    "-62135596801",
    "1e30",
]
ODD_NUMBER_TEXT = [
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "inf",
    "1e999999",
    "-1E+400",
    "1E-400",
    "0x10",
    "1_000",
    " 12 ",
    "\uff11\uff12",  # full-width digits
    "\u00b2",  # superscript two: a digit to str.isdigit, not to int()
    "\u0663",  # Arabic-Indic three
    "12.",
    ".5",
    "-0",
    "+7",
    "1,000.50",
    "$1.00",
    "9" * 400,
    "",
    " ",
]
EDGE_INTEGERS = [
    0,
    -1,
    1,
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    2**64,
    10**30,
    -(10**30),
]

ZONES = [dt.UTC, dt.timezone(dt.timedelta(hours=14)), dt.timezone(-dt.timedelta(hours=12, minutes=30))]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(EDGE_INTEGERS),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 5e-324, 1e-10, 0.1 + 0.2, 1.5e-9, 2.5e-10]),
    st.sampled_from(ODD_NUMBER_TEXT),
    st.sampled_from(ODD_TIMESTAMPS),
    st.datetimes(timezones=st.sampled_from(ZONES)).map(lambda moment: moment.isoformat()),
    st.integers(min_value=-(2**40), max_value=2**40),  # as unix seconds
    st.text(max_size=30),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=8).map(lambda s: s * 3),
)
junk = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=10), children, max_size=4),
    ),
    max_leaves=8,
)


# --- structural mutations ---------------------------------------------------------------------------------


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found.extend(_paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(_paths(value, (*prefix, index)))
    return found


def _parent(document: Any, path: tuple) -> Any:
    for step in path[:-1]:
        document = document[step]
    return document


@st.composite
def mutated_tree(draw, base: Any) -> Any:
    """A JSON tree with 1-4 nodes replaced, dropped, duplicated, renamed or given extra keys."""
    document = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(_paths(document)))
        action = draw(st.sampled_from(["replace", "replace", "drop", "rename", "extra", "duplicate"]))
        if not path:
            if action == "replace":
                document = draw(junk)
            continue
        parent, last = _parent(document, path), path[-1]
        if action == "replace":
            parent[last] = draw(junk)
        elif action == "drop":
            del parent[last]
        elif action == "rename" and isinstance(parent, dict):
            parent[draw(st.text(max_size=12))] = parent.pop(last)
        elif action == "extra" and isinstance(parent[last], dict):
            parent[last][draw(st.text(max_size=12))] = draw(junk)
        elif action == "duplicate" and isinstance(parent, list):
            parent.insert(last, copy.deepcopy(parent[last]))
    return document


@st.composite
def mutated_table(draw, base: list[list[str]]) -> list[list[str]]:
    """A CSV table with cells filled with junk, columns dropped or renamed, rows cut or padded."""
    table = [list(row) for row in base]
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["cell", "cell", "cell", "drop_column", "rename", "short", "long"]))
        row = draw(st.integers(0, len(table) - 1))
        width = len(table[row])
        if action == "cell" and width:
            value = draw(junk)
            table[row][draw(st.integers(0, width - 1))] = (
                value if isinstance(value, str) else json.dumps(value)
            )
        elif action == "drop_column" and len(table[0]):
            column = draw(st.integers(0, len(table[0]) - 1))
            for cells in table:
                del cells[column : column + 1]
        elif action == "rename" and len(table[0]):
            table[0][draw(st.integers(0, len(table[0]) - 1))] = draw(st.text(max_size=12))
        elif action == "short" and width:
            del table[row][draw(st.integers(0, width - 1)) :]
        elif action == "long":
            table[row].extend(draw(st.lists(st.text(max_size=8), min_size=1, max_size=3)))
    return table


def serialise(kind: str, structure: Any, pretty: bool) -> bytes:
    # The standard library writes integers beyond 64 bits and NaN/Infinity (not JSON): both are junk
    # a real file can hold.
    if kind == "csv":
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(structure)
        return out.getvalue().encode("utf-8", errors="surrogatepass")
    if kind == "jsonl" and isinstance(structure, list) and not pretty:
        return b"".join(_json(record).encode("utf-8", errors="surrogatepass") + b"\n" for record in structure)
    return _json(structure, indent=2 if pretty else None).encode("utf-8", errors="surrogatepass")


def _json(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, indent=indent, ensure_ascii=False, allow_nan=True)


@st.composite
def damaged(draw, data: bytes) -> bytes:
    """The serialised file, now and then cut short, given CRLF or a BOM, or with bytes spliced in."""
    action = draw(st.sampled_from(["none", "none", "none", "cut", "crlf", "bom", "splice", "blank_lines"]))
    if action == "cut" and data:
        return data[: draw(st.integers(0, len(data) - 1))]
    if action == "crlf":
        return data.replace(b"\n", b"\r\n")
    if action == "bom":
        return b"\xef\xbb\xbf" + data
    if action == "splice":
        at = draw(st.integers(0, len(data)))
        return data[:at] + draw(st.binary(min_size=1, max_size=16)) + data[at:]
    if action == "blank_lines":
        return data.replace(b"\n", b"\n\n   \n", 2)
    return data


@st.composite
def plausible_file(draw, form: tuple[str, str, str]) -> bytes:
    _, sample, file_name = form
    kind, base = SAMPLES[file_name]
    structure = draw(mutated_table(base) if kind == "csv" else mutated_tree(base))
    data = draw(damaged(serialise(kind, structure, pretty=draw(st.booleans()))))
    return gzip.compress(data, mtime=0) if file_name.endswith(".gz") else data


@st.composite
def arbitrary_file(draw, form: tuple[str, str, str]) -> bytes:
    _, _, file_name = form
    kind, base = SAMPLES[file_name]
    first_line = serialise(kind, base[:1], pretty=False) if kind in ("csv", "jsonl") else b"{"
    body = draw(
        st.one_of(
            st.binary(max_size=2_000),
            st.text(max_size=500).map(lambda text: text.encode("utf-8", errors="surrogatepass")),
        )
    )
    data = draw(st.sampled_from([body, first_line + body]))
    if file_name.endswith(".gz") and draw(st.booleans()):
        return gzip.compress(data, mtime=0)
    return data


SAMPLES: dict[str, tuple[str, Any]] = {
    file_name: load_sample(sample, file_name) for _, sample, file_name in FORMS
}


# --- the tests -------------------------------------------------------------------------------------------


def test_every_registered_adapter_is_fuzzed():
    assert len({file_name for _, _, file_name in FORMS}) == len(FORMS)
    assert {name for name, _, _ in FORMS} == set(ADAPTERS)


@pytest.mark.parametrize("form", FORMS, ids=FORM_IDS)
def test_samples_read_cleanly(form):
    """The unmutated (shrunk) samples give rows and no errors: the mutations start from valid input."""
    name, _, file_name = form
    kind, base = SAMPLES[file_name]
    data = serialise(kind, base, pretty=False)
    if file_name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    rows, errors = _check_items(get_adapter(name).parse(_stream(data), file_name), file_name)
    assert rows and not errors, errors[:3]
    run_adapter(name, data, file_name)


@pytest.mark.parametrize("form", FORMS, ids=FORM_IDS)
@FUZZ
@given(data=st.data())
def test_arbitrary_input_gives_rows_or_row_errors(form, data):
    name, _, file_name = form
    run_adapter(name, data.draw(arbitrary_file(form), label="file"), file_name)


@pytest.mark.parametrize("form", FORMS, ids=FORM_IDS)
@FUZZ
@given(data=st.data())
def test_plausible_records_give_rows_or_row_errors(form, data):
    name, _, file_name = form
    run_adapter(name, data.draw(plausible_file(form), label="file"), file_name)


# --- inputs that once crashed an adapter, kept as explicit examples ---------------------------------------

LITELLM_JSONL = serialise(*SAMPLES["spend_logs.jsonl"], pretty=False)
AZURE_COSTS_CSV = serialise(*SAMPLES["cost_details.csv"], pretty=False)
AZURE_HEADER = AZURE_COSTS_CSV.split(b"\n", 1)[0]


@settings(phases=[Phase.explicit], database=None, deadline=dt.timedelta(seconds=1))
# Bytes that are not UTF-8 failed the CSV readers' decoder (UnicodeDecodeError) for the whole file.
@example(name="azure_apim_llm_log", file_name="apim.json", data=b"\x80")
@example(name="azure_apim_llm_log", file_name="apim.csv", data=b"TimeGenerated,CorrelationId\n\x80,x\n")
@example(name="azure_costs", file_name="cost_details.csv", data=b"\x80")
@example(name="litellm_spend_logs", file_name="spend_logs.csv", data=b"request_id,startTime\n\x80,x\n")
# A field over the csv module's size limit raised csv.Error out of the reader.
@example(
    name="azure_costs", file_name="cost_details.csv", data=AZURE_HEADER + b'\n"' + b"x" * 200_000 + b'"\n'
)
@example(
    name="litellm_spend_logs", file_name="spend_logs.csv", data=b'request_id\n"' + b"x" * 200_000 + b'"\n'
)
# More values than header columns: DictReader hands the rest over as a list, which broke the raw line.
@example(name="litellm_spend_logs", file_name="spend_logs.csv", data=b"request_id,startTime\nr1,t,extra\n")
# OTLP attributes that are not a list (`"attributes": true`), or an arrayValue / kvlistValue that is not
# an object, raised TypeError / AttributeError for the whole file.
@example(
    name="otel_genai",
    file_name="traces.json",
    data=b'{"resourceSpans": [{"resource": {"attributes": true}, "scopeSpans": [{"spans": [{"traceId":'
    b' "13a5982eb3a8163da3d801ed818db9a2", "spanId": "f0ee89261b723012", "startTimeUnixNano":'
    b' "1785747900120000000", "attributes": [{"key": "a", "value": {"arrayValue": true}},'
    b' {"key": "b", "value": {"kvlistValue": {"values": 1}}}]}]}]}]}',
)
# A usage detail that is not an object (`"completion_tokens_details": true`) raised AttributeError.
@example(
    name="litellm_spend_logs",
    file_name="spend_logs.json",
    data=b'[{"request_id": "r1", "startTime": "2026-08-03T10:00:00Z", "model": "m",'
    b' "metadata": {"usage_object": {"completion_tokens_details": true}}}]',
)
# Arrow's JSON reader let a byte that is not UTF-8 into a string column: the columnar reader kept a row
# the row reader rejects (and the row's text could not be read back).
@example(
    name="litellm_spend_logs", file_name="spend_logs.jsonl", data=LITELLM_JSONL.replace(b'"0', b'"0\x80', 1)
)
# OTLP parts of another type than a list (`"scopeSpans": true`, `"spans": 5`) raised TypeError.
@example(name="otel_genai", file_name="traces.json", data=b'{"resourceSpans": [{"scopeSpans": true}]}')
@example(
    name="otel_genai", file_name="traces.json", data=b'{"resourceSpans": [{"scopeSpans": [{"spans": 5}]}]}'
)
@given(name=st.sampled_from(sorted(ADAPTERS)), file_name=st.text(), data=st.binary())
def test_inputs_that_once_crashed_an_adapter(name, file_name, data):
    run_adapter(name, data, file_name)


@pytest.mark.parametrize(
    ("name", "file_name", "data", "bad_line"),
    [
        ("azure_costs", "cost_details.csv", AZURE_COSTS_CSV.replace(b"Northwind", b"North\xffwind", 1), 2),
        ("litellm_spend_logs", "spend_logs.jsonl", LITELLM_JSONL.replace(b'"0', b'"0\x80', 1), 1),
    ],
)
def test_a_line_that_is_not_utf8_is_rejected_alone(name, file_name, data, bad_line):
    rows, errors = _check_items(get_adapter(name).parse(_stream(data), file_name), file_name)
    assert [(line, field) for _, line, field, _, _ in errors] == [(bad_line, "(line)")]
    assert len(rows) == 2  # the other two of the sample's three records
