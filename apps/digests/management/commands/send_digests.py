from pathlib import Path

import orjson
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from apps.digests import services
from apps.digests.weeks import IsoWeek, last_complete_week
from apps.org.models import Organisation


def _week(text: str) -> IsoWeek:
    try:
        return IsoWeek.parse(text)
    except ValueError as error:
        raise CommandError(str(error)) from None


class Command(BaseCommand):
    help = (
        "Send the weekly digests of one ISO week (default: the last complete week in each organisation's "
        "time zone) to everyone subscribed who has not had theirs; safe to re-run. --dry-run writes each "
        "digest as an .eml file instead and sends nothing. Prints one JSON line per organisation."
    )
    # System checks load the URLconf and with it the dashboards (pandas, Plotly): not needed here.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--week", type=_week, help="the ISO week the digest reports on, e.g. 2026-W32")
        parser.add_argument("--dry-run", action="store_true", help="write .eml files, send nothing")
        parser.add_argument(
            "--out", type=Path, help="folder for --dry-run (default SPENDWATCH_DIGEST_DRY_RUN_DIR)"
        )
        parser.add_argument("--organisation", help="organisation slug (default: every organisation)")

    def handle(self, *args, **options) -> None:
        if options["out"] and not options["dry_run"]:
            raise CommandError("--out goes with --dry-run")
        organisations = Organisation.objects.order_by("pk")
        if options["organisation"]:
            organisations = organisations.filter(slug=options["organisation"])
            if not organisations.exists():
                raise CommandError(f"no organisation with slug {options['organisation']!r}")
        now = timezone.now()
        with services.chart_renderer() as renderer:
            for organisation in organisations:
                if not options["organisation"] and not services.schedule_for(organisation).enabled:
                    continue
                week = options["week"] or last_complete_week(organisation.time_zone, now)
                summary = services.send_digests(
                    organisation=organisation,
                    week=week,
                    dry_run=options["dry_run"],
                    out_dir=options["out"],
                    renderer=renderer,
                )
                self.stdout.write(orjson.dumps(summary.as_dict()).decode())
