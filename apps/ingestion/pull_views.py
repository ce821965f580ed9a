"""Pull source pages (CIO/FinOps): list, add, edit, pull now. The credential field is write-only: a stored
key is never rendered back, only its last four characters."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_POST

from apps.accounts.scoping import viewer_for_user
from apps.ingestion import pulls
from apps.ingestion.credentials import CredentialError
from apps.ingestion.models import PullProvider, PullSource
from apps.ingestion.providers import PROVIDERS
from apps.org.models import Organisation

ENDPOINT_CHOICES = [
    (endpoint.kind, f"{provider.name}: {endpoint.kind}")
    for provider in PROVIDERS.values()
    for endpoint in provider.endpoints
]


class PullSourceForm(forms.Form):
    name = forms.CharField(max_length=80)
    provider = forms.ChoiceField(choices=PullProvider.choices)
    endpoints = forms.MultipleChoiceField(
        choices=ENDPOINT_CHOICES,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="None ticked: every endpoint of the provider.",
    )
    credential = forms.CharField(
        label="Admin API key",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        required=False,
        help_text="Stored encrypted; never shown again. Leave empty to keep the stored key.",
    )
    base_url = forms.URLField(required=False, assume_scheme="https", help_text="Empty: the provider's API.")
    interval_minutes = forms.IntegerField(min_value=5, max_value=24 * 60, initial=60)
    backfill_days = forms.IntegerField(min_value=0, max_value=400, initial=30)
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args, editing: PullSource | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.editing = editing
        if editing is not None:
            self.fields["name"].disabled = True
            self.fields["provider"].disabled = True
        else:
            self.fields["credential"].required = True
            self.fields["credential"].help_text = "Stored encrypted; never shown again."

    def clean(self) -> dict:
        data = super().clean()
        provider = PROVIDERS.get(data.get("provider", ""))
        if provider is not None:
            own = [endpoint.kind for endpoint in provider.endpoints]
            chosen = data.get("endpoints") or own
            foreign = [kind for kind in chosen if kind not in own]
            if foreign:
                self.add_error("endpoints", f"{provider.name} has no endpoint {', '.join(foreign)}")
            data["endpoints"] = chosen
        return data


def _initial(source: PullSource) -> dict:
    return {
        "name": source.name,
        "provider": source.provider,
        "endpoints": [endpoint.kind for endpoint in source.endpoints.all()],
        "base_url": source.base_url,
        "interval_minutes": source.interval_minutes,
        "backfill_days": source.backfill_days,
        "enabled": source.enabled,
    }


@sensitive_post_parameters("credential")  # an error report never shows the posted key
@login_required
@sensitive_variables("data")
def pull_source_list(request: HttpRequest) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    sources = pulls.pull_sources_for(viewer)  # 404 for anyone without an organisation-wide role
    form = PullSourceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            with transaction.atomic():
                pulls.pull_source_create(
                    organisation=Organisation.objects.get(pk=viewer.organisation_id),
                    name=data["name"],
                    provider=data["provider"],
                    credential=data["credential"],
                    kinds=data["endpoints"],
                    base_url=data["base_url"],
                    interval_minutes=data["interval_minutes"],
                    backfill_days=data["backfill_days"],
                    enabled=data["enabled"],
                )
        except IntegrityError:
            form.add_error("name", "A pull source with this name exists already.")
        except CredentialError as error:
            form.add_error(None, str(error))
        else:
            return redirect("ingestion:pulls")
    return render(request, "ingestion/pull_list.html", {"sources": sources, "form": form})


@sensitive_post_parameters("credential")
@login_required
@sensitive_variables("data")
def pull_source_edit(request: HttpRequest, source_id: int) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    source = pulls.pull_source_get(viewer, source_id=source_id)
    form = PullSourceForm(request.POST or None, initial=_initial(source), editing=source)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            pulls.pull_source_update(
                source,
                kinds=data["endpoints"],
                base_url=data["base_url"],
                interval_minutes=data["interval_minutes"],
                backfill_days=data["backfill_days"],
                enabled=data["enabled"],
                credential=data["credential"],
            )
        except CredentialError as error:
            form.add_error(None, str(error))
        else:
            return redirect("ingestion:pulls")
    return render(request, "ingestion/pull_form.html", {"source": source, "form": form})


@login_required
@require_POST
def pull_source_now(request: HttpRequest, source_id: int) -> HttpResponse:
    """Queue a pull now (the worker runs it; a pull already running makes this one stand aside)."""
    from apps.ingestion.tasks import pull_source

    viewer = viewer_for_user(request.user)
    source = pulls.pull_source_get(viewer, source_id=source_id)
    pull_source.delay_on_commit(source.pk)
    return redirect("ingestion:pulls")
