"""`manage.py evaluate_classifier [--markdown PATH] [--thresholds]`: the classifier on its test set."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand

from apps.overuse.classifier import TRAIN_FILE, load_examples
from apps.overuse.evaluation import base_evaluation, cross_validated_thresholds, render_markdown, render_text


class Command(BaseCommand):
    help = (
        "Per-class precision/recall, confusion matrix, accuracy and flag precision on the held-out test set."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--markdown", type=Path, help="also write the report as Markdown (docs/overuse-evaluation.md)"
        )
        parser.add_argument(
            "--thresholds",
            action="store_true",
            help="add 5-fold cross-validation of the flag threshold on the training set",
        )

    def handle(self, *args, markdown: Path | None, thresholds: bool, **options) -> None:
        evaluation = base_evaluation()
        self.stdout.write(render_text(evaluation))
        rows = cross_validated_thresholds(load_examples(TRAIN_FILE)) if thresholds or markdown else []
        if rows:
            self.stdout.write("\nflag threshold, 5-fold cross-validation on the training set:")
            for row in rows:
                self.stdout.write(
                    f"  {row.threshold:<4} accuracy {row.accuracy:.3f}  flag precision {row.flag_precision:.3f}"
                    f"  flagged {row.flagged}"
                )
        if markdown:
            train_examples = len(set(load_examples(TRAIN_FILE)))
            markdown.write_text(
                render_markdown(evaluation, train_examples=train_examples, thresholds=rows), encoding="utf-8"
            )
            self.stdout.write(f"\nwritten to {markdown}")
