"""Provider and model names as sources write them -> the names the price data knows. One place only.

Rules are added here with a comment each; the unpriced-models queue shows what still fails to match, and
an organisation's own mappings (catalog.ModelMapping: Azure deployment names, in-house aliases) are
applied after the rules by `NameResolver`, which is what ingestion uses.
"""

from __future__ import annotations

import re

# Gateways name the hosting provider in their own words; genai-prices uses its provider ids.
PROVIDER_ALIASES = {
    "": "",
    "openai": "openai",
    "text-completion-openai": "openai",
    "anthropic": "anthropic",
    "vertex_ai": "google",  # LiteLLM's name for Vertex AI
    "vertex_ai_beta": "google",
    "gemini": "google",  # Google AI Studio
    "google": "google",
    "bedrock": "aws",  # Bedrock models are priced by AWS, not by the model vendor
    "bedrock_converse": "aws",
    "aws": "aws",
    "azure": "azure",
    "azure_ai": "azure",
    "mistral": "mistral",
    "groq": "groq",
    "deepseek": "deepseek",
    "xai": "x-ai",
    "openrouter": "openrouter",
}

PROVIDER_NAMES = {
    "openai": "OpenAI",
    "anthropic": "Anthropic",
    "google": "Google",
    "aws": "AWS Bedrock",
    "azure": "Azure OpenAI",
    "mistral": "Mistral",
    "groq": "Groq",
    "deepseek": "DeepSeek",
    "x-ai": "xAI",
    "openrouter": "OpenRouter",
}


def provider_display_name(slug: str) -> str:
    return PROVIDER_NAMES.get(slug, slug.replace("_", " ").title())


_MODEL_PREFIXES = re.compile(r"^(?:projects/[^/]+/locations/[^/]+/)?(?:publishers/[^/]+/)?models/")
# Vertex pins a model version with a three-digit suffix (`gemini-2.5-flash-001`) or `@version`
# (`claude-sonnet-4-5@20250929`, `gemini-2.0-flash@001`); the price is the model's.
_VERTEX_VERSION = re.compile(r"^((?:gemini|gemma)-[a-z0-9.\-]+?)-\d{3}$")
_AT_VERSION = re.compile(r"^(.+)@(\d{8}|\d{3}|latest|default)$")
# Bedrock ARNs of a foundation model or of a system inference profile name the model id at the end. An
# application inference profile's ARN names no model: it stays as it is (the organisation maps it).
_BEDROCK_ARN = re.compile(
    r"^arn:aws[a-z\-]*:bedrock:[a-z0-9\-]*:\d*:(?:foundation-model|inference-profile)/(?P<model>.+)$"
)
# Bedrock geography inference profiles (`us.`, `eu.`, `apac.`, `jp.`, ...) are priced as the model in its
# region: the price data's `regional.*` price, whichever geography. The data resolves only the geographies
# it lists for each model, so the Pricer also tries the others (`lookup_names`); names keep their prefix
# (the geography stays visible), as do `global.` profiles, which have their own lower price.
_BEDROCK_GEOGRAPHY = re.compile(r"^(?:us|eu|apac|jp|au|ca|us-gov)\.(?=[a-z0-9\-]+\.)")
_GEOGRAPHIES = ("us", "eu", "apac", "jp", "au", "ca")


def provider_slug(raw_provider: str, model: str) -> str:
    """The provider to price with; guessed from the model name when the source does not say."""
    raw = raw_provider.strip().lower()
    if raw in PROVIDER_ALIASES and PROVIDER_ALIASES[raw]:
        return PROVIDER_ALIASES[raw]
    if raw:
        return raw
    name = model.lower()
    if name.startswith("arn:aws:bedrock:"):
        return "aws"
    if name.startswith(("gpt-", "o1", "o3", "o4", "chatgpt")):
        return "openai"
    if name.startswith("claude"):
        return "anthropic"
    if name.startswith("gemini"):
        return "google"
    return "unknown"


def model_name(raw_model: str, provider: str = "") -> str:
    """The model name the price data knows, by the built-in rules; `provider` is the normalised slug.

    Always: Vertex resource paths, a `provider/` prefix naming the row's own provider, Bedrock ARNs,
    Vertex `@YYYYMMDD` pins (the dated id of the direct API). Version pins (`gemini-2.5-flash-001`,
    `@001`) are dropped only when the price data does not know the pinned name and does know the model
    without the pin: some pinned names are models of their own (`gemini-embedding-001`). Azure
    deployment names say nothing reliable about the model: the organisation maps them (ModelMapping).
    """
    name = _MODEL_PREFIXES.sub("", raw_model.strip())
    if "/" in name and provider not in _ROUTERS:
        head, rest = name.split("/", 1)
        if provider and PROVIDER_ALIASES.get(head.lower(), head.lower()) == provider:
            name = _MODEL_PREFIXES.sub("", rest)  # `google/gemini-2.5-flash` from provider google
    if provider == "aws" or name.startswith("arn:aws"):
        arn = _BEDROCK_ARN.match(name)
        return arn.group("model") if arn else name
    at = _AT_VERSION.match(name)
    if at and len(at.group(2)) == 8:
        return f"{at.group(1)}-{at.group(2)}"
    for pattern in (_AT_VERSION, _VERTEX_VERSION):
        pinned = pattern.match(name)
        if pinned and not _priced(provider, name) and _priced(provider, pinned.group(1)):
            return pinned.group(1)
    return name


def lookup_names(provider: str, model: str) -> list[str]:
    """The names to look a model up by in the price data, in order: itself, then equivalents that price
    the same (a Bedrock geography profile under the other geographies)."""
    names = [model]
    if provider == "aws" and _BEDROCK_GEOGRAPHY.match(model):
        rest = _BEDROCK_GEOGRAPHY.sub("", model)
        names.extend(f"{geography}.{rest}" for geography in _GEOGRAPHIES if f"{geography}.{rest}" != model)
    return names


_known_names: dict[tuple[str, str], bool] = {}


def _priced(provider: str, model: str) -> bool:
    """Whether the price data knows this model (cached for the life of the process)."""
    key = (provider, model)
    if key not in _known_names:
        from apps.catalog.pricing import shared_pricer

        _known_names[key] = shared_pricer().find_model(provider or "unknown", model) is not None
    return _known_names[key]


# Gateways whose model names are `vendor/model` by design: the vendor is part of the name.
_ROUTERS = frozenset({"openrouter", "together", "fireworks", "huggingface", "groq", "deepinfra"})


class NameResolver:
    """Raw (provider, model) -> (provider slug, model name): the built-in rules, then the organisation's
    mappings. Loads the mappings once; one per ingestion run or re-pricing job."""

    def __init__(self, organisation_id: int | None) -> None:
        from apps.catalog.models import ModelMapping

        self.mappings: dict[tuple[str, str], tuple[str, str]] = {}
        if organisation_id is not None:
            self.mappings = {
                (raw_provider, raw_model): (provider, model)
                for raw_provider, raw_model, provider, model in ModelMapping.objects.filter(
                    organisation_id=organisation_id
                ).values_list("raw_provider", "raw_model", "provider", "model")
            }

    def resolve(self, raw_provider: str, raw_model: str) -> tuple[str, str]:
        provider = provider_slug(raw_provider, raw_model)
        model = model_name(raw_model, provider)
        return self.mappings.get((provider, model), (provider, model))
