"""The one path every source takes: adapter -> normalised rows -> attribute -> price -> store -> roll up.

Streaming: rows are handled in batches of SPENDWATCH_INGEST_BATCH_ROWS, so memory is set by the batch,
never by the file. Each batch commits in one transaction together with its rejected rows and the run's
counters, so the counters always describe what is in the database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.catalog.models import AIModel, PriceRef, Provider
from apps.catalog.normalise import model_name, provider_display_name, provider_slug
from apps.catalog.pricing import PriceMatch, Pricer, TokenCounts
from apps.ingestion.adapters import NormalisedRow, RowError, get_adapter
from apps.ingestion.adapters.base import Basis
from apps.ingestion.models import IngestionRun, RejectedRow
from apps.org.attribution import Resolver
from apps.usage.models import Grain
from apps.usage.services import StoreResult, refresh_rollups, store_facts


class Pipeline:
    def __init__(self, run: IngestionRun) -> None:
        self.run = run
        self.source = run.source
        self.organisation = self.source.organisation
        self.adapter = get_adapter(run.format)
        self.billing = self.adapter.basis == Basis.BILLING
        self.time_zone = ZoneInfo(self.organisation.time_zone)
        self.resolver = Resolver(self.organisation)
        self.pricer = Pricer()
        self.batch_rows = settings.SPENDWATCH_INGEST_BATCH_ROWS
        self.touched_days: set[dt.date] = {dt.date.fromisoformat(day) for day in run.touched_days}
        self._dimensions: dict[tuple[str, str], tuple[str, str, int, int]] = {}
        self._providers: dict[str, int] = {}
        self._models: dict[tuple[str, str], int] = {}
        self._price_refs: dict[PriceMatch, int] = {}

    def ingest_path(self, path: Path, file_index: int = 0, display_name: str | None = None) -> None:
        """Ingest one file of the run; after a crash, resume after the last committed line."""
        if file_index < self.run.resume_file:
            return
        done = self.run.resume_line if file_index == self.run.resume_file else 0
        name = display_name or path.name
        with path.open("rb") as stream:
            items = (item for item in self.adapter.parse(stream, name) if item.line > done)
            for rows, errors in _batches(items, self.batch_rows):
                last_line = max(rows[-1].line if rows else 0, errors[-1].line if errors else 0)
                self._commit_batch(rows, errors, name, file_index, last_line)

    def finish(self) -> int:
        """Refresh the rollups of every day this run touched; returns the rollup rows written."""
        return refresh_rollups(organisation_id=self.organisation.pk, days=self.touched_days)

    def _commit_batch(
        self,
        rows: list[NormalisedRow],
        errors: list[RowError],
        file_name: str,
        file_index: int,
        last_line: int,
    ) -> None:
        with transaction.atomic():
            self.resolver.prepare(row.identity for row in rows)
            facts = [self._fact(row) for row in rows]
            result = store_facts(facts) if facts else StoreResult(0, 0, 0)
            if errors:
                RejectedRow.objects.bulk_create(
                    RejectedRow(
                        run=self.run,
                        file=error.file or file_name,
                        line=error.line,
                        field=error.field,
                        reason=error.reason,
                        raw=error.raw,
                    )
                    for error in errors
                )
            IngestionRun.objects.filter(pk=self.run.pk).update(
                rows=F("rows") + len(rows) + len(errors),
                accepted=F("accepted") + result.accepted,
                duplicates=F("duplicates") + result.duplicates,
                replaced=F("replaced") + result.replaced,
                rejected=F("rejected") + len(errors),
                resume_file=file_index,
                resume_line=last_line,
                touched_days=sorted(day.isoformat() for day in self.touched_days),
                heartbeat_at=timezone.now(),
            )

    def _fact(self, row: NormalisedRow) -> tuple:
        dimensions = self._dimensions.get((row.provider, row.model))
        if dimensions is None:
            dimensions = self._dimensions[(row.provider, row.model)] = self._dimension_ids(
                row.provider, row.model
            )
        provider, model, provider_id, model_id = dimensions
        day = row.ts.date() if row.grain == Grain.DAY else row.ts.astimezone(self.time_zone).date()
        self.touched_days.add(day)
        attribution = self.resolver.resolve(row.identity)
        counts = TokenCounts(
            row.input_uncached_tokens,
            row.cache_read_tokens,
            row.cache_write_5m_tokens,
            row.cache_write_1h_tokens,
            row.output_tokens,
            row.reasoning_tokens,
        )
        cost_nanos: int | None = None
        price_ref_id: int | None = None
        if self.billing:
            # An invoice line is the cost: pricing its tokens again would only disagree with the bill.
            cost_nanos = row.reported_cost_nanos
        elif row.failed:
            # A failed request is not spend unless the source says it was charged (TESTPLAN A10).
            cost_nanos = row.reported_cost_nanos or 0
        else:
            priced = self.pricer.price(
                provider=provider,
                model=model,
                at=row.ts,
                counts=counts,
                batch=row.batch,
                service_tier=row.service_tier,
            )
            if priced is not None:
                cost_nanos, match = priced
                price_ref_id = self._price_ref_id(match)
        return (
            self.source.pk,
            row.ts,
            row.record_key,
            self.organisation.pk,
            day,
            row.grain,
            self.run.pk,
            provider_id,
            model_id,
            attribution.team_id,
            attribution.person_id,
            attribution.task_id,
            attribution.raw_identity_id,
            counts.input_uncached,
            counts.cache_read,
            counts.cache_write_5m,
            counts.cache_write_1h,
            counts.output,
            counts.reasoning,
            row.requests,
            row.failed,
            row.batch,
            cost_nanos,
            row.reported_cost_nanos,
            price_ref_id,
        )

    def _dimension_ids(self, raw_provider: str, raw_model: str) -> tuple[str, str, int, int]:
        provider = provider_slug(raw_provider, raw_model)
        model = model_name(raw_model)
        return provider, model, self._provider_id(provider), self._model_id(provider, model)

    def _provider_id(self, slug: str) -> int:
        if slug not in self._providers:
            provider, _ = Provider.objects.get_or_create(
                slug=slug, defaults={"name": provider_display_name(slug)}
            )
            self._providers[slug] = provider.pk
        return self._providers[slug]

    def _model_id(self, provider: str, name: str) -> int:
        key = (provider, name)
        if key not in self._models:
            model, _ = AIModel.objects.get_or_create(provider_id=self._provider_id(provider), name=name)
            self._models[key] = model.pk
        return self._models[key]

    def _price_ref_id(self, match: PriceMatch) -> int:
        if match not in self._price_refs:
            ref, _ = PriceRef.objects.get_or_create(
                source=match.source,
                provider_ref=match.provider_ref,
                model_ref=match.model_ref,
                context=match.context,
            )
            self._price_refs[match] = ref.pk
        return self._price_refs[match]


def _batches(
    items: Iterator[NormalisedRow | RowError], size: int
) -> Iterator[tuple[list[NormalisedRow], list[RowError]]]:
    rows: list[NormalisedRow] = []
    errors: list[RowError] = []
    for item in items:
        if isinstance(item, RowError):
            errors.append(item)
        else:
            rows.append(item)
        if len(rows) + len(errors) >= size:
            yield rows, errors
            rows, errors = [], []
    if rows or errors:
        yield rows, errors
