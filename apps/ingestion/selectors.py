"""Reads of data sources and runs, through the viewer: ingestion is organisation-wide (CIO/FinOps) work."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from apps.accounts.scoping import Viewer
from apps.ingestion.models import IngestionRun, RejectedRow


def _require_organisation_role(viewer: Viewer) -> None:
    if not viewer.sees_organisation:
        raise Http404("no such page")


def runs_for(viewer: Viewer, *, limit: int = 50) -> QuerySet[IngestionRun]:
    _require_organisation_role(viewer)
    return (
        IngestionRun.objects.filter(source__organisation_id=viewer.organisation_id)
        .select_related("source")
        .order_by("-created_at")[:limit]
    )


def run_get(viewer: Viewer, *, run_id: int) -> IngestionRun:
    _require_organisation_role(viewer)
    run = IngestionRun.objects.filter(pk=run_id, source__organisation_id=viewer.organisation_id).first()
    if run is None:
        raise Http404("no such run")
    return run


def rejected_rows_for(viewer: Viewer, *, run: IngestionRun) -> QuerySet[RejectedRow]:
    run_get(viewer, run_id=run.pk)
    return RejectedRow.objects.filter(run=run).order_by("file", "line")
