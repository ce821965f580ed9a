"""Re-pricing in SQL equals `Pricer.cost` (genai-prices) to the nano-dollar, on hypothesis-generated facts.

Facts are written straight into the ledger without a price, then one re-pricing run prices them in SQL
(or, for counts of 2^36 tokens and more, in Python) - on whichever database the suite runs on.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.catalog.models import AIModel, OverrideKind, PriceOverride
from apps.catalog.pricing import Pricer, TokenCounts
from apps.catalog.repricing import Repricer
from apps.catalog.services import provider_for
from apps.ingestion.services import source_get_or_create
from apps.usage.models import Grain, UsageFact
from tests.catalog.test_pricing import MODELS

AT = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
pricer = Pricer()
small = st.integers(min_value=0, max_value=400_000)
# Mostly request-sized counts; sometimes a daily bucket's, past 2^36 (the Python path) and past 2^40.
count = st.one_of(small, small, small, st.integers(min_value=2**36 - 5, max_value=2**41))
row = st.fixed_dictionaries(
    {
        "model": st.sampled_from(MODELS),
        "tokens": st.tuples(small, small, small, small, small, st.floats(0, 1)),
        "huge": st.one_of(st.none(), st.tuples(st.integers(0, 5), count)),
        "seconds_back": st.integers(0, 400 * 86_400),
        "batch": st.booleans(),
    }
)


def _expected(model: tuple[str, str], at: dt.datetime, counts: TokenCounts, batch: bool) -> int:
    provider, name = model
    period = pricer.period_seconds(provider, name)
    slot = dt.datetime.fromtimestamp(int(at.timestamp()) // period * period, tz=dt.UTC)
    return Pricer.cost(pricer.lookup(provider=provider, model=name, at=slot, batch=batch), counts)


def _store(organisation, source, rows: list[dict]) -> list[tuple[int, int, bool, TokenCounts, tuple]]:
    facts, expected = [], []
    for index, item in enumerate(rows):
        provider, name = item["model"]
        model = AIModel.objects.get_or_create(provider=provider_for(provider), name=name)[0]
        uncached, cache_read, write_5m, write_1h, output, share = item["tokens"]
        values = [uncached, cache_read, write_5m, write_1h, output, int(output * share)]
        if item["huge"] is not None:
            position, value = item["huge"]
            values[position] = value
            if position == 4:
                values[5] = min(values[5], value)
        counts = TokenCounts(*values)
        at = (AT - dt.timedelta(seconds=item["seconds_back"])).replace(microsecond=0)
        facts.append(
            UsageFact(
                source=source,
                ts=at,
                record_key=f"h{index}",
                organisation=organisation,
                day=at.date(),
                grain=Grain.REQUEST,
                run_id=0,
                provider_id=model.provider_id,
                model=model,
                input_uncached_tokens=values[0],
                cache_read_tokens=values[1],
                cache_write_5m_tokens=values[2],
                cache_write_1h_tokens=values[3],
                output_tokens=values[4],
                reasoning_tokens=values[5],
                requests=1,
                batch=item["batch"],
            )
        )
        expected.append((index, item["model"], at, counts, item["batch"]))
    UsageFact.objects.bulk_create(facts)
    return expected


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(row, min_size=1, max_size=25))
def test_sql_re_pricing_equals_pricer_cost_to_the_nano(acme, rows):
    source = source_get_or_create(organisation=acme, name="generated", format="litellm_spend_logs")
    expected = _store(acme, source, rows)
    Repricer(acme.pk).run()
    stored = {
        fact.record_key: (fact.list_cost_nanos, fact.cost_nanos)
        for fact in UsageFact.objects.filter(organisation=acme)
    }
    for index, model, at, counts, batch in expected:
        want = _expected(model, at, counts, batch)
        assert stored[f"h{index}"] == (want, want), (model, at, counts, batch)
    UsageFact.objects.filter(organisation=acme).delete()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(row, min_size=1, max_size=20))
def test_a_discount_is_exactly_the_discounted_genai_price(acme, rows):
    """12.5 % off: every rate of these models is a multiple of 8 femto-dollars, so the net cost is exactly
    genai-prices' total x 0.875, rounded half-even to the nano-dollar; the list cost stays genai-prices'."""
    source = source_get_or_create(organisation=acme, name="generated", format="litellm_spend_logs")
    expected = _store(acme, source, rows)
    for provider in {model.provider_id for model in AIModel.objects.all()}:
        PriceOverride.objects.get_or_create(
            organisation=acme, kind=OverrideKind.DISCOUNT, provider_id=provider, model=None,
            percent=Decimal("12.5"), valid_from=dt.date(2020, 1, 1),
        )  # fmt: skip
    Repricer(acme.pk).run()
    stored = {
        fact.record_key: (fact.list_cost_nanos, fact.cost_nanos)
        for fact in UsageFact.objects.filter(organisation=acme)
    }
    for index, (provider, name), at, counts, batch in expected:
        period = pricer.period_seconds(provider, name)
        slot = dt.datetime.fromtimestamp(int(at.timestamp()) // period * period, tz=dt.UTC)
        lookup = pricer.lookup(provider=provider, model=name, at=slot, batch=batch)
        total = lookup.model_price.calc_price(counts.as_genai_usage())["total_price"]
        net = int((total * Decimal("0.875") * 1_000_000_000).to_integral_value())
        assert stored[f"h{index}"] == (Pricer.cost(lookup, counts), net), ((provider, name), at, counts)
    UsageFact.objects.filter(organisation=acme).delete()
