import csv
import datetime as dt
import sys

import orjson
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.scoping import organisation_viewer
from apps.ingestion.csvsafe import safe_cell
from apps.ingestion.services import default_organisation
from apps.org.models import Organisation
from apps.usage.selectors import GROUPS, SPEND_FIELDS, spend


class Command(BaseCommand):
    help = (
        "Spend totals per group between two organisation-local dates (inclusive): what the dashboards show. "
        "Each group also splits its cost into billed / computed / estimated and attributed / unattributed, "
        "with its list cost and what sources reported for its unpriced rows."
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
        writer = csv.DictWriter(sys.stdout, fieldnames=SPEND_FIELDS, lineterminator="\n")
        writer.writeheader()
        # Keys are names from source files and the HR import: a spreadsheet must not run them (TESTPLAN I1).
        writer.writerows({**group, "key": safe_cell(group["key"])} for group in groups)
