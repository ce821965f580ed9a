"""Budget pages. Thin: resolve the viewer, call selectors and services, hand their output to templates."""

from __future__ import annotations

import uuid

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.models import Role
from apps.accounts.scoping import Viewer, viewer_for_user
from apps.budgets import figures, selectors, services
from apps.budgets.forms import BudgetSettingsForm, LimitCreateForm, LimitEditForm
from apps.budgets.models import AlertKind, ScopeKind
from apps.budgets.text import amount_text, period_label, scope_label
from apps.org.models import Organisation


def _actor(request: HttpRequest, viewer: Viewer) -> services.Actor:
    request_id = request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex
    return services.Actor(
        viewer=viewer, user=request.user, label=request.user.email or str(request.user), request_id=request_id
    )


def _may_create(viewer: Viewer) -> bool:
    return viewer.sees_organisation or (viewer.role == Role.MANAGER and bool(viewer.team_ids))


@login_required
def limit_list(request: HttpRequest) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    organisation = Organisation.objects.get(pk=viewer.organisation_id)
    context = {
        "organisation": organisation,
        "viewer": viewer,
        "rows": selectors.limit_rows(viewer),
        "may_create": _may_create(viewer),
        "settings": selectors.budget_settings_get(organisation) if viewer.sees_organisation else None,
    }
    return render(request, "budgets/list.html", context)


@login_required
def limit_new(request: HttpRequest) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    if not _may_create(viewer):
        raise Http404("no such page")
    form = LimitCreateForm(request.POST or None, viewer=viewer)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            spec = services.LimitSpec(
                scope_kind=data["scope_kind"],
                unit=data["unit"],
                amount=data["stored_amount"],
                period=data["period"],
                team=data.get("team"),
                person=data.get("person"),
                task=data.get("task"),
                include_subteams=data.get("include_subteams", False),
                custom_start=data.get("custom_start"),
                custom_end=data.get("custom_end"),
                thresholds=data["threshold_list"],
                notify_emails=data.get("notify_emails", ""),
            )
            try:
                limit = services.limit_create(actor=_actor(request, viewer), spec=spec)
                return redirect("budgets:detail", limit_id=limit.pk)
            except services.LimitRefused as refusal:
                form.add_error(None, str(refusal))
                status = 403
            except services.LimitInvalid as invalid:
                form.add_error(None, str(invalid))
    return render(request, "budgets/form.html", {"form": form, "viewer": viewer}, status=status)


def _detail_context(request: HttpRequest, viewer: Viewer, limit_id: int, edit_form=None) -> dict:
    limit = selectors.limit_get(viewer, limit_id=limit_id)
    states = list(selectors.states_visible(viewer, limit).order_by("-spent"))
    chosen = states[0] if states else None
    wanted = request.GET.get("person")
    if wanted and wanted.isdigit():
        chosen = next((state for state in states if state.person_id == int(wanted)), None)
        if chosen is None:
            raise Http404("no such person under this limit")
    editable = selectors.can_edit(viewer, limit)
    chart = None
    if chosen is not None:
        title = f"{scope_label(limit)}: {period_label(limit)} budget"
        if chosen.person_id:
            title = f"{chosen.person.name}: {period_label(limit)} budget"
        chart = figures.to_html(
            figures.burn_chart(selectors.burn(chosen), title=title[0].upper() + title[1:]),
            element_id="chart-burn",
        )
    people_rows = [
        {
            "state": state,
            "spent": amount_text(state.spent, state.unit),
            "projected": amount_text(state.projected, state.unit),
        }
        for state in states
    ]
    figures_text: dict = {}
    if chosen is not None:
        band = ""
        if chosen.projected_low is not None:
            band = f"{amount_text(chosen.projected_low, chosen.unit)} – {amount_text(chosen.projected_high, chosen.unit)}"
        warning = ""
        if chosen.projected is not None and chosen.spent < chosen.limit_amount < chosen.projected:
            name = chosen.person.name if chosen.person_id else None
            warning = services.alert_message(chosen, limit, AlertKind.FORECAST, 100, name)
        figures_text = {
            "spent_text": amount_text(chosen.spent, chosen.unit),
            "limit_text": amount_text(chosen.limit_amount, chosen.unit),
            "projected_text": amount_text(chosen.projected, chosen.unit)
            if chosen.projected is not None
            else "–",
            "band_text": band,
            "forecast_warning": warning,
        }
    return {
        **figures_text,
        "people_rows": people_rows,
        "limit": limit,
        "scope_label": scope_label(limit),
        "period_label": period_label(limit),
        "states": states if limit.scope_kind == ScopeKind.PERSON_DEFAULT else [],
        "state": chosen,
        "chart": chart,
        "alerts": selectors.alerts_for(viewer, limit)[:200],
        "audits": selectors.audits_for(viewer, limit)[:200],
        "editable": editable and limit.is_active,
        "edit_form": edit_form or (LimitEditForm(limit=limit) if editable else None),
        "amount_text": amount_text,
    }


@login_required
def limit_detail(request: HttpRequest, limit_id: int) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    return render(request, "budgets/detail.html", _detail_context(request, viewer, limit_id))


@login_required
@require_POST
def limit_edit(request: HttpRequest, limit_id: int) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    actor = _actor(request, viewer)
    try:
        limit = selectors.limit_get(viewer, limit_id=limit_id)
    except Http404:
        services.attempt_refused(actor, f"edit of limit {limit_id}, outside the actor's scope")
        raise
    form = LimitEditForm(request.POST, limit=limit)
    status = 400
    if form.is_valid():
        try:
            services.limit_update(
                actor=actor,
                limit_id=limit.pk,
                amount=form.cleaned_data["stored_amount"],
                thresholds=form.cleaned_data["threshold_list"],
                notify_emails=form.cleaned_data.get("notify_emails", ""),
            )
            return redirect("budgets:detail", limit_id=limit.pk)
        except services.LimitRefused as refusal:
            form.add_error(None, str(refusal))
            status = 403
        except services.LimitInvalid as invalid:
            form.add_error(None, str(invalid))
    context = _detail_context(request, viewer, limit_id, edit_form=form)
    return render(request, "budgets/detail.html", context, status=status)


@login_required
@require_POST
def limit_deactivate(request: HttpRequest, limit_id: int) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    actor = _actor(request, viewer)
    try:
        services.limit_deactivate(actor=actor, limit_id=limit_id)
    except services.LimitRefused as refusal:
        context = _detail_context(request, viewer, limit_id)
        context["refusal"] = str(refusal)
        return render(request, "budgets/detail.html", context, status=403)
    return redirect("budgets:list")


@login_required
def budget_settings(request: HttpRequest) -> HttpResponse:
    viewer = viewer_for_user(request.user)
    if not viewer.sees_organisation:
        raise Http404("no such page")
    organisation = Organisation.objects.get(pk=viewer.organisation_id)
    current = selectors.budget_settings_get(organisation)
    form = BudgetSettingsForm(
        request.POST or None,
        initial={
            "fiscal_year_start_month": current.fiscal_year_start_month,
            "alert_emails": current.alert_emails,
            "webhook_url": current.webhook_url,
        },
    )
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                services.budget_settings_update(actor=_actor(request, viewer), **form.cleaned_data)
                return redirect("budgets:list")
            except services.LimitInvalid as invalid:
                form.add_error(None, str(invalid))
    return render(
        request, "budgets/settings.html", {"form": form, "organisation": organisation}, status=status
    )
