"""The demo's prompts: deterministic, mostly work, and labelled as intended by the classifier."""

import random
from collections import Counter

from apps.overuse.classifier import base_classifier
from apps.overuse.demo import _NON_WORK, _TRIVIAL, demo_prompt

TEAM_KINDS = ("engineering", "data", "support", "engineering-opus", "sales", "marketing", "finance", "people",
              "legal", "operations", "agent-cli")  # fmt: skip
TASKS = ("code-generation", "code-review", "data-analysis", "support-triage", "email-drafting", "chat-assistant",
         "contract-review", "translation", "smalltalk", None)  # fmt: skip


def sample(seed: int, n: int = 2_000) -> list[str]:
    rng = random.Random(seed)
    return [demo_prompt(rng, rng.choice(TEAM_KINDS), rng.choice(TASKS)) for _ in range(n)]


def test_demo_prompts_are_deterministic():
    assert sample(7) == sample(7)
    assert sample(7) != sample(8)


def intended(text: str) -> str:
    if text in _TRIVIAL:
        return "trivial"
    if any(text.startswith(template.split("{")[0]) for template in _NON_WORK):
        return "non_work"
    return "substantive"


def test_demo_prompts_are_mostly_work_with_some_chit_chat_and_personal_use():
    texts = sample(7)
    assert Counter(map(intended, texts)) == {"substantive": 1874, "trivial": 70, "non_work": 56}
    predicted = [prediction.label for prediction in base_classifier().predict(texts)]
    assert predicted == [intended(text) for text in texts]
    assert Counter(texts).most_common(1)[0][1] >= 10  # canned prompts repeat verbatim: cache candidates
