from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.dashboards.services import rebuild_narrow_rollups
from apps.org.models import Organisation


class Command(BaseCommand):
    help = (
        "Rebuild the dashboards' narrow rollups from the daily rollups (every day, one organisation or "
        "all). Safe to repeat; needed only after a refresh that failed (it is logged) or a restore."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--organisation", help="organisation slug (default: every organisation)")

    def handle(self, *args, **options) -> None:
        organisation_id = None
        if options["organisation"]:
            organisation = Organisation.objects.filter(slug=options["organisation"]).first()
            if organisation is None:
                raise CommandError(f"no organisation with slug {options['organisation']!r}")
            organisation_id = organisation.pk
        written = rebuild_narrow_rollups(organisation_id=organisation_id)
        self.stdout.write(f"{written} narrow rollup rows written")
