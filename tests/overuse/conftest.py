"""Gateway requests with prompts for Acme's people, ingested through the real pipeline and observed.

All on 2026-08-03 10:00 UTC, priced by genai-prices 0.2.3 at that date (list prices per million tokens):
  gpt-5           input 1.25, cached input 0.125, output 10     → 800 + 200 cached + 100 out = $0.002025
  gpt-5-nano      input 0.05, cached input 0.005, output 0.40   → same tokens                = $0.000081
  claude-opus-4-1 input 15, cache read 1.50, output 75          → 800 + 200 + 300 out        = $0.034800
                                                                 → 800 + 200 + 100 out        = $0.019800
  claude-haiku-4-5 input 1, cache read 0.10, output 5           → 800 + 200 + 200 out        = $0.001820
                   (the 100 reasoning tokens are dropped: haiku is designated as not reasoning)
  gpt-4.1-mini    input 0.40, cached 0.10, output 1.60          → 800 + 200 + 100 out        = $0.000500
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from apps.overuse.services import PromptItem, observe_prompts
from tests.conftest import write_jsonl

AT_DATETIME = dt.datetime(2026, 8, 3, 10, tzinfo=dt.UTC)
DAY = dt.date(2026, 8, 3)

GPT5 = ("openai", "gpt-5-2025-08-07")
GPT41_MINI = ("openai", "gpt-4.1-mini-2025-04-14")
OPUS = ("anthropic", "claude-opus-4-1-20250805")


@dataclass(frozen=True)
class Request:
    request_id: str
    user: str
    model: tuple[str, str]
    text: str | None  # None: the gateway logged no prompt
    prompt_tokens: int = 1000
    cached_tokens: int = 200
    completion_tokens: int = 100
    reasoning_tokens: int = 0


def spend_log(request: Request, at: dt.datetime = AT_DATETIME) -> dict:
    provider, model = request.model
    usage: dict = {
        "prompt_tokens": request.prompt_tokens,
        "completion_tokens": request.completion_tokens,
        "completion_tokens_details": {"reasoning_tokens": request.reasoning_tokens},
    }
    if provider == "anthropic":
        usage["cache_read_input_tokens"] = request.cached_tokens
    else:
        usage["prompt_tokens_details"] = {"cached_tokens": request.cached_tokens}
    return {
        "request_id": request.request_id,
        "startTime": at.isoformat(),
        "model": model,
        "custom_llm_provider": provider,
        "user": request.user,
        "team_id": None,
        "spend": 0.001,
        "prompt_tokens": request.prompt_tokens,
        "completion_tokens": request.completion_tokens,
        "status": "success",
        "cache_hit": "False",
        "request_tags": [],
        "metadata": {"usage_object": usage, "spend_logs_metadata": {}},
    }


@pytest.fixture
def ingest_requests(ingest, people, tmp_path) -> Callable:
    """ingest_requests([Request, ...]) -> the run; then observes the prompts of those that have text."""

    def run(requests: list[Request], *, name: str = "gateway.jsonl", at: dt.datetime = AT_DATETIME):
        records = [spend_log(r, at) for r in requests]
        ingested = ingest("litellm_spend_logs", write_jsonl(tmp_path / name, records))
        observe_prompts(
            organisation_id=ingested.source.organisation_id,
            source_id=ingested.source_id,
            items=[PromptItem(at, r.request_id, r.text) for r in requests if r.text is not None],
        )
        return ingested

    return run


ALICE, BOB, CAROL = "alice@acme.example", "bob@acme.example", "carol@acme.example"

# The story: Alice (Platform) greets gpt-5 three times and asks it one real question; Bob (Payments)
# thanks Opus twice (with reasoning) and asks it the weather; Carol (EMEA) greets gpt-5 once and asks it
# for a recipe; Alice's "hi" to gpt-4.1-mini is trivial but not on a frontier model.
STORY = [
    Request("a1", ALICE, GPT5, "how's it going?"),
    Request("a2", ALICE, GPT5, "hello, how are you today?"),
    Request("a3", ALICE, GPT5, "good morning!"),
    Request("a4", ALICE, GPT5, "Write a Python function that parses ISO 8601 dates and rejects naive times."),
    Request("a5", ALICE, GPT41_MINI, "hi"),
    Request("b1", BOB, OPUS, "thanks, that's all", completion_tokens=300, reasoning_tokens=100),
    Request("b2", BOB, OPUS, "thank you so much!", completion_tokens=300, reasoning_tokens=100),
    Request("b3", BOB, OPUS, "what's the weather in Lisbon tomorrow?"),
    Request("c1", CAROL, GPT5, "hello!"),
    Request("c2", CAROL, GPT5, "recipe for banana bread without eggs"),
]

GPT5_COST, GPT5_NANO_COST = 2_025_000, 81_000
OPUS_REASONING_COST, HAIKU_COST = 34_800_000, 1_820_000
OPUS_PLAIN_COST = 19_800_000
GPT5_SAVING = GPT5_COST - GPT5_NANO_COST  # 1,944,000
OPUS_SAVING = OPUS_REASONING_COST - HAIKU_COST  # 32,980,000


@pytest.fixture
def story(ingest_requests):
    return ingest_requests(STORY)
