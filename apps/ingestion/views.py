"""Upload pages: drop files, watch the run, download the rejected rows, fix and resubmit them."""

from __future__ import annotations

import csv

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from apps.accounts.scoping import viewer_for_user
from apps.ingestion import selectors, services
from apps.ingestion.csvsafe import safe_cell
from apps.ingestion.forms import UploadForm
from apps.ingestion.models import RunStatus
from apps.org.models import Organisation

REJECTED_SHOWN = 200


@login_required
def upload(request: HttpRequest) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    runs = selectors.runs_for(viewer)  # 404 for anyone without an organisation-wide role
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        organisation = Organisation.objects.get(pk=viewer.organisation_id)
        format = form.cleaned_data["format"]
        source = services.source_get_or_create(
            organisation=organisation, name=form.cleaned_data["source"] or f"upload-{format}", format=format
        )
        run = services.upload_ingest(
            source=source, format=format, uploads=[(f.name, f.chunks()) for f in form.cleaned_data["files"]]
        )
        return redirect("ingestion:run", run_id=run.pk)
    return render(request, "ingestion/upload.html", {"form": form, "runs": runs})


@login_required
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    run = selectors.run_get(viewer, run_id=run_id)
    rejected = selectors.rejected_rows_for(viewer, run=run)
    context = {
        "run": run,
        "rejected": rejected[:REJECTED_SHOWN],
        "more_rejected": max(0, run.rejected - REJECTED_SHOWN),
        "in_progress": run.status in {RunStatus.PENDING, RunStatus.RUNNING},
    }
    return render(request, "ingestion/run.html", context)


def _download(content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(content_type=content_type)
    # A server-chosen ASCII name: nothing the user typed reaches the header.
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


@login_required
def rejected_csv(request: HttpRequest, run_id: int) -> HttpResponse:
    """Every rejected row with where and why (safe to open in a spreadsheet)."""
    viewer = viewer_for_user(request.user)
    run = selectors.run_get(viewer, run_id=run_id)
    response = _download("text/csv; charset=utf-8", f"run-{run.pk}-rejected.csv")
    writer = csv.writer(response)
    writer.writerow(["file", "line", "field", "reason", "raw"])
    for row in selectors.rejected_rows_for(viewer, run=run).iterator():
        writer.writerow(
            [safe_cell(row.file), row.line, safe_cell(row.field), safe_cell(row.reason), safe_cell(row.raw)]
        )
    return response


@login_required
def rejected_lines(request: HttpRequest, run_id: int) -> HttpResponse:
    """The rejected lines as they were sent, one per line: fix them and upload the file again."""
    viewer = viewer_for_user(request.user)
    run = selectors.run_get(viewer, run_id=run_id)
    response = _download("application/x-ndjson; charset=utf-8", f"run-{run.pk}-rejected.jsonl")
    for raw in selectors.rejected_rows_for(viewer, run=run).values_list("raw", flat=True).iterator():
        response.write(raw.replace("\n", " ") + "\n")
    return response
