"""`manage.py train_classifier [--organisation SLUG]`: fit the classifier and report its version.

Without --organisation: fits the base classifier from apps/overuse/data/train.jsonl (what every process
does on first use) and prints its version and test-set figures. With --organisation: records a training
run over the base set plus that organisation's "not trivial" feedback, if the organisation allows it;
its ingestion then uses that model.
"""

from __future__ import annotations

import orjson
from django.core.management.base import BaseCommand, CommandError

from apps.org.models import Organisation
from apps.overuse.classifier import base_classifier
from apps.overuse.evaluation import base_evaluation
from apps.overuse.services import TrainingNotAllowed, classifier_train


class Command(BaseCommand):
    help = "Fit the prompt classifier (optionally with an organisation's feedback) and print its version."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--organisation", help="slug of an organisation that allows training on its feedback"
        )

    def handle(self, *args, organisation: str | None, **options) -> None:
        if organisation is None:
            classifier = base_classifier()
            evaluation = base_evaluation()
            summary = {
                "version": classifier.version,
                "accuracy": round(evaluation.accuracy, 4),
                "flag_precision": round(evaluation.flag_precision, 4),
            }
            self.stdout.write(orjson.dumps(summary).decode())
            return
        found = Organisation.objects.filter(slug=organisation).first()
        if found is None:
            raise CommandError(f"no organisation with slug {organisation!r}")
        try:
            training = classifier_train(organisation_id=found.pk)
        except TrainingNotAllowed as error:
            raise CommandError(f"{organisation}: {error}") from None
        summary = {
            "organisation": organisation,
            "version": training.version,
            "feedback_examples": training.feedback_examples,
        }
        self.stdout.write(orjson.dumps(summary).decode())
