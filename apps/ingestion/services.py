"""Ingestion runs: create them, process them (the task body), and the synchronous path the CLI uses."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.ingestion.adapters import get_adapter
from apps.ingestion.models import DataSource, IngestionRun, RejectedRow, RunStatus
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


def run_create(*, source: DataSource, format: str, paths: Sequence[Path]) -> IngestionRun:
    get_adapter(format)
    for path in paths:
        if not path.is_file():
            raise FileUnreadable(f"{path}: no such file")
        try:
            path.open("rb").close()
        except OSError as error:
            raise FileUnreadable(f"{path}: {error.strerror}") from None
    return IngestionRun.objects.create(
        source=source, format=format, files=[str(path.resolve()) for path in paths]
    )


def run_process(*, run_id: int) -> IngestionRun:
    """Process a run from its start. Safe to call again after a crash: stored rows come back as
    duplicates, the counters and rejected rows are reset first, and a completed run is left alone."""
    with transaction.atomic():
        claimed = IngestionRun.objects.filter(
            pk=run_id, status__in=[RunStatus.PENDING, RunStatus.RUNNING]
        ).update(
            status=RunStatus.RUNNING,
            started_at=timezone.now(),
            rows=0,
            accepted=0,
            duplicates=0,
            replaced=0,
            rejected=0,
            error="",
        )
        if claimed:
            RejectedRow.objects.filter(run_id=run_id).delete()
    run = IngestionRun.objects.select_related("source__organisation").get(pk=run_id)
    if not claimed:
        return run
    pipeline = Pipeline(run)
    try:
        for path in run.files:
            pipeline.ingest_path(Path(path))
        pipeline.finish()
    except Exception as error:
        logger.exception("ingestion run %s failed", run_id)
        IngestionRun.objects.filter(pk=run_id).update(
            status=RunStatus.FAILED, error=f"{type(error).__name__}: {error}", finished_at=timezone.now()
        )
        run.refresh_from_db()
        return run
    IngestionRun.objects.filter(pk=run_id).update(status=RunStatus.COMPLETED, finished_at=timezone.now())
    run.refresh_from_db()
    return run


def ingest_files(*, source: DataSource, format: str, paths: Sequence[Path]) -> IngestionRun:
    run = run_create(source=source, format=format, paths=paths)
    return run_process(run_id=run.pk)
