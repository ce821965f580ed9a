"""The prices pages and the unpriced-models queue: CIO/FinOps only (everyone else 404), every save audited
and queued as a re-pricing run; and the overview's buckets panel."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.audit.models import AuditEntry
from apps.catalog.models import AIModel, ModelMapping, OverrideKind, PriceOverride, Provider, RepricingRun
from apps.catalog.services import repricing_run_execute
from apps.usage.models import UsageFact
from tests.conftest import litellm_record, write_jsonl


@pytest.fixture
def usage(ingest, people, tmp_path):
    now = timezone.now().replace(microsecond=0).isoformat()
    records = [
        litellm_record("a0", user="alice@acme.example", startTime=now),
        litellm_record("a1", user="alice@acme.example", startTime=now, model="my-gpt4o-deployment", custom_llm_provider="azure"),
        litellm_record("u0", user="stranger@elsewhere.example", startTime=now),
    ]  # fmt: skip
    ingest("litellm_spend_logs", write_jsonl(tmp_path / "today.jsonl", records))


ADMIN_PAGES = ["/prices/", "/prices/unpriced/"]


@pytest.mark.parametrize("persona", ["alice", "eng_manager", "platform_manager"])
def test_members_and_managers_get_404_on_every_prices_page_and_action(as_persona, usage, persona):
    client = as_persona(persona)
    model = AIModel.objects.get(name="my-gpt4o-deployment")
    for path in ADMIN_PAGES:
        assert client.get(path).status_code == 404, path
    assert (
        client.post(f"/prices/unpriced/{model.pk}/map/", {"provider": "azure", "model": "gpt-4o"}).status_code
        == 404
    )
    assert (
        client.post(
            f"/prices/unpriced/{model.pk}/price/",
            {"input_mtok": "1", "output_mtok": "1", "valid_from": "2026-01-01"},
        ).status_code
        == 404
    )
    assert client.post("/prices/", {"kind": "discount"}).status_code == 404
    assert ModelMapping.objects.count() == PriceOverride.objects.count() == RepricingRun.objects.count() == 0


def test_another_organisations_cio_cannot_touch_our_terms(as_persona, usage, acme):
    override = PriceOverride.objects.create(
        organisation=acme, kind=OverrideKind.DISCOUNT, provider=Provider.objects.get(slug="openai"),
        percent=Decimal(10), valid_from=dt.date(2026, 1, 1),
    )  # fmt: skip
    client = as_persona("outsider")
    assert client.get(f"/prices/overrides/{override.pk}/").status_code == 404
    assert client.post(f"/prices/overrides/{override.pk}/delete/").status_code == 404
    assert client.get("/prices/unpriced/").context["models"] == []
    assert PriceOverride.objects.filter(pk=override.pk).exists()


def test_the_cio_maps_a_deployment_from_the_queue_and_the_run_prices_it(
    as_persona, usage, django_capture_on_commit_callbacks
):
    client = as_persona("cio")
    page = client.get("/prices/unpriced/")
    assert [(item.provider, item.model, item.rows) for item in page.context["models"]] == [
        ("azure", "my-gpt4o-deployment", 1)
    ]
    model = AIModel.objects.get(name="my-gpt4o-deployment")
    refused = client.post(f"/prices/unpriced/{model.pk}/map/", {"provider": "azure", "model": "gpt-99"})
    assert refused.status_code == 400 and "No price data knows azure/gpt-99" in refused.content.decode()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(f"/prices/unpriced/{model.pk}/map/", {"provider": "azure", "model": "gpt-4o"})
    assert response.status_code == 302 and len(callbacks) == 1  # the re-pricing task, once committed
    run = RepricingRun.objects.get()
    assert (run.requested_by_label, run.status) == ("cio@acme.example", "queued")
    assert AuditEntry.objects.get(action="model_mapping.created").actor_label == "cio@acme.example"
    repricing_run_execute(run_id=run.pk)
    assert UsageFact.objects.get(record_key="a1").cost_nanos == 3_250_000
    page = client.get("/prices/")
    assert page.status_code == 200 and 'data-testid="run-' in page.content.decode()
    assert client.get("/prices/unpriced/").context["models"] == []


def test_the_finops_adds_a_discount_through_the_form(as_persona, usage):
    client = as_persona("finops")
    provider = Provider.objects.get(slug="openai")
    data = {
        "kind": "discount",
        "target": f"provider:{provider.pk}",
        "percent": "15",
        "valid_from": "2026-01-01",
    }
    response = client.post("/prices/", data)
    assert response.status_code == 302
    override = PriceOverride.objects.get()
    assert (override.percent, override.model_id, override.created_by.email) == (
        Decimal("15.0000"),
        None,
        "finops@acme.example",
    )
    bad = client.post("/prices/", {**data, "valid_from": "2027-01-01"})  # overlaps the open-ended one
    assert bad.status_code == 400 and "overlaps override" in bad.content.decode()
    assert PriceOverride.objects.count() == 1


def test_the_overview_shows_the_buckets_of_its_total(as_persona, usage):
    response = as_persona("cio").get("/")
    html = response.content.decode()
    buckets = response.context["buckets"]
    assert (buckets.cost_nanos, buckets.computed_nanos, buckets.billed_nanos, buckets.estimated_nanos) == (
        1_000_000, 1_000_000, 0, 0,
    )  # fmt: skip
    assert (buckets.attributed_nanos, buckets.unattributed_nanos, buckets.unpriced_rows) == (
        500_000,
        500_000,
        1,
    )
    assert buckets.unpriced_reported_nanos == 520_000
    assert re.search(r'data-testid="computed-usd" data-exact="0.001000000"', html)
    assert re.search(r'data-testid="unattributed-bucket-usd" data-exact="0.000500000"', html)
    assert 'data-testid="focus-link"' in html and 'data-testid="prices-link"' in html
    member = as_persona("alice").get("/").content.decode()
    assert 'data-testid="focus-link"' not in member and 'data-testid="spend-csv-link"' in member
