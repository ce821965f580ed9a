"""Model tiers: dated family rules, the price-band fallback, organisation overrides, cheaper models."""

import datetime as dt
import json

import pytest

from apps.overuse.models import CheaperModelChoice, ModelTierOverride
from apps.overuse.tiers import CheaperModel, TierResolver, TierRulesError, load_rules

pytestmark = pytest.mark.django_db

DAY = dt.date(2026, 10, 1)


@pytest.fixture
def resolver(acme):
    return TierResolver(acme.pk)


@pytest.mark.parametrize(
    ("provider", "model", "tier", "open_weight"),
    [
        ("openai", "gpt-5-2025-08-07", "frontier", False),
        ("openai", "gpt-5-mini-2025-08-07", "standard", False),
        ("openai", "gpt-5-nano-2025-08-07", "small", False),
        ("openai", "gpt-4o-mini", "small", False),
        ("openai", "o4-mini", "standard", False),
        ("openai", "o3", "frontier", False),
        ("openai", "gpt-oss-120b", "small", True),
        ("anthropic", "claude-opus-4-1-20250805", "frontier", False),
        ("anthropic", "claude-sonnet-4-5-20250929", "frontier", False),
        ("anthropic", "claude-haiku-4-5-20251001", "standard", False),
        ("anthropic", "claude-haiku-5-5", "small", False),
        ("aws", "us.anthropic.claude-sonnet-4-20250514-v1:0", "frontier", False),
        ("aws", "meta.llama3-1-8b-instruct-v1:0", "small", True),
        ("aws", "meta.llama3-1-70b-instruct-v1:0", "standard", True),
        ("google", "gemini-2.5-pro", "frontier", False),
        ("google", "gemini-2.5-flash", "standard", False),
        ("google", "gemini-2.5-flash-lite", "small", False),
    ],
)
def test_family_rules(resolver, provider, model, tier, open_weight):
    found = resolver.tier(provider, model, DAY)
    assert (found.tier, found.open_weight, found.basis) == (tier, open_weight, "rule")


def test_a_tier_changes_on_its_date(resolver):
    assert resolver.tier("openai", "gpt-4o-2024-08-06", dt.date(2025, 8, 6)).tier == "frontier"
    assert resolver.tier("openai", "gpt-4o-2024-08-06", dt.date(2025, 8, 7)).tier == "standard"


def test_unruled_models_fall_back_to_their_price_band(resolver):
    # gpt-image-1 lists $5 in / $40 out: (3 x 5 + 40) / 4 = $13.75 blended, above $3.
    found = resolver.tier("openai", "gpt-image-1", DAY)
    assert (found.tier, found.basis, found.family) == ("frontier", "price_band", "$13.75/MTok blended")
    # codestral is ruled small; devstral-2512 ($0.40 / $2.00 → $0.80) has no family: standard by price.
    found = resolver.tier("mistral", "devstral-2512", DAY)
    assert (found.tier, found.basis) == ("standard", "price_band")
    unknown = resolver.tier("hosted_vllm", "acme-llm-2027", DAY)
    assert (unknown.tier, unknown.basis) == ("unknown", "unknown")


def test_organisation_overrides_win_from_their_date(acme):
    ModelTierOverride.objects.create(
        organisation=acme, provider="anthropic", model_pattern="sonnet", tier="standard",
        effective_from=dt.date(2026, 9, 1), note="Sonnet is our default workhorse",
    )  # fmt: skip
    resolver = TierResolver(acme.pk)
    assert resolver.tier("anthropic", "claude-sonnet-4-5-20250929", dt.date(2026, 8, 31)).tier == "frontier"
    found = resolver.tier("anthropic", "claude-sonnet-4-5-20250929", dt.date(2026, 9, 1))
    assert (found.tier, found.basis, found.open_weight) == ("standard", "override", False)
    # Another provider's Sonnet (Bedrock) is not covered by an anthropic-only override.
    assert resolver.tier("aws", "us.anthropic.claude-sonnet-4-20250514-v1:0", DAY).tier == "frontier"


def test_the_designated_cheaper_model_is_dated_and_can_be_overridden(acme):
    resolver = TierResolver(acme.pk)
    assert resolver.cheaper_model("anthropic", "frontier", dt.date(2025, 10, 14)) == CheaperModel(
        "anthropic", "claude-3-haiku", False
    )
    assert resolver.cheaper_model("anthropic", "frontier", dt.date(2025, 10, 15)) == CheaperModel(
        "anthropic", "claude-haiku-4-5", False
    )
    assert resolver.cheaper_model("openai", "frontier", DAY) == CheaperModel("openai", "gpt-5-nano", True)
    assert resolver.cheaper_model("hosted_vllm", "frontier", DAY) is None
    CheaperModelChoice.objects.create(
        organisation=acme, provider="openai", tier="frontier", model="gpt-4.1-mini", reasons=False,
        effective_from=dt.date(2026, 1, 1),
    )  # fmt: skip
    assert TierResolver(acme.pk).cheaper_model("openai", "frontier", DAY) == CheaperModel(
        "openai", "gpt-4.1-mini", False
    )


def test_every_designated_model_has_a_price(resolver):
    for target in resolver.rules.targets:
        assert resolver.pricer.find_model(target.provider, target.model) is not None, target


def test_a_malformed_rules_file_names_the_entry(tmp_path):
    path = tmp_path / "tiers.json"
    rules = {
        "price_bands": {"frontier_from": "3", "standard_from": "0.6"},
        "families": [{"family": "odd", "match": "odd", "tiers": [{"from": "2026-01-01", "tier": "huge"}]}],
        "cheaper_models": {"targets": []},
    }
    path.write_text(json.dumps(rules))
    with pytest.raises(TierRulesError, match=r"tiers.json families\[0\] \(odd\): 'tier' must be frontier"):
        load_rules(path)
