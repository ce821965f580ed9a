"""The adapter registry: format name -> adapter. Registering validates the adapter's shape."""

from apps.ingestion.adapters.base import Adapter, Basis, NormalisedRow, RowError
from apps.ingestion.adapters.litellm_spend_logs import LiteLLMSpendLogs
from apps.ingestion.adapters.openai_usage import OpenAIUsage

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


register(LiteLLMSpendLogs())
register(OpenAIUsage())

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
