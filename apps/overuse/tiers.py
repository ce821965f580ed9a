"""Which tier a model was in on a given day, and which cheaper model a request could have used.

Three sources, in order: the organisation's own overrides (ModelTierOverride), the dated rules file
`data/tiers.json` (by model family), and a price band from genai-prices' list price when no family
matches (marked `price_band`: inferred, worth adding to the rules file). A model none of them knows is
`unknown` and never counted as frontier.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from apps.catalog.models import Tier
from apps.catalog.pricing import Pricer
from apps.overuse.models import CheaperModelChoice, ModelTierOverride

RULES_FILE = Path(__file__).resolve().parent / "data" / "tiers.json"


@dataclass(frozen=True, slots=True)
class ModelTier:
    tier: str  # frontier | standard | small | unknown
    open_weight: bool | None
    basis: str  # override | rule | price_band | unknown
    family: str


@dataclass(frozen=True, slots=True)
class CheaperModel:
    provider: str
    model: str
    reasons: bool  # the target produces reasoning tokens


@dataclass(frozen=True, slots=True)
class _Family:
    name: str
    pattern: re.Pattern
    open_weight: bool
    steps: tuple[tuple[dt.date, str], ...]  # (from, tier), ascending


@dataclass(frozen=True, slots=True)
class _Target:
    provider: str
    tier: str
    start: dt.date
    model: str
    reasons: bool


@dataclass(frozen=True, slots=True)
class TierRules:
    families: tuple[_Family, ...]
    frontier_from: Decimal
    standard_from: Decimal
    targets: tuple[_Target, ...]


class TierRulesError(ValueError):
    """The rules file is malformed; the message names the entry and field."""


def _date(value: object, where: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise TierRulesError(f"{where}: 'from' must be a YYYY-MM-DD date (got {value!r})") from None


def _tier(value: object, where: str) -> str:
    if value not in (Tier.FRONTIER, Tier.STANDARD, Tier.SMALL):
        raise TierRulesError(f"{where}: 'tier' must be frontier, standard or small (got {value!r})")
    return str(value)


@functools.cache
def load_rules(path: Path = RULES_FILE) -> TierRules:
    data = json.loads(path.read_text(encoding="utf-8"))
    families = []
    for index, raw in enumerate(data["families"]):
        where = f"{path.name} families[{index}] ({raw.get('family', '?')})"
        try:
            pattern = re.compile(raw["match"])
        except (KeyError, re.error) as error:
            raise TierRulesError(f"{where}: 'match' must be a regular expression ({error})") from None
        steps = sorted((_date(step["from"], where), _tier(step["tier"], where)) for step in raw["tiers"])
        families.append(_Family(raw["family"], pattern, bool(raw.get("open_weight", False)), tuple(steps)))
    targets = []
    for index, raw in enumerate(data["cheaper_models"]["targets"]):
        where = f"{path.name} cheaper_models.targets[{index}]"
        targets.append(
            _Target(
                raw["provider"],
                _tier(raw["tier"], where),
                _date(raw["from"], where),
                raw["model"],
                raw["reasons"],
            )
        )
    bands = data["price_bands"]
    return TierRules(
        tuple(families), Decimal(bands["frontier_from"]), Decimal(bands["standard_from"]), tuple(targets)
    )


def _price_value(value: object) -> Decimal | None:
    if value is None:
        return None
    base = getattr(value, "base", value)  # tiered prices: the base (lowest) tier
    return Decimal(str(base))


class TierResolver:
    """Tiers and counterfactual models for one organisation; caches per (provider, model, day)."""

    def __init__(
        self, organisation_id: int, *, pricer: Pricer | None = None, rules: TierRules | None = None
    ) -> None:
        self.rules = rules or load_rules()
        self.pricer = pricer or Pricer()
        self._overrides = sorted(
            ModelTierOverride.objects.filter(organisation_id=organisation_id),
            key=lambda override: (override.effective_from, override.pk),
        )
        self._patterns = {override.pk: re.compile(override.model_pattern) for override in self._overrides}
        self._choices = sorted(
            CheaperModelChoice.objects.filter(organisation_id=organisation_id),
            key=lambda choice: (choice.effective_from, choice.pk),
        )
        self._tiers: dict[tuple[str, str, dt.date], ModelTier] = {}

    def tier(self, provider: str, model: str, day: dt.date) -> ModelTier:
        key = (provider, model, day)
        if key not in self._tiers:
            self._tiers[key] = self._resolve(provider, model.lower(), day)
        return self._tiers[key]

    def _resolve(self, provider: str, name: str, day: dt.date) -> ModelTier:
        rule = self._from_rules(name, day)
        for override in reversed(self._overrides):  # latest effective date first
            if override.effective_from <= day and override.provider in ("", provider):
                if self._patterns[override.pk].search(name):
                    open_weight = (
                        override.open_weight if override.open_weight is not None else rule.open_weight
                    )
                    return ModelTier(
                        override.tier, open_weight, "override", override.note or override.model_pattern
                    )
        if rule.tier != Tier.UNKNOWN:
            return rule
        return self._from_price(provider, name, day, rule.open_weight)

    def _from_rules(self, name: str, day: dt.date) -> ModelTier:
        for family in self.rules.families:
            if family.pattern.search(name):
                current = [tier for start, tier in family.steps if start <= day]
                # Before its first dated entry the model did not exist yet; its first tier applies.
                tier = current[-1] if current else family.steps[0][1]
                return ModelTier(tier, family.open_weight, "rule", family.name)
        return ModelTier(Tier.UNKNOWN, None, "unknown", "")

    def _from_price(self, provider: str, name: str, day: dt.date, open_weight: bool | None) -> ModelTier:
        found = self.pricer.find_model(provider, name)
        if found is None:
            return ModelTier(Tier.UNKNOWN, open_weight, "unknown", "")
        _, info, _ = found
        at = dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)
        try:
            prices = info.get_prices(at)
        except (LookupError, ValueError):
            return ModelTier(Tier.UNKNOWN, open_weight, "unknown", "")
        input_price = _price_value(getattr(prices, "input_mtok", None))
        output_price = _price_value(getattr(prices, "output_mtok", None))
        if input_price is None or output_price is None:
            return ModelTier(Tier.UNKNOWN, open_weight, "unknown", "")
        blended = (3 * input_price + output_price) / 4
        if blended >= self.rules.frontier_from:
            tier = Tier.FRONTIER
        elif blended >= self.rules.standard_from:
            tier = Tier.STANDARD
        else:
            tier = Tier.SMALL
        return ModelTier(tier, open_weight, "price_band", f"${blended:.2f}/MTok blended")

    def cheaper_model(self, provider: str, tier: str, day: dt.date) -> CheaperModel | None:
        """The designated cheaper model for requests of this provider and tier on this day."""
        for choice in reversed(self._choices):
            if choice.provider == provider and choice.tier == tier and choice.effective_from <= day:
                return CheaperModel(provider, choice.model, choice.reasons)
        candidates = [
            target
            for target in self.rules.targets
            if target.provider == provider and target.tier == tier and target.start <= day
        ]
        if not candidates:
            return None
        target = max(candidates, key=lambda item: item.start)
        return CheaperModel(provider, target.model, target.reasons)
