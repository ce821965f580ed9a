"""How good the classifier is on labelled prompts it never saw: the figures the README and the Savings
page quote, and the flag precision the low end of the savings range is discounted by."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from apps.overuse.classifier import (
    FLAG_LABELS,
    LABELS,
    NON_WORK,
    PARAMS,
    SUBSTANTIVE,
    TEST_FILE,
    TRIVIAL,
    Example,
    Prediction,
    PromptClassifier,
    base_classifier,
    fit,
    load_examples,
    prepare,
)

_Z95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = _Z95) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (sensible at small counts and near 0 or 1)."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    margin = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - margin), min(1.0, centre + margin)


@dataclass(frozen=True, slots=True)
class ClassMetrics:
    label: str
    support: int
    predicted: int
    correct: int

    @property
    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.correct / self.support if self.support else 0.0

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


@dataclass(frozen=True, slots=True)
class Slice:
    name: str
    examples: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.examples if self.examples else 0.0


@dataclass(frozen=True, slots=True)
class Evaluation:
    version: str
    examples: int
    correct: int
    confusion: dict[str, dict[str, int]]  # actual -> predicted -> count
    classes: tuple[ClassMetrics, ...]
    flagged: int  # predicted trivial or non_work
    flagged_correctly: int  # ... and actually trivial or non_work
    actual_flags: int
    substantive_flagged: int
    slices: tuple[Slice, ...]
    mistakes: tuple[tuple[str, str, str], ...]  # (actual, predicted, text)

    @property
    def accuracy(self) -> float:
        return self.correct / self.examples if self.examples else 0.0

    @property
    def flag_precision(self) -> float:
        return self.flagged_correctly / self.flagged if self.flagged else 0.0

    @property
    def flag_recall(self) -> float:
        return self.flagged_correctly / self.actual_flags if self.actual_flags else 0.0

    @property
    def flag_precision_interval(self) -> tuple[float, float]:
        return wilson_interval(self.flagged_correctly, self.flagged)

    @property
    def flag_precision_low(self) -> Decimal:
        """Lower 95% bound of flag precision, floored to 4 places: the savings range's discount."""
        return Decimal(repr(self.flag_precision_interval[0])).quantize(
            Decimal("0.0001"), rounding=ROUND_FLOOR
        )


def _slice_of(text: str) -> list[str]:
    names = []
    length = len(text)
    names.append(
        "≤ 40 characters" if length <= 40 else "41–200 characters" if length <= 200 else "> 200 characters"
    )
    if "\n" in text or "```" in text or any(token in text for token in ("def ", "SELECT ", "{", "();")):
        names.append("contains code")
    if any(ord(char) > 0x2E80 for char in text):
        names.append("CJK script")
    elif not text.isascii():
        names.append("other non-ASCII (accents)")
    return names


def evaluate(classifier: PromptClassifier, examples: Sequence[Example]) -> Evaluation:
    predictions = classifier.predict([example.text for example in examples])
    confusion = {actual: dict.fromkeys(LABELS, 0) for actual in LABELS}
    slices: dict[str, list[int]] = {}
    mistakes = []
    for example, prediction in zip(examples, predictions, strict=True):
        confusion[example.label][prediction.label] += 1
        hit = example.label == prediction.label
        if not hit:
            mistakes.append((example.label, prediction.label, example.text))
        for name in _slice_of(example.text):
            counts = slices.setdefault(name, [0, 0])
            counts[0] += 1
            counts[1] += hit
    classes = tuple(
        ClassMetrics(
            label,
            support=sum(confusion[label].values()),
            predicted=sum(confusion[actual][label] for actual in LABELS),
            correct=confusion[label][label],
        )
        for label in LABELS
    )
    flagged = sum(confusion[actual][predicted] for actual in LABELS for predicted in FLAG_LABELS)
    flagged_correctly = sum(
        confusion[actual][predicted] for actual in FLAG_LABELS for predicted in FLAG_LABELS
    )
    return Evaluation(
        version=classifier.version,
        examples=len(examples),
        correct=sum(confusion[label][label] for label in LABELS),
        confusion=confusion,
        classes=classes,
        flagged=flagged,
        flagged_correctly=flagged_correctly,
        actual_flags=sum(sum(confusion[actual].values()) for actual in FLAG_LABELS),
        substantive_flagged=sum(confusion[SUBSTANTIVE][predicted] for predicted in FLAG_LABELS),
        slices=tuple(Slice(name, *slices[name]) for name in sorted(slices)),
        mistakes=tuple(mistakes),
    )


@dataclass(frozen=True, slots=True)
class ThresholdRow:
    threshold: float
    accuracy: float
    flag_precision: float
    flagged: int


def cross_validated_thresholds(
    examples: Sequence[Example], thresholds: Sequence[float] = (0.0, 0.4, 0.5, 0.6, 0.7), folds: int = 5
) -> list[ThresholdRow]:
    """5-fold cross-validation on the TRAINING set: how accuracy and flag precision move with the flag
    threshold. This, not the test set, is what the threshold was chosen on."""
    ordered = sorted(set(examples), key=lambda e: (e.label, e.text))
    fold_of = {}
    for label in LABELS:  # stratified, deterministic: every k-th example of each class
        members = [example for example in ordered if example.label == label]
        for index, example in enumerate(members):
            fold_of[example] = index % folds
    rows = []
    predictions: dict[Example, Prediction] = {}
    for fold in range(folds):
        model = fit([example for example in ordered if fold_of[example] != fold])
        held_out = [example for example in ordered if fold_of[example] == fold]
        probabilities = model.pipeline.predict_proba([prepare(e.text, model.params) for e in held_out])
        columns = {label: list(model.pipeline.classes_).index(label) for label in LABELS}
        for example, row in zip(held_out, probabilities, strict=True):
            predictions[example] = Prediction(
                "", 0.0, float(row[columns[TRIVIAL]]), float(row[columns[NON_WORK]])
            )
    for threshold in thresholds:
        correct = flagged = flagged_correctly = 0
        for example, p in predictions.items():
            p_substantive = 1.0 - p.p_trivial - p.p_non_work
            label, score = max(
                ((TRIVIAL, p.p_trivial), (NON_WORK, p.p_non_work), (SUBSTANTIVE, p_substantive)),
                key=lambda item: (item[1], item[0] == SUBSTANTIVE),
            )
            if label != SUBSTANTIVE and score < threshold:
                label = SUBSTANTIVE
            correct += label == example.label
            if label != SUBSTANTIVE:
                flagged += 1
                flagged_correctly += example.label != SUBSTANTIVE
        rows.append(
            ThresholdRow(
                threshold,
                correct / len(predictions),
                flagged_correctly / flagged if flagged else 0.0,
                flagged,
            )
        )
    return rows


@functools.cache
def base_evaluation() -> Evaluation:
    """The shipped classifier on the shipped test set (once per process)."""
    return evaluate(base_classifier(), load_examples(TEST_FILE))


def render_text(evaluation: Evaluation) -> str:
    lines = [
        f"classifier {evaluation.version} on {evaluation.examples} test prompts",
        f"flag threshold {PARAMS['flag_threshold']}",
        "",
        f"{'class':<12} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}",
    ]
    for metrics in evaluation.classes:
        lines.append(
            f"{metrics.label:<12} {metrics.precision:>9.3f} {metrics.recall:>7.3f} {metrics.f1:>6.3f} {metrics.support:>8}"
        )
    lines += [
        "",
        "confusion (rows: actual, columns: predicted)",
        f"{'':<12} " + " ".join(f"{label:>11}" for label in LABELS),
    ]
    for actual in LABELS:
        lines.append(f"{actual:<12} " + " ".join(f"{evaluation.confusion[actual][p]:>11}" for p in LABELS))
    low, high = evaluation.flag_precision_interval
    lines += [
        "",
        f"accuracy        {evaluation.accuracy:.3f} ({evaluation.correct}/{evaluation.examples})",
        f"flag precision  {evaluation.flag_precision:.3f} ({evaluation.flagged_correctly}/{evaluation.flagged}),"
        f" 95% Wilson {low:.3f}–{high:.3f}",
        f"flag recall     {evaluation.flag_recall:.3f} ({evaluation.flagged_correctly}/{evaluation.actual_flags})",
        f"substantive prompts wrongly flagged: {evaluation.substantive_flagged}",
    ]
    return "\n".join(lines)


def render_markdown(
    evaluation: Evaluation, *, train_examples: int, thresholds: Sequence[ThresholdRow] = ()
) -> str:
    low, high = evaluation.flag_precision_interval
    lines = [
        "# Overuse classifier: evaluation",
        "",
        "Generated by `python manage.py evaluate_classifier --markdown docs/overuse-evaluation.md`; do not edit by hand.",
        "",
        f"- Classifier version: `{evaluation.version}` (hash of the training data, parameters and scikit-learn version)",
        f"- Training set: `apps/overuse/data/train.jsonl`, {train_examples} labelled prompts",
        f"- Test set: `apps/overuse/data/test.jsonl`, {evaluation.examples} labelled prompts, written separately "
        "(other phrasings, cities, topics and languages; no prompt appears in both) and never used for fitting or tuning",
        f"- Model: TF-IDF word 1–2-grams + character 2–5-grams of the first {PARAMS['char_head_chars']} characters → "
        f"logistic regression (C={PARAMS['logistic']['C']}, balanced class weights, lbfgs); deterministic fit; "
        "long prompts are read by their first and last 1,000 characters",
        "- Throughput: `python bench/classifier.py` (prompts per second on one core at 500 characters)",
        f"- Flag threshold: {PARAMS['flag_threshold']} — a prompt is labelled trivial or non_work only when that "
        "label's probability reaches it (the flag is at least as likely as everything else together), otherwise "
        "substantive. Fixed on that principle, not tuned on the test set; the cross-validation on the training "
        "set below shows what it trades.",
        "",
        "## Figures",
        "",
        "| figure | value |",
        "|---|---|",
        f"| accuracy | {evaluation.accuracy:.3f} ({evaluation.correct}/{evaluation.examples}) |",
        f"| flag precision (trivial or non_work predicted, and so labelled) | {evaluation.flag_precision:.3f} "
        f"({evaluation.flagged_correctly}/{evaluation.flagged}); 95% Wilson interval {low:.3f}–{high:.3f} |",
        f"| flag recall | {evaluation.flag_recall:.3f} ({evaluation.flagged_correctly}/{evaluation.actual_flags}) |",
        f"| substantive prompts wrongly flagged | {evaluation.substantive_flagged} |",
        "",
        "Targets: flag precision ≥ 0.90 and accuracy ≥ 0.85 on this test set.",
        "",
        "## Per class",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for metrics in evaluation.classes:
        lines.append(
            f"| {metrics.label} | {metrics.precision:.3f} | {metrics.recall:.3f} | {metrics.f1:.3f} | {metrics.support} |"
        )
    lines += [
        "",
        "## Confusion matrix (rows: actual, columns: predicted)",
        "",
        "| actual \\ predicted | " + " | ".join(LABELS) + " |",
        "|---|" + "---|" * len(LABELS),
    ]
    for actual in LABELS:
        lines.append(
            f"| {actual} | " + " | ".join(str(evaluation.confusion[actual][p]) for p in LABELS) + " |"
        )
    if thresholds:
        lines += [
            "",
            "## How the flag threshold was chosen (5-fold cross-validation on the training set)",
            "",
            "| threshold | CV accuracy | CV flag precision | CV prompts flagged |",
            "|---|---|---|---|",
        ]
        for row in thresholds:
            lines.append(
                f"| {row.threshold} | {row.accuracy:.3f} | {row.flag_precision:.3f} | {row.flagged} |"
            )
    lines += ["", "## Slices", "", "| slice | prompts | accuracy |", "|---|---|---|"]
    for item in evaluation.slices:
        lines.append(f"| {item.name} | {item.examples} | {item.accuracy:.3f} |")
    lines += [
        "",
        "## What the labels mean",
        "",
        '- **trivial**: needs no capability — greetings, thanks, acknowledgements, tests ("are you there?"), '
        "questions about the assistant itself, and one-line facts, conversions or spellings any small model answers.",
        "- **non_work**: personal use — weather, food and fitness, travel, entertainment and sport, family, home, "
        'personal finance and shopping, including personal requests dressed in work words ("a performance '
        'review of my cat", "a Gantt chart for my wedding").',
        "- **substantive**: work that may need a capable model — code, analysis, writing for work, support, "
        "legal and finance — including short but hard questions and follow-ups of a work conversation "
        '("continue", "now do the same for the invoices table"): a follow-up is as hard as the work it continues.',
        "",
        "## Mistakes on the test set",
        "",
        "| actual | predicted | prompt |",
        "|---|---|---|",
    ]
    for actual, predicted, text in evaluation.mistakes:
        shown = " ".join(text.split())
        shown = shown if len(shown) <= 90 else shown[:89] + "…"
        lines.append(f"| {actual} | {predicted} | {shown.replace('|', '/')} |")
    lines += [
        "",
        "## Limits",
        "",
        "- Both sets were written by the team that built the detector; an organisation's real prompts differ. "
        '"Not trivial" feedback on the Savings page is stored and, where the organisation allows, used by '
        "`manage.py train_classifier --organisation SLUG`.",
        "- Languages other than English are covered by a minority of examples (German, French, Spanish, "
        "Japanese, some Italian, Portuguese, Dutch, Chinese, Korean, Polish, Swedish); expect lower accuracy there.",
        "- The savings range's low end multiplies by the lower bound of the flag-precision interval above.",
        "",
    ]
    return "\n".join(lines)
