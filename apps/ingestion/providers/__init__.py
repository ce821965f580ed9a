"""Provider admin APIs that SpendWatch pulls: their endpoints, auth headers and paging; the HTTP client."""

from apps.ingestion.providers.anthropic import ANTHROPIC
from apps.ingestion.providers.base import Endpoint, Provider, Window
from apps.ingestion.providers.openai import OPENAI

PROVIDERS: dict[str, Provider] = {provider.name: provider for provider in (OPENAI, ANTHROPIC)}


def get_provider(name: str) -> Provider:
    try:
        return PROVIDERS[name]
    except KeyError:
        raise LookupError(f"unknown pull provider {name!r} (known: {', '.join(sorted(PROVIDERS))})") from None


__all__ = ["PROVIDERS", "Endpoint", "Provider", "Window", "get_provider"]
