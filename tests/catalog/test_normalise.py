"""Model names as sources write them -> names the price data knows (apps.catalog.normalise), and the
organisation's batch discount where the price data has no batch price (apps.catalog.prices)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from genai_prices import data_snapshot

from apps.catalog.models import AIModel, ModelMapping, OverrideKind, PriceOverride
from apps.catalog.normalise import NameResolver, lookup_names, model_name, provider_slug
from apps.catalog.prices import OrganisationPrices
from apps.catalog.pricing import Pricer
from apps.catalog.services import provider_for

pricer = Pricer()
AT = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("provider", "raw", "expected"),
    [
        # Vertex resource paths and version pins
        ("google", "models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("google", "publishers/google/models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("google", "projects/acme-ml/locations/europe-west4/publishers/google/models/gemini-2.5-pro", "gemini-2.5-pro"),
        ("google", "gemini-2.5-flash-001", "gemini-2.5-flash"),  # unknown pinned, known unpinned
        ("google", "gemini-2.5-flash@001", "gemini-2.5-flash"),
        ("google", "gemini-embedding-001", "gemini-embedding-001"),  # a model of its own: kept
        ("google", "claude-sonnet-4-5@20250929", "claude-sonnet-4-5-20250929"),
        ("google", "google/gemini-2.5-flash", "gemini-2.5-flash"),  # the row's own provider as a prefix
        ("openrouter", "google/gemini-2.5-flash", "google/gemini-2.5-flash"),  # a router's vendor/model name
        # Bedrock ARNs; geography and global profiles keep their prefix (the price data prices them)
        ("aws", "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
         "anthropic.claude-3-haiku-20240307-v1:0"),
        ("aws", "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
         "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ("aws", "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/k2x9q7w1p4ab",
         "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/k2x9q7w1p4ab"),
        ("aws", "global.anthropic.claude-sonnet-4-5-20250929-v1:0", "global.anthropic.claude-sonnet-4-5-20250929-v1:0"),
        # Everything else as written
        ("openai", "gpt-4.1-mini-2025-04-14", "gpt-4.1-mini-2025-04-14"),
        ("azure", "my-gpt4o-deployment", "my-gpt4o-deployment"),
    ],
)  # fmt: skip
def test_model_names(provider, raw, expected):
    assert model_name(raw, provider) == expected


def test_every_normalised_name_above_that_names_a_model_is_priced():
    for provider, name in [
        ("google", "gemini-2.5-flash"),
        ("google", "claude-sonnet-4-5-20250929"),
        ("aws", "anthropic.claude-3-haiku-20240307-v1:0"),
        ("aws", "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"),
    ]:
        assert pricer.find_model(provider, name) is not None, name


def test_a_bedrock_arn_without_a_provider_is_aws():
    assert provider_slug("", "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0") == "aws"


def test_every_bedrock_geography_profile_is_priced_as_the_regional_model():
    """For every `regional.*` model of the price data and every geography, the profile's name (kept as
    written) resolves to that regional price, although the data itself lists only some geographies."""
    aws = next(provider for provider in data_snapshot.get_snapshot().providers if provider.id == "aws")
    regional = [
        model.id.removeprefix("regional.") for model in aws.models if model.id.startswith("regional.")
    ]
    assert len(regional) >= 30
    for name in regional:
        for geography in ("us", "eu", "apac", "jp"):
            assert model_name(f"{geography}.{name}", "aws") == f"{geography}.{name}"
            assert pricer.find_model("aws", f"{geography}.{name}")[1].id == f"regional.{name}", (
                geography,
                name,
            )
    assert lookup_names("aws", "apac.amazon.nova-2-lite-v1:0")[:2] == [
        "apac.amazon.nova-2-lite-v1:0",
        "us.amazon.nova-2-lite-v1:0",
    ]


def test_the_organisations_mapping_comes_after_the_rules(acme):
    ModelMapping.objects.create(
        organisation=acme,
        raw_provider="azure",
        raw_model="my-gpt4o-deployment",
        provider="azure",
        model="gpt-4o",
    )
    names = NameResolver(acme.pk)
    assert names.resolve("azure", "my-gpt4o-deployment") == ("azure", "gpt-4o")
    assert names.resolve("azure_ai", "my-gpt4o-deployment") == ("azure", "gpt-4o")  # after the provider rules
    assert NameResolver(None).resolve("azure", "my-gpt4o-deployment") == ("azure", "my-gpt4o-deployment")


def test_a_batch_discount_applies_only_where_the_price_data_has_no_batch_price(acme):
    anthropic = provider_for("anthropic")
    PriceOverride.objects.create(
        organisation=acme, kind=OverrideKind.BATCH_DISCOUNT, provider=anthropic, percent=Decimal(50),
        valid_from=dt.date(2025, 1, 1),
    )  # fmt: skip
    prices = OrganisationPrices(acme.pk, pricer)
    counts = (100_000, 0, 0, 0, 10_000, 0)
    # 1 Sep 2025: no batch price in the data for claude-sonnet-4-5 -> $0.30 + $0.15 list, half of it net.
    early = prices.group_price(
        provider="anthropic", model="claude-sonnet-4-5", at=dt.datetime(2025, 9, 1, tzinfo=dt.UTC), batch=True
    )
    assert (early.list_cost(counts), early.net_cost(counts)) == (450_000_000, 225_000_000)
    # 20 Nov 2026: the data has the batch price itself ($0.15 + $0.075): the discount is not applied twice.
    late = prices.group_price(provider="anthropic", model="claude-sonnet-4-5", at=AT, batch=True)
    assert (late.list_cost(counts), late.net_cost(counts), late.override_ids) == (
        225_000_000,
        225_000_000,
        (),
    )
    # Not a batch row: no batch discount.
    standard = prices.group_price(
        provider="anthropic", model="claude-sonnet-4-5", at=dt.datetime(2025, 9, 1, tzinfo=dt.UTC)
    )
    assert standard.net_cost(counts) == 450_000_000


def test_a_custom_price_replaces_the_list_price_for_net_and_discounts_apply_on_top(acme):
    openai = provider_for("openai")
    model = AIModel.objects.create(provider=openai, name="gpt-5")
    PriceOverride.objects.create(
        organisation=acme, kind=OverrideKind.CUSTOM_PRICE, provider=openai, model=model,
        input_mtok=Decimal("1"), output_mtok=Decimal("8"), valid_from=dt.date(2026, 1, 1),
    )  # fmt: skip
    PriceOverride.objects.create(
        organisation=acme, kind=OverrideKind.DISCOUNT, provider=openai, percent=Decimal("2.5"),
        valid_from=dt.date(2026, 1, 1),
    )  # fmt: skip
    price = OrganisationPrices(acme.pk, pricer).group_price(provider="openai", model="gpt-5", at=AT)
    counts = (800_000, 200_000, 0, 0, 100_000, 0)
    # List (genai-prices): $2.025. Custom: cache reads default to the input price: 1M x $1 + 100k x $8 =
    # $1.80, then 2.5 % off = $1.755.
    assert (price.list_cost(counts), price.net_cost(counts)) == (2_025_000_000, 1_755_000_000)
