from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.models import KeyScope
from apps.accounts.services import machine_key_create
from apps.org.models import Organisation


class Command(BaseCommand):
    help = "Create a machine key (for a gateway or exporter); the key is printed once and never stored."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--organisation", required=True, help="organisation slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--scope", action="append", choices=KeyScope.values, required=True)

    def handle(self, *args, **options) -> None:
        try:
            organisation = Organisation.objects.get(slug=options["organisation"])
        except Organisation.DoesNotExist:
            raise CommandError(f"no organisation {options['organisation']!r}") from None
        key, text = machine_key_create(
            organisation=organisation, name=options["name"], scopes=options["scope"]
        )
        self.stdout.write(text)
        self.stderr.write(
            f"created {key} with scopes {', '.join(key.scopes)}; store the key now, it is not kept"
        )
