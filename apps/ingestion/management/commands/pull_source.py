import sys

import orjson
from django.core.management.base import BaseCommand, CommandParser

from apps.ingestion import pulls
from apps.ingestion.credentials import CredentialError
from apps.ingestion.models import PullSource, PullStatus
from apps.org.models import Organisation


class Command(BaseCommand):
    help = (
        "Pull one source from its provider's admin API now, through the ingestion pipeline; prints the "
        "result as one JSON line. Exit 0 when the pull ended ok, 1 when it did not, 2 when it could not start."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("source", nargs="?", help="pull source name")
        parser.add_argument("--organisation", help="organisation slug (default: the only one)")
        parser.add_argument(
            "--backfill-days",
            type=int,
            help="re-pull from this many days before today, whatever the cursors say (rows already stored "
            "are duplicates, grown buckets replace themselves)",
        )
        parser.add_argument(
            "--reencrypt-credentials",
            action="store_true",
            help="re-encrypt every stored credential with the first key of SPENDWATCH_CREDENTIAL_KEYS",
        )

    def handle(self, *args, **options) -> None:
        try:
            if options["reencrypt_credentials"]:
                count = pulls.credentials_reencrypt()
                self.stdout.write(orjson.dumps({"reencrypted": count}).decode())
                return
            if not options["source"]:
                self.stderr.write("pull_source: name a source (or use --reencrypt-credentials)")
                sys.exit(2)
            if options["backfill_days"] is not None and options["backfill_days"] < 0:
                self.stderr.write("pull_source: --backfill-days must be 0 or more")
                sys.exit(2)
            organisation = (
                Organisation.objects.get(slug=options["organisation"])
                if options["organisation"]
                else _only_organisation()
            )
            source = PullSource.objects.filter(organisation=organisation, name=options["source"]).first()
            if source is None:
                raise PullSource.DoesNotExist(f"no pull source named {options['source']!r}")
            result = pulls.pull_run(source_id=source.pk, backfill_days=options["backfill_days"])
        except (
            CredentialError,
            PullSource.DoesNotExist,
            Organisation.DoesNotExist,
            Organisation.MultipleObjectsReturned,
        ) as error:
            self.stderr.write(f"pull_source: {error}")
            sys.exit(2)
        self.stdout.write(orjson.dumps(result.summary()).decode())
        if result.busy or result.status != PullStatus.OK:
            self.stderr.write(f"pull_source: {result.summary()['status']}: {result.reason}")
            sys.exit(1)


def _only_organisation() -> Organisation:
    organisations = list(Organisation.objects.all()[:2])
    if len(organisations) != 1:
        raise Organisation.MultipleObjectsReturned("name the organisation with --organisation")
    return organisations[0]
