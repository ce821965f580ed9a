"""The ingest buffer: bodies pushed with `Prefer: respond-async` are answered 202 at once and ingested later.

A gateway that sends one record per request cannot pay for a run each (a run is a dozen queries, a kept
file, a rollup refresh). Its bodies are stored as they come (one INSERT) and a worker drains them:
the oldest pending bodies of each source go into one run, the joinable ones (JSON lines of an adapter
whose records are independent, see Adapter.joinable_lines) written one after another into a single file,
any other body (CSV, a JSON document) as a file of its own. From then on it is an ordinary run: the same
pipeline, deduplication, rejected rows, retention and replay.

Each body's row is the client's receipt: after the drain it names the run and the lines of the run's file
that came from this body, so receipt_status() reports the body's own rejected rows at their own line
numbers, ready to be corrected and sent again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apps.ingestion import services
from apps.ingestion.adapters import get_adapter
from apps.ingestion.models import BufferedRequest, DataSource, IngestionRun, RunStatus

_DRAIN_SCHEDULED = "spendwatch:ingest-buffer-drain-scheduled"
logger = logging.getLogger(__name__)


class ReceiptState:
    QUEUED = "queued"
    PENDING = "pending"  # drained into a run a worker has not finished yet
    COMPLETED = "completed"
    FAILED = "failed"


def buffered_accept(
    *, source: DataSource, format: str, payload: bytes, suffix: str, idempotency_key: str | None
) -> BufferedRequest:
    """Store one pushed body for the next drain; the same Idempotency-Key and body return the first receipt.

    Raises services.IdempotencyConflict when the key was used with another body.
    """
    digest = hashlib.sha256(payload).hexdigest()
    organisation = source.organisation
    if idempotency_key:
        earlier = BufferedRequest.objects.filter(
            organisation=organisation, idempotency_key=idempotency_key
        ).first()
        if earlier is not None:
            return _same_body(earlier, digest)
    try:
        with transaction.atomic():
            receipt = BufferedRequest.objects.create(
                organisation=organisation,
                source=source,
                format=format,
                suffix=suffix,
                body=payload,
                body_sha256=digest,
                idempotency_key=idempotency_key or "",
            )
    except IntegrityError:
        # A concurrent request with the same key won the insert.
        earlier = BufferedRequest.objects.get(organisation=organisation, idempotency_key=idempotency_key)
        return _same_body(earlier, digest)
    transaction.on_commit(drain_soon)
    return receipt


def _same_body(earlier: BufferedRequest, digest: str) -> BufferedRequest:
    if earlier.body_sha256 != digest:
        raise services.IdempotencyConflict("this Idempotency-Key was used with a different body")
    return earlier


def drain_soon() -> None:
    """Ask a worker to drain in SPENDWATCH_INGEST_BUFFER_SECONDS, unless this process already asked.

    One message per interval per web process (or per deployment, with a shared cache) instead of one per
    request; the beat schedule drains too, so a lost message only delays bodies until its next tick.
    """
    from apps.ingestion.tasks import drain_ingest_buffer  # tasks import this module

    delay = settings.SPENDWATCH_INGEST_BUFFER_SECONDS
    if cache.add(_DRAIN_SCHEDULED, 1, timeout=max(delay, 1)):
        try:
            drain_ingest_buffer.apply_async(countdown=delay)
        except services.TRANSIENT_ERRORS as error:
            # The body is stored and answered for: beat's drain takes it once the broker is back.
            cache.delete(_DRAIN_SCHEDULED)
            logger.warning("ingest buffer: could not ask for a drain (%s: %s)", type(error).__name__, error)


@dataclass(frozen=True, slots=True)
class _Pending:
    pk: int
    source_id: int
    format: str
    suffix: str
    body: bytes


def buffer_drain_once(up_to: int | None = None) -> list[int]:
    """Move the oldest pending bodies (up to SPENDWATCH_INGEST_BUFFER_DRAIN_ROWS / _BYTES, and none after
    receipt `up_to`) into runs.

    Returns the ids of the runs created; each is queued for a worker once the claim commits. Safe with
    several drainers at once: PostgreSQL hands each its own bodies (SKIP LOCKED); elsewhere a drainer
    that lost the race to another rolls back and leaves the bodies to it.
    """
    try:
        with transaction.atomic():
            pending = _claimable(up_to)
            groups: dict[tuple[int, str], list[_Pending]] = {}
            for body in pending:
                groups.setdefault((body.source_id, body.format), []).append(body)
            runs = []
            for (source_id, _), group in groups.items():
                source = DataSource.objects.select_related("organisation").get(pk=source_id)
                runs.extend(_run_for(source, bodies, joined) for joined, bodies in _files(group))
    except _LostRace:
        return []  # another drainer claimed some of these bodies first; they are its to ingest
    from apps.ingestion.tasks import process_run  # tasks import this module

    for run in runs:
        try:
            process_run.delay(run.pk)
        except services.TRANSIENT_ERRORS:
            pass  # the run is committed: the sweeper queues pending runs the broker never got
    return [run.pk for run in runs]


def buffer_drain() -> list[int]:
    """Drain the bodies waiting when the drain starts (the task body); returns the ids of the runs created.

    Bodies that arrive meanwhile are left to the next drain, which their own requests ask for: under a
    steady stream, runs then come every SPENDWATCH_INGEST_BUFFER_SECONDS with all that arrived in between,
    not one after another with a few bodies each (each run refreshes its days' rollups).
    """
    last = (
        BufferedRequest.objects.filter(run__isnull=True).order_by("-pk").values_list("pk", flat=True).first()
    )
    run_ids: list[int] = []
    while last is not None and (batch := buffer_drain_once(up_to=last)):
        run_ids.extend(batch)
    return run_ids


def _claimable(up_to: int | None = None) -> list[_Pending]:
    queryset = BufferedRequest.objects.filter(run__isnull=True).order_by("pk")
    if up_to is not None:
        queryset = queryset.filter(pk__lte=up_to)
    if connection.features.has_select_for_update_skip_locked:
        queryset = queryset.select_for_update(skip_locked=True)
    max_rows = settings.SPENDWATCH_INGEST_BUFFER_DRAIN_ROWS
    max_bytes = settings.SPENDWATCH_INGEST_BUFFER_DRAIN_BYTES
    taken: list[_Pending] = []
    size = 0
    fields = ("pk", "source_id", "format", "suffix", "body")
    for pk, source_id, format, suffix, body in queryset.values_list(*fields)[:max_rows]:
        body = bytes(body)
        if taken and size + len(body) > max_bytes:
            break
        taken.append(_Pending(pk, source_id, format, suffix, body))
        size += len(body)
    return taken


def _run_for(source: DataSource, bodies: list[_Pending], joined: bool) -> IngestionRun:
    """A run for joinable bodies written one after another into one file, or for one other body alone
    (a body the adapter cannot read as a whole fails its own run, never its neighbours')."""
    placements: dict[int, tuple[int | None, int | None]] = {}  # pk -> (first line, lines)
    if joined:
        name = f"buffered-{bodies[0].pk}-{bodies[-1].pk}.jsonl"
        chunks = []
        line = 1
        for body in bodies:
            text = body.body if body.body.endswith(b"\n") else body.body + b"\n"
            placements[body.pk] = (line, text.count(b"\n"))
            chunks.append(text)
            line += placements[body.pk][1]
        suffix = ".jsonl"
    else:
        [body] = bodies
        suffix = body.suffix
        name = f"buffered-{body.pk}{suffix}"
        placements[body.pk] = (None, None)
        chunks = [body.body]
    path = services.payload_keep(organisation=source.organisation, suffix=suffix, chunks=chunks)
    run = services.run_create(source=source, format=bodies[0].format, paths=[path], file_names=[name])
    claimed = BufferedRequest.objects.filter(pk__in=placements, run__isnull=True).update(run=run)
    if claimed != len(placements):
        raise _LostRace  # another drainer took some of them (not on PostgreSQL, where rows are locked)
    drained = [
        BufferedRequest(pk=pk, run=run, file_name=name, first_line=first_line, lines=lines, body=b"")
        for pk, (first_line, lines) in placements.items()
    ]
    BufferedRequest.objects.bulk_update(
        drained, ["file_name", "first_line", "lines", "body"], batch_size=1000
    )
    return run


class _LostRace(Exception):
    pass


def _files(pending: list[_Pending]) -> Iterator[tuple[bool, list[_Pending]]]:
    """One source's bodies in receipt order: each stretch of joinable bodies together, any other alone."""
    current: list[_Pending] = []
    for body in pending:
        if _joinable(body):
            current.append(body)
            continue
        if current:
            yield True, current
            current = []
        yield False, [body]
    if current:
        yield True, current


def _joinable(body: _Pending) -> bool:
    """A body of JSON lines, each an object, none of them an envelope of records."""
    adapter = get_adapter(body.format)
    if not adapter.joinable_lines or body.suffix != ".jsonl":
        return False
    first = True
    for line in body.body.splitlines():
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            return False  # read alone, so its errors keep the body's own line numbers
        if not isinstance(record, dict):
            return False
        if first and adapter.envelope_key and adapter.envelope_key in record:
            return False
        first = False
    return True


def receipt_status(receipt: BufferedRequest) -> dict:
    """What became of a buffered body: queued, pending in a run, completed or failed, and its own
    rejected rows at the body's own line numbers."""
    answer: dict = {"receipt": receipt.pk, "received_at": receipt.received_at, "run": receipt.run_id}
    if receipt.run_id is None:
        return answer | {"status": ReceiptState.QUEUED, "rejected_rows": []}
    run = receipt.run
    if run.status == RunStatus.COMPLETED:
        state = ReceiptState.COMPLETED
    elif run.status == RunStatus.FAILED:
        state = ReceiptState.FAILED
    else:
        state = ReceiptState.PENDING
    rejected = run.rejected_rows.filter(file=receipt.file_name)
    offset = 0
    if receipt.first_line is not None:
        last_line = receipt.first_line + receipt.lines - 1
        rejected = rejected.filter(line__gte=receipt.first_line, line__lte=last_line)
        offset = receipt.first_line - 1
    rows = [
        {"line": row.line - offset, "field": row.field, "reason": row.reason, "raw": row.raw}
        for row in rejected.order_by("line", "pk")
    ]
    answer |= {"status": state, "rejected_rows": rows}
    if state == ReceiptState.FAILED:
        answer["error"] = run.error
    return answer


def receipts_sweep(*, now: dt.datetime | None = None) -> int:
    """Delete drained receipts older than SPENDWATCH_INGEST_RECEIPT_DAYS whose run has finished."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=settings.SPENDWATCH_INGEST_RECEIPT_DAYS)
    finished = [RunStatus.COMPLETED, RunStatus.FAILED]
    deleted, _ = BufferedRequest.objects.filter(received_at__lt=cutoff, run__status__in=finished).delete()
    return deleted
