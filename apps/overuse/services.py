"""Writes of the overuse detector: classify and store prompts at ingest, policy changes, feedback,
training runs, and the audit of excerpt reads."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.http import Http404

from apps.accounts.scoping import Viewer, scope_usage
from apps.overuse import redaction
from apps.overuse.classifier import (
    SUBSTANTIVE,
    TRAIN_FILE,
    Example,
    PromptClassifier,
    base_classifier,
    fit,
    load_examples,
)
from apps.overuse.models import (
    ClassifierTraining,
    ExcerptView,
    LabelFeedback,
    OverusePolicy,
    PromptObservation,
    PromptStorage,
)
from apps.usage.models import UsageFact

_INSERT_CHUNK = 1_000


@dataclass(frozen=True, slots=True)
class PromptItem:
    """One request's last user message, keyed like its usage fact (the source is the call's)."""

    ts: dt.datetime  # aware, UTC: exactly the fact's ts
    record_key: str
    text: str


def policy_for(organisation_id: int) -> OverusePolicy:
    """The organisation's policy; the defaults (redacted excerpts, CIO/FinOps read them) when unset."""
    policy = OverusePolicy.objects.filter(organisation_id=organisation_id).first()
    return policy or OverusePolicy(organisation_id=organisation_id)


def prompt_hash_key(organisation_id: int) -> bytes:
    """A per-organisation HMAC key derived from SPENDWATCH_PROMPT_HASH_KEY (default: SECRET_KEY).

    Per organisation, so equal prompts in two organisations do not share a hash; keyed, so a short
    prompt ("hi") cannot be found by hashing guesses without the server's secret.
    """
    secret = getattr(settings, "SPENDWATCH_PROMPT_HASH_KEY", "") or settings.SECRET_KEY
    return hmac.new(
        secret.encode(), f"spendwatch prompt hash v1 org {organisation_id}".encode(), hashlib.sha256
    ).digest()


def _stored_text(policy: OverusePolicy, text: str) -> str:
    if policy.prompt_storage == PromptStorage.EXCERPT:
        return redaction.excerpt(text)
    if policy.prompt_storage == PromptStorage.FULL:
        return redaction.full_text(text)
    return ""


def observe_prompts(*, organisation_id: int, source_id: int, items: Sequence[PromptItem]) -> None:
    """Classify, hash and (per policy) redact and store each item's prompt, in bulk.

    Runs inside the caller's transaction (one ingestion batch). Idempotent: an item whose natural key
    is stored already is a duplicate and left alone, so re-ingesting a file changes nothing. Items with
    an empty text are skipped. Within one call the first copy of a key stands, as for facts.
    """
    unique: dict[tuple[dt.datetime, str], PromptItem] = {}
    for item in items:
        if item.text and item.text.strip():
            unique.setdefault((item.ts, item.record_key), item)
    if not unique:
        return
    batch = list(unique.values())
    policy = policy_for(organisation_id)
    classifier = classifier_for_organisation(organisation_id, policy=policy)
    key = prompt_hash_key(organisation_id)
    # Prompts repeat (greetings, canned app prompts): classify, hash and redact each distinct text once.
    texts = list(dict.fromkeys(item.text for item in batch))
    derived = {
        text: (prediction, redaction.prompt_hash(key, text), _stored_text(policy, text))
        for text, prediction in zip(texts, classifier.predict(texts), strict=True)
    }
    observations = []
    for item in batch:
        prediction, digest, stored = derived[item.text]
        observations.append(
            PromptObservation(
                organisation_id=organisation_id,
                source_id=source_id,
                ts=item.ts,
                record_key=item.record_key,
                label=prediction.label,
                score=prediction.score,
                p_trivial=prediction.p_trivial,
                p_non_work=prediction.p_non_work,
                classifier_version=classifier.version,
                prompt_hash=digest,
                prompt_chars=len(item.text),
                excerpt=stored,
            )
        )
    for start in range(0, len(observations), _INSERT_CHUNK):
        # A re-sent request is a duplicate, as in the ledger: the stored observation stands.
        PromptObservation.objects.bulk_create(
            observations[start : start + _INSERT_CHUNK], ignore_conflicts=True
        )


# --- the classifier an organisation uses -------------------------------------------------------------


def classifier_for_organisation(
    organisation_id: int, *, policy: OverusePolicy | None = None
) -> PromptClassifier:
    """The base classifier, or the organisation's own when it trains on its feedback and has a run."""
    policy = policy or policy_for(organisation_id)
    if not policy.train_on_feedback:
        return base_classifier()
    training = ClassifierTraining.objects.filter(organisation_id=organisation_id).order_by("-pk").first()
    if training is None:
        return base_classifier()
    return _organisation_classifier(organisation_id, training.feedback_up_to)


def _feedback_examples(organisation_id: int, up_to: int) -> list[Example]:
    rows = LabelFeedback.objects.filter(organisation_id=organisation_id, pk__lte=up_to).exclude(text="")
    return [
        Example(text, label) for text, label in rows.values_list("text", "corrected_label").order_by("pk")
    ]


@functools.lru_cache(maxsize=32)
def _organisation_classifier(organisation_id: int, up_to: int) -> PromptClassifier:
    # Refitted from data (base set + feedback up to the run's mark), never loaded from a pickle.
    return fit([*load_examples(TRAIN_FILE), *_feedback_examples(organisation_id, up_to)])


class TrainingNotAllowed(Exception):
    """The organisation has not allowed its feedback to be used for training."""


def classifier_train(*, organisation_id: int) -> ClassifierTraining:
    """Record a training run over the base set plus the organisation's feedback so far."""
    policy = policy_for(organisation_id)
    if not policy.train_on_feedback:
        raise TrainingNotAllowed("this organisation does not allow training on its feedback")
    up_to = LabelFeedback.objects.filter(organisation_id=organisation_id).aggregate(top=Max("pk"))["top"] or 0
    classifier = _organisation_classifier(organisation_id, up_to)
    return ClassifierTraining.objects.create(
        organisation_id=organisation_id,
        version=classifier.version,
        feedback_up_to=up_to,
        feedback_examples=len(_feedback_examples(organisation_id, up_to)),
    )


# --- policy, feedback, audit -------------------------------------------------------------------------


@transaction.atomic
def policy_set(
    *,
    organisation_id: int,
    prompt_storage: str | None = None,
    excerpt_roles: Sequence[str] | None = None,
    train_on_feedback: bool | None = None,
) -> OverusePolicy:
    """Change the organisation's prompt policy. Choosing "none" also erases the text already stored."""
    policy, _ = OverusePolicy.objects.select_for_update().get_or_create(organisation_id=organisation_id)
    if prompt_storage is not None:
        if prompt_storage not in PromptStorage.values:
            raise ValueError(f"prompt_storage must be one of {', '.join(PromptStorage.values)}")
        policy.prompt_storage = prompt_storage
    if excerpt_roles is not None:
        policy.excerpt_roles = sorted(set(excerpt_roles))
    if train_on_feedback is not None:
        policy.train_on_feedback = train_on_feedback
    policy.save()
    if policy.prompt_storage == PromptStorage.NONE:
        PromptObservation.objects.filter(organisation_id=organisation_id).exclude(excerpt="").update(
            excerpt=""
        )
        LabelFeedback.objects.filter(organisation_id=organisation_id).exclude(text="").update(text="")
    elif policy.prompt_storage == PromptStorage.EXCERPT:
        # Text stored under "full" is longer than an excerpt may be: cut it down (it is redacted already).
        for observation in PromptObservation.objects.filter(organisation_id=organisation_id).only("excerpt"):
            if len(observation.excerpt) > redaction.EXCERPT_CHARS:
                observation.excerpt = redaction.excerpt(observation.excerpt)
                observation.save(update_fields=["excerpt"])
    return policy


def observation_get(viewer: Viewer, *, observation_id: int) -> PromptObservation:
    """An observation whose usage fact the viewer may see; 404 otherwise."""
    visible = scope_usage(UsageFact.objects.all(), viewer).filter(prompt_observation__pk=observation_id)
    observation = PromptObservation.objects.filter(
        pk=observation_id, organisation_id=viewer.organisation_id
    ).first()
    if observation is None or not visible.exists():
        raise Http404("no such prompt")
    return observation


def feedback_not_trivial(*, viewer: Viewer, user, observation_id: int) -> LabelFeedback:
    """ "Not trivial": store the correction once per request; the finding stops counting it."""
    observation = observation_get(viewer, observation_id=observation_id)
    feedback, _ = LabelFeedback.objects.get_or_create(
        organisation_id=observation.organisation_id,
        source_id=observation.source_id,
        ts=observation.ts,
        record_key=observation.record_key,
        defaults={
            "prompt_hash": observation.prompt_hash,
            "original_label": observation.label,
            "corrected_label": SUBSTANTIVE,
            "text": observation.excerpt,
            "given_by": user if getattr(user, "is_authenticated", False) else None,
        },
    )
    return feedback


def excerpt_views_record(
    *, viewer: Viewer, user, observations: Sequence[PromptObservation], page: str
) -> None:
    """Log that this user was shown these excerpts (TESTPLAN H8: who, which row, when)."""
    ExcerptView.objects.bulk_create(
        ExcerptView(
            organisation_id=viewer.organisation_id,
            observation=observation,
            viewed_by=user if getattr(user, "is_authenticated", False) else None,
            page=page,
        )
        for observation in observations
        if observation.excerpt
    )
