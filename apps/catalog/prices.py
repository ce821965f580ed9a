"""List and net price of a group of rows: the price data's price, then the organisation's overrides.

A group is what one price lookup covers: one model, one price period (a UTC day, or a time-of-day slot),
batch or not, one service tier. For it:

- **list**: the price data's price that applied then (`Pricer.lookup`), exactly as `Pricer.cost` computes
  it. A model no price data knows has no list price, unless the organisation entered a custom price: then
  that price is the only one known and is the list price too.
- **net** (what every total counts): the base rates (the model's custom price if one applies that day,
  else the list rates), times (1 - batch discount) for batch rows whose base has no batch price of its
  own, times (1 - percentage discount); each multiplication rounds every per-token rate half-even to the
  femto-dollar. A model-level override beats a provider-level one of the same kind; overrides of one
  kind and target never overlap in time (the services refuse it).

Costs are exact integer dot products of token counts and per-token femto-dollar rates, rounded half-even to
the nano-dollar. Tiered prices are piecewise linear in the input total, so a price is a list of segments
(`Segment`), each with its own rates; the same segments drive NumPy at ingestion and SQL at re-pricing
(apps.catalog.repricing), and tests hold both to `Pricer.cost` to the nano-dollar.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

import numpy as np
from genai_prices.types import ModelPrice, TieredPrices

from apps.catalog.pricing import (
    FEMTOS_PER_NANO,
    PRICE_SOURCE,
    PriceLookup,
    PriceMatch,
    Pricer,
    TokenCounts,
    _rates,
    round_to_nanos,
)

CUSTOM_PRICE_SOURCE = "organisation price"
PPM = 1_000_000
FEMTOS_PER_USD_PER_MTOK = 10**9  # $1 per million tokens = 1e-6 $ per token = 1e9 femto-dollars per token
# Token counts below this keep every product of the SQL and NumPy paths inside 64 bits (see `sql_cost`).
EXACT_TOKEN_LIMIT = 2**40


@dataclass(frozen=True, slots=True)
class Segment:
    """Femto-dollar rates per token kind (TOKEN_COLUMNS order; reasoning = extra over output) for rows
    whose input total is <= `upper` (None: no bound) and above the previous segment's upper."""

    upper: int | None
    rates: tuple[int, int, int, int, int, int]


def _flat_price(model_price: ModelPrice, above: int | None) -> ModelPrice:
    """The model price with each tiered price replaced by the one that applies when input > `above`."""
    values = {}
    for key, value in vars(model_price).items():
        if isinstance(value, TieredPrices):
            chosen = value.base
            if above is not None:
                for tier in value.tiers:
                    if above >= tier.start:
                        chosen = tier.price
            value = chosen
        values[key] = value
    return ModelPrice(**values)


_segments_cache: dict[int, tuple[ModelPrice, tuple[Segment, ...] | None]] = {}


def list_segments(lookup: PriceLookup) -> tuple[Segment, ...] | None:
    """The list price as segments, or None when a rate is finer than a femto-dollar (Python only).

    Each segment is checked against genai-prices on probe usages inside it; a mismatch (a price shape
    the linear model does not cover) also gives None, so such rows are priced by `Pricer.cost`.
    """
    model_price = lookup.model_price
    cached = _segments_cache.get(id(model_price))
    if cached is not None and cached[0] is model_price:
        return cached[1]
    starts = sorted(
        {
            tier.start
            for value in vars(model_price).values()
            if isinstance(value, TieredPrices)
            for tier in value.tiers
        }
    )
    bounds: list[int | None] = [*starts, None]
    segments: list[Segment] | None = []
    lower: int | None = None
    for upper in bounds:
        rates = _rates(_flat_price(model_price, lower))
        if rates is None:
            segments = None
            break
        segment = Segment(
            upper,
            (
                rates.input_uncached,
                rates.cache_read,
                rates.cache_write_5m,
                rates.cache_write_1h,
                rates.output,
                rates.reasoning_extra,
            ),
        )
        if not _agrees(lookup, segment, lower):
            segments = None
            break
        segments.append(segment)
        lower = upper
    result = tuple(segments) if segments is not None else None
    _segments_cache[id(model_price)] = (model_price, result)
    return result


def _agrees(lookup: PriceLookup, segment: Segment, lower: int | None) -> bool:
    base = (lower or 0) + 1 if lower is not None else 1_000
    if segment.upper is not None and base > segment.upper:
        base = segment.upper
    probes = (
        TokenCounts(input_uncached=base, output=777),
        TokenCounts(
            input_uncached=base // 2,
            cache_read=base - base // 2 - base // 4,
            cache_write_5m=base // 8,
            cache_write_1h=base // 4 - base // 8,
            output=12_345,
            reasoning=1_234,
        ),  # fmt: skip
    )
    for counts in probes:
        if lower is not None and counts.input_total <= lower:
            continue
        total = lookup.model_price.calc_price(counts.as_genai_usage())["total_price"]
        if segment_cost((segment,), token_tuple(counts)) != int((total * 1_000_000_000).to_integral_value()):
            return False
    return True


def token_tuple(counts: TokenCounts) -> tuple[int, ...]:
    """Token counts in TOKEN_COLUMNS order, the order of a segment's rates."""
    return (
        counts.input_uncached,
        counts.cache_read,
        counts.cache_write_5m,
        counts.cache_write_1h,
        counts.output,
        counts.reasoning,
    )


def segment_for(segments: Sequence[Segment], input_total: int) -> Segment:
    for segment in segments:
        if segment.upper is None or input_total <= segment.upper:
            return segment
    return segments[-1]


def segment_cost(segments: Sequence[Segment], counts: Sequence[int]) -> int:
    """Nano-dollars of one row (counts in TOKEN_COLUMNS order), exact for any size."""
    segment = segment_for(segments, counts[0] + counts[1] + counts[2] + counts[3])
    return round_to_nanos(sum(count * rate for count, rate in zip(counts, segment.rates, strict=True)))


def vector_segment_cost(
    segments: Sequence[Segment], tokens: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Nano-dollars for many rows with NumPy, and which rows it could price exactly (the rest: segment_cost).

    The same arithmetic as the SQL of apps.catalog.repricing: rates split into whole nano-dollars and the
    femto-dollar rest, so that every product fits in int64 for counts below EXACT_TOKEN_LIMIT.
    """
    rows = len(tokens[0])
    exact = np.ones(rows, dtype=bool)
    for column in tokens:
        exact &= (column >= 0) & (column < EXACT_TOKEN_LIMIT)
    safe = [np.where(exact, column, 0) for column in tokens]
    input_total = safe[0] + safe[1] + safe[2] + safe[3]
    nanos = np.zeros(rows, dtype=np.int64)
    femtos = np.zeros(rows, dtype=np.int64)
    lower = -1
    for segment in segments:
        inside = input_total > lower
        if segment.upper is not None:
            inside &= input_total <= segment.upper
        for column, rate in zip(safe, segment.rates, strict=True):
            whole, rest = divmod(rate, FEMTOS_PER_NANO)
            nanos += np.where(inside, column * whole, 0)
            femtos += np.where(inside, column * rest, 0)
        lower = segment.upper if segment.upper is not None else lower
    quotient, remainder = np.divmod(femtos, FEMTOS_PER_NANO)
    quotient += nanos
    half = FEMTOS_PER_NANO // 2
    quotient += (remainder > half) | ((remainder == half) & (quotient % 2 == 1))
    return quotient, exact


def scale_segments(segments: Sequence[Segment], factor_ppm: int) -> tuple[Segment, ...]:
    """Every rate times factor_ppm / 1e6, rounded half-even to the femto-dollar."""

    def scale(rate: int) -> int:
        quotient, remainder = divmod(rate * factor_ppm, PPM)
        if remainder * 2 > PPM or (remainder * 2 == PPM and quotient % 2 == 1):
            quotient += 1
        return quotient

    return tuple(Segment(s.upper, tuple(scale(rate) for rate in s.rates)) for s in segments)  # type: ignore[misc]


def percent_to_ppm(percent: Decimal) -> int:
    """A discount of `percent` (0-100, at most 4 decimals) as the factor that remains, in ppm."""
    return PPM - int((Decimal(percent) * 10_000).to_integral_value(ROUND_HALF_EVEN))


def custom_segments(override) -> tuple[Segment, ...]:
    """A custom price (per million tokens) as one segment. Cache prices default to the input price (as
    the price data does for models without a cache price); reasoning pays the output price."""

    def femtos(value: Decimal | None, default: int) -> int:
        return default if value is None else int(Decimal(value) * FEMTOS_PER_USD_PER_MTOK)

    input_rate = femtos(override.input_mtok, 0)
    cache_write = femtos(override.cache_write_mtok, input_rate)
    return (
        Segment(
            None,
            (
                input_rate,
                femtos(override.cache_read_mtok, input_rate),
                cache_write,
                femtos(override.cache_write_1h_mtok, cache_write),
                femtos(override.output_mtok, 0),
                0,
            ),
        ),
    )


@dataclass(frozen=True, slots=True)
class GroupPrice:
    """How one group of rows is priced. `net_segments` None with `override_ids` empty: net = list."""

    lookup: PriceLookup | None  # the price data's price, None when it does not know the model
    list_segments: tuple[Segment, ...] | None  # None: list only through Pricer.cost (rows one by one)
    net_segments: tuple[Segment, ...] | None  # None: no override applies (net = list)
    override_ids: tuple[int, ...]
    match: PriceMatch | None  # provenance of the list price; None: unpriced

    @property
    def priced(self) -> bool:
        return self.match is not None

    @property
    def overridden(self) -> bool:
        return bool(self.override_ids)

    def list_cost(self, counts: Sequence[int]) -> int:
        if self.lookup is not None:
            return Pricer.cost(self.lookup, TokenCounts(*counts))
        assert self.list_segments is not None
        return segment_cost(self.list_segments, counts)

    def net_cost(self, counts: Sequence[int]) -> int:
        if self.net_segments is None:
            return self.list_cost(counts)
        return segment_cost(self.net_segments, counts)


@dataclass(frozen=True, slots=True)
class _Override:
    id: int
    kind: str
    model: str | None
    percent: Decimal | None
    segments: tuple[Segment, ...] | None
    valid_from: dt.date
    valid_to: dt.date | None

    def applies_on(self, day: dt.date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


class OrganisationPrices:
    """One organisation's overrides, loaded once, and the group prices they give with a Pricer."""

    def __init__(self, organisation_id: int, pricer: Pricer | None = None) -> None:
        from apps.catalog.models import OverrideKind, PriceOverride

        self.pricer = pricer or Pricer()
        self._by_provider: dict[str, list[_Override]] = {}
        for override in PriceOverride.objects.filter(organisation_id=organisation_id).select_related(
            "provider", "model"
        ):
            self._by_provider.setdefault(override.provider.slug, []).append(
                _Override(
                    id=override.pk,
                    kind=override.kind,
                    model=override.model.name if override.model_id else None,
                    percent=override.percent,
                    segments=custom_segments(override)
                    if override.kind == OverrideKind.CUSTOM_PRICE
                    else None,
                    valid_from=override.valid_from,
                    valid_to=override.valid_to,
                )
            )
        self._batch_priced: dict[tuple[int, int], bool] = {}

    def _choose(self, provider: str, model: str, kind: str, day: dt.date) -> _Override | None:
        found = [
            override
            for override in self._by_provider.get(provider, ())
            if override.kind == kind and override.model in (model, None) and override.applies_on(day)
        ]
        found.sort(key=lambda override: (override.model is None, -override.id))  # the model's own first
        return found[0] if found else None

    def _has_batch_price(self, lookup: PriceLookup, provider: str, model: str, at: dt.datetime) -> bool:
        """Whether the price data has a batch price of its own for this model then."""
        standard = self.pricer.lookup(provider=provider, model=model, at=at)
        return standard is not None and standard.model_price != lookup.model_price

    def group_price(
        self,
        *,
        provider: str,
        model: str,
        at: dt.datetime,
        batch: bool = False,
        service_tier: str | None = None,
    ) -> GroupPrice:
        """The price of rows of this model at `at` (start of their price period), batch or not, in a tier."""
        from apps.catalog.models import OverrideKind

        lookup = self.pricer.lookup(
            provider=provider, model=model, at=at, batch=batch, service_tier=service_tier
        )
        day = at.astimezone(dt.UTC).date()
        custom = self._choose(provider, model, OverrideKind.CUSTOM_PRICE, day)
        list_segs = list_segments(lookup) if lookup is not None else None
        match = lookup.match if lookup is not None else None
        if lookup is None:
            if custom is None:
                return GroupPrice(None, None, None, (), None)
            # The entered price is the only price known: it is the list price too.
            list_segs = custom.segments
            context = ",".join(
                part for part in ("processing=batch" if batch else "", f"service_tier={service_tier}"
                                  if service_tier in {"flex", "priority"} else "") if part
            )  # fmt: skip
            match = PriceMatch(CUSTOM_PRICE_SOURCE, provider, model, context)
        applied: list[int] = []
        base = list_segs
        if custom is not None:
            base = custom.segments
            applied.append(custom.id)
        net = base
        if batch:
            batch_discount = self._choose(provider, model, OverrideKind.BATCH_DISCOUNT, day)
            own_batch_price = (
                custom is None and lookup is not None and self._has_batch_price(lookup, provider, model, at)
            )
            if batch_discount is not None and not own_batch_price and net is not None:
                net = scale_segments(net, percent_to_ppm(batch_discount.percent or Decimal(0)))
                applied.append(batch_discount.id)
        discount = self._choose(provider, model, OverrideKind.DISCOUNT, day)
        if discount is not None and net is not None:
            net = scale_segments(net, percent_to_ppm(discount.percent or Decimal(0)))
            applied.append(discount.id)
        if not applied:
            return GroupPrice(lookup, list_segs, None, (), match)
        if lookup is None and applied == [custom.id]:  # type: ignore[union-attr]
            return GroupPrice(None, list_segs, None, tuple(applied), match)
        return GroupPrice(lookup, list_segs, net, tuple(sorted(applied)), match)


__all__ = [
    "CUSTOM_PRICE_SOURCE",
    "EXACT_TOKEN_LIMIT",
    "GroupPrice",
    "OrganisationPrices",
    "PRICE_SOURCE",
    "Segment",
    "custom_segments",
    "list_segments",
    "percent_to_ppm",
    "scale_segments",
    "segment_cost",
    "token_tuple",
    "vector_segment_cost",
]
