import sys
from pathlib import Path

import orjson
from django.core.management.base import BaseCommand, CommandParser

from apps.ingestion import services
from apps.ingestion.adapters import ADAPTERS, UnknownFormat
from apps.ingestion.models import RunStatus
from apps.org.models import Organisation


class Command(BaseCommand):
    help = "Ingest usage files through the pipeline; prints the run summary as one JSON line."
    # System checks load the URLconf and with it the dashboards (pandas, Plotly): not needed here.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", required=True, help=f"one of: {', '.join(sorted(ADAPTERS))}")
        parser.add_argument("--source", help="data source name (default: the format name)")
        parser.add_argument("--organisation", help="organisation slug (default: the only one)")
        parser.add_argument("paths", nargs="+", type=Path)

    def handle(self, *args, **options) -> None:
        try:
            organisation = (
                Organisation.objects.get(slug=options["organisation"])
                if options["organisation"]
                else services.default_organisation()
            )
            source = services.source_get_or_create(
                organisation=organisation,
                name=options["source"] or options["format"],
                format=options["format"],
            )
            run = services.ingest_files(source=source, format=options["format"], paths=options["paths"])
        except (
            UnknownFormat,
            services.FileUnreadable,
            Organisation.DoesNotExist,
            Organisation.MultipleObjectsReturned,
        ) as error:
            self.stderr.write(f"ingest: {error}")
            sys.exit(2)
        self.stdout.write(orjson.dumps(run.summary()).decode())
        if run.status != RunStatus.COMPLETED:
            self.stderr.write(f"ingest: run {run.pk} failed: {run.error}")
            sys.exit(2)
