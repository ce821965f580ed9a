"""Reads of the overuse findings and savings. Every selector takes the viewer first.

Scope is decided once, by apps.accounts.scoping.scope_usage on the usage facts; observations are
reached from the facts through their natural key, so a finding can never include a request its
viewer could not see on the dashboards. Non-work use is only ever returned as aggregates (counts,
people, cost): there is no selector that lists someone's personal prompts.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, Exists, F, Max, Min, OuterRef, Sum, Value
from django.db.models.functions import Coalesce

from apps.accounts.models import Role
from apps.accounts.scoping import Viewer, scope_usage
from apps.catalog.models import AIModel, Tier
from apps.catalog.prices import OrganisationPrices
from apps.catalog.pricing import Pricer, TokenCounts
from apps.org.models import Person, Task, Team
from apps.overuse.classifier import NON_WORK, SUBSTANTIVE, TRIVIAL
from apps.overuse.evaluation import base_evaluation
from apps.overuse.models import LabelFeedback, PromptObservation, PromptStorage
from apps.overuse.savings import Counterfactual, FactRow, SavingsTotals, reprice
from apps.overuse.services import policy_for
from apps.overuse.tiers import TierResolver
from apps.usage.columns import TOKEN_COLUMNS
from apps.usage.models import UsageFact

GROUPS = ("team", "person", "task", "model", "month")
MISSING_LABELS = {
    "team": "Unattributed",
    "person": "No person (shared keys and projects)",
    "task": "No task",
    "model": "Unknown model",
    "month": "–",
}
# Metadata heuristic for requests without prompt text: a frontier model asked for very little.
TINY_INPUT_TOKENS = 400
TINY_OUTPUT_TOKENS = 60
# Context tax: long prompts sent again and again with little of them read from the provider's cache.
CONTEXT_MIN_REQUESTS = 20
CONTEXT_MIN_AVG_INPUT = 8_000
CONTEXT_MAX_CACHE_SHARE = 0.3
CONTEXT_TARGET_CACHE_SHARE = 0.6
REPEAT_MIN_REQUESTS = 10


class AggregateOnly(PermissionError):
    """Non-work use per person was asked for by a viewer who may only see it aggregated."""


def non_work_by_person_allowed(viewer: Viewer) -> bool:
    """Per person only for the organisation's admins, and for a member about themself."""
    return viewer.sees_organisation or viewer.role == Role.MEMBER


@dataclass(frozen=True, slots=True)
class Group:
    key: str | None
    label: str
    object_id: int | None


@dataclass(frozen=True, slots=True)
class RoutableGroup:
    """Frontier requests on trivial prompts: what they cost and what the cheaper model would save."""

    group: Group
    requests: int
    cost_nanos: int
    saving_low_nanos: int
    saving_high_nanos: int
    targets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NonWorkGroup:
    """Aggregates only: never the prompts."""

    group: Group
    requests: int
    people: int
    avoidable_nanos: int


@dataclass(frozen=True, slots=True)
class SavingsGroup:
    group: Group
    routable_requests: int
    routable_low_nanos: int
    routable_high_nanos: int
    avoidable_requests: int
    avoidable_nanos: int


@dataclass(frozen=True, slots=True)
class RepeatedPrompt:
    """One prompt (by keyed hash) sent many times: a response-cache candidate."""

    hash_prefix: str
    requests: int
    people: int
    cost_nanos: int
    cacheable_nanos: int  # the cost of every repeat after the first
    label: str
    model: str
    first_seen: dt.datetime
    last_seen: dt.datetime


@dataclass(frozen=True, slots=True)
class ContextTax:
    team: Group
    model: str
    requests: int
    avg_input_tokens: int
    cache_share: float
    potential_saving_nanos: int


@dataclass(frozen=True, slots=True)
class HeuristicGroup:
    """Requests without prompt text flagged from metadata alone (tiny input and output on frontier)."""

    group: Group
    requests: int
    cost_nanos: int
    saving_nanos: int


@dataclass(frozen=True, slots=True)
class ExampleRequest:
    observation: PromptObservation
    row: FactRow
    counterfactual: Counterfactual


_FACT_FIELDS = (
    "source_id",
    "ts",
    "record_key",
    "day",
    "team_id",
    "person_id",
    "task_id",
    "model_id",
    "provider__slug",
    "model__name",
    *TOKEN_COLUMNS,
    "requests",
    "cost_nanos",
    "batch",
)


def _facts(viewer: Viewer, start: dt.date, end: dt.date):
    return scope_usage(UsageFact.objects.all(), viewer).filter(day__gte=start, day__lte=end, failed=False)


def _row(
    values: tuple, label: str | None = None, score: float = 0.0, digest: str = "", pk: int | None = None
) -> FactRow:
    (source_id, ts, record_key, day, team_id, person_id, task_id, model_id, provider, model, *rest) = values
    tokens, (requests, cost, batch) = rest[: len(TOKEN_COLUMNS)], rest[len(TOKEN_COLUMNS) :]
    return FactRow(
        source_id, ts, record_key, day, team_id, person_id, task_id, model_id, provider, model,
        TokenCounts(*tokens), requests, cost, batch, label, score, digest, pk,
    )  # fmt: skip


def _observation_of_fact():
    return PromptObservation.objects.filter(
        source_id=OuterRef("source_id"), ts=OuterRef("ts"), record_key=OuterRef("record_key")
    )


def _observed_rows(viewer: Viewer, start: dt.date, end: dt.date, labels: Iterable[str]) -> list[FactRow]:
    corrected = LabelFeedback.objects.filter(
        organisation_id=OuterRef("organisation_id"),
        source_id=OuterRef("source_id"),
        ts=OuterRef("ts"),
        record_key=OuterRef("record_key"),
    )
    rows = (
        _facts(viewer, start, end)
        .filter(prompt_observation__label__in=list(labels))
        .filter(~Exists(corrected))  # "not trivial" feedback takes a request out of the findings at once
        .values_list(
            *_FACT_FIELDS,
            "prompt_observation__label",
            "prompt_observation__score",
            "prompt_observation__prompt_hash",
            "prompt_observation__id",
        )
        .order_by("ts", "record_key")
    )
    return [_row(values[:-4], *values[-4:]) for values in rows]


def _group_key(group_by: str) -> Callable[[FactRow], int | str | None]:
    if group_by == "month":
        return lambda row: row.month
    if group_by == "model":
        return lambda row: row.model_id
    if group_by in ("team", "person", "task"):
        return lambda row: getattr(row, f"{group_by}_id")
    raise ValueError(f"group_by must be one of {', '.join(GROUPS)}")


def _groups(group_by: str, keys: Iterable[int | str | None]) -> dict[int | str | None, Group]:
    ids = {key for key in keys if key is not None}
    found: dict[int | str | None, Group] = {}
    if group_by == "month":
        found = {key: Group(str(key), str(key), None) for key in ids}
    elif group_by == "team":
        for pk, slug, name in Team.objects.filter(pk__in=ids).values_list("pk", "slug", "name"):
            found[pk] = Group(slug, name, pk)
    elif group_by == "person":
        for pk, email, name in Person.objects.filter(pk__in=ids).values_list("pk", "email", "name"):
            found[pk] = Group(email, name, pk)
    elif group_by == "task":
        for pk, key, name in Task.objects.filter(pk__in=ids).values_list("pk", "key", "name"):
            found[pk] = Group(key, name, pk)
    else:
        for pk, provider, name in AIModel.objects.filter(pk__in=ids).values_list(
            "pk", "provider__slug", "name"
        ):
            found[pk] = Group(f"{provider}/{name}", name, pk)
    found[None] = Group(None, MISSING_LABELS[group_by], None)
    return found


@dataclass
class OveruseReport:
    """Everything the Savings page shows for one viewer and period, computed from one pass over the
    flagged requests (each re-priced once)."""

    viewer: Viewer
    start: dt.date
    end: dt.date
    flag_precision_low: Decimal
    routable: list[tuple[FactRow, Counterfactual]] = field(default_factory=list)
    non_work: list[FactRow] = field(default_factory=list)

    def routable_by(self, group_by: str) -> list[RoutableGroup]:
        key = _group_key(group_by)
        totals: dict[int | str | None, SavingsTotals] = defaultdict(SavingsTotals)
        targets: dict[int | str | None, set[str]] = defaultdict(set)
        for row, counterfactual in self.routable:
            totals[key(row)].add(row, counterfactual.saving_nanos)
            if counterfactual.target:
                targets[key(row)].add(counterfactual.target.model)
        groups = _groups(group_by, totals)
        result = [
            RoutableGroup(
                groups[group_key],
                total.requests,
                total.cost_nanos,
                total.low_nanos(self.flag_precision_low),
                total.high_nanos,
                tuple(sorted(targets[group_key])),
            )
            for group_key, total in totals.items()
        ]
        return sorted(result, key=lambda item: (-item.saving_high_nanos, item.group.label))

    def non_work_by(self, group_by: str) -> list[NonWorkGroup]:
        if group_by == "person" and not non_work_by_person_allowed(self.viewer):
            raise AggregateOnly("non-work use is shown per team, task, model or month to managers")
        key = _group_key(group_by)
        requests: Counter = Counter()
        cost: Counter = Counter()
        people: dict[int | str | None, set[int]] = defaultdict(set)
        for row in self.non_work:
            requests[key(row)] += row.requests or 1
            cost[key(row)] += row.cost_nanos or 0
            if row.person_id is not None:
                people[key(row)].add(row.person_id)
        groups = _groups(group_by, requests)
        result = [
            NonWorkGroup(groups[group_key], requests[group_key], len(people[group_key]), cost[group_key])
            for group_key in requests
        ]
        return sorted(result, key=lambda item: (-item.avoidable_nanos, item.group.label))

    def savings_by(self, group_by: str) -> list[SavingsGroup]:
        """Routable savings and avoidable non-work spend side by side, per month, team, task or model."""
        if group_by == "person" and not non_work_by_person_allowed(self.viewer):
            raise AggregateOnly("savings include non-work spend: per person only for admins")
        routable = {item.group.key: item for item in self.routable_by(group_by)}
        avoidable = {item.group.key: item for item in self.non_work_by(group_by)}
        labels = {item.group.key: item.group for item in [*routable.values(), *avoidable.values()]}
        result = []
        for group_key, group in labels.items():
            r, a = routable.get(group_key), avoidable.get(group_key)
            result.append(
                SavingsGroup(
                    group,
                    r.requests if r else 0,
                    r.saving_low_nanos if r else 0,
                    r.saving_high_nanos if r else 0,
                    a.requests if a else 0,
                    a.avoidable_nanos if a else 0,
                )
            )
        if group_by == "month":
            return sorted(result, key=lambda item: item.group.key or "")
        return sorted(
            result, key=lambda item: (-(item.routable_high_nanos + item.avoidable_nanos), item.group.label)
        )

    @property
    def routable_totals(self) -> SavingsTotals:
        totals = SavingsTotals()
        for row, counterfactual in self.routable:
            totals.add(row, counterfactual.saving_nanos)
        return totals

    @property
    def routable_low_nanos(self) -> int:
        return self.routable_totals.low_nanos(self.flag_precision_low)

    @property
    def avoidable_nanos(self) -> int:
        return sum(row.cost_nanos or 0 for row in self.non_work)

    @property
    def non_work_requests(self) -> int:
        return sum(row.requests or 1 for row in self.non_work)


def overuse_report(
    viewer: Viewer, *, start: dt.date, end: dt.date, pricer: Pricer | None = None
) -> OveruseReport:
    """Frontier-on-trivial requests with their re-priced savings, and non-work requests, in scope."""
    pricer = pricer or Pricer()
    resolver = TierResolver(viewer.organisation_id, pricer=pricer)
    prices = OrganisationPrices(viewer.organisation_id, pricer=pricer)
    report = OveruseReport(viewer, start, end, base_evaluation().flag_precision_low)
    for row in _observed_rows(viewer, start, end, (TRIVIAL, NON_WORK)):
        if row.label == NON_WORK:
            report.non_work.append(row)
        elif resolver.tier(row.provider, row.model, row.day).tier == Tier.FRONTIER:
            report.routable.append((row, reprice(row, resolver=resolver, prices=prices)))
    return report


def repeated_prompts(
    viewer: Viewer, *, start: dt.date, end: dt.date, min_requests: int = REPEAT_MIN_REQUESTS, limit: int = 20
) -> list[RepeatedPrompt]:
    """Identical prompts (equal keyed hash) sent at least `min_requests` times: response-cache candidates.

    Non-work prompts are left out: repeating a personal question is not a caching opportunity, and
    listing it would single out a person's private use.
    """
    # A positive filter: Django's negated lookups across a multi-column ForeignObject correlate on its
    # first column only, so `exclude(prompt_observation__label=...)` would be wrong here.
    facts = _facts(viewer, start, end).filter(prompt_observation__label__in=[TRIVIAL, SUBSTANTIVE])
    heads = list(
        facts.values("prompt_observation__prompt_hash")
        .annotate(
            n=Sum(Coalesce("requests", Value(1))),
            people=Count("person_id", distinct=True),
            cost=Sum("cost_nanos"),
            first=Min("ts"),
            last=Max("ts"),
        )
        .filter(n__gte=min_requests)
        .order_by("-n", "prompt_observation__prompt_hash")[:limit]
    )
    if not heads:
        return []
    hashes = [head["prompt_observation__prompt_hash"] for head in heads]
    top_model: dict[str, tuple[int, str, str]] = {}
    for digest, model, label, n in (
        facts.filter(prompt_observation__prompt_hash__in=hashes)
        .values_list("prompt_observation__prompt_hash", "model__name", "prompt_observation__label")
        .annotate(n=Count("id"))
    ):
        if digest not in top_model or n > top_model[digest][0]:
            top_model[digest] = (n, model, label)
    result = []
    for head in heads:
        digest = head["prompt_observation__prompt_hash"]
        cost = head["cost"] or 0
        n = head["n"]
        result.append(
            RepeatedPrompt(
                digest[:10],
                n,
                head["people"],
                cost,
                cost * (n - 1) // n,
                top_model[digest][2],
                top_model[digest][1],
                head["first"],
                head["last"],
            )
        )
    return result


def context_tax(
    viewer: Viewer, *, start: dt.date, end: dt.date, pricer: Pricer | None = None, limit: int = 20
) -> list[ContextTax]:
    """Teams sending long prompts over and over with a low cache hit rate (from token columns alone).

    The potential saving assumes that raising the cached share of input to CONTEXT_TARGET_CACHE_SHARE
    (long system prompts, tool definitions and documents sent first and unchanged) bills those tokens
    at the model's cache-read rate instead of its input rate; cache writes are not counted. An estimate.
    """
    pricer = pricer or Pricer()
    rows = (
        _facts(viewer, start, end)
        .values("team_id", "model_id", "provider__slug", "model__name")
        .annotate(
            n=Sum(Coalesce("requests", Value(1))),
            uncached=Sum("input_uncached_tokens"),
            cached=Sum("cache_read_tokens"),
            written=Sum(F("cache_write_5m_tokens") + F("cache_write_1h_tokens")),
        )
        .order_by()
    )
    at = dt.datetime.combine(end, dt.time(12), tzinfo=dt.UTC)
    findings = []
    for row in rows:
        input_total = (row["uncached"] or 0) + (row["cached"] or 0) + (row["written"] or 0)
        n = row["n"] or 0
        if n < CONTEXT_MIN_REQUESTS or not input_total or input_total / n < CONTEXT_MIN_AVG_INPUT:
            continue
        share = (row["cached"] or 0) / input_total
        if share >= CONTEXT_MAX_CACHE_SHARE:
            continue
        unit = 100_000
        full = pricer.price(
            provider=row["provider__slug"],
            model=row["model__name"],
            at=at,
            counts=TokenCounts(input_uncached=unit),
        )
        cached = pricer.price(
            provider=row["provider__slug"],
            model=row["model__name"],
            at=at,
            counts=TokenCounts(cache_read=unit),
        )
        if full is None or cached is None:
            continue
        moved = min(row["uncached"] or 0, int((CONTEXT_TARGET_CACHE_SHARE - share) * input_total))
        saving = moved * (full[0] - cached[0]) // unit
        findings.append((row["team_id"], row["model__name"], n, input_total // n, share, saving))
    groups = _groups("team", [item[0] for item in findings])
    result = [
        ContextTax(groups[team], model, n, avg, share, saving)
        for team, model, n, avg, share, saving in findings
    ]
    return sorted(result, key=lambda item: -item.potential_saving_nanos)[:limit]


def metadata_heuristic(
    viewer: Viewer, *, start: dt.date, end: dt.date, group_by: str = "team", pricer: Pricer | None = None
) -> list[HeuristicGroup]:
    """Requests with no prompt text (usage exports, gateways that do not log prompts) that look trivial
    from their size alone: a frontier model with at most TINY_INPUT_TOKENS in and TINY_OUTPUT_TOKENS out
    per request. A heuristic, shown as such; its savings are not added to the classifier's."""
    pricer = pricer or Pricer()
    resolver = TierResolver(viewer.organisation_id, pricer=pricer)
    prices = OrganisationPrices(viewer.organisation_id, pricer=pricer)
    per_request = Coalesce("requests", Value(1))
    facts = (
        _facts(viewer, start, end)
        .filter(~Exists(_observation_of_fact()), cost_nanos__isnull=False)
        .annotate(
            per_request=per_request,
            input_total=F("input_uncached_tokens")
            + F("cache_read_tokens")
            + F("cache_write_5m_tokens")
            + F("cache_write_1h_tokens"),
        )
        .filter(input_total__lte=TINY_INPUT_TOKENS * F("per_request"))
        .filter(output_tokens__lte=TINY_OUTPUT_TOKENS * F("per_request"))
        .values_list(*_FACT_FIELDS)
    )
    key = _group_key(group_by)
    totals: dict[int | str | None, list[int]] = defaultdict(lambda: [0, 0, 0])
    for values in facts:
        row = _row(values)
        if resolver.tier(row.provider, row.model, row.day).tier != Tier.FRONTIER:
            continue
        counterfactual = reprice(row, resolver=resolver, prices=prices)
        total = totals[key(row)]
        total[0] += row.requests or 1
        total[1] += row.cost_nanos or 0
        total[2] += counterfactual.saving_nanos
    groups = _groups(group_by, totals)
    result = [HeuristicGroup(groups[group_key], *values) for group_key, values in totals.items()]
    return sorted(result, key=lambda item: (-item.saving_nanos, item.group.label))


def examples_allowed(viewer: Viewer) -> bool:
    policy = policy_for(viewer.organisation_id)
    return policy.prompt_storage != PromptStorage.NONE and viewer.role in policy.excerpt_roles


def example_requests(report: OveruseReport, *, limit: int = 10) -> list[ExampleRequest]:
    """The costliest frontier-on-trivial requests with their redacted excerpts, where the organisation's
    policy lets this viewer's role read them. Never non-work prompts. Callers must log the views
    (services.excerpt_views_record)."""
    if not examples_allowed(report.viewer):
        return []
    ranked = sorted(report.routable, key=lambda item: (-item[1].saving_nanos, item[0].ts))
    chosen = [(row, counterfactual) for row, counterfactual in ranked if row.observation_id][: limit * 3]
    observations = PromptObservation.objects.filter(
        pk__in=[row.observation_id for row, _ in chosen], organisation_id=report.viewer.organisation_id
    ).exclude(excerpt="")
    by_id = {observation.pk: observation for observation in observations}
    examples = [
        ExampleRequest(by_id[row.observation_id], row, counterfactual)
        for row, counterfactual in chosen
        if row.observation_id in by_id
    ]
    return examples[:limit]
