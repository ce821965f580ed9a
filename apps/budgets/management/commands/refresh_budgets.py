from django.core.management.base import BaseCommand, CommandParser

from apps.budgets import services
from apps.org.models import Organisation


class Command(BaseCommand):
    help = "Recompute every budget state from the rollups (all days of every period), raise and send alerts."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--organisation", help="slug (default: every organisation with limits)")
        parser.add_argument("--no-send", action="store_true", help="raise alerts but leave them pending")

    def handle(self, *args, **options) -> None:
        if options["organisation"]:
            ids = list(Organisation.objects.filter(slug=options["organisation"]).values_list("pk", flat=True))
        else:
            ids = services.organisations_with_limits()
        for organisation_id in ids:
            summary = services.state_refresh(organisation_id=organisation_id)
            line = f"organisation {organisation_id}: {summary.states} states, {summary.alerts_raised} alerts raised"
            if not options["no_send"]:
                sent = services.alerts_deliver(organisation_id=organisation_id)
                line += f", {sent.sent} sent, {sent.retry} to retry, {sent.failed} failed"
            self.stdout.write(line)
