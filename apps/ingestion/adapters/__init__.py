"""The adapter registry: format name -> adapter. Registering validates the adapter's shape."""

from apps.ingestion.adapters.anthropic_costs import AnthropicCosts
from apps.ingestion.adapters.anthropic_usage import AnthropicUsage
from apps.ingestion.adapters.azure_apim_llm_log import AzureApimLlmLog
from apps.ingestion.adapters.azure_costs import AzureCosts
from apps.ingestion.adapters.base import Adapter, Basis, NormalisedRow, RowError
from apps.ingestion.adapters.bedrock_invocations import BedrockInvocations
from apps.ingestion.adapters.claude_code_usage import ClaudeCodeUsage
from apps.ingestion.adapters.csv_generic import GenericCsv
from apps.ingestion.adapters.focus import Focus
from apps.ingestion.adapters.gemini_usage import GeminiUsage
from apps.ingestion.adapters.helicone import Helicone
from apps.ingestion.adapters.litellm_spend_logs import LiteLLMSpendLogs
from apps.ingestion.adapters.openai_costs import OpenAICosts
from apps.ingestion.adapters.openai_usage import OpenAIUsage
from apps.ingestion.adapters.openrouter_activity import OpenRouterActivity
from apps.ingestion.adapters.openrouter_generations import OpenRouterGenerations
from apps.ingestion.adapters.otel_genai import OtelGenAI
from apps.ingestion.adapters.vertex_billing import VertexBilling

ADAPTERS: dict[str, Adapter] = {}


class UnknownFormat(LookupError):
    pass


def register(adapter: Adapter) -> None:
    if not getattr(adapter, "name", "") or not getattr(adapter, "description", ""):
        raise TypeError(f"{type(adapter).__name__} needs a name and a description")
    if adapter.name in ADAPTERS:
        raise ValueError(f"format {adapter.name!r} is registered twice")
    ADAPTERS[adapter.name] = adapter


def get_adapter(name: str) -> Adapter:
    try:
        return ADAPTERS[name]
    except KeyError:
        known = ", ".join(sorted(ADAPTERS))
        raise UnknownFormat(f"unknown format {name!r} (known: {known})") from None


register(AnthropicCosts())
register(AnthropicUsage())
register(AzureApimLlmLog())
register(AzureCosts())
register(BedrockInvocations())
register(ClaudeCodeUsage())
register(GenericCsv())
register(Focus())
register(GeminiUsage())
register(Helicone())
register(LiteLLMSpendLogs())
register(OpenAICosts())
register(OpenAIUsage())
register(OpenRouterActivity())
register(OpenRouterGenerations())
register(OtelGenAI())
register(VertexBilling())

__all__ = [
    "ADAPTERS",
    "Adapter",
    "Basis",
    "NormalisedRow",
    "RowError",
    "UnknownFormat",
    "get_adapter",
    "register",
]
