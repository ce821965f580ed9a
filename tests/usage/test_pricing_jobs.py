"""Organisation price terms and re-pricing runs: exact totals before and after, nothing lost or doubled.

A gateway request (tests.conftest.litellm_record: gpt-4.1-mini, 800 uncached + 200 cached input tokens,
100 output) costs 800 x $0.40 + 200 x $0.10 + 100 x $1.60 per MTok = $0.0005 = 500,000 nano-dollars at list
price. One request per day, 1 to 4 August 2026, so every total below is worked out by hand.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import Count, Sum

from apps.accounts.scoping import organisation_viewer
from apps.audit.models import AuditEntry
from apps.catalog import services
from apps.catalog.models import AIModel, OverrideKind, PriceOverride, Provider, RepricingRun, RepricingStatus
from apps.catalog.repricing import Repricer
from apps.catalog.selectors import unpriced_models
from apps.usage.models import DailyRollup, UsageFact
from tests.conftest import litellm_record, write_jsonl

REQUEST = 500_000
DAYS = [dt.date(2026, 8, day) for day in (1, 2, 3, 4)]


def _records(prefix: str = "r", **overrides) -> list[dict]:
    return [
        litellm_record(f"{prefix}{day.day}", startTime=f"{day.isoformat()}T10:00:00+00:00", **overrides)
        for day in DAYS
    ]


@pytest.fixture
def four_days(ingest, tmp_path):
    ingest("litellm_spend_logs", write_jsonl(tmp_path / "log.jsonl", _records()))


@pytest.fixture
def editor(acme) -> services.PriceEditor:
    return services.PriceEditor(viewer=organisation_viewer(acme), label="finance@acme.example")


def openai() -> Provider:
    return Provider.objects.get(slug="openai")


def run_queued(run: RepricingRun) -> RepricingRun:
    """What the Celery task does (the test transaction never commits, so nothing was enqueued)."""
    return services.repricing_run_execute(run_id=run.pk)


def costs_by_day() -> dict[dt.date, tuple[int, int]]:
    return {fact.day: (fact.cost_nanos, fact.list_cost_nanos) for fact in UsageFact.objects.order_by("day")}


def spend_totals(capsys, start="2026-08-01", end="2026-08-04") -> dict:
    call_command("spend", "--by", "model", "--start", start, "--end", end)
    groups = json.loads(capsys.readouterr().out)
    return {group["key"]: group for group in groups}


def test_a_discount_changes_net_cost_from_its_first_day_and_keeps_list_cost(four_days, editor, capsys):
    override, run = services.override_save(
        editor,
        values={
            "kind": OverrideKind.DISCOUNT,
            "provider": openai(),
            "model": None,
            "percent": Decimal("10"),
            "valid_from": dt.date(2026, 8, 3),
            "valid_to": None,
            "note": "enterprise agreement 2026",
        },
    )
    assert run.status == RepricingStatus.QUEUED and run.since == dt.date(2026, 8, 3)
    run = run_queued(run)

    # Days before the term keep their price; from 3 August net = 90 % of list, list untouched.
    assert costs_by_day() == {
        DAYS[0]: (REQUEST, REQUEST),
        DAYS[1]: (REQUEST, REQUEST),
        DAYS[2]: (450_000, REQUEST),
        DAYS[3]: (450_000, REQUEST),
    }
    changed = UsageFact.objects.filter(day__gte=DAYS[2])
    assert {fact.override_set.key for fact in changed} == {str(override.pk)}
    assert UsageFact.objects.filter(day__lt=DAYS[2], override_set__isnull=False).count() == 0
    # The run records who, why and exactly what moved: 2 rows, $0.0010 list, $0.0010 -> $0.0009 net.
    assert (run.status, run.rows, run.rows_changed, run.days_refreshed) == (RepricingStatus.DONE, 2, 2, 2)
    assert (run.list_before_nanos, run.list_after_nanos) == (2 * REQUEST, 2 * REQUEST)
    assert (run.net_before_nanos, run.net_after_nanos) == (2 * REQUEST, 900_000)
    assert run.requested_by_label == "finance@acme.example"
    # The totals everyone reads: net 1,900,000, list 2,000,000.
    group = spend_totals(capsys)["openai/gpt-4.1-mini-2025-04-14"]
    assert (group["cost_usd"], group["list_cost_usd"]) == ("0.001900000", "0.002000000")
    assert (group["computed_usd"], group["billed_usd"], group["estimated_usd"]) == (
        "0.001900000",
        "0.000000000",
        "0.000000000",
    )
    # One audit row for the change, with its terms.
    audit = AuditEntry.objects.get(action="price_override.created")
    assert (audit.object_id, audit.before, audit.after["percent"]) == (str(override.pk), None, "10.0000")


def test_re_pricing_loses_and_doubles_nothing_and_a_second_run_changes_nothing(four_days, editor):
    before = UsageFact.objects.aggregate(rows=Count("id"), tokens=Sum("input_uncached_tokens"))
    _, run = services.override_save(
        editor,
        values={"kind": OverrideKind.DISCOUNT, "provider": openai(), "model": None, "percent": Decimal("12.5"),
                "valid_from": dt.date(2026, 8, 1), "valid_to": dt.date(2026, 8, 2)},
    )  # fmt: skip
    run_queued(run)
    assert UsageFact.objects.aggregate(rows=Count("id"), tokens=Sum("input_uncached_tokens")) == before
    rollup = DailyRollup.objects.aggregate(
        rows=Sum("fact_rows"), cost=Sum("cost_nanos"), listed=Sum("list_cost_nanos")
    )
    assert rollup == {"rows": 4, "cost": 2 * 437_500 + 2 * REQUEST, "listed": 4 * REQUEST}
    assert UsageFact.objects.aggregate(cost=Sum("cost_nanos"))["cost"] == rollup["cost"]

    again = Repricer(editor.viewer.organisation_id).run()
    assert again.rows_changed == 0
    assert (again.before.net_nanos, again.after.net_nanos) == (rollup["cost"], rollup["cost"])
    assert DailyRollup.objects.aggregate(cost=Sum("cost_nanos"))["cost"] == rollup["cost"]


def test_ending_a_term_re_prices_the_days_after_it_back_to_list(four_days, editor):
    override, run = services.override_save(
        editor,
        values={"kind": OverrideKind.DISCOUNT, "provider": openai(), "model": None, "percent": Decimal("20"),
                "valid_from": dt.date(2026, 8, 1), "valid_to": None},
    )  # fmt: skip
    run_queued(run)
    assert [cost for cost, _ in costs_by_day().values()] == [400_000] * 4
    values = {"valid_to": dt.date(2026, 8, 2)}
    override, run = services.override_save(editor, override=override, values=values)
    run = run_queued(run)
    assert [cost for cost, _ in costs_by_day().values()] == [400_000, 400_000, REQUEST, REQUEST]
    assert (run.net_before_nanos, run.net_after_nanos) == (1_600_000, 1_800_000)
    audit = AuditEntry.objects.get(action="price_override.updated")
    assert (audit.before["valid_to"], audit.after["valid_to"]) == (None, "2026-08-02")


def test_overlapping_terms_of_one_kind_and_target_are_refused(four_days, editor):
    values = {"kind": OverrideKind.DISCOUNT, "provider": openai(), "model": None, "percent": Decimal("5"),
              "valid_from": dt.date(2026, 8, 1), "valid_to": None}  # fmt: skip
    services.override_save(editor, values=values)
    with pytest.raises(services.PriceChangeRefused, match="overlaps override"):
        services.override_save(editor, values={**values, "valid_from": dt.date(2026, 9, 1)})
    assert PriceOverride.objects.count() == 1
    assert AuditEntry.objects.filter(action__startswith="price_override").count() == 1


def test_a_model_discount_beats_the_provider_discount(four_days, editor):
    model = AIModel.objects.get(name="gpt-4.1-mini-2025-04-14")
    for target, percent in ((None, "10"), (model, "30")):
        services.override_save(
            editor,
            values={"kind": OverrideKind.DISCOUNT, "provider": openai(), "model": target, "percent": Decimal(percent),
                    "valid_from": dt.date(2026, 8, 4), "valid_to": None},
        )  # fmt: skip
    Repricer(editor.viewer.organisation_id).run(since=dt.date(2026, 8, 4))
    assert costs_by_day()[DAYS[3]] == (350_000, REQUEST)


def test_terms_already_in_force_price_new_usage_at_ingestion(ingest, tmp_path, editor):
    ingest("litellm_spend_logs", write_jsonl(tmp_path / "first.jsonl", _records("a")[:1]))
    services.override_save(
        editor,
        values={"kind": OverrideKind.DISCOUNT, "provider": openai(), "model": None, "percent": Decimal("10"),
                "valid_from": dt.date(2026, 8, 2), "valid_to": None},
    )  # fmt: skip
    ingest("litellm_spend_logs", write_jsonl(tmp_path / "rest.jsonl", _records("b")[1:]))
    # The pipeline prices what it stores with the same terms a re-pricing run would apply.
    assert costs_by_day() == {
        DAYS[0]: (REQUEST, REQUEST),
        DAYS[1]: (450_000, REQUEST),
        DAYS[2]: (450_000, REQUEST),
        DAYS[3]: (450_000, REQUEST),
    }
    assert Repricer(editor.viewer.organisation_id).run(since=dt.date(2026, 8, 2)).rows_changed == 0


def test_history_keeps_the_price_of_its_own_day(ingest, tmp_path, acme):
    """o3 was cut from $10/$40 to $2/$8 per MTok on 2025-06-10: re-pricing never moves a day to today's price."""
    records = [
        litellm_record(f"o3-{day}", model="o3", startTime=f"{day}T12:00:00+00:00",
                       metadata={"usage_object": {"prompt_tokens": 1_000_000, "completion_tokens": 100_000,
                                                  "prompt_tokens_details": {"cached_tokens": 200_000}}},
                       prompt_tokens=1_000_000, completion_tokens=100_000)
        for day in ("2025-06-01", "2025-06-11")
    ]  # fmt: skip
    ingest("litellm_spend_logs", write_jsonl(tmp_path / "o3.jsonl", records))
    prices = {fact.day.isoformat(): fact.cost_nanos for fact in UsageFact.objects.all()}
    assert prices == {"2025-06-01": 12_100_000_000, "2025-06-11": 2_500_000_000}
    result = Repricer(acme.pk).run()
    assert result.rows_changed == 0
    assert {fact.day.isoformat(): fact.list_cost_nanos for fact in UsageFact.objects.all()} == prices


def test_the_unpriced_queue_lists_a_model_and_an_entered_price_prices_it(ingest, tmp_path, editor, capsys):
    records = [
        litellm_record("m1", model="acme-llm-2027", custom_llm_provider="acme", startTime="2026-08-02T09:00:00+00:00"),
        litellm_record("m2", model="acme-llm-2027", custom_llm_provider="acme", startTime="2026-08-03T18:30:00+00:00"),
        litellm_record("k1"),
    ]  # fmt: skip
    ingest("litellm_spend_logs", write_jsonl(tmp_path / "mixed.jsonl", records))
    (queued,) = unpriced_models(editor.viewer)
    assert (queued.provider, queued.model, queued.rows, queued.tokens) == ("acme", "acme-llm-2027", 2, 2_200)
    assert queued.reported_nanos == 2 * 520_000  # what the gateway said: shown, never counted
    assert (queued.first_seen.isoformat(), queued.last_seen.isoformat()) == (
        "2026-08-02T09:00:00+00:00",
        "2026-08-03T18:30:00+00:00",
    )
    group = spend_totals(capsys, "2026-08-02", "2026-08-03")["acme/acme-llm-2027"]
    assert (group["cost_usd"], group["unpriced_rows"], group["unpriced_reported_usd"]) == (
        "0.000000000",
        2,
        "0.001040000",
    )

    model = AIModel.objects.get(name="acme-llm-2027")
    _, run = services.override_save(
        editor,
        values={"kind": OverrideKind.CUSTOM_PRICE, "provider": model.provider, "model": model,
                "input_mtok": Decimal("2"), "output_mtok": Decimal("6"), "cache_read_mtok": Decimal("0.5"),
                "valid_from": dt.date(2026, 8, 1)},
    )  # fmt: skip
    run = run_queued(run)
    # 800 x $2 + 200 x $0.50 + 100 x $6 per MTok = $0.0023 per request; no list price exists, so list = net.
    assert (run.unpriced_before, run.unpriced_after, run.net_after_nanos) == (2, 0, 4_600_000)
    assert unpriced_models(editor.viewer) == []
    group = spend_totals(capsys, "2026-08-02", "2026-08-03")["acme/acme-llm-2027"]
    assert (group["cost_usd"], group["list_cost_usd"], group["unpriced_rows"]) == (
        "0.004600000",
        "0.004600000",
        0,
    )
    assert group["computed_usd"] == "0.004600000"
    fact = UsageFact.objects.filter(model=model).first()
    assert (fact.price_ref.source, fact.price_ref.model_ref) == ("organisation price", "acme-llm-2027")


def test_mapping_an_azure_deployment_moves_and_prices_its_rows_and_later_ingests(ingest, tmp_path, editor):
    deployment = {"model": "my-gpt4o-deployment", "custom_llm_provider": "azure"}
    ingest("litellm_spend_logs", write_jsonl(tmp_path / "a.jsonl", [litellm_record("d1", **deployment)]))
    raw = AIModel.objects.get(name="my-gpt4o-deployment")
    assert UsageFact.objects.get().cost_nanos is None

    _, run = services.mapping_save(editor, raw_model_id=raw.pk, provider="azure", model="gpt-4o")
    run = run_queued(run)
    # gpt-4o: 800 x $2.50 + 200 x $1.25 + 100 x $10 per MTok = $0.00325.
    fact = UsageFact.objects.select_related("model").get()
    assert (fact.model.name, fact.cost_nanos, fact.list_cost_nanos) == ("gpt-4o", 3_250_000, 3_250_000)
    assert (run.unpriced_before, run.unpriced_after) == (1, 0)
    assert DailyRollup.objects.get().model_id == fact.model_id

    ingest("litellm_spend_logs", write_jsonl(tmp_path / "b.jsonl", [litellm_record("d2", **deployment)]))
    assert list(UsageFact.objects.values_list("model__name", "cost_nanos").distinct()) == [
        ("gpt-4o", 3_250_000)
    ]
    assert AuditEntry.objects.filter(action="model_mapping.created").count() == 1


def test_a_mapping_to_a_model_no_price_data_knows_is_refused(ingest, tmp_path, editor):
    ingest(
        "litellm_spend_logs",
        write_jsonl(
            tmp_path / "a.jsonl", [litellm_record("d1", model="mystery", custom_llm_provider="azure")]
        ),
    )
    raw = AIModel.objects.get(name="mystery")
    with pytest.raises(services.PriceChangeRefused, match="No price data knows"):
        services.mapping_save(editor, raw_model_id=raw.pk, provider="azure", model="gpt-99-imaginary")


def test_billed_rows_are_never_re_priced(ingest, editor):
    from tests.conftest import FIXTURES

    ingest("anthropic_costs", *sorted((FIXTURES / "anthropic_admin_usage").glob("cost_report*.json")))
    billed = list(UsageFact.objects.order_by("id").values_list("cost_nanos", "list_cost_nanos"))
    assert billed and all(cost == listed for cost, listed in billed)
    services.override_save(
        editor,
        values={"kind": OverrideKind.DISCOUNT, "provider": Provider.objects.get(slug="anthropic"), "model": None,
                "percent": Decimal("50"), "valid_from": dt.date(2020, 1, 1)},
    )  # fmt: skip
    result = Repricer(editor.viewer.organisation_id).run()
    assert (result.before.rows, result.rows_changed) == (0, 0)
    assert list(UsageFact.objects.order_by("id").values_list("cost_nanos", "list_cost_nanos")) == billed


def test_price_changes_are_for_cio_and_finops_only(four_days, acme, teams):
    from django.http import Http404

    from apps.accounts.models import Role
    from apps.accounts.scoping import Viewer

    manager = services.PriceEditor(
        viewer=Viewer(acme.pk, Role.MANAGER, frozenset({teams["platform"].pk}), None)
    )
    with pytest.raises(Http404):
        services.override_save(
            manager,
            values={"kind": OverrideKind.DISCOUNT, "provider": openai(), "model": None, "percent": Decimal("99"),
                    "valid_from": dt.date(2026, 8, 1)},
        )  # fmt: skip
    assert PriceOverride.objects.count() == 0 and RepricingRun.objects.count() == 0


def test_the_reprice_command_records_a_run_after_a_price_data_change(four_days, capsys):
    call_command("reprice", "--reason", "genai-prices upgrade", "--since", "2026-08-03")
    result = json.loads(capsys.readouterr().out)
    run = RepricingRun.objects.get(pk=result["run"])
    assert (run.status, run.reason, run.rows, run.rows_changed) == (
        RepricingStatus.DONE,
        "genai-prices upgrade",
        2,
        0,
    )
    assert (run.net_before_nanos, run.net_after_nanos) == (2 * REQUEST, 2 * REQUEST)
