"""The prompt classifier: its held-out evaluation meets the targets, fits are deterministic, and the
commands follow DESIGN.md's contract."""

import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from apps.overuse.classifier import (
    LABELS,
    TEST_FILE,
    TRAIN_FILE,
    LabelledDataError,
    base_classifier,
    fit,
    load_examples,
    prepare,
)
from apps.overuse.evaluation import base_evaluation, wilson_interval
from apps.overuse.redaction import normalise

DOC = Path(__file__).resolve().parents[2] / "docs" / "overuse-evaluation.md"


def test_the_sets_are_large_varied_and_disjoint():
    train, test = load_examples(TRAIN_FILE), load_examples(TEST_FILE)
    assert Counter(e.label for e in train) == {"trivial": 315, "non_work": 344, "substantive": 307}
    assert Counter(e.label for e in test) == {"trivial": 138, "non_work": 116, "substantive": 117}
    assert {normalise(e.text) for e in train}.isdisjoint({normalise(e.text) for e in test})
    # Long but trivial, short but hard, code, other scripts: present in both sets.
    for examples in (train, test):
        assert any(e.label == "trivial" and len(e.text) > 120 for e in examples)
        assert any(e.label == "substantive" and len(e.text) < 30 for e in examples)
        assert any(e.label == "substantive" and "\n" in e.text for e in examples)
        assert {e.label for e in examples if any(ord(c) > 0x3000 for c in e.text)} == set(LABELS)


def test_the_held_out_evaluation_meets_the_targets():
    evaluation = base_evaluation()
    assert evaluation.examples == 371
    assert evaluation.confusion == {
        "trivial": {"trivial": 125, "non_work": 7, "substantive": 6},
        "non_work": {"trivial": 5, "non_work": 106, "substantive": 5},
        "substantive": {"trivial": 1, "non_work": 3, "substantive": 113},
    }
    assert (evaluation.correct, evaluation.flagged, evaluation.flagged_correctly) == (344, 247, 243)
    assert evaluation.accuracy == 344 / 371 >= 0.85
    assert evaluation.flag_precision == 243 / 247 >= 0.90
    assert evaluation.substantive_flagged == 4
    low, high = evaluation.flag_precision_interval
    assert (round(low, 4), round(high, 4)) == (0.9591, 0.9937)
    per_class = {m.label: (m.precision, m.recall) for m in evaluation.classes}
    assert per_class["trivial"] == (125 / 131, 125 / 138)
    assert per_class["non_work"] == (106 / 116, 106 / 116)
    assert per_class["substantive"] == (113 / 124, 113 / 117)


def test_the_published_evaluation_is_the_current_one():
    evaluation = base_evaluation()
    text = DOC.read_text(encoding="utf-8")
    assert f"`{evaluation.version}`" in text
    assert "| accuracy | 0.927 (344/371) |" in text
    assert "| flag precision (trivial or non_work predicted, and so labelled) | 0.984 (243/247)" in text


def test_wilson_interval():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(95, 100)  # the textbook example: 0.8882-0.9785
    assert abs(low - 0.88825) < 1e-4 and abs(high - 0.97845) < 1e-4


def test_two_fits_are_identical():
    examples = load_examples(TRAIN_FILE)
    first, second = fit(examples), fit(list(reversed(examples)))
    assert first.version == second.version == base_classifier().version
    texts = [prepare(e.text) for e in load_examples(TEST_FILE)]
    assert np.array_equal(first.pipeline.predict_proba(texts), second.pipeline.predict_proba(texts))


def test_the_version_changes_with_the_data():
    examples = load_examples(TRAIN_FILE)
    assert fit(examples[1:]).version != fit(examples).version


def test_long_prompts_are_read_by_head_and_tail():
    text = "A" * 1500 + "B" * 1500
    assert prepare(text) == "A" * 1000 + "\n…\n" + "B" * 1000
    assert prepare("short") == "short"


def test_a_bad_labelled_line_names_file_line_and_field(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text('{"text": "hi", "label": "trivial"}\n{"text": "hello", "label": "chitchat"}\n')
    with pytest.raises(LabelledDataError, match=r"labels.jsonl:2: field 'label' must be one of"):
        load_examples(path)
    path.write_text('{"text": "", "label": "trivial"}\n')
    with pytest.raises(LabelledDataError, match=r"labels.jsonl:1: field 'text' must be a non-empty string"):
        load_examples(path)


def test_classify_prompts_writes_each_line_back_with_label_and_score(tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"text": "how\'s it going?", "id": 1}\n'
        '{"text": "what\'s the weather in Lisbon?", "id": 2}\n'
        "\n"
        '{"text": "Write a SQL query for monthly churn by signup cohort.", "id": 3}\n'
    )
    call_command("classify_prompts", str(source))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["id"], line["label"]) for line in lines] == [
        (1, "trivial"),
        (2, "non_work"),
        (3, "substantive"),
    ]
    assert all(0.5 <= line["score"] <= 1 for line in lines)
    target = tmp_path / "out.jsonl"
    call_command("classify_prompts", str(source), "--output", str(target))
    assert [json.loads(line)["label"] for line in target.read_text().splitlines()] == [
        "trivial",
        "non_work",
        "substantive",
    ]


def test_classify_prompts_rejects_a_line_without_text(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "hi"}\n{"prompt": "hello"}\n')
    with pytest.raises(CommandError, match=r"in.jsonl:2: field 'text' must be a string"):
        call_command("classify_prompts", str(source))


def test_evaluate_classifier_prints_the_figures():
    out = io.StringIO()
    call_command("evaluate_classifier", stdout=out)
    text = out.getvalue()
    assert "accuracy        0.927 (344/371)" in text
    assert "flag precision  0.984 (243/247), 95% Wilson 0.959–0.994" in text
    assert "trivial              125           7           6" in text
