"""Downloads: the spend table as CSV (anyone, scoped to what they may see) and the FOCUS 1.3 export
(CIO/FinOps). Formula-safe text, exact money, server-chosen file names, never cached (TESTPLAN I1-I3)."""

from __future__ import annotations

import csv
import datetime as dt
from zoneinfo import ZoneInfo

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone

from apps.accounts.scoping import viewer_for_user
from apps.exports.focus import focus_csv_chunks, focus_rows
from apps.ingestion.csvsafe import safe_cell
from apps.org.models import Organisation
from apps.usage.selectors import GROUPS, SPEND_FIELDS, spend

DEFAULT_DAYS = 30
MAX_DAYS = 731


class PeriodForm(forms.Form):
    start = forms.DateField(required=False)
    end = forms.DateField(required=False)
    group_by = forms.ChoiceField(choices=[(group, group) for group in GROUPS], required=False)

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
        cleaned.update(start=start, end=end, group_by=cleaned.get("group_by") or "team")
        return cleaned


def _period(request: HttpRequest, organisation_id: int) -> PeriodForm:
    organisation = Organisation.objects.get(pk=organisation_id)
    today = timezone.now().astimezone(ZoneInfo(organisation.time_zone)).date()
    return PeriodForm(request.GET, today=today)


def _download_headers(response: HttpResponse, name: str) -> HttpResponse:
    # A server-chosen ASCII name (RFC 6266): nothing the user typed reaches the header.
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "no-store"
    return response


@login_required
def spend_csv(request: HttpRequest) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    form = _period(request, viewer.organisation_id)
    if not form.is_valid():
        return HttpResponse(form.errors.as_text(), status=400, content_type="text/plain; charset=utf-8")
    data = form.cleaned_data
    groups = spend(viewer, group_by=data["group_by"], start=data["start"], end=data["end"])
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    writer = csv.DictWriter(response, fieldnames=(*SPEND_FIELDS, "label"), lineterminator="\n")
    writer.writeheader()
    for group in groups:
        row = {**group.as_dict(), "label": group.label}
        row["key"], row["label"] = safe_cell(row["key"]), safe_cell(row["label"])
        writer.writerow(row)
    name = f"spend-by-{data['group_by']}-{data['start']:%Y%m%d}-{data['end']:%Y%m%d}.csv"
    return _download_headers(response, name)


@login_required
def focus_csv(request: HttpRequest) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    if not viewer.sees_organisation:
        raise Http404("no such page")
    form = _period(request, viewer.organisation_id)
    if not form.is_valid():
        return HttpResponse(form.errors.as_text(), status=400, content_type="text/plain; charset=utf-8")
    data = form.cleaned_data
    rows = focus_rows(viewer, start=data["start"], end=data["end"])
    response = StreamingHttpResponse(focus_csv_chunks(rows), content_type="text/csv; charset=utf-8")
    return _download_headers(response, f"focus-1.3-{data['start']:%Y%m%d}-{data['end']:%Y%m%d}.csv")
