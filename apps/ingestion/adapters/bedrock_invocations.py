"""AWS Bedrock model invocation logs (FORMATS.md §3): one `ModelInvocationLog` record per request.

Accepted as JSONL (the S3 delivery, one record per line), a JSON array, or the `aws logs
filter-log-events` output (`{"events": [{"message": "<record as JSON text>"}, ...]}`). S3 objects are
gzip: a file named `*.gz`, or starting with the gzip magic bytes, is decompressed while it is read.
`requestId` is the natural key, so the double delivery to CloudWatch and S3 stores each request once.

Token semantics: `input.inputTokenCount` excludes prompt-cache reads and writes (Converse `usage`), so
it is the uncached input as given. Reasoning (Claude thinking) is inside `outputTokenCount`, not split
out. The log carries no cost; `modelId` stays raw (`us.` region prefixes, profile ARNs) for the catalog.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from typing import IO, Any

import orjson
from django.conf import settings

from apps.ingestion.adapters import base
from apps.ingestion.adapters.base import NormalisedRow, RowError, RowInvalid
from apps.ingestion.adapters.jsonlines import iter_json_records
from apps.usage.models import Grain

SCHEMA_TYPE = "ModelInvocationLog"
GZIP_MAGIC = b"\x1f\x8b"
MAX_KEY_LENGTH = 200  # the ledger keeps natural keys up to 200 characters
# A gzip holding one JSON document (not JSONL) is read whole, up to this many times the line limit.
GZIP_DOCUMENT_LINE_LIMITS = 64


class BedrockInvocations(base.Adapter):
    name = "bedrock_invocations"
    description = "AWS Bedrock model invocation logs (JSONL, S3 .json.gz objects, CloudWatch events)"
    basis = base.Basis.TELEMETRY
    joinable_lines = True
    envelope_key = "events"

    def parse(self, stream: IO[bytes], file_name: str) -> Iterator[NormalisedRow | RowError]:
        compressed = file_name.lower().endswith(".gz") or _peek(stream, 2) == GZIP_MAGIC
        source: Any = _CappedGzip(stream) if compressed else stream
        line = 0
        try:
            for line, record, raw in iter_json_records(source, envelope_key=self.envelope_key):
                if isinstance(record, RowError):
                    yield RowError(file_name, line, record.field, record.reason, raw)
                    continue
                try:
                    yield _row(record, line)
                except RowInvalid as error:
                    yield RowError(file_name, line, error.field, error.reason, raw)
        except (OSError, EOFError, zlib.error) as error:
            if not compressed:
                raise
            # Good records before the damage are kept; the error says where reading stopped.
            yield RowError(file_name, line + 1, "(file)", f"cannot decompress: {error}", "")


def _peek(stream: IO[bytes], size: int) -> bytes:
    peek = getattr(stream, "peek", None)
    if peek is not None:
        return peek(size)[:size]
    position = stream.tell()
    head = stream.read(size)
    stream.seek(position)
    return head


class _CappedGzip:
    """A gzip stream read line by line without ever holding more than one capped line in memory.

    An over-long line is cut at the cap plus one byte and its rest skipped, so the record reader
    reports it as too long instead of a highly compressible line filling memory.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self._inflated = io.BufferedReader(gzip.GzipFile(fileobj=stream, mode="rb"))
        self._cap = settings.SPENDWATCH_MAX_LINE_BYTES

    def peek(self, size: int = 1) -> bytes:
        return self._inflated.peek(size)

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and size >= 0:
            return self._inflated.read(size)
        limit = self._cap * GZIP_DOCUMENT_LINE_LIMITS
        data = self._inflated.read(limit + 1)
        if len(data) > limit:
            raise OSError(f"the JSON document inflates past {limit} bytes; deliver JSONL instead")
        return data

    def __iter__(self) -> Iterator[bytes]:
        while line := self._inflated.readline(self._cap + 1):
            if len(line) > self._cap and not line.endswith(b"\n"):
                while (rest := self._inflated.readline(self._cap)) and not rest.endswith(b"\n"):
                    pass
            yield line


def _object(value: Any, field: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RowInvalid(field, f"expected an object, got {type(value).__name__}")
    return value


def _tag_identity(tags: dict, field: str) -> dict[str, str]:
    """Caller-set key/value tags as identity kinds (`team`, `app`, `user`, ...); `task` is our `tag`."""
    identity: dict[str, str] = {}
    for key, value in tags.items():
        kind = str(key).strip().lower()
        if isinstance(value, dict | list):
            raise RowInvalid(f"{field}.{key}", f"expected a text value, got {type(value).__name__}")
        value = base.text(value)
        if kind and value:
            identity["tag" if kind == "task" else kind] = value
    return identity


def _session_email(arn: str | None) -> str | None:
    # arn:aws:sts::<account>:assumed-role/<role>/<session>: SSO and federated sessions name the person.
    if not arn or ":assumed-role/" not in arn:
        return None
    session = arn.rsplit("/", 1)[-1]
    return session if "@" in session else None


def _row(record: Any, line: int) -> NormalisedRow:
    if not isinstance(record, dict):
        raise RowInvalid("(record)", f"expected an object, got {type(record).__name__}")
    if isinstance(record.get("message"), str) and "requestId" not in record:
        # A CloudWatch Logs event: the invocation record is the message text.
        try:
            record = orjson.loads(record["message"])
        except orjson.JSONDecodeError:
            raise RowInvalid("message", "is not a JSON invocation record") from None
        if not isinstance(record, dict):
            raise RowInvalid("message", f"expected an object, got {type(record).__name__}")
    schema = record.get("schemaType")
    if schema is not None and schema != SCHEMA_TYPE:
        raise RowInvalid("schemaType", f"unsupported schema {schema!r} (expected {SCHEMA_TYPE})")
    request_id = base.require_text(record.get("requestId"), "requestId")
    if len(request_id) > MAX_KEY_LENGTH:
        raise RowInvalid("requestId", f"longer than {MAX_KEY_LENGTH} characters")
    ts = base.timestamp(record.get("timestamp"), "timestamp")
    model = base.require_text(record.get("modelId"), "modelId")
    request = _object(record.get("input"), "input")
    response = _object(record.get("output"), "output")
    metadata = _object(record.get("requestMetadata"), "requestMetadata")
    caller = _object(record.get("identity"), "identity")

    arn = base.text(caller.get("arn"))
    identity = _tag_identity(metadata, "requestMetadata")
    # What AWS itself says about the caller wins over what the caller wrote into its metadata.
    identity.update(
        (kind, value)
        for kind, value in (
            ("arn", arn),
            ("email", _session_email(arn)),
            ("account", base.text(record.get("accountId"))),
        )
        if value
    )
    return NormalisedRow(
        ts=ts,
        grain=Grain.REQUEST,
        record_key=request_id,
        provider="bedrock",
        model=model,
        line=line,
        input_uncached_tokens=base.tokens(request.get("inputTokenCount"), "input.inputTokenCount"),
        cache_read_tokens=base.tokens(
            request.get("cacheReadInputTokenCount"), "input.cacheReadInputTokenCount"
        ),
        cache_write_5m_tokens=base.tokens(
            request.get("cacheWriteInputTokenCount"), "input.cacheWriteInputTokenCount"
        ),
        output_tokens=base.tokens(response.get("outputTokenCount"), "output.outputTokenCount"),
        requests=1,
        failed=base.text(record.get("errorCode")) is not None,
        identity=identity,
    )
