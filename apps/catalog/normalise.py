"""Provider and model names as sources write them -> the names the price data knows. One place only.

Rules are added here with a comment each; the unpriced-models queue shows what still fails to match.
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


def provider_slug(raw_provider: str, model: str) -> str:
    """The provider to price with; guessed from the model name when the source does not say."""
    raw = raw_provider.strip().lower()
    if raw in PROVIDER_ALIASES and PROVIDER_ALIASES[raw]:
        return PROVIDER_ALIASES[raw]
    if raw:
        return raw
    name = model.lower()
    if name.startswith(("gpt-", "o1", "o3", "o4", "chatgpt")):
        return "openai"
    if name.startswith("claude"):
        return "anthropic"
    if name.startswith("gemini"):
        return "google"
    return "unknown"


def model_name(raw_model: str) -> str:
    """Strip resource-path prefixes (Vertex `models/…`, `publishers/google/models/…`)."""
    return _MODEL_PREFIXES.sub("", raw_model.strip())
