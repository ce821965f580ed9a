import datetime as dt

import orjson
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.scoping import organisation_viewer
from apps.catalog import services
from apps.catalog.models import AIModel
from apps.ingestion.services import default_organisation
from apps.org.models import Organisation


class Command(BaseCommand):
    help = (
        "Re-price stored usage as a recorded run, e.g. after upgrading the price data (genai-prices). Each "
        "fact is priced as of its own day; --since limits the run to facts from that UTC date on."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--reason", required=True, help="why (kept with the run)")
        parser.add_argument("--since", type=dt.date.fromisoformat, help="first UTC date to re-price")
        parser.add_argument("--model", action="append", default=[], help="provider/model (repeatable)")
        parser.add_argument("--organisation", help="organisation slug (default: the only one)")
        parser.add_argument("--queue", action="store_true", help="queue the run for a worker instead")

    def handle(self, *args, **options) -> None:
        organisation = (
            Organisation.objects.get(slug=options["organisation"])
            if options["organisation"]
            else default_organisation()
        )
        model_ids = None
        if options["model"]:
            model_ids = []
            for text in options["model"]:
                provider, _, name = text.partition("/")
                model = AIModel.objects.filter(provider__slug=provider, name=name).first()
                if model is None:
                    raise CommandError(f"--model {text}: no such model (write provider/model)")
                model_ids.append(model.pk)
        editor = services.PriceEditor(viewer=organisation_viewer(organisation), label="reprice command")
        run = services.repricing_run_request(
            editor,
            reason=options["reason"],
            since=options["since"],
            model_ids=model_ids,
            enqueue=options["queue"],
        )
        if not options["queue"]:
            run = services.repricing_run_execute(run_id=run.pk)
        self.stdout.write(
            orjson.dumps(
                {
                    "run": run.pk,
                    "status": run.status,
                    "rows": run.rows,
                    "rows_changed": run.rows_changed,
                    "net_before_nanos": run.net_before_nanos,
                    "net_after_nanos": run.net_after_nanos,
                }
            ).decode()
        )
