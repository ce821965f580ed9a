import datetime as dt

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.usage.partitions import (
    ensure_partitions,
    ensure_upcoming_partitions,
    is_partitioned,
    list_partitions,
    next_month,
)


def _month(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(f"{value}-01")
    except ValueError:
        raise CommandError(f"{value!r}: give a month as YYYY-MM") from None


class Command(BaseCommand):
    help = (
        "The fact table's monthly partitions (PostgreSQL) with their row counts and sizes. "
        "--ensure makes this month's and the next two (what the daily beat task does) and moves any row "
        "of the default partition into its month; --months FROM TO makes every month of that range."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--ensure", action="store_true", help="make the upcoming months first")
        parser.add_argument("--months", nargs=2, metavar=("FROM", "TO"), help="make these months (YYYY-MM)")
        parser.add_argument("--exact", action="store_true", help="count rows (a scan) instead of estimating")

    def handle(self, *args, **options) -> None:
        if not is_partitioned():
            raise CommandError(
                "usage_usagefact is not partitioned here (SQLite, or before migration usage 0005)"
            )
        created = ensure_upcoming_partitions() if options["ensure"] else []
        if options["months"]:
            first, last = (_month(value) for value in options["months"])
            if last < first:
                raise CommandError("--months: TO is before FROM")
            months = [first]
            while months[-1] < last:
                months.append(next_month(months[-1]))
            created += ensure_partitions(months)
        for name in created:
            self.stdout.write(f"created {name}")
        counted = "rows" if options["exact"] else "rows (est.)"
        self.stdout.write(f"{'partition':<28} {'from':<10} {'to':<10} {counted:>14} {'MiB':>10}")
        for part in list_partitions(exact=options["exact"]):
            start = part.start.isoformat() if part.start else "DEFAULT"
            end = part.end.isoformat() if part.end else ""
            rows = f"{part.rows:,}" if part.rows >= 0 else "?"
            self.stdout.write(f"{part.name:<28} {start:<10} {end:<10} {rows:>14} {part.bytes / 2**20:>10.1f}")
