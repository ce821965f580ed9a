"""The reconciliation page: billed vs computed vs reported per provider and day, and its CSV."""

from __future__ import annotations

import csv
import datetime as dt
from zoneinfo import ZoneInfo

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from apps.accounts.scoping import Viewer, viewer_for_user
from apps.ingestion.csvsafe import safe_cell
from apps.org.models import Organisation
from apps.usage import selectors

DEFAULT_DAYS = 30
MAX_DAYS = 366


class ReconciliationFilter(forms.Form):
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    provider = forms.CharField(required=False, max_length=50)

    def __init__(self, data, *, today: dt.date) -> None:
        super().__init__(data)
        self.today = today

    def clean(self) -> dict:
        cleaned = super().clean()
        end = cleaned.get("end") or self.today
        start = cleaned.get("start") or end - dt.timedelta(days=DEFAULT_DAYS - 1)
        if end < start:
            raise forms.ValidationError("The end date is before the start date.")
        if (end - start).days >= MAX_DAYS:
            raise forms.ValidationError(f"Choose at most {MAX_DAYS} days.")
        cleaned["start"], cleaned["end"] = start, end
        cleaned["provider"] = cleaned.get("provider") or None
        return cleaned


def _filter(request: HttpRequest, viewer: Viewer) -> tuple[ReconciliationFilter, Organisation]:
    organisation = Organisation.objects.get(pk=viewer.organisation_id)
    today = timezone.now().astimezone(ZoneInfo(organisation.time_zone)).date()
    return ReconciliationFilter(request.GET, today=today), organisation


def _rows(viewer: Viewer, form: ReconciliationFilter) -> list[selectors.ReconciliationRow]:
    data = form.cleaned_data
    return selectors.reconciliation(viewer, start=data["start"], end=data["end"], provider=data["provider"])


@login_required
def reconciliation(request: HttpRequest) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    providers = selectors.reconciliation_providers(viewer)  # 404 for anyone without an organisation-wide role
    form, organisation = _filter(request, viewer)
    context = {"form": form, "organisation": organisation, "providers": providers, "rows": []}
    if not form.is_valid():
        return render(request, "usage/reconciliation.html", context, status=400)
    rows = _rows(viewer, form)
    context.update(
        rows=rows,
        start=form.cleaned_data["start"],
        end=form.cleaned_data["end"],
        provider=form.cleaned_data["provider"],
        query=request.GET.urlencode(),
        negative_adjustments=sum(1 for row in rows if row.adjustment_nanos < 0),
    )
    return render(request, "usage/reconciliation.html", context)


@login_required
def reconciliation_csv(request: HttpRequest) -> HttpResponse:
    """The page's table, exact to the nano-dollar, with "unknown" where a figure is unknown."""
    viewer = viewer_for_user(request.user)
    selectors.reconciliation_providers(viewer)  # the same 404 as the page
    form, _ = _filter(request, viewer)
    if not form.is_valid():
        return HttpResponse(form.errors.as_text(), status=400, content_type="text/plain; charset=utf-8")
    data = form.cleaned_data
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    # A server-chosen ASCII name: nothing the user typed reaches the header.
    response["Content-Disposition"] = (
        f'attachment; filename="reconciliation-{data["start"]:%Y%m%d}-{data["end"]:%Y%m%d}.csv"'
    )
    response["Cache-Control"] = "no-store"
    writer = csv.DictWriter(response, fieldnames=selectors.RECONCILIATION_FIELDS)
    writer.writeheader()
    for row in _rows(viewer, form):
        values = row.as_dict()
        # The provider is text from a source file; the amounts are ours (digits, a point, a minus sign).
        values["provider"] = safe_cell(values["provider"])
        writer.writerow(values)
    return response
