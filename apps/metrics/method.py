"""Before/after around an adoption date, against matched comparison teams: a difference in differences.

Pure functions over plain series (no database). What it estimates: how much more (or less) the adopting
team's outcome changed after its adoption date than the outcome of teams that had not adopted, which
looked alike before (similar level and trend). It is observational: other things that changed at the
same time (a new hire, a product launch, a seasonal peak) are in the estimate too, so it is never
presented as what AI caused.

Steps, for a treated team T with adoption date A:
1. Periods: "before" are the periods that end before A, "after" those that start on or after A; the
   period that straddles A is left out (half adopted). At most `window` periods on each side.
2. Scale: summed metrics are divided by the team's head count (a 50-person team resolves more tickets
   than a 25-person one); averaged metrics (scores, rates) are compared as they are.
3. Candidates: teams with values for the metric that had no adoption date up to the end of the after
   window, at least `min_people` people and `min_periods` periods on each side (the caller leaves out
   teams above or below the treated one: they share its people).
4. Matching: distance = |ln(level_c / level_T)| + |trend_c / level_c - trend_T / level_T| x n_before,
   where level is the before-mean and trend the before-slope per period (so both terms are relative and
   unit-free: a 10% level gap scores about 0.1, and so does a trend that drifts 10% over the window).
   The `max_matches` nearest candidates within `max_distance` are kept; none means no estimate.
5. Gap per period = T's value - the mean of the matched teams' values, on the periods all of them have.
   Estimate = mean(gap after) - mean(gap before). Interval: Welch's t on the two sets of gaps
   (unequal variances, Welch-Satterthwaite degrees of freedom), 95% by default.

Limits (also in the README): periods are treated as independent, which autocorrelated business series
are not, so the interval is too narrow when outcomes drift in runs; one treated team, few comparison
teams; head counts are today's, not each period's.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

LABEL = "observational — not proof of cause"


@dataclass(frozen=True, slots=True)
class Series:
    """A team's metric values by period start (already per head where the metric sums)."""

    name: str
    values: dict[dt.date, float]
    people: int
    adopted_on: dt.date | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    min_people: int = 5
    min_periods: int = 4
    window: int = 12
    max_matches: int = 3
    max_distance: float = 0.5
    confidence: float = 0.95


@dataclass(frozen=True, slots=True)
class Match:
    name: str
    distance: float
    level: float
    trend: float  # per period


@dataclass(frozen=True, slots=True)
class Estimate:
    effect: float  # after-minus-before change of the gap, per period, in the compared unit
    low: float
    high: float
    confidence: float
    standard_error: float
    degrees_of_freedom: float
    treated_level: float  # the treated team's before-mean
    before: tuple[dt.date, ...]
    after: tuple[dt.date, ...]
    matches: tuple[Match, ...]
    treated: dict[dt.date, float]  # the compared values, for the chart
    comparison: dict[dt.date, float]

    @property
    def relative(self) -> float | None:
        """The estimate as a share of the treated team's before-level."""
        return self.effect / self.treated_level if self.treated_level else None

    @property
    def sign(self) -> int:
        """+1 when the whole interval is above zero, -1 when below, 0 when it includes zero."""
        if self.low > 0:
            return 1
        if self.high < 0:
            return -1
        return 0


@dataclass(frozen=True, slots=True)
class Suppressed:
    reason: str


def slope(points: Sequence[tuple[float, float]]) -> float:
    """The least-squares slope of y on x; 0 for fewer than two distinct x."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    if sxx == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _variance(values: Sequence[float]) -> float:
    """Sample variance (n - 1)."""
    mean = _mean(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def t_quantile(probability: float, degrees_of_freedom: float) -> float:
    """Student's t quantile; the normal one when the degrees of freedom are infinite."""
    from scipy.stats import norm, t  # imported here: only the comparison needs scipy

    if math.isinf(degrees_of_freedom):
        return float(norm.ppf(probability))
    return float(t.ppf(probability, degrees_of_freedom))


def difference_in_differences(
    before_gaps: Sequence[float], after_gaps: Sequence[float], confidence: float = 0.95
) -> tuple[float, float, float, float, float]:
    """(estimate, low, high, standard error, degrees of freedom) from the per-period gaps.

    Welch's t: the before and after gaps may have different spreads. With no spread at all the
    interval collapses onto the estimate (infinite degrees of freedom).
    """
    if len(before_gaps) < 2 or len(after_gaps) < 2:
        raise ValueError("need at least two periods before and two after")
    effect = _mean(after_gaps) - _mean(before_gaps)
    a = _variance(before_gaps) / len(before_gaps)
    b = _variance(after_gaps) / len(after_gaps)
    standard_error = math.sqrt(a + b)
    if standard_error == 0:
        return effect, effect, effect, 0.0, math.inf
    degrees = (a + b) ** 2 / (a**2 / (len(before_gaps) - 1) + b**2 / (len(after_gaps) - 1))
    half = t_quantile(0.5 + confidence / 2, degrees) * standard_error
    return effect, effect - half, effect + half, standard_error, degrees


def _split(
    values: dict[dt.date, float], adopted_on: dt.date, period_end: dict[dt.date, dt.date], window: int
) -> tuple[list[dt.date], list[dt.date]]:
    before = sorted(p for p in values if period_end[p] < adopted_on)[-window:]
    after = sorted(p for p in values if p >= adopted_on)[:window]
    return before, after


def _profile(values: dict[dt.date, float], periods: Sequence[dt.date], index: dict[dt.date, int]):
    points = [(float(index[p]), values[p]) for p in periods]
    return _mean([y for _, y in points]), slope(points)


def compare(
    treated: Series,
    candidates: Sequence[Series],
    *,
    period_end: dict[dt.date, dt.date],
    settings: Settings = Settings(),
    noun: str = "period",
) -> Estimate | Suppressed:
    """The difference-in-differences estimate for `treated`, or why there is none.

    `period_end` maps every period start that occurs in any series to its last day; `noun` names a
    period in the reasons ("week", "month").
    """
    if treated.adopted_on is None:
        return Suppressed("no adoption date is recorded for this team")
    if treated.people < settings.min_people:
        return Suppressed(f"the team has fewer than {settings.min_people} people")
    before, after = _split(treated.values, treated.adopted_on, period_end, settings.window)
    if len(before) < settings.min_periods or len(after) < settings.min_periods:
        return Suppressed(
            f"fewer than {settings.min_periods} {noun}s of values before or after the adoption date "
            f"({len(before)} before, {len(after)} after)"
        )
    every = sorted({p for series in (treated, *candidates) for p in series.values})
    index = {p: i for i, p in enumerate(every)}
    level, trend = _profile(treated.values, before, index)
    if level <= 0:
        return Suppressed("the team's values before the adoption date are all zero")
    last_after = period_end[after[-1]]
    matches: list[tuple[Match, Series]] = []
    for candidate in candidates:
        if candidate.name == treated.name or candidate.people < settings.min_people:
            continue
        if candidate.adopted_on is not None and candidate.adopted_on <= last_after:
            continue
        c_before = [p for p in before if p in candidate.values]
        c_after = [p for p in after if p in candidate.values]
        if len(c_before) < settings.min_periods or len(c_after) < settings.min_periods:
            continue
        c_level, c_trend = _profile(candidate.values, c_before, index)
        if c_level <= 0:
            continue
        distance = abs(math.log(c_level / level)) + abs(c_trend / c_level - trend / level) * len(before)
        if distance <= settings.max_distance:
            matches.append((Match(candidate.name, distance, c_level, c_trend), candidate))
    if not matches:
        return Suppressed(
            f"no comparison team without AI adoption had a similar level and trend before the adoption date "
            f"(at least {settings.min_people} people and {settings.min_periods} {noun}s each side)"
        )
    matches.sort(key=lambda pair: (pair[0].distance, pair[0].name))
    chosen = matches[: settings.max_matches]
    shared = [p for p in (*before, *after) if all(p in series.values for _, series in chosen)]
    comparison = {p: _mean([series.values[p] for _, series in chosen]) for p in shared}
    before_gaps = [treated.values[p] - comparison[p] for p in shared if p in before]
    after_gaps = [treated.values[p] - comparison[p] for p in shared if p in after]
    if len(before_gaps) < settings.min_periods or len(after_gaps) < settings.min_periods:
        return Suppressed(f"the comparison teams share fewer than {settings.min_periods} {noun}s each side")
    effect, low, high, error, degrees = difference_in_differences(
        before_gaps, after_gaps, settings.confidence
    )
    return Estimate(
        effect=effect,
        low=low,
        high=high,
        confidence=settings.confidence,
        standard_error=error,
        degrees_of_freedom=degrees,
        treated_level=level,
        before=tuple(p for p in shared if p in before),
        after=tuple(p for p in shared if p in after),
        matches=tuple(match for match, _ in chosen),
        treated={p: treated.values[p] for p in shared},
        comparison=comparison,
    )


def verdict(estimate: Estimate, *, higher_is_better: bool) -> str:
    """One plain sentence about the interval, with no claim of cause."""
    if estimate.sign == 0:
        return "No clear difference from the comparison teams: the interval includes zero."
    moved = "rose more" if estimate.sign > 0 else "fell more"
    better = (estimate.sign > 0) == higher_is_better
    return (
        f"After the adoption date the team's values {moved} than the comparison teams' "
        f"({'the better' if better else 'the worse'} direction for this metric)."
    )


def did_not_improve(result: Estimate | Suppressed, *, higher_is_better: bool) -> bool | None:
    """True when the interval shows no improvement (zero included, or worse); None without an estimate."""
    if not isinstance(result, Estimate):
        return None
    improvement = result.sign if higher_is_better else -result.sign
    return improvement <= 0
