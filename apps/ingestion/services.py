"""Ingestion runs: create them, process them (the task body), and the synchronous path the CLI uses."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import kombu.exceptions
import psycopg
from django.conf import settings
from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce, Now
from django.utils import timezone

from apps.ingestion.adapters import get_adapter
from apps.ingestion.adapters.base import Basis
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
    source.organisation = organisation  # spares the query its first use would make
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


# Errors that say "not now" rather than "never": the database or the broker could not be reached or went
# away mid-transaction (a restart, a failover, a dropped connection). psycopg's own classes are listed
# because the COPY path talks to the driver directly, outside Django's error wrapping. Anything else (a
# bug, a file an adapter cannot read) fails the same way every time, so retrying it only delays the error.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    kombu.exceptions.OperationalError,
    ConnectionError,
    TimeoutError,
)
_RETRY_BACKOFF_CAP_SECONDS = 600.0


class RunInterrupted(Exception):
    """A transient error stopped a run. Its committed batches stand and it resumes after the last one.

    `attempt` is the run's attempt counter at the interruption: handing it back to run_process
    (`resume_attempt`) lets the retry take the run over again before its heartbeat goes stale.
    """

    def __init__(self, run_id: int, attempt: int, error: BaseException) -> None:
        super().__init__(f"run {run_id}, attempt {attempt}: {type(error).__name__}: {error}")
        self.run_id = run_id
        self.attempt = attempt


def run_retry_delay(retries: int) -> float:
    """Seconds before retry number `retries + 1` of an interrupted run: doubling, capped at 10 minutes."""
    base = settings.SPENDWATCH_RUN_RETRY_BACKOFF_MS / 1000
    return min(base * 2**retries, _RETRY_BACKOFF_CAP_SECONDS)


def run_process(
    *, run_id: int, retry_transient: bool = False, resume_attempt: int | None = None
) -> IngestionRun:
    """Process a run; safe to call again at any time (a redelivered task, the sweeper).

    A pending run, or a running one whose heartbeat went stale (its worker died), is claimed with one
    conditional update; it then resumes after its last committed batch. A run that is alive elsewhere,
    completed or failed is left alone.

    Errors: a deterministic one (anything not in TRANSIENT_ERRORS) fails the run at once with the error's
    text, which the run page shows. A transient one does too, unless `retry_transient` (the Celery task):
    then, while the run has attempts left (SPENDWATCH_RUN_MAX_ATTEMPTS), it stays running and resumable
    and RunInterrupted is raised for the caller to retry with backoff; its last attempt fails the run.
    """
    stale = _heartbeat_stale_before()
    claimable = Q(status=RunStatus.PENDING) | Q(status=RunStatus.RUNNING, heartbeat_at__lt=stale)
    if resume_attempt is not None:
        # The retry of an interrupted attempt: if the counter is unchanged nobody took the run over since,
        # so it is still ours although its heartbeat is fresh.
        claimable |= Q(status=RunStatus.RUNNING, attempts=resume_attempt)
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
    try:
        pipeline = Pipeline(run)
        for index, path in enumerate(run.files):
            name = run.file_names[index] if index < len(run.file_names) else None
            pipeline.ingest_path(Path(path), index, display_name=name)
        pipeline.finish()
        IngestionRun.objects.filter(pk=run_id).update(status=RunStatus.COMPLETED, finished_at=timezone.now())
        if pipeline.prompt_free and pipeline.adapter.basis == Basis.TELEMETRY:
            # Gateway logs carry the prompts and responses sent; under "none" their payload goes at once.
            from apps.ingestion.retention import payloads_forget

            payloads_forget(run_id=run_id)
    except Exception as error:
        transient = retry_transient and isinstance(error, TRANSIENT_ERRORS)
        if transient and run.attempts < settings.SPENDWATCH_RUN_MAX_ATTEMPTS:
            logger.warning(
                "ingestion run %s: attempt %s interrupted by %s: %s; it resumes on a retry",
                run_id, run.attempts, type(error).__name__, error,
            )  # fmt: skip
            _run_touch(run_id)
            raise RunInterrupted(run_id, run.attempts, error) from error
        logger.exception("ingestion run %s failed", run_id)
        gave_up = f"gave up after {run.attempts} attempts: " if transient else ""
        return _run_fail(run, f"{gave_up}{type(error).__name__}: {error}")
    run.refresh_from_db()
    return run


def _run_touch(run_id: int) -> None:
    """Refresh an interrupted run's heartbeat, so the sweeper leaves it to the task's own retry.

    Best effort: the database may be what is down, and then the last batch's heartbeat stands.
    """
    try:
        IngestionRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(heartbeat_at=Now())
    except (DatabaseError, *TRANSIENT_ERRORS):
        pass


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
