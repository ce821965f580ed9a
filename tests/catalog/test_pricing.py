"""Pricing: the documented figures of genai-prices 0.2.3, and our fast path equal to calc_price exactly."""

import datetime as dt

from genai_prices import calc_price
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.catalog.normalise import model_name, provider_slug
from apps.catalog.pricing import Pricer, TokenCounts

AT = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
pricer = Pricer()


def nanos(provider: str, model: str, counts: TokenCounts, **kwargs) -> int | None:
    priced = pricer.price(provider=provider, model=model, at=kwargs.pop("at", AT), counts=counts, **kwargs)
    return None if priced is None else priced[0]


def test_documented_prices():
    gpt5 = TokenCounts(input_uncached=800_000, cache_read=200_000, output=100_000)
    assert nanos("openai", "gpt-5", gpt5) == 2_025_000_000
    assert nanos("openai", "gpt-5", gpt5, batch=True) == 1_012_500_000
    # The >200k tier is a cliff: one more input token re-prices every token.
    assert (
        nanos("anthropic", "claude-sonnet-4-5", TokenCounts(input_uncached=200_000, output=1_000))
        == 615_000_000
    )
    assert (
        nanos("anthropic", "claude-sonnet-4-5", TokenCounts(input_uncached=200_001, output=1_000))
        == 1_222_506_000
    )


def test_history_is_priced_at_the_price_of_its_day():
    o3 = TokenCounts(input_uncached=800_000, cache_read=200_000, output=100_000)
    assert nanos("openai", "o3", o3, at=dt.datetime(2025, 6, 1, tzinfo=dt.UTC)) == 12_100_000_000
    assert nanos("openai", "o3", o3, at=dt.datetime(2025, 6, 11, tzinfo=dt.UTC)) == 2_500_000_000


def test_off_peak_prices_apply_by_time_of_day():
    usage = TokenCounts(input_uncached=1_000_000, output=100_000)
    night = nanos("deepseek", "deepseek-chat", usage, at=dt.datetime(2026, 11, 20, 17, 0, tzinfo=dt.UTC))
    day = nanos("deepseek", "deepseek-chat", usage, at=dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC))
    for when, got in ((17, night), (9, day)):
        at = dt.datetime(2026, 11, 20, when, 0, tzinfo=dt.UTC)
        want = calc_price(
            usage.as_genai_usage(), "deepseek-chat", provider_id="deepseek", genai_request_timestamp=at
        )
        assert got == int(want.total_price * 10**9)
    assert night < day


def test_unknown_models_have_no_price():
    assert nanos("openai", "gpt-7-ultra", TokenCounts(input_uncached=10)) is None
    assert nanos("unknown", "acme-llm-2027", TokenCounts(input_uncached=10)) is None


def test_gateway_provider_names_are_normalised():
    assert provider_slug("vertex_ai", "gemini-2.5-flash") == "google"
    assert provider_slug("bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0") == "aws"
    assert provider_slug("", "claude-haiku-4-5") == "anthropic"
    assert model_name("publishers/google/models/gemini-2.5-flash") == "gemini-2.5-flash"
    assert model_name("models/gemini-2.5-flash") == "gemini-2.5-flash"


MODELS = [
    ("openai", "gpt-5"),
    ("openai", "gpt-4.1-mini-2025-04-14"),
    ("anthropic", "claude-sonnet-4-5"),  # tiered above 200k input
    ("anthropic", "claude-opus-4-1-20250805"),
    ("google", "gemini-2.5-pro"),  # tiered
    ("aws", "us.anthropic.claude-sonnet-4-20250514-v1:0"),
    ("deepseek", "deepseek-chat"),  # time-of-day (off-peak) prices
]
counts = st.integers(min_value=0, max_value=400_000)


@settings(max_examples=300, deadline=None)
@given(
    model=st.sampled_from(MODELS),
    uncached=counts,
    cache_read=counts,
    write_5m=counts,
    write_1h=counts,
    output=counts,
    reasoning_share=st.floats(0, 1),
    days_back=st.integers(0, 500),
)
def test_fast_path_equals_calc_price(
    model, uncached, cache_read, write_5m, write_1h, output, reasoning_share, days_back
):
    provider, name = model
    at = AT - dt.timedelta(days=days_back)
    reasoning = int(output * reasoning_share)
    tokens = TokenCounts(uncached, cache_read, write_5m, write_1h, output, reasoning)
    reference = calc_price(
        tokens.as_genai_usage(), name, provider_id=provider, genai_request_timestamp=at
    ).total_price
    assert nanos(provider, name, tokens, at=at) == int((reference * 10**9).to_integral_value())
