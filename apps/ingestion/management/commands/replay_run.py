import sys

import orjson
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.ingestion import retention, services
from apps.ingestion.models import IngestionRun, RunStatus


class Command(BaseCommand):
    help = (
        "Ingest a finished run's kept payload again, into a new run (rows already stored count as "
        "duplicates); prints the new run's summary as one JSON line."
    )
    # System checks load the URLconf and with it the dashboards (pandas, Plotly): not needed here.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run_id", type=int, help="the run whose payload is ingested again")

    def handle(self, *args, **options) -> None:
        run_id = options["run_id"]
        try:
            replay = retention.run_replay(run_id=run_id)
        except IngestionRun.DoesNotExist:
            raise CommandError(f"replay_run: there is no run {run_id}") from None
        except (retention.NotReplayable, services.FileUnreadable) as error:
            raise CommandError(f"replay_run: {error}") from None
        self.stdout.write(orjson.dumps(replay.summary()).decode())
        if replay.status != RunStatus.COMPLETED:
            self.stderr.write(f"replay_run: run {replay.pk} failed: {replay.error}")
            sys.exit(2)
