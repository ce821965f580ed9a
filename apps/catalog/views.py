"""Prices pages (CIO/FinOps): overrides, model mappings, re-pricing runs and the unpriced-models queue.

Thin: forms parse, services change and queue the re-pricing, selectors read. Everyone else gets 404.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.scoping import Viewer, viewer_for_user
from apps.catalog import selectors, services
from apps.catalog.forms import CustomPriceForm, MappingForm, OverrideForm
from apps.catalog.models import AIModel, OverrideKind, Provider
from apps.org.models import Organisation


def _editor(request: HttpRequest) -> tuple[Viewer, services.PriceEditor]:
    viewer = viewer_for_user(request.user)
    if not viewer.sees_organisation:
        raise Http404("no such page")
    return viewer, services.PriceEditor(viewer=viewer, user=request.user, request=request)


def _override_form(viewer: Viewer, data=None, initial=None) -> OverrideForm:
    models = selectors.known_models(viewer)
    providers = sorted({(pk, slug) for pk, slug in Provider.objects.filter(
        models__pk__in=[pk for pk, _, _ in models]).distinct().values_list("pk", "slug")}, key=lambda p: p[1])  # fmt: skip
    return OverrideForm(data, initial=initial, providers=providers, models=models)


def _values(form: OverrideForm) -> dict:
    terms = form.terms()
    level, pk = terms.pop("target")
    if level == "model":
        model = AIModel.objects.select_related("provider").get(pk=pk)
        terms.update(provider=model.provider, model=model)
    else:
        terms.update(provider=Provider.objects.get(pk=pk), model=None)
    return terms


@login_required
def prices(request: HttpRequest) -> HttpResponse:
    viewer, editor = _editor(request)
    form = _override_form(viewer, request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                override, run = services.override_save(editor, values=_values(form))
            except services.PriceChangeRefused as refused:
                form.add_error(None, str(refused))
            else:
                messages.success(request, f"Saved {override}; re-pricing run #{run.pk} is queued.")
                return redirect("catalog:prices")
        status = 400
    context = {
        "organisation": Organisation.objects.get(pk=viewer.organisation_id),
        "form": form,
        "overrides": selectors.overrides(viewer),
        "mappings": selectors.mappings(viewer),
        "runs": selectors.repricing_runs(viewer),
        "kinds": OverrideKind,
    }
    return render(request, "catalog/prices.html", context, status=status)


@login_required
def override_edit(request: HttpRequest, override_id: int) -> HttpResponse:
    viewer, editor = _editor(request)
    override = selectors.override_get(viewer, override_id=override_id)
    target = f"model:{override.model_id}" if override.model_id else f"provider:{override.provider_id}"
    initial = {
        "kind": override.kind,
        "target": target,
        **{name: getattr(override, name) for name in ("percent", *services.PRICE_FIELDS, "valid_from", "valid_to", "note")},
    }  # fmt: skip
    form = _override_form(viewer, request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                override, run = services.override_save(editor, override=override, values=_values(form))
            except services.PriceChangeRefused as refused:
                form.add_error(None, str(refused))
            else:
                messages.success(request, f"Saved {override}; re-pricing run #{run.pk} is queued.")
                return redirect("catalog:prices")
        status = 400
    return render(request, "catalog/override_form.html", {"form": form, "override": override}, status=status)


@login_required
@require_POST
def override_delete(request: HttpRequest, override_id: int) -> HttpResponse:
    _, editor = _editor(request)
    run = services.override_delete(editor, override_id=override_id)
    messages.success(request, f"Override deleted; re-pricing run #{run.pk} is queued.")
    return redirect("catalog:prices")


@login_required
@require_POST
def mapping_delete(request: HttpRequest, mapping_id: int) -> HttpResponse:
    _, editor = _editor(request)
    services.mapping_delete(editor, mapping_id=mapping_id)
    messages.success(request, "Mapping deleted: rows ingested from now on keep their own name.")
    return redirect("catalog:prices")


@login_required
def unpriced(request: HttpRequest) -> HttpResponse:
    viewer, _ = _editor(request)
    context = {
        "organisation": Organisation.objects.get(pk=viewer.organisation_id),
        "models": selectors.unpriced_models(viewer),
        "map_form": MappingForm(),
        "price_form": CustomPriceForm(),
    }
    return render(request, "catalog/unpriced.html", context)


def _queue_error(request: HttpRequest, item, form_name: str, form, error: str | None = None) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    if error:
        form.add_error(None, error)
    context = {
        "organisation": Organisation.objects.get(pk=viewer.organisation_id),
        "models": selectors.unpriced_models(viewer),
        "map_form": MappingForm(),
        "price_form": CustomPriceForm(),
        "failed": item.model_id,
        form_name: form,
    }
    return render(request, "catalog/unpriced.html", context, status=400)


@login_required
@require_POST
def unpriced_map(request: HttpRequest, model_id: int) -> HttpResponse:
    viewer, editor = _editor(request)
    item = selectors.unpriced_model_get(viewer, model_id=model_id)
    form = MappingForm(request.POST)
    if not form.is_valid():
        return _queue_error(request, item, "map_form", form)
    try:
        _, run = services.mapping_save(
            editor,
            raw_model_id=model_id,
            provider=form.cleaned_data["provider"],
            model=form.cleaned_data["model"],
            note=form.cleaned_data["note"],
        )
    except services.PriceChangeRefused as refused:
        return _queue_error(request, item, "map_form", form, str(refused))
    messages.success(request, f"{item.provider}/{item.model} mapped; re-pricing run #{run.pk} is queued.")
    return redirect("catalog:unpriced")


@login_required
@require_POST
def unpriced_price(request: HttpRequest, model_id: int) -> HttpResponse:
    viewer, editor = _editor(request)
    item = selectors.unpriced_model_get(viewer, model_id=model_id)
    form = CustomPriceForm(request.POST)
    if not form.is_valid():
        return _queue_error(request, item, "price_form", form)
    model = AIModel.objects.select_related("provider").get(pk=model_id)
    values = {
        "kind": OverrideKind.CUSTOM_PRICE,
        "provider": model.provider,
        "model": model,
        "percent": None,
        "cache_write_1h_mtok": None,
        **form.cleaned_data,
    }
    try:
        _, run = services.override_save(
            editor, values=values, reason=f"price entered for {item.provider}/{item.model}"
        )
    except services.PriceChangeRefused as refused:
        return _queue_error(request, item, "price_form", form, str(refused))
    messages.success(
        request, f"Price saved for {item.provider}/{item.model}; re-pricing run #{run.pk} is queued."
    )
    return redirect("catalog:unpriced")
