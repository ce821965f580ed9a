import datetime as dt
import sys

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.scoping import organisation_viewer
from apps.exports.focus import focus_rows, write_focus_csv
from apps.ingestion.services import default_organisation
from apps.org.models import Organisation


class Command(BaseCommand):
    help = (
        "FOCUS 1.3 CSV of allocated cost (team, person and task in x_ columns) for organisation-local days "
        "--start..--end (inclusive): the same totals as `spend` and the dashboards."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--start", required=True, type=dt.date.fromisoformat)
        parser.add_argument("--end", required=True, type=dt.date.fromisoformat)
        parser.add_argument("--output", help="file to write (default: standard output)")
        parser.add_argument("--organisation", help="organisation slug (default: the only one)")

    def handle(self, *args, **options) -> None:
        if options["end"] < options["start"]:
            raise CommandError("--end is before --start")
        organisation = (
            Organisation.objects.get(slug=options["organisation"])
            if options["organisation"]
            else default_organisation()
        )
        rows = focus_rows(organisation_viewer(organisation), start=options["start"], end=options["end"])
        if options["output"]:
            with open(options["output"], "w", newline="", encoding="utf-8") as stream:
                written = write_focus_csv(stream, rows)
            self.stderr.write(f"{written} rows written to {options['output']}")
        else:
            write_focus_csv(sys.stdout, rows)
