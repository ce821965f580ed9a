"""Turn tokens into dollars with genai-prices, at the price that applied on the usage date.

genai-prices is linear in each token kind except for tiered prices, which jump once a request's input
passes a threshold. So for each (model, price period) we read the per-token rate of every kind from
genai-prices itself (pricing one token of each kind), and compute a row's cost as an exact integer dot
product; rows past a tier threshold are priced by genai-prices directly. Both paths agree exactly; a
property test holds them to it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from importlib.metadata import version
from typing import NamedTuple

import numpy as np
from genai_prices import Usage, data_snapshot
from genai_prices.types import ModelInfo, ModelPrice, TieredPrices, TimeOfDateConstraint

PRICE_SOURCE = f"genai-prices {version('genai-prices')}"
FEMTOS_PER_USD = 10**15
FEMTOS_PER_NANO = 10**6
# Dated price changes start on a UTC date, so a price looked up once per UTC day holds for that day;
# models with time-of-day prices (e.g. off-peak discounts) are looked up per quarter hour instead.
_DAY_SECONDS = 86_400
_TIME_OF_DAY_SLOT_SECONDS = 900


def _has_time_of_day_prices(info: ModelInfo) -> bool:
    prices = info.prices if isinstance(info.prices, list) else []
    variants = info.price_variants or ()
    constraints = [conditional.constraint for conditional in prices] + [
        variant.constraint for variant in variants
    ]
    return any(isinstance(constraint, TimeOfDateConstraint) for constraint in constraints)


@dataclass(frozen=True, slots=True)
class TokenCounts:
    input_uncached: int = 0
    cache_read: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    output: int = 0
    reasoning: int = 0

    @property
    def input_total(self) -> int:
        return self.input_uncached + self.cache_read + self.cache_write_5m + self.cache_write_1h

    def as_genai_usage(self) -> Usage:
        return Usage(
            input_tokens=self.input_total,
            cache_read_tokens=self.cache_read,
            cache_write_tokens=self.cache_write_5m + self.cache_write_1h,
            cache_write_1h_tokens=self.cache_write_1h,
            output_tokens=self.output,
            output_reasoning_tokens=self.reasoning,
        )


@dataclass(frozen=True, slots=True)
class PriceMatch:
    """Which price data priced a row (stored as the fact's provenance)."""

    source: str
    provider_ref: str
    model_ref: str
    context: str


@dataclass(frozen=True, slots=True)
class Rates:
    """Femto-dollars per token of each kind; `tier_from` = input total above which tiers apply."""

    input_uncached: int
    cache_read: int
    cache_write_5m: int
    cache_write_1h: int
    output: int
    reasoning_extra: int
    tier_from: int | None
    model_price: ModelPrice


def _femtos(amount: Decimal) -> int | None:
    scaled = amount * FEMTOS_PER_USD
    return int(scaled) if scaled == scaled.to_integral_value() else None


def _rates(model_price: ModelPrice) -> Rates | None:
    def one(**usage: int) -> Decimal:
        return model_price.calc_price(Usage(**usage))["total_price"]

    tiers = [value for value in vars(model_price).values() if isinstance(value, TieredPrices)]
    tier_from = min((tier.start for tiered in tiers for tier in tiered.tiers), default=None)
    output = one(output_tokens=1)
    values = [
        one(input_tokens=1),
        one(input_tokens=1, cache_read_tokens=1),
        one(input_tokens=1, cache_write_tokens=1),
        one(input_tokens=1, cache_write_tokens=1, cache_write_1h_tokens=1),
        output,
        one(output_tokens=1, output_reasoning_tokens=1) - output,
    ]
    femtos = [_femtos(value) for value in values]
    if any(value is None for value in femtos):
        return None  # a rate finer than a femto-dollar: price every row through genai-prices
    return Rates(*femtos, tier_from=tier_from, model_price=model_price)  # type: ignore[arg-type]


def round_to_nanos(femtos: int) -> int:
    quotient, remainder = divmod(femtos, FEMTOS_PER_NANO)
    half = FEMTOS_PER_NANO // 2
    if remainder > half or (remainder == half and quotient % 2 == 1):
        quotient += 1
    return quotient


class PriceLookup(NamedTuple):
    model_price: ModelPrice
    rates: Rates | None  # None: a rate finer than a femto-dollar, price every row through genai-prices
    match: PriceMatch


class Pricer:
    """Prices rows; caches model lookups and rates for the life of one ingestion run."""

    def __init__(self) -> None:
        self._snapshot = data_snapshot.get_snapshot()
        self._models: dict[tuple[str, str], tuple[str, ModelInfo, int] | None] = {}
        self._prices: dict[tuple[int, int, str], PriceLookup] = {}
        self._rates_by_price: dict[int, tuple[ModelPrice, Rates | None]] = {}

    def find_model(self, provider: str, model: str) -> tuple[str, ModelInfo, int] | None:
        """(price provider id, model info, seconds a looked-up price holds) or None when unknown."""
        key = (provider, model)
        if key not in self._models:
            from apps.catalog.normalise import lookup_names

            self._models[key] = None
            for name in lookup_names(provider, model):
                try:
                    found_provider, info = self._snapshot.find_provider_model(
                        name, None, provider if provider != "unknown" else None, None
                    )
                except LookupError:
                    continue
                period = _TIME_OF_DAY_SLOT_SECONDS if _has_time_of_day_prices(info) else _DAY_SECONDS
                self._models[key] = (found_provider.id, info, period)
                break
        return self._models[key]

    def lookup(
        self,
        *,
        provider: str,
        model: str,
        at: dt.datetime,
        batch: bool = False,
        service_tier: str | None = None,
    ) -> PriceLookup | None:
        """The price that applied to this model at `at`, or None when no price data knows the model."""
        found = self.find_model(provider, model)
        if found is None:
            return None
        provider_id, info, period = found
        context: dict[str, str] = {}
        if batch:
            context["processing"] = "batch"
        if service_tier in {"flex", "priority"}:
            context["service_tier"] = service_tier
        context_text = ",".join(f"{key}={value}" for key, value in sorted(context.items()))
        slot = int(at.timestamp()) // period
        price_key = (id(info), slot, context_text)
        cached = self._prices.get(price_key)
        if cached is None:
            slot_start = dt.datetime.fromtimestamp(slot * period, tz=dt.UTC)
            model_price = info.get_prices(slot_start, context or None)  # type: ignore[arg-type]
            # Without a context genai-prices returns the same ModelPrice for every day of a price
            # period, so its rates are derived once; the value keeps the object alive, so ids stay unique.
            by_object = self._rates_by_price.get(id(model_price))
            if by_object is None:
                by_object = self._rates_by_price[id(model_price)] = (model_price, _rates(model_price))
            match = PriceMatch(PRICE_SOURCE, provider_id, info.id, context_text)
            cached = self._prices[price_key] = PriceLookup(*by_object, match)
        return cached

    def period_seconds(self, provider: str, model: str) -> int | None:
        """How long a looked-up price of this model holds (a day, or a time-of-day slot)."""
        found = self.find_model(provider, model)
        return None if found is None else found[2]

    def price(
        self,
        *,
        provider: str,
        model: str,
        at: dt.datetime,
        counts: TokenCounts,
        batch: bool = False,
        service_tier: str | None = None,
    ) -> tuple[int, PriceMatch] | None:
        """Cost in nano-dollars and its provenance, or None when no price data knows the model."""
        cached = self.lookup(provider=provider, model=model, at=at, batch=batch, service_tier=service_tier)
        if cached is None:
            return None
        return self.cost(cached, counts), cached.match

    @staticmethod
    def cost(lookup: PriceLookup, counts: TokenCounts) -> int:
        """Nano-dollars of one row's tokens at a looked-up price (exact integer arithmetic)."""
        rates = lookup.rates
        if rates is None or (rates.tier_from is not None and counts.input_total > rates.tier_from):
            total = lookup.model_price.calc_price(counts.as_genai_usage())["total_price"]
            return int((total * 1_000_000_000).to_integral_value())
        femtos = (
            counts.input_uncached * rates.input_uncached
            + counts.cache_read * rates.cache_read
            + counts.cache_write_5m * rates.cache_write_5m
            + counts.cache_write_1h * rates.cache_write_1h
            + counts.output * rates.output
            + counts.reasoning * rates.reasoning_extra
        )
        return round_to_nanos(femtos)


# Token columns in the order of `Rates`' per-kind fields.
_RATE_FIELDS = (
    "input_uncached",
    "cache_read",
    "cache_write_5m",
    "cache_write_1h",
    "output",
    "reasoning_extra",
)
# Below this many tokens per kind, the split products below stay far inside 64 bits for any real rate.
_VECTOR_TOKEN_LIMIT = 2**31


def vector_cost(lookup: PriceLookup, tokens: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Nano-dollars for many rows at one price, with NumPy; and which rows it could price exactly.

    Each rate is split into whole nano-dollars and the femto-dollar rest, so the two dot products fit
    in int64 and the sum is rounded half-even exactly like `Pricer.cost`. Rows it cannot do (a count
    of 2^31 or more, input above a tier start, rates finer than a femto-dollar) are marked not exact
    and must go through `Pricer.cost`.
    """
    rows = len(tokens[0])
    rates = lookup.rates
    if rates is None:
        return np.zeros(rows, dtype=np.int64), np.zeros(rows, dtype=bool)
    exact = np.ones(rows, dtype=bool)
    for column in tokens:
        exact &= (column >= 0) & (column < _VECTOR_TOKEN_LIMIT)
    if rates.tier_from is not None:
        exact &= (tokens[0] + tokens[1] + tokens[2] + tokens[3]) <= rates.tier_from
    nanos = np.zeros(rows, dtype=np.int64)
    femtos = np.zeros(rows, dtype=np.int64)
    for column, field in zip(tokens, _RATE_FIELDS, strict=True):
        whole, rest = divmod(getattr(rates, field), FEMTOS_PER_NANO)
        safe = np.where(exact, column, 0)
        nanos += safe * whole
        femtos += safe * rest
    quotient, remainder = np.divmod(femtos, FEMTOS_PER_NANO)
    quotient += nanos
    half = FEMTOS_PER_NANO // 2
    quotient += (remainder > half) | ((remainder == half) & (quotient % 2 == 1))
    return quotient, exact


_SHARED: Pricer | None = None


def shared_pricer() -> Pricer:
    """A process-wide Pricer for model-name questions (which names the price data knows), not for costs."""
    global _SHARED
    if _SHARED is None:
        _SHARED = Pricer()
    return _SHARED
