"""The counterfactual: what a flagged request would have cost on the designated cheaper model.

The request's own tokens are re-priced with genai-prices (through the same Pricer as the ledger) at the
request's own timestamp, so a price change in between is respected. Input, cache reads and cache writes
stay as they were (the context would have been sent all the same); when the target model does not
reason, the request's reasoning tokens are dropped from its output. Saving = actual cost − target cost,
never below zero. The range: high = every flagged request's saving; low = only the requests flagged
with probability ≥ 0.9, times the lower 95% bound of the classifier's measured flag precision.

Prices are net on both sides: the ledger's cost is already the organisation's net price (custom prices,
batch and percentage discounts, apps.catalog.prices), so the target is priced through the same price book
at the same moment, batch if the request was batch. Subtracting a list price from a net one would count a
negotiated discount as routing savings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from apps.catalog.models import Tier
from apps.catalog.prices import OrganisationPrices, token_tuple
from apps.catalog.pricing import TokenCounts
from apps.overuse.tiers import CheaperModel, ModelTier, TierResolver

HIGH_CONFIDENCE = 0.9


@dataclass(frozen=True, slots=True)
class FactRow:
    """A usage fact joined with its prompt observation (or with none, for metadata heuristics)."""

    source_id: int
    ts: dt.datetime
    record_key: str
    day: dt.date
    team_id: int | None
    person_id: int | None
    task_id: int | None
    model_id: int
    provider: str
    model: str
    counts: TokenCounts
    requests: int | None
    cost_nanos: int | None
    batch: bool
    label: str | None
    score: float
    prompt_hash: str
    observation_id: int | None

    @property
    def month(self) -> str:
        return f"{self.day:%Y-%m}"


@dataclass(frozen=True, slots=True)
class Counterfactual:
    tier: ModelTier
    target: CheaperModel | None
    target_cost_nanos: int | None
    saving_nanos: int


def counterfactual_counts(counts: TokenCounts, target: CheaperModel) -> TokenCounts:
    if target.reasons:
        return counts
    return TokenCounts(
        input_uncached=counts.input_uncached,
        cache_read=counts.cache_read,
        cache_write_5m=counts.cache_write_5m,
        cache_write_1h=counts.cache_write_1h,
        output=counts.output - counts.reasoning,
        reasoning=0,
    )


def reprice(row: FactRow, *, resolver: TierResolver, prices: OrganisationPrices) -> Counterfactual:
    """The tier of the row's model that day, its designated cheaper model and the saving, both sides at
    the organisation's net prices."""
    tier = resolver.tier(row.provider, row.model, row.day)
    if tier.tier == Tier.UNKNOWN:
        return Counterfactual(tier, None, None, 0)
    target = resolver.cheaper_model(row.provider, tier.tier, row.day)
    if target is None or row.cost_nanos is None:
        return Counterfactual(tier, target, None, 0)
    price = prices.group_price(provider=target.provider, model=target.model, at=row.ts, batch=row.batch)
    if not price.priced:
        return Counterfactual(tier, target, None, 0)
    target_cost = price.net_cost(token_tuple(counterfactual_counts(row.counts, target)))
    return Counterfactual(tier, target, target_cost, max(0, row.cost_nanos - target_cost))


def low_estimate(confident_savings_nanos: int, flag_precision_low: Decimal) -> int:
    """The cautious end of the range: confident flags only, discounted by the precision's lower bound."""
    return int(
        (Decimal(confident_savings_nanos) * flag_precision_low).to_integral_value(rounding=ROUND_FLOOR)
    )


@dataclass(slots=True)
class SavingsTotals:
    requests: int = 0
    cost_nanos: int = 0  # what the flagged requests cost
    high_nanos: int = 0  # Σ saving
    confident_nanos: int = 0  # Σ saving where the flag's probability ≥ HIGH_CONFIDENCE

    def add(self, row: FactRow, saving: int) -> None:
        self.requests += row.requests or 1
        self.cost_nanos += row.cost_nanos or 0
        self.high_nanos += saving
        if row.score >= HIGH_CONFIDENCE:
            self.confident_nanos += saving

    def low_nanos(self, flag_precision_low: Decimal) -> int:
        return low_estimate(self.confident_nanos, flag_precision_low)


def total(rows: Iterable[tuple[FactRow, int]]) -> SavingsTotals:
    totals = SavingsTotals()
    for row, saving in rows:
        totals.add(row, saving)
    return totals
