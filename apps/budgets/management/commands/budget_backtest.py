from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.budgets.selectors import organisation_backtest
from apps.org.models import Organisation


class Command(BaseCommand):
    help = (
        "Replay the budget forecaster on the ledger: month-end projections made at the end of day 7, 14 and 21 "
        "of every complete month, per team (with sub-teams) and for the organisation; prints the error."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--organisation", default="northwind", help="slug (default: the demo, northwind)")
        parser.add_argument("--verbose-points", action="store_true", help="print every projection")

    def handle(self, *args, **options) -> None:
        organisation = Organisation.objects.filter(slug=options["organisation"]).first()
        if organisation is None:
            raise CommandError(
                f"no organisation {options['organisation']!r} (load the demo: manage.py load_demo)"
            )
        result = organisation_backtest(organisation.pk)
        if not result.points:
            raise CommandError("no complete month with enough history to back-test")
        if options["verbose_points"]:
            for p in result.points:
                self.stdout.write(
                    f"{p.series:<28} {p.period_start:%Y-%m} as of {p.as_of}: projected {p.projected / 1e9:>12,.2f} "
                    f"actual {p.actual / 1e9:>12,.2f} error {p.error:6.1%} {'in' if p.inside_band else 'OUT'}"
                )
        months = sorted({p.period_start for p in result.points})
        self.stdout.write(
            f"{len(result.points)} projections, {len({p.series for p in result.points})} series, months "
            f"{', '.join(f'{m:%b %Y}' for m in months)}"
        )
        for day in (7, 14, 21):
            mape = result.mape_at(day)
            if mape is not None:
                self.stdout.write(f"  made on day {day:>2}: MAPE {mape:.1%}")
        self.stdout.write(f"MAPE {result.mape:.1%}; actual inside the 90% band {result.band_coverage:.0%}")
