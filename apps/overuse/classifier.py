"""The prompt classifier: is a request's last user message trivial, non-work, or substantive work?

TF-IDF over word uni/bi-grams and character 2-5-grams (the character n-grams carry other languages and
misspellings), then a multinomial logistic regression. Trained on `data/train.jsonl`, a labelled set
written for this purpose; evaluated on `data/test.jsonl`, written separately and never trained on.

Everything runs offline: the model is fitted from the data in the repository the first time a process
needs it (well under a second) and kept for the life of the process. The fit is deterministic: inputs
are de-duplicated and sorted, and lbfgs has no randomness, so the same data and parameters always give
the same model, identified by `version` (a hash of both).

Django-free on purpose: the benchmark and the evaluation import it without settings.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np

TRIVIAL = "trivial"
NON_WORK = "non_work"
SUBSTANTIVE = "substantive"
LABELS = (TRIVIAL, NON_WORK, SUBSTANTIVE)
FLAG_LABELS = frozenset({TRIVIAL, NON_WORK})

DATA_DIR = Path(__file__).resolve().parent / "data"
TRAIN_FILE = DATA_DIR / "train.jsonl"
TEST_FILE = DATA_DIR / "test.jsonl"

# Everything that shapes the model; part of its version. Changing a value here is a new model.
PARAMS: dict = {
    "word": {
        "analyzer": "word",
        "ngram_range": [1, 2],
        "sublinear_tf": True,
        "token_pattern": r"(?u)\b\w+\b",
    },
    "char": {"analyzer": "char_wb", "ngram_range": [2, 5], "sublinear_tf": True, "min_df": 2},
    # Character n-grams read only the head of a prompt: they carry short prompts, other languages and
    # misspellings, while words carry long ones. Bounds the costliest step (~4 n-grams per character);
    # 5-fold cross-validation on the training set scored the same with 200 as with the whole text.
    "char_head_chars": 200,
    "logistic": {"C": 10.0, "max_iter": 5000, "class_weight": "balanced", "solver": "lbfgs"},
    # Long prompts: classify the first and last 1,000 characters (bounds cost; the middle is usually
    # pasted material that says little about the request itself).
    "head_chars": 1000,
    "tail_chars": 1000,
    # A flag label (trivial / non_work) is given only when its probability reaches this, i.e. when it is
    # at least as likely as everything else together; otherwise the prompt counts as substantive. Fixed
    # on that principle, not tuned on the test set; 5-fold cross-validation on the training set backs it
    # (docs/overuse-evaluation.md: flag precision 0.969 at 0.5 against 0.965 with no threshold).
    "flag_threshold": 0.5,
}


class LabelledDataError(ValueError):
    """A labelled file has a bad line; the message names the file, line and field."""


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    label: str


@dataclass(frozen=True, slots=True)
class Prediction:
    label: str
    score: float  # probability of `label`
    p_trivial: float
    p_non_work: float

    @property
    def flagged(self) -> bool:
        return self.label in FLAG_LABELS


def load_examples(path: Path) -> list[Example]:
    """Read a labelled JSONL file ({"text": ..., "label": ...} per line); any bad line is an error."""
    examples = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise LabelledDataError(f"{path.name}:{number}: not JSON ({error.msg})") from None
            if not isinstance(record, dict):
                raise LabelledDataError(f"{path.name}:{number}: expected an object")
            text, label = record.get("text"), record.get("label")
            if not isinstance(text, str) or not text.strip():
                raise LabelledDataError(f"{path.name}:{number}: field 'text' must be a non-empty string")
            if label not in LABELS:
                raise LabelledDataError(
                    f"{path.name}:{number}: field 'label' must be one of {', '.join(LABELS)} (got {label!r})"
                )
            examples.append(Example(text, label))
    return examples


def prepare(text: str, params: dict = PARAMS) -> str:
    """The part of a prompt the model reads: head and tail of long texts."""
    head, tail = params["head_chars"], params["tail_chars"]
    if len(text) <= head + tail:
        return text
    return f"{text[:head]}\n…\n{text[-tail:]}"


def model_version(examples: Iterable[Example], params: dict = PARAMS) -> str:
    """A hash of the training data, the parameters and the library version that fits them."""
    digest = hashlib.sha256()
    digest.update(json.dumps(params, sort_keys=True).encode())
    digest.update(package_version("scikit-learn").encode())
    for example in sorted(set(examples), key=lambda e: (e.label, e.text)):
        digest.update(f"{example.label}\t{example.text}\n".encode())
    return "tfidf-lr-" + digest.hexdigest()[:16]


class PromptClassifier:
    def __init__(self, pipeline: Any, version: str, params: dict) -> None:  # a fitted sklearn Pipeline
        self.pipeline = pipeline
        self.version = version
        self.params = params
        classes = list(pipeline.classes_)
        self._columns = {label: classes.index(label) for label in LABELS}

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        if not texts:
            return []
        probabilities = self.pipeline.predict_proba([prepare(text, self.params) for text in texts])
        return [self._decide(row) for row in probabilities]

    def predict_one(self, text: str) -> Prediction:
        return self.predict([text])[0]

    def _decide(self, row: np.ndarray) -> Prediction:
        p = {label: float(row[column]) for label, column in self._columns.items()}
        label = max(LABELS, key=lambda name: (p[name], name == SUBSTANTIVE))
        if label in FLAG_LABELS and p[label] < self.params["flag_threshold"]:
            label = SUBSTANTIVE  # not sure enough to tell anyone their prompt was wasted
        return Prediction(label, p[label], p[TRIVIAL], p[NON_WORK])


def fit(examples: Iterable[Example], params: dict = PARAMS) -> PromptClassifier:
    """Fit a classifier; identical data and parameters give an identical model."""
    # scikit-learn is imported here, not with the module: every process (web, worker, commands) loads
    # this app, and only the ones that classify should pay its start-up time and memory.
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_union
    from threadpoolctl import threadpool_limits

    ordered = sorted(set(examples), key=lambda e: (e.label, e.text))
    if {example.label for example in ordered} != set(LABELS):
        raise LabelledDataError("training data must contain every label: " + ", ".join(LABELS))
    features = make_union(
        TfidfVectorizer(**_vectoriser_params(params["word"])),
        TfidfVectorizer(**_vectoriser_params(params["char"]), preprocessor=_Head(params["char_head_chars"])),
    )
    pipeline = Pipeline([("features", features), ("model", LogisticRegression(**params["logistic"]))])
    # One BLAS thread: lbfgs on this small problem gains nothing from more, and on a busy machine
    # (a web worker beside an ingest) competing threads made the fit eight times slower.
    with threadpool_limits(limits=1):
        pipeline.fit(
            [prepare(example.text, params) for example in ordered], [example.label for example in ordered]
        )
    return PromptClassifier(pipeline, model_version(ordered, params), params)


class _Head:
    """Preprocessor of the character vectoriser: the lower-cased first `chars` characters."""

    def __init__(self, chars: int) -> None:
        self.chars = chars

    def __call__(self, text: str) -> str:
        return text[: self.chars].lower()


def _vectoriser_params(raw: dict) -> dict:
    return {key: tuple(value) if isinstance(value, list) else value for key, value in raw.items()}


@functools.cache
def base_classifier() -> PromptClassifier:
    """The classifier fitted on the repository's training set, once per process."""
    return fit(load_examples(TRAIN_FILE))
