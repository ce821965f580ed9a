import csv
import datetime as dt
import sys

import orjson
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.scoping import organisation_viewer
from apps.ingestion.services import default_organisation
from apps.org.models import Organisation
from apps.usage.selectors import GROUPS, spend


class Command(BaseCommand):
    help = (
        "Spend totals per group between two organisation-local dates (inclusive): what the dashboards show."
    )
    # System checks load the URLconf and with it the dashboards (pandas, Plotly): not needed here.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--by", required=True, choices=GROUPS)
        parser.add_argument("--start", required=True, type=dt.date.fromisoformat)
        parser.add_argument("--end", required=True, type=dt.date.fromisoformat)
        parser.add_argument("--format", choices=("json", "csv"), default="json")
        parser.add_argument("--organisation", help="organisation slug (default: the only one)")

    def handle(self, *args, **options) -> None:
        if options["end"] < options["start"]:
            raise CommandError("--end is before --start")
        organisation = (
            Organisation.objects.get(slug=options["organisation"])
            if options["organisation"]
            else default_organisation()
        )
        groups = [
            group.as_dict()
            for group in spend(
                organisation_viewer(organisation),
                group_by=options["by"],
                start=options["start"],
                end=options["end"],
            )
        ]
        if options["format"] == "json":
            self.stdout.write(orjson.dumps(groups).decode())
            return
        fields = [
            "key",
            "cost_usd",
            "unpriced_rows",
            "requests",
            "input_uncached_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "output_tokens",
            "reasoning_tokens",
        ]
        writer = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(groups)
