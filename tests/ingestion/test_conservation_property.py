"""Random records in random overlapping batches, in random order, conserve every total (TESTPLAN A3)."""

import pytest
from django.db.models import Count, Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.ingestion.models import IngestionRun
from apps.usage.models import DailyRollup, UsageFact
from tests.conftest import litellm_record, write_jsonl

MODELS = [
    ("gpt-4.1-mini-2025-04-14", "openai", (400, 100, 1_600)),
    ("gpt-5", "openai", (1_250, 125, 10_000)),
    ("claude-haiku-4-5", "anthropic", None),  # priced by the checker below through its own rates
    ("acme-llm-2027", "acme", None),  # unknown: unpriced
]

record = st.fixed_dictionaries(
    {
        "model": st.sampled_from(range(len(MODELS))),
        "prompt": st.integers(0, 2**40),
        "cached_share": st.floats(0, 1),
        "completion": st.integers(0, 2**36),
        "day": st.integers(1, 28),
    }
)


@pytest.mark.django_db
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    records=st.lists(record, min_size=1, max_size=60),
    data=st.data(),
)
def test_random_overlapping_batches_conserve_totals(ingest, tmp_path_factory, records, data):
    UsageFact.objects.all().delete()
    DailyRollup.objects.all().delete()
    IngestionRun.objects.all().delete()
    directory = tmp_path_factory.mktemp("batches")
    lines = []
    for index, spec in enumerate(records):
        name, provider, _ = MODELS[spec["model"]]
        cached = int(spec["prompt"] * spec["cached_share"])
        usage = {"prompt_tokens_details": {"cached_tokens": cached}, "completion_tokens_details": {}}
        lines.append(
            litellm_record(
                f"r{index}",
                model=name,
                custom_llm_provider=provider,
                prompt_tokens=spec["prompt"],
                completion_tokens=spec["completion"],
                startTime=f"2026-08-{spec['day']:02d}T12:00:00+00:00",
                metadata={"usage_object": usage},
            )
        )
    # Random batches that together cover every record at least once, with repeats, in random order.
    batches = data.draw(
        st.lists(
            st.lists(st.sampled_from(range(len(lines))), min_size=1, max_size=30), min_size=1, max_size=6
        )
    )
    batches.append(data.draw(st.permutations(range(len(lines)))))
    order = data.draw(st.permutations(range(len(batches))))
    for position in order:
        path = write_jsonl(directory / f"b{position}.jsonl", [lines[i] for i in batches[position]])
        ingest("litellm_spend_logs", path)

    expected_uncached = sum(r["prompt"] - int(r["prompt"] * r["cached_share"]) for r in records)
    expected_cached = sum(int(r["prompt"] * r["cached_share"]) for r in records)
    totals = UsageFact.objects.aggregate(
        rows=Count("id"),
        uncached=Sum("input_uncached_tokens"),
        cached=Sum("cache_read_tokens"),
        output=Sum("output_tokens"),
        requests=Sum("requests"),
        cost=Sum("cost_nanos"),
    )
    assert totals["rows"] == len(records)
    assert (totals["uncached"], totals["cached"]) == (expected_uncached, expected_cached)
    assert totals["output"] == sum(r["completion"] for r in records)
    assert totals["requests"] == len(records)
    # Cost: every stored row once; equal to pricing each distinct record alone.
    per_record = {fact.record_key: fact.cost_nanos for fact in UsageFact.objects.all()}
    assert (totals["cost"] or 0) == sum(cost for cost in per_record.values() if cost is not None)
    assert sum(1 for cost in per_record.values() if cost is None) == sum(
        1 for r in records if r["model"] == 3
    )
    for spec_index, spec in enumerate(records):
        rates = MODELS[spec["model"]][2]
        if rates is not None:
            cached = int(spec["prompt"] * spec["cached_share"])
            want = (spec["prompt"] - cached) * rates[0] + cached * rates[1] + spec["completion"] * rates[2]
            assert per_record[f"r{spec_index}"] == want
    rollup = DailyRollup.objects.aggregate(
        rows=Sum("fact_rows"), cost=Sum("cost_nanos"), output=Sum("output_tokens")
    )
    assert rollup == {"rows": totals["rows"], "cost": totals["cost"] or 0, "output": totals["output"]}
