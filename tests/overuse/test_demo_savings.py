"""The demo's Savings page against a re-computation by hand from the files the demo wrote.

The re-computation reads the LiteLLM spend log as plain JSON and prices each request with genai-prices'
own `calc_price`, not with the ledger's price vectors. Only the labels come from the product (the base
classifier: the demo organisation has no feedback yet, so its classifier is the base one), because what
this test checks is the money: which requests count, what they cost, and what the designated cheaper
model would have cost. The frontier models and their targets below are read from
apps/overuse/data/tiers.json by hand for the demo's models and dates (August to November 2026).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo

import orjson
import pytest
from django.utils import timezone
from genai_prices import Usage, calc_price

from apps.ingestion import demo
from apps.overuse.classifier import base_classifier

pytestmark = pytest.mark.django_db

LONDON = ZoneInfo("Europe/London")
NANOS = Decimal(1_000_000_000)
# The demo's frontier models -> (provider, model) re-priced on, and whether that model reasons.
FRONTIER_TARGETS = {
    ("openai", "gpt-5-2025-08-07"): ("openai", "gpt-5-nano", True),
    ("anthropic", "claude-opus-4-1-20250805"): ("anthropic", "claude-haiku-4-5", False),
    ("anthropic", "claude-sonnet-4-5-20250929"): ("anthropic", "claude-haiku-4-5", False),
    ("vertex_ai", "gemini-2.5-pro"): ("google", "gemini-2.5-flash-lite", False),
    ("bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0"): (
        "aws", "global.anthropic.claude-haiku-4-5-20251001-v1:0", False
    ),
}  # fmt: skip
PROVIDER_IDS = {"openai": "openai", "anthropic": "anthropic", "vertex_ai": "google", "bedrock": "aws"}


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def nanos(usage: Usage, provider: str, model: str, at: dt.datetime) -> int:
    price = calc_price(usage, model, provider_id=provider, genai_request_timestamp=at).total_price
    return int((price * NANOS).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def usage_of(record: dict, *, drop_reasoning: bool = False) -> Usage:
    used = record["metadata"]["usage_object"]
    cache_read = used.get("cache_read_input_tokens", used["prompt_tokens_details"]["cached_tokens"])
    output = used["completion_tokens"]
    if drop_reasoning:
        output -= used["completion_tokens_details"]["reasoning_tokens"]
    return Usage(
        input_tokens=used["prompt_tokens"],
        cache_read_tokens=cache_read,
        cache_write_tokens=used.get("cache_creation_input_tokens", 0),
        output_tokens=output,
    )


def usd(amount: int) -> str:
    cents = (Decimal(amount) / NANOS).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    return f"${cents:,.2f}"


def test_the_savings_page_equals_a_hand_recomputation_from_the_demo_files(tmp_path, client):
    today = timezone.now().astimezone(LONDON).date()
    result = demo.load_demo(today, scale=0.01, directory=tmp_path)
    start = today - dt.timedelta(days=89)

    with result.files.litellm.open("rb") as handle:
        records = [orjson.loads(line) for line in handle if line.strip()]
    records = [
        record
        for record in records
        if record["status"] == "success"
        and start <= dt.datetime.fromisoformat(record["startTime"]).astimezone(LONDON).date() <= today
    ]
    labels = [p.label for p in base_classifier().predict([r["messages"][-1]["content"] for r in records])]

    routable_requests = routable_cost = routable_saving = avoidable = 0
    for record, label in zip(records, labels, strict=True):
        at = dt.datetime.fromisoformat(record["startTime"])
        key = (record["custom_llm_provider"], record["model"])
        provider = PROVIDER_IDS.get(key[0])
        if label == "non_work" and provider is not None:
            avoidable += nanos(usage_of(record), provider, record["model"], at)
        if label != "trivial" or key not in FRONTIER_TARGETS:
            continue
        target_provider, target_model, reasons = FRONTIER_TARGETS[key]
        actual = nanos(usage_of(record), provider, record["model"], at)
        target = nanos(usage_of(record, drop_reasoning=not reasons), target_provider, target_model, at)
        routable_requests += 1
        routable_cost += actual
        routable_saving += max(0, actual - target)

    # The story the demo tells: frontier models greeted and asked the weather, some personal use.
    assert routable_requests >= 20 and avoidable > 0 and routable_saving > 0

    client.force_login(_user(result.logins[0].email))  # the CIO: the whole organisation
    page = client.get("/savings/?days=90").content.decode()

    shown = re.search(r'data-testid="routable-range" data-low="(\d+)" data-high="(\d+)"', page)
    assert int(shown.group(2)) == routable_saving
    assert int(re.search(r'data-testid="avoidable" data-nanos="(\d+)"', page).group(1)) == avoidable
    assert (
        f"{routable_requests:,} frontier-model requests on trivial prompts cost {usd(routable_cost)}" in page
    )
    assert usd(routable_saving) in page and usd(avoidable) in page


def _user(email: str):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username=email)
