"""Kept raw payloads: compressed once their run has finished, deleted after the retention period, replayable.

Every pushed body, uploaded file and pulled page is kept under SPENDWATCH_UPLOAD_DIR
(services.payload_keep) and named in its run's `files`, so that a run can be replayed after a fix.
The pipeline reads a payload as it came, so it is written uncompressed; the daily sweep (beat task
`sweep_kept_payloads`) gzips the payloads of finished runs and deletes those of runs created more than
SPENDWATCH_PAYLOAD_RETENTION_DAYS ago (0 keeps them forever). A run whose payload was deleted keeps
its counts, rejected rows and facts, but its `files` become empty: it can no longer be replayed.

Files a run read from elsewhere (`manage.py ingest PATH`) belong to whoever passed them: they are never
compressed or deleted here, and a replay reads them where they are.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from apps.ingestion import services
from apps.ingestion.models import IngestionRun, RunStatus
from apps.org.models import Organisation

FINISHED = (RunStatus.COMPLETED, RunStatus.FAILED)
# The sweep compresses the payloads of runs that finished this recently (it runs daily; the margin
# covers missed days without re-reading every run ever made).
COMPRESS_LOOKBACK = dt.timedelta(days=7)
# A file older than the cutoff is an orphan unless a run created up to this much later names it (a
# payload is written just before its run is created).
ORPHAN_MARGIN = dt.timedelta(days=1)
GZIP_MAGIC = b"\x1f\x8b"
_CHUNK_RUNS = 500
_COPY_BLOCK = 1 << 20


class NotReplayable(Exception):
    pass


@dataclass(frozen=True, slots=True)
class PayloadSweep:
    expired_runs: int = 0  # runs whose payload was deleted (and that can no longer be replayed)
    deleted_files: int = 0  # their files
    orphans_deleted: int = 0  # expired files no run names (left by an interrupted sweep or upload)
    compressed_files: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def retention_days() -> int:
    days = settings.SPENDWATCH_PAYLOAD_RETENTION_DAYS
    if days < 0:
        raise ImproperlyConfigured(
            f"SPENDWATCH_PAYLOAD_RETENTION_DAYS={days}: use a number of days, or 0 to keep payloads forever"
        )
    return days


def upload_root() -> Path:
    return Path(settings.SPENDWATCH_UPLOAD_DIR).resolve()


def is_kept_payload(path: Path) -> bool:
    """Whether `path` is a payload SpendWatch keeps (and may compress and delete), not a user's own file."""
    return path.resolve().is_relative_to(upload_root())


def payloads_sweep(*, now: dt.datetime | None = None) -> PayloadSweep:
    """Delete the payloads past the retention period, then compress the recently finished runs' payloads."""
    now = now or timezone.now()
    days = retention_days()
    expired_runs = deleted_files = orphans = 0
    if days:
        cutoff = now - dt.timedelta(days=days)
        expired_runs, deleted_files = _expire_runs(cutoff)
        orphans = _delete_orphans(cutoff)
    compressed = _compress_finished(since=now - COMPRESS_LOOKBACK)
    return PayloadSweep(expired_runs, deleted_files, orphans, compressed)


def payloads_forget(*, run_id: int) -> int:
    """Delete a finished run's kept payloads now, whatever the retention (it can no longer be replayed).

    For organisations that store no prompt text: a gateway log's payload holds the prompts and responses
    that were sent, so it must not outlive its run. Files passed from elsewhere are left alone. Returns the
    number of files deleted.
    """
    files = (
        IngestionRun.objects.filter(pk=run_id, status__in=FINISHED).values_list("files", flat=True).first()
    )
    if not files:
        return 0
    kept = [name for name in files if is_kept_payload(Path(name))]
    if not kept:
        return 0
    # As in the expiry: the run forgets its payload first, then the files go.
    IngestionRun.objects.filter(pk=run_id).update(files=[name for name in files if name not in kept])
    deleted = 0
    for name in kept:
        try:
            Path(name).unlink()
            deleted += 1
        except FileNotFoundError:
            pass
    return deleted


def _runs_with_kept_payloads(runs) -> Iterator[list[tuple[int, list[str]]]]:
    """(pk, files) of the given runs whose files are all kept payloads, in chunks, by primary key."""
    runs = runs.exclude(files=[]).order_by("pk")
    last = 0
    while chunk := list(runs.filter(pk__gt=last).values_list("pk", "files")[:_CHUNK_RUNS]):
        last = chunk[-1][0]
        kept = [(pk, files) for pk, files in chunk if all(is_kept_payload(Path(name)) for name in files)]
        if kept:
            yield kept


def _expire_runs(cutoff: dt.datetime) -> tuple[int, int]:
    runs = IngestionRun.objects.filter(created_at__lt=cutoff, status__in=FINISHED)
    expired = deleted = 0
    for chunk in _runs_with_kept_payloads(runs):
        # Order of writes: the runs forget their payload first, then the files go. A crash in between
        # leaves files that no run names (the orphan pass deletes them), never a run naming a lost file.
        IngestionRun.objects.filter(pk__in=[pk for pk, _ in chunk]).update(files=[])
        expired += len(chunk)
        for _, files in chunk:
            for name in files:
                try:
                    Path(name).unlink()
                    deleted += 1
                except FileNotFoundError:
                    pass
    return expired, deleted


def _delete_orphans(cutoff: dt.datetime) -> int:
    root = upload_root()
    if not root.is_dir():
        return 0
    # Only runs created before the cutoff (plus a margin) can name a file that old: after the expiry pass
    # these are the few unfinished runs and the runs of the margin, not the whole retention window.
    referenced: set[str] = set()
    naming = IngestionRun.objects.filter(created_at__lt=cutoff + ORPHAN_MARGIN).exclude(files=[])
    for files in naming.values_list("files", flat=True).iterator():
        referenced.update(files)
    limit = cutoff.timestamp()
    deleted = 0
    for path in root.glob("*/*"):
        if str(path) in referenced or not path.is_file() or path.stat().st_mtime >= limit:
            continue
        path.unlink(missing_ok=True)
        deleted += 1
    return deleted


def _compress_finished(*, since: dt.datetime) -> int:
    runs = IngestionRun.objects.filter(status__in=FINISHED, finished_at__gte=since)
    compressed = 0
    for chunk in _runs_with_kept_payloads(runs):
        for pk, files in chunk:
            paths = [Path(name) for name in files]
            todo = [path for path in paths if _compressible(path)]
            if not todo:
                continue
            done = {path: _gzip_beside(path) for path in todo}
            new_files = [str(done.get(path, path)) for path in paths]
            # Order of writes: the compressed copies are complete on disk before the run names them, and
            # the originals go only after that. The update is conditional, so a run whose files changed
            # meanwhile (an expiry) keeps what it has and the copies are dropped instead.
            if IngestionRun.objects.filter(pk=pk, files=files).update(files=new_files):
                leftovers = todo
                compressed += len(todo)
            else:
                leftovers = list(done.values())
            for path in leftovers:
                path.unlink(missing_ok=True)
    return compressed


def _compressible(path: Path) -> bool:
    if path.name.endswith(".gz") or not path.is_file():
        return False
    with path.open("rb") as stream:
        return stream.read(2) != GZIP_MAGIC  # a gzip upload (e.g. Bedrock's S3 objects) stays as it came


def _gzip_beside(path: Path) -> Path:
    target = path.with_name(path.name + ".gz")
    partial = path.with_name(path.name + ".gz.partial")
    with path.open("rb") as source, gzip.open(partial, "wb", compresslevel=6) as sink:
        shutil.copyfileobj(source, sink, _COPY_BLOCK)
    os.replace(partial, target)
    return target


def run_replay(*, run_id: int) -> IngestionRun:
    """Ingest a finished run's kept payload again, into a new run of the same source and format.

    Rows already stored count as duplicates, so replaying an unchanged payload changes no total; after a
    fix (an adapter, a price, an identity) the replay stores what the first run could not. The new run
    gets a payload copy of its own, so each run's payload expires on its own schedule.
    """
    run = IngestionRun.objects.select_related("source__organisation").get(pk=run_id)
    if run.status not in FINISHED:
        raise NotReplayable(f"run {run_id} is {run.status}: only a completed or failed run can be replayed")
    if not run.files:
        raise NotReplayable(
            f"run {run_id} can no longer be replayed: its payload was deleted after the retention period "
            f"(SPENDWATCH_PAYLOAD_RETENTION_DAYS)"
        )
    paths = [Path(name) for name in run.files]
    for path in paths:
        if not path.is_file():
            raise NotReplayable(f"run {run_id} cannot be replayed: its payload file {path} is missing")
    organisation = run.source.organisation
    copies = [_replay_copy(organisation, path) if is_kept_payload(path) else path for path in paths]
    replay = services.run_create(
        source=run.source, format=run.format, paths=copies, file_names=run.file_names
    )
    return services.run_process(run_id=replay.pk)


def _replay_copy(organisation: Organisation, path: Path) -> Path:
    compressed = path.name.endswith(".gz")
    suffix = Path(path.name.removesuffix(".gz")).suffix
    with gzip.open(path, "rb") if compressed else path.open("rb") as stream:
        blocks = iter(lambda: stream.read(_COPY_BLOCK), b"")
        return services.payload_keep(organisation=organisation, suffix=suffix, chunks=blocks)
