"""Writes for prices: overrides, model mappings and re-pricing runs.

Only CIO and FinOps change prices (everyone else: 404). Every change writes one audit row in the same
transaction and queues a RepricingRun once it commits; the run re-prices the facts the change reaches
(apps.catalog.repricing) - from the change's first day on, never earlier.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.http import Http404, HttpRequest
from django.utils import timezone

from apps.accounts.scoping import Viewer
from apps.audit.services import audit_record
from apps.catalog.models import (
    AIModel,
    ModelMapping,
    OverrideKind,
    OverrideSet,
    PriceOverride,
    Provider,
    RepricingRun,
    RepricingStatus,
)
from apps.catalog.normalise import provider_display_name
from apps.catalog.pricing import shared_pricer

MAX_PERCENT = Decimal(100)
PRICE_FIELDS = ("input_mtok", "cache_read_mtok", "cache_write_mtok", "cache_write_1h_mtok", "output_mtok")


class PriceChangeRefused(ValueError):
    """The change is not valid (overlapping terms, an unknown target model, a bad percentage...)."""


@dataclass(frozen=True, slots=True)
class PriceEditor:
    """Who changes prices: their rights, their login (None for commands) and, for pages, the request."""

    viewer: Viewer
    user: Any = None
    label: str = ""
    request: HttpRequest | None = None

    @property
    def actor(self) -> Any:
        return self.user if self.user is not None else (self.label or "system")

    @property
    def actor_label(self) -> str:
        if self.user is not None:
            return getattr(self.user, "email", "") or self.user.get_username()
        return self.label or "system"


def _require_organisation_wide(editor: PriceEditor) -> None:
    if not editor.viewer.sees_organisation:
        raise Http404("no such page")


def override_set_get_or_create(override_ids: tuple[int, ...]) -> int:
    key = ",".join(str(override_id) for override_id in sorted(override_ids))
    return OverrideSet.objects.get_or_create(key=key)[0].pk


def override_snapshot(override: PriceOverride) -> dict:
    """What the audit trail keeps of an override: every term, as text (exact decimals, ISO dates)."""
    snapshot = {
        "kind": override.kind,
        "provider": override.provider.slug,
        "model": override.model.name if override.model_id else None,
        "percent": None
        if override.percent is None
        else str(Decimal(override.percent).quantize(Decimal("0.0001"))),
        "valid_from": override.valid_from.isoformat(),
        "valid_to": override.valid_to.isoformat() if override.valid_to else None,
        "note": override.note,
    }
    for name in PRICE_FIELDS:
        value = getattr(override, name)
        snapshot[name] = None if value is None else str(Decimal(value).quantize(Decimal("0.000001")))
    return snapshot


def provider_for(slug: str) -> Provider:
    return Provider.objects.get_or_create(slug=slug, defaults={"name": provider_display_name(slug)})[0]


def _validate(override: PriceOverride) -> None:
    if override.valid_to is not None and override.valid_to < override.valid_from:
        raise PriceChangeRefused("The last day is before the first day.")
    if override.model_id and override.model.provider_id != override.provider_id:
        raise PriceChangeRefused("The model belongs to another provider.")
    if override.kind in (OverrideKind.DISCOUNT, OverrideKind.BATCH_DISCOUNT):
        if override.percent is None or not Decimal(0) < override.percent <= MAX_PERCENT:
            raise PriceChangeRefused("A discount needs a percentage above 0 and at most 100.")
        if any(getattr(override, name) is not None for name in PRICE_FIELDS):
            raise PriceChangeRefused("A discount takes a percentage, not prices.")
    elif override.kind == OverrideKind.CUSTOM_PRICE:
        if not override.model_id:
            raise PriceChangeRefused("A custom price is for one model: choose the model.")
        if override.input_mtok is None or override.output_mtok is None:
            raise PriceChangeRefused(
                "A custom price needs at least the input and output price per million tokens."
            )
        if any((getattr(override, name) or 0) < 0 for name in PRICE_FIELDS):
            raise PriceChangeRefused("Prices cannot be negative.")
        if override.percent is not None:
            raise PriceChangeRefused("A custom price takes prices, not a percentage.")
    else:
        raise PriceChangeRefused(f"Unknown kind of override: {override.kind!r}.")
    overlapping = PriceOverride.objects.filter(
        organisation_id=override.organisation_id,
        kind=override.kind,
        provider_id=override.provider_id,
        model_id=override.model_id,
    ).exclude(pk=override.pk)
    far = dt.date.max
    for other in overlapping:
        if other.valid_from <= (override.valid_to or far) and override.valid_from <= (other.valid_to or far):
            raise PriceChangeRefused(
                f"It overlaps override #{other.pk} ({other.valid_from} to {other.valid_to or 'open end'}) "
                "of the same kind and target: end that one first."
            )


def _reprice_scope(override: PriceOverride) -> list[int] | None:
    """The models an override reaches: its own, or every model of its provider."""
    if override.model_id:
        return [override.model_id]
    return list(AIModel.objects.filter(provider_id=override.provider_id).values_list("pk", flat=True))


def override_save(
    editor: PriceEditor, *, override: PriceOverride | None = None, values: dict, reason: str = ""
) -> tuple[PriceOverride, RepricingRun]:
    """Create (override None) or change an override; audit it; queue the re-pricing from its first day."""
    _require_organisation_wide(editor)
    organisation_id = editor.viewer.organisation_id
    if override is not None and override.organisation_id != organisation_id:
        raise Http404("no such override")
    with transaction.atomic():
        before = override_snapshot(override) if override is not None else None
        old_since, old_models = (override.valid_from, _reprice_scope(override)) if override else (None, [])
        saved = override or PriceOverride(organisation_id=organisation_id, created_by=_user(editor))
        for name, value in values.items():
            setattr(saved, name, value)
        _validate(saved)
        saved.save()
        after = override_snapshot(saved)
        if before == after:
            raise PriceChangeRefused("Nothing changed.")
        audit_record(
            organisation=organisation_id,
            actor=editor.actor,
            action="price_override.updated" if before else "price_override.created",
            target=saved,
            before=before,
            after=after,
            request=editor.request,
        )
        since = min(filter(None, [old_since, saved.valid_from]))
        models = sorted(set(old_models) | set(_reprice_scope(saved) or []))
        run = repricing_run_request(
            editor,
            reason=reason or f"{'changed' if before else 'new'} {saved}",
            since=since,
            model_ids=models,
        )
    return saved, run


def override_delete(editor: PriceEditor, *, override_id: int, reason: str = "") -> RepricingRun:
    _require_organisation_wide(editor)
    with transaction.atomic():
        override = (
            PriceOverride.objects.select_related("provider", "model")
            .filter(pk=override_id, organisation_id=editor.viewer.organisation_id)
            .first()
        )
        if override is None:
            raise Http404("no such override")
        before = override_snapshot(override)
        since, models, label = override.valid_from, _reprice_scope(override), str(override)
        audit_record(
            organisation=override.organisation_id,
            actor=editor.actor,
            action="price_override.deleted",
            target=override,
            before=before,
            after=None,
            request=editor.request,
        )
        override.delete()
        return repricing_run_request(
            editor, reason=reason or f"deleted {label}", since=since, model_ids=models
        )


def mapping_save(
    editor: PriceEditor, *, raw_model_id: int, provider: str, model: str, note: str = ""
) -> tuple[ModelMapping, RepricingRun]:
    """Map a model (as stored, after the built-in rules) to one the price data knows; move its facts."""
    _require_organisation_wide(editor)
    raw = AIModel.objects.select_related("provider").filter(pk=raw_model_id).first()
    if raw is None:
        raise Http404("no such model")
    provider, model = provider.strip().lower(), model.strip()
    if shared_pricer().find_model(provider, model) is None:
        raise PriceChangeRefused(
            f"No price data knows {provider}/{model}: map to a known model or enter a price."
        )
    if (provider, model) == (raw.provider.slug, raw.name):
        raise PriceChangeRefused("A model cannot be mapped to itself.")
    with transaction.atomic():
        target = AIModel.objects.get_or_create(provider=provider_for(provider), name=model)[0]
        mapping, created = ModelMapping.objects.update_or_create(
            organisation_id=editor.viewer.organisation_id,
            raw_provider=raw.provider.slug,
            raw_model=raw.name,
            defaults={"provider": provider, "model": model, "note": note, "created_by": _user(editor)},
        )
        audit_record(
            organisation=editor.viewer.organisation_id,
            actor=editor.actor,
            action="model_mapping.created" if created else "model_mapping.updated",
            target=mapping,
            before=None,
            after={"raw": f"{raw.provider.slug}/{raw.name}", "to": f"{provider}/{model}", "note": note},
            request=editor.request,
        )
        run = repricing_run_request(
            editor,
            reason=f"mapped {raw.provider.slug}/{raw.name} to {provider}/{model}",
            since=None,
            model_ids=[target.pk],
            remap=(raw.pk, target.pk),
        )
    return mapping, run


def mapping_delete(editor: PriceEditor, *, mapping_id: int) -> None:
    """Forget a mapping: rows ingested from now on keep their raw name (stored facts stay where they are)."""
    _require_organisation_wide(editor)
    with transaction.atomic():
        mapping = ModelMapping.objects.filter(
            pk=mapping_id, organisation_id=editor.viewer.organisation_id
        ).first()
        if mapping is None:
            raise Http404("no such mapping")
        audit_record(
            organisation=mapping.organisation_id,
            actor=editor.actor,
            action="model_mapping.deleted",
            target=mapping,
            before={
                "raw": f"{mapping.raw_provider}/{mapping.raw_model}",
                "to": f"{mapping.provider}/{mapping.model}",
            },
            after=None,
            request=editor.request,
        )
        mapping.delete()


def _user(editor: PriceEditor):
    return editor.user if getattr(editor.user, "pk", None) else None


# --- re-pricing runs -------------------------------------------------------------------------------------


def repricing_run_request(
    editor: PriceEditor,
    *,
    reason: str,
    since: dt.date | None,
    model_ids: list[int] | None,
    remap: tuple[int, int] | None = None,
    enqueue: bool = True,
) -> RepricingRun:
    """Record a run and queue it once the caller's transaction commits (enqueue=False: the caller runs it
    with repricing_run_execute). model_ids None: every model."""
    from apps.catalog.tasks import reprice

    run = RepricingRun.objects.create(
        organisation_id=editor.viewer.organisation_id,
        requested_by=_user(editor),
        requested_by_label=editor.actor_label[:254],
        reason=reason[:300],
        since=since,
        scope={"models": model_ids, "remap": list(remap) if remap else None},
    )
    if enqueue:
        transaction.on_commit(lambda: reprice.delay(run.pk))
    return run


def repricing_run_execute(*, run_id: int) -> RepricingRun:
    """Run a queued re-pricing (a finished run is not run again): facts, rollups and the record together."""
    from apps.catalog.repricing import Repricer, remap_model
    from apps.usage.services import refresh_rollups

    with transaction.atomic():
        run = RepricingRun.objects.select_for_update().get(pk=run_id)
        if run.status != RepricingStatus.QUEUED:
            return run
        models, remap = run.scope.get("models"), run.scope.get("remap")
        moved_days: set[dt.date] = set()
        if remap:
            moved_days = remap_model(
                organisation_id=run.organisation_id, from_model_id=remap[0], to_model_id=remap[1]
            )
        result = Repricer(run.organisation_id).run(since=run.since, model_ids=models)
        extra_days = moved_days - result.days
        if extra_days:
            refresh_rollups(organisation_id=run.organisation_id, days=extra_days)
        run.status = RepricingStatus.DONE
        run.finished_at = timezone.now()
        run.rows = result.after.rows
        run.rows_changed = result.rows_changed
        run.days_refreshed = len(result.days | moved_days)
        run.list_before_nanos, run.list_after_nanos = result.before.list_nanos, result.after.list_nanos
        run.net_before_nanos, run.net_after_nanos = result.before.net_nanos, result.after.net_nanos
        run.unpriced_before, run.unpriced_after = result.before.unpriced, result.after.unpriced
        run.save()
    run.seconds = result.seconds  # not stored: for the benchmark
    return run


def repricing_run_fail(*, run_id: int, error: str) -> None:
    RepricingRun.objects.filter(pk=run_id, status=RepricingStatus.QUEUED).update(
        status=RepricingStatus.FAILED, error=error[:2000], finished_at=timezone.now()
    )
