"""`manage.py classify_prompts IN.jsonl [--output OUT.jsonl]`: add "label" and "score" to each line."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
from django.core.management.base import BaseCommand, CommandError

from apps.overuse.classifier import base_classifier

_BATCH = 2_000


class Command(BaseCommand):
    help = 'Classify prompts: reads {"text": ...} lines, writes each line back with "label" and "score".'

    def add_arguments(self, parser) -> None:
        parser.add_argument("input", type=Path, help="JSONL file, one object with a 'text' string per line")
        parser.add_argument("--output", type=Path, help="write here instead of standard output")

    def handle(self, *args, input: Path, output: Path | None, **options) -> None:
        try:
            source = input.open("rb")
        except OSError as error:
            raise CommandError(f"{input}: cannot be read ({error.strerror})") from None
        records = []
        with source:
            for number, line in enumerate(source, start=1):
                if not line.strip():
                    continue
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    raise CommandError(f"{input.name}:{number}: not valid JSON") from None
                if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                    raise CommandError(f"{input.name}:{number}: field 'text' must be a string")
                records.append(record)
        classifier = base_classifier()
        target = output.open("wb") if output else sys.stdout.buffer
        try:
            for start in range(0, len(records), _BATCH):
                chunk = records[start : start + _BATCH]
                for record, prediction in zip(
                    chunk, classifier.predict([r["text"] for r in chunk]), strict=True
                ):
                    record["label"] = prediction.label
                    record["score"] = round(prediction.score, 4)
                    target.write(orjson.dumps(record) + b"\n")
        finally:
            if output:
                target.close()
            else:
                target.flush()
