"""The one path every source takes: adapter -> normalised rows -> attribute -> price -> store -> roll up.

Streaming: rows are handled in batches of SPENDWATCH_INGEST_BATCH_ROWS, so memory is set by the batch,
never by the file. Each batch commits in one transaction together with its rejected rows and the run's
counters, so the counters always describe what is in the database.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from django.apps import apps as django_apps
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.catalog.models import AIModel, PriceRef, Provider
from apps.catalog.normalise import NameResolver, provider_display_name
from apps.catalog.prices import OrganisationPrices, vector_segment_cost
from apps.catalog.pricing import PriceMatch, Pricer, vector_cost
from apps.catalog.services import override_set_get_or_create
from apps.ingestion.adapters import NormalisedRow, RowError, get_adapter
from apps.ingestion.adapters.base import Basis
from apps.ingestion.frames import concat, rows_to_table
from apps.ingestion.models import IngestionRun, RejectedRow
from apps.org.attribution import Resolver
from apps.usage.columns import TOKEN_COLUMNS
from apps.usage.models import Grain
from apps.usage.services import StoreResult, refresh_rollups, store_facts


class Pipeline:
    def __init__(self, run: IngestionRun) -> None:
        self.run = run
        self.source = run.source
        self.organisation = self.source.organisation
        self.adapter = get_adapter(run.format)
        self.billing = self.adapter.basis == Basis.BILLING
        self.observes_prompts = django_apps.is_installed("apps.overuse")
        self.prompt_free = self.observes_prompts and _stores_no_prompts(self.organisation.pk)
        self.time_zone = ZoneInfo(self.organisation.time_zone)
        self.resolver = Resolver(self.organisation, source_id=self.source.pk)
        self.pricer = Pricer()
        self.batch_rows = settings.SPENDWATCH_INGEST_BATCH_ROWS
        self.touched_days: set[dt.date] = {dt.date.fromisoformat(day) for day in run.touched_days}
        self._dimensions: dict[tuple[str, str], tuple[str, str, int, int]] = {}
        self._providers: dict[str, int] = {}
        self._models: dict[tuple[str, str], int] = {}
        self._price_refs: dict[PriceMatch, int] = {}
        self._catalog_loaded = False

    def ingest_path(self, path: Path, file_index: int = 0, display_name: str | None = None) -> None:
        """Ingest one file of the run; after a crash, resume after the last committed line."""
        if file_index < self.run.resume_file:
            return
        done = self.run.resume_line if file_index == self.run.resume_file else 0
        name = display_name or path.name
        with path.open("rb") as stream:
            items = self.adapter.parse_columns(stream, name)
            if items is None:
                items = self.adapter.parse(stream, name)
            # Reading runs in a thread of its own: Arrow and the database driver release the GIL, so
            # the next batch is parsed while PostgreSQL stores this one, on the other core.
            batches = _batches(items, self.batch_rows, done)
            for table, errors, last_line in _read_ahead(batches, depth=1):
                self._commit_batch(table, errors, name, file_index, last_line)

    def finish(self) -> int:
        """Refresh the rollups of every day this run touched; returns the rollup rows written."""
        return refresh_rollups(organisation_id=self.organisation.pk, days=self.touched_days)

    def _commit_batch(
        self,
        table: pa.Table,
        errors: list[RowError],
        file_name: str,
        file_index: int,
        last_line: int,
    ) -> None:
        with transaction.atomic():
            facts = self._facts(table)
            result = store_facts(facts) if facts.num_rows else StoreResult(0, 0, 0)
            self._observe_prompts(table)
            if errors:
                RejectedRow.objects.bulk_create(
                    RejectedRow(
                        run=self.run,
                        file=error.file or file_name,
                        line=error.line,
                        field=error.field,
                        reason=error.reason,
                        raw=self._storable_raw(error.raw),
                    )
                    for error in errors
                )
            IngestionRun.objects.filter(pk=self.run.pk).update(
                rows=F("rows") + table.num_rows + len(errors),
                accepted=F("accepted") + result.accepted,
                duplicates=F("duplicates") + result.duplicates,
                replaced=F("replaced") + result.replaced,
                rejected=F("rejected") + len(errors),
                resume_file=file_index,
                resume_line=last_line,
                touched_days=sorted(day.isoformat() for day in self.touched_days),
                heartbeat_at=timezone.now(),
            )

    def _storable_raw(self, raw: str) -> str:
        """A rejected line as kept for fixing: without its prompt text when the organisation stores none."""
        marks = [f'"{name}"' for name in _PROMPT_FIELDS if f'"{name}"' in raw]
        if not self.prompt_free or not marks:
            return raw
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            record = None
        if isinstance(record, dict):
            for name in _PROMPT_FIELDS:
                if name in record:
                    record[name] = "[removed: this organisation stores no prompt text]"
            return orjson.dumps(record).decode()
        # Unreadable: keep what comes before the first prompt field, which is enough to see the line.
        cut = min(raw.find(mark) for mark in marks)
        return raw[:cut] + "[rest removed: this organisation stores no prompt text]"

    def _observe_prompts(self, table: pa.Table) -> None:
        """Hand the batch's prompts to the overuse classifier, in the batch's transaction."""
        if not self.observes_prompts:
            return
        with_prompt = table.filter(pc.is_valid(table["prompt"]))
        if not with_prompt.num_rows:
            return
        from apps.overuse.services import PromptItem, observe_prompts

        items = [
            PromptItem(ts=ts, record_key=key, text=text)
            for ts, key, text in zip(
                with_prompt["ts"].to_pylist(),
                with_prompt["record_key"].to_pylist(),
                with_prompt["prompt"].to_pylist(),
                strict=True,
            )
        ]
        observe_prompts(organisation_id=self.organisation.pk, source_id=self.source.pk, items=items)

    def _facts(self, table: pa.Table) -> pa.Table:
        """Normalised rows -> fact rows (FACT_COLUMNS): dimensions, day, attribution and cost, by column.

        Everything that needs Python (catalog lookups, identity resolution, price lookups) runs once per
        distinct value of its key, and the answers are spread back over the rows with `take`.
        """
        rows = table.num_rows
        dimension_keys = pc.binary_join_element_wise(table["provider"], table["model"], "\x1f")
        dimension_index, dimension_values = _encode(dimension_keys)
        dimensions = [self._dimensions_of(key) for key in dimension_values]
        provider_ids = pa.array([d[2] for d in dimensions], pa.int64()).take(dimension_index)
        model_ids = pa.array([d[3] for d in dimensions], pa.int64()).take(dimension_index)

        ts = table["ts"]
        daily = pc.equal(table["grain"], Grain.DAY)
        local_day = pc.cast(
            pc.local_timestamp(ts.cast(pa.timestamp("us", tz=self.time_zone.key))), pa.date32()
        )
        day = pc.if_else(daily, pc.cast(ts, pa.date32()), local_day)
        self.touched_days.update(value for value in pc.unique(day).to_pylist())

        identity_index, identity_values = _encode(table["identity"])
        fields = [orjson.loads(value) for value in identity_values]
        self.resolver.prepare(fields)
        attributions = [self.resolver.resolve(value) for value in fields]

        def attributed(name: str) -> pa.Array:
            return pa.array([getattr(a, name) for a in attributions], pa.int64()).take(identity_index)

        cost, list_cost, price_ref, override_set = self._costs(table, dimensions, dimension_index)
        constant = pa.scalar  # organisation, source and run are the same for every row of a batch
        return pa.table(
            {
                "source_id": pa.repeat(constant(self.source.pk, pa.int64()), rows),
                "ts": ts,
                "record_key": table["record_key"],
                "organisation_id": pa.repeat(constant(self.organisation.pk, pa.int64()), rows),
                "day": day,
                "grain": table["grain"],
                "run_id": pa.repeat(constant(self.run.pk, pa.int64()), rows),
                "provider_id": provider_ids,
                "model_id": model_ids,
                "team_id": attributed("team_id"),
                "person_id": attributed("person_id"),
                "task_id": attributed("task_id"),
                "raw_identity_id": attributed("raw_identity_id"),
                **{column: table[column] for column in TOKEN_COLUMNS},
                "requests": table["requests"],
                "failed": table["failed"],
                "batch": table["batch"],
                "cost_nanos": cost,
                "reported_cost_nanos": table["reported_cost_nanos"],
                "price_ref_id": price_ref,
                "list_cost_nanos": list_cost,
                "override_set_id": override_set,
            }
        )

    def _costs(
        self, table: pa.Table, dimensions: list[tuple[str, str, int, int]], dimension_index: pa.Array
    ) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array]:
        """Net cost and list cost (nano-dollars, NULL when unpriced), price reference and overrides of every row.

        The net cost (apps.catalog.prices: the organisation's overrides on the price data's price) is the
        fact's cost_nanos; the list cost is the price data's own. Without an override they are equal.
        """
        reported = table["reported_cost_nanos"]
        if self.billing:
            # An invoice line is the cost: pricing its tokens again would only disagree with the bill.
            nulls = pa.nulls(table.num_rows, pa.int64())
            return reported, reported, nulls, nulls
        periods = np.asarray(
            [self.pricer.period_seconds(provider, model) or 1 for provider, model, _, _ in dimensions],
            dtype=np.int64,
        )
        dimension = dimension_index.to_numpy(zero_copy_only=False).astype(np.int64)
        seconds = pc.cast(table["ts"], pa.int64()).to_numpy(zero_copy_only=False) // 1_000_000
        slot = seconds // periods[dimension]
        tier_index, tiers = _encode(pc.fill_null(table["service_tier"], ""))
        batch = table["batch"].to_numpy(zero_copy_only=False)
        keys = np.stack(
            [dimension, slot, batch.astype(np.int64), tier_index.to_numpy(zero_copy_only=False)], axis=1
        )
        # One price lookup per (model, price period, batch, service tier); rows grouped by sorting.
        distinct, inverse = np.unique(keys, axis=0, return_inverse=True)
        order = np.argsort(inverse.ravel(), kind="stable")
        bounds = np.searchsorted(inverse.ravel()[order], np.arange(len(distinct) + 1))
        tokens = [table[column].to_numpy(zero_copy_only=False) for column in TOKEN_COLUMNS]
        failed = table["failed"].to_numpy(zero_copy_only=False)
        cost = np.zeros(table.num_rows, dtype=np.int64)
        list_cost = np.zeros(table.num_rows, dtype=np.int64)
        priced = np.zeros(table.num_rows, dtype=bool)
        overridden = np.zeros(table.num_rows, dtype=bool)
        price_ref = np.zeros(table.num_rows, dtype=np.int64)
        override_set = np.zeros(table.num_rows, dtype=np.int64)
        prices = self._organisation_prices()
        for group, (index, slot_number, is_batch, tier) in enumerate(distinct.tolist()):
            provider, model, _, _ = dimensions[index]
            price = prices.group_price(
                provider=provider,
                model=model,
                at=dt.datetime.fromtimestamp(slot_number * int(periods[index]), tz=dt.UTC),
                batch=bool(is_batch),
                service_tier=tiers[tier] or None,
            )
            if not price.priced:
                continue
            rows = order[bounds[group] : bounds[group + 1]]
            priced[rows] = True
            price_ref[rows] = self._price_ref_id(price.match)
            columns = [column[rows] for column in tokens]
            if price.lookup is not None:
                list_cost[rows], exact = vector_cost(price.lookup, columns)
            else:
                list_cost[rows], exact = vector_segment_cost(price.list_segments, columns)
            for row in rows[~exact].tolist():
                # Tiered prices above the tier start, huge counts or sub-femto rates: exact, one by one.
                list_cost[row] = price.list_cost([int(column[row]) for column in tokens])
            if not price.overridden:
                cost[rows] = list_cost[rows]
                continue
            overridden[rows] = True
            override_set[rows] = self._override_set_id(price.override_ids)
            if price.net_segments is None:
                cost[rows] = list_cost[rows]
                continue
            cost[rows], exact = vector_segment_cost(price.net_segments, columns)
            for row in rows[~exact].tolist():
                cost[row] = price.net_cost([int(column[row]) for column in tokens])
        # A failed request is not spend unless the source says it was charged (TESTPLAN A10).
        failed_cost = pc.fill_null(reported, 0).to_numpy(zero_copy_only=False)
        cost = np.where(failed, failed_cost, cost)
        list_cost = np.where(failed, failed_cost, list_cost)
        has_cost = priced | failed
        return (
            pa.array(cost, pa.int64(), mask=~has_cost),
            pa.array(list_cost, pa.int64(), mask=~has_cost),
            pa.array(price_ref, pa.int64(), mask=~(priced & ~failed)),
            pa.array(override_set, pa.int64(), mask=~(overridden & ~failed)),
        )

    def _organisation_prices(self) -> OrganisationPrices:
        """The organisation's overrides, loaded once per run (a run prices with the terms it started with)."""
        prices = getattr(self, "_prices", None)
        if prices is None:
            prices = self._prices = OrganisationPrices(self.organisation.pk, self.pricer)
        return prices

    def _override_set_id(self, override_ids: tuple[int, ...]) -> int:
        cache = self.__dict__.setdefault("_override_sets", {})
        if override_ids not in cache:
            cache[override_ids] = override_set_get_or_create(override_ids)
        return cache[override_ids]

    def _dimensions_of(self, key: str) -> tuple[str, str, int, int]:
        provider, model = key.split("\x1f", 1)
        dimensions = self._dimensions.get((provider, model))
        if dimensions is None:
            dimensions = self._dimensions[(provider, model)] = self._dimension_ids(provider, model)
        return dimensions

    def _dimension_ids(self, raw_provider: str, raw_model: str) -> tuple[str, str, int, int]:
        names = getattr(self, "_names", None)
        if names is None:
            # The built-in rules, then the organisation's own mappings (loaded once per run).
            names = self._names = NameResolver(self.organisation.pk)
        provider, model = names.resolve(raw_provider, raw_model)
        return provider, model, self._provider_id(provider), self._model_id(provider, model)

    def _load_catalog(self) -> None:
        """Every known provider, model and price reference in three queries, once per run.

        Small tables whose rows never change: a run of one API batch then needs no query per model.
        """
        if self._catalog_loaded:
            return
        self._catalog_loaded = True
        self._providers.update(Provider.objects.values_list("slug", "pk"))
        self._models.update(
            ((slug, name), pk)
            for slug, name, pk in AIModel.objects.values_list("provider__slug", "name", "pk")
        )
        self._price_refs.update(
            (PriceMatch(source, provider_ref, model_ref, context), pk)
            for source, provider_ref, model_ref, context, pk in PriceRef.objects.values_list(
                "source", "provider_ref", "model_ref", "context", "pk"
            )
        )

    def _provider_id(self, slug: str) -> int:
        self._load_catalog()
        if slug not in self._providers:
            provider, _ = Provider.objects.get_or_create(
                slug=slug, defaults={"name": provider_display_name(slug)}
            )
            self._providers[slug] = provider.pk
        return self._providers[slug]

    def _model_id(self, provider: str, name: str) -> int:
        self._load_catalog()
        key = (provider, name)
        if key not in self._models:
            model, _ = AIModel.objects.get_or_create(provider_id=self._provider_id(provider), name=name)
            self._models[key] = model.pk
        return self._models[key]

    def _price_ref_id(self, match: PriceMatch) -> int:
        self._load_catalog()
        if match not in self._price_refs:
            ref, _ = PriceRef.objects.get_or_create(
                source=match.source,
                provider_ref=match.provider_ref,
                model_ref=match.model_ref,
                context=match.context,
            )
            self._price_refs[match] = ref.pk
        return self._price_refs[match]


# Fields of gateway logs that carry prompt or response text.
_PROMPT_FIELDS = ("messages", "response", "proxy_server_request")


def _stores_no_prompts(organisation_id: int) -> bool:
    from apps.overuse.models import PromptStorage
    from apps.overuse.services import policy_for

    return policy_for(organisation_id).prompt_storage == PromptStorage.NONE


def _encode(values: pa.ChunkedArray | pa.Array) -> tuple[pa.Array, list]:
    """(index of each row's value in the distinct values, the distinct values as Python objects)."""
    encoded = pc.dictionary_encode(values)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks() if encoded.num_chunks != 1 else encoded.chunk(0)
        if isinstance(encoded, pa.ChunkedArray):  # an empty table
            return pa.array([], pa.int32()), []
    return encoded.indices, encoded.dictionary.to_pylist()


def _batches(
    items: Iterator[tuple[pa.Table, list[RowError]] | NormalisedRow | RowError], size: int, done: int
) -> Iterator[tuple[pa.Table, list[RowError], int]]:
    """Group an adapter's output into batches of `size` rows and errors, skipping lines up to `done`.

    Yields (normalised table, row errors, last line of the batch). Every line up to a batch's last
    line is in that batch or an earlier one, which is what resuming after a crash relies on.
    """
    tables: list[pa.Table] = []
    rows: list[NormalisedRow] = []
    errors: list[RowError] = []
    count = last_line = 0

    def flush() -> tuple[pa.Table, list[RowError], int]:
        if rows:
            tables.append(rows_to_table(rows))
        return concat(tables), errors, last_line

    for item in items:
        if isinstance(item, tuple):  # a columnar reader's piece: a table and that piece's row errors
            table, piece_errors = item
            if done:
                table = table.filter(pc.greater(table["line"], done))
                piece_errors = [error for error in piece_errors if error.line > done]
            while table.num_rows or piece_errors:
                head, head_errors, head_last, table, piece_errors = _split_piece(
                    table, piece_errors, size - count
                )
                if rows:
                    tables.append(rows_to_table(rows))
                    rows = []
                tables.append(head)
                errors.extend(head_errors)
                count += head.num_rows + len(head_errors)
                last_line = max(last_line, head_last)
                if count >= size:
                    yield flush()
                    tables, rows, errors, count = [], [], [], 0
            continue
        if item.line <= done:
            continue
        (errors if isinstance(item, RowError) else rows).append(item)
        count += 1
        last_line = max(last_line, item.line)
        if count >= size:
            yield flush()
            tables, rows, errors, count = [], [], [], 0
    if count:
        yield flush()


def _split_piece(
    table: pa.Table, errors: list[RowError], wanted: int
) -> tuple[pa.Table, list[RowError], int, pa.Table, list[RowError]]:
    """The first `wanted` rows and errors of a piece by line, its last line, and the rest."""
    lines = np.sort(
        np.concatenate([table["line"].to_numpy(), np.asarray([e.line for e in errors], dtype=np.int64)])
    )
    if len(lines) <= wanted:
        return table, errors, int(lines[-1]), table.slice(0, 0), []
    cut = int(lines[wanted - 1])
    head = pc.less_equal(table["line"], cut)
    return (
        table.filter(head),
        [error for error in errors if error.line <= cut],
        cut,
        table.filter(pc.invert(head)),
        [error for error in errors if error.line > cut],
    )


_END = object()


def _read_ahead(items: Iterator, depth: int) -> Iterator:
    """Iterate `items` in a background thread, at most `depth` items ahead of the consumer.

    Adapters never touch the database, so the thread needs no connection. An exception in it is
    raised here, in the consumer; if the consumer stops early, the thread is told to stop.
    """
    results: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        results.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            results.put((_END, None))
        except BaseException as error:  # noqa: BLE001 - handed over to the consumer as it is
            results.put((_END, error))

    thread = threading.Thread(target=produce, name="ingest-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, error = results.get()
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)
