"""Ingestion runs: create them, process them (the task body), and the synchronous path the CLI uses."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce, Now
from django.utils import timezone

from apps.ingestion.adapters import get_adapter
from apps.ingestion.models import DataSource, IngestionRun, IngestRequest, RunStatus
from apps.ingestion.pipeline import Pipeline
from apps.org.models import Organisation

logger = logging.getLogger(__name__)


class FileUnreadable(Exception):
    pass


def default_organisation() -> Organisation:
    """The organisation a single-tenant install ingests into; created on first use."""
    organisations = list(Organisation.objects.all()[:2])
    if len(organisations) > 1:
        raise Organisation.MultipleObjectsReturned("several organisations exist: name one")
    if organisations:
        return organisations[0]
    return Organisation.objects.create(
        name="Default", slug="default", time_zone=settings.SPENDWATCH_TIME_ZONE
    )


def source_get_or_create(*, organisation: Organisation, name: str, format: str) -> DataSource:
    get_adapter(format)  # refuse unknown formats before anything is written
    source, _ = DataSource.objects.get_or_create(
        organisation=organisation, name=name, defaults={"format": format}
    )
    return source


def run_create(
    *, source: DataSource, format: str, paths: Sequence[Path], file_names: Sequence[str] = ()
) -> IngestionRun:
    get_adapter(format)
    for path in paths:
        if not path.is_file():
            raise FileUnreadable(f"{path}: no such file")
        try:
            path.open("rb").close()
        except OSError as error:
            raise FileUnreadable(f"{path}: {error.strerror}") from None
    return IngestionRun.objects.create(
        source=source,
        format=format,
        files=[str(path.resolve()) for path in paths],
        file_names=list(file_names),
    )


def _heartbeat_stale_before() -> dt.datetime:
    """A running run whose last heartbeat is older than this has lost its worker."""
    return timezone.now() - dt.timedelta(seconds=settings.SPENDWATCH_RUN_STALE_SECONDS)


def run_process(*, run_id: int) -> IngestionRun:
    """Process a run; safe to call again at any time (a redelivered task, the sweeper).

    A pending run, or a running one whose heartbeat went stale (its worker died), is claimed with one
    conditional update; it then resumes after its last committed batch. A run that is alive elsewhere,
    completed or failed is left alone.
    """
    stale = _heartbeat_stale_before()
    claimable = Q(status=RunStatus.PENDING) | Q(status=RunStatus.RUNNING, heartbeat_at__lt=stale)
    claimed = IngestionRun.objects.filter(claimable, pk=run_id).update(
        status=RunStatus.RUNNING,
        started_at=Coalesce(F("started_at"), Now()),
        heartbeat_at=Now(),
        attempts=F("attempts") + 1,
    )
    run = IngestionRun.objects.select_related("source__organisation").get(pk=run_id)
    if not claimed:
        return run
    if run.attempts > settings.SPENDWATCH_RUN_MAX_ATTEMPTS:
        return _run_fail(run, f"gave up after {run.attempts - 1} attempts")
    pipeline = Pipeline(run)
    try:
        for index, path in enumerate(run.files):
            name = run.file_names[index] if index < len(run.file_names) else None
            pipeline.ingest_path(Path(path), index, display_name=name)
        pipeline.finish()
    except Exception as error:
        logger.exception("ingestion run %s failed", run_id)
        return _run_fail(run, f"{type(error).__name__}: {error}")
    IngestionRun.objects.filter(pk=run_id).update(status=RunStatus.COMPLETED, finished_at=timezone.now())
    run.refresh_from_db()
    return run


def _run_fail(run: IngestionRun, error: str) -> IngestionRun:
    IngestionRun.objects.filter(pk=run.pk).update(
        status=RunStatus.FAILED, error=error, finished_at=timezone.now()
    )
    run.refresh_from_db()
    return run


def stuck_run_ids() -> list[int]:
    """Runs nobody is working on: pending, or running with a stale heartbeat (a worker died).

    The broker is not trusted to remember them; the sweeper re-enqueues these from the database.
    """
    stale = _heartbeat_stale_before()
    stuck = IngestionRun.objects.filter(
        Q(status=RunStatus.PENDING, created_at__lt=stale)
        | Q(status=RunStatus.RUNNING, heartbeat_at__lt=stale)
    )
    return list(stuck.values_list("pk", flat=True))


def ingest_files(*, source: DataSource, format: str, paths: Sequence[Path]) -> IngestionRun:
    run = run_create(source=source, format=format, paths=paths)
    return run_process(run_id=run.pk)


class PayloadTooLarge(Exception):
    pass


class IdempotencyConflict(Exception):
    pass


def gunzip_capped(data: bytes, limit: int) -> bytes:
    """Decompress a gzip body, refusing (before it is all in memory) one that inflates past `limit`."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as error:
        raise ValueError(f"the body is not valid gzip: {error}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"the body inflates past the limit of {limit} bytes")
    return out


def payload_ingest(
    *, source: DataSource, format: str, payload: bytes, suffix: str, idempotency_key: str | None
) -> IngestionRun:
    """Ingest one pushed body through the pipeline, keeping the raw payload for replay.

    With an idempotency key, the same key and the same body return the first run again (nothing is
    ingested twice); the same key with another body raises IdempotencyConflict.
    """
    digest = hashlib.sha256(payload).hexdigest()
    organisation = source.organisation
    if idempotency_key:
        earlier = IngestRequest.objects.filter(organisation=organisation, key=idempotency_key).first()
        if earlier is not None:
            if earlier.body_sha256 != digest:
                raise IdempotencyConflict("this Idempotency-Key was used with a different body")
            return earlier.run
    path = payload_keep(organisation=organisation, suffix=suffix, chunks=[payload])
    run = ingest_files(source=source, format=format, paths=[path])
    if idempotency_key:
        try:
            with transaction.atomic():
                IngestRequest.objects.create(
                    organisation=organisation, key=idempotency_key, body_sha256=digest, run=run
                )
        except IntegrityError:
            # A concurrent call with the same key won; its rows and ours are the same (duplicates).
            earlier = IngestRequest.objects.get(organisation=organisation, key=idempotency_key)
            if earlier.body_sha256 != digest:
                raise IdempotencyConflict("this Idempotency-Key was used with a different body") from None
            return earlier.run
    return run


def payload_keep(*, organisation: Organisation, suffix: str, chunks: Iterable[bytes]) -> Path:
    """Keep a received file under a server-chosen name (raw payloads are kept so runs can be replayed)."""
    directory = Path(settings.SPENDWATCH_UPLOAD_DIR) / organisation.slug
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{timezone.now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex}{suffix}"
    with path.open("wb") as handle:
        for chunk in chunks:
            handle.write(chunk)
    return path


def upload_store(*, organisation: Organisation, name: str, chunks: Iterable[bytes]) -> Path:
    """Keep an uploaded file; the user's name only chooses the reader and is otherwise only displayed."""
    lower = name.lower()
    suffix = ".csv" if lower.endswith(".csv") else ".json" if lower.endswith(".json") else ".jsonl"
    return payload_keep(organisation=organisation, suffix=suffix, chunks=chunks)


def upload_ingest(
    *, source: DataSource, format: str, uploads: Sequence[tuple[str, Iterable[bytes]]]
) -> IngestionRun:
    """Store uploaded files and queue their run for a worker (after the transaction commits)."""
    from apps.ingestion.tasks import process_run  # tasks import this module

    paths = [
        upload_store(organisation=source.organisation, name=name, chunks=chunks) for name, chunks in uploads
    ]
    run = run_create(source=source, format=format, paths=paths, file_names=[name for name, _ in uploads])
    process_run.delay_on_commit(run.pk)
    return run
