import datetime as dt
import sys
import time
from pathlib import Path

import orjson
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.budgets.demo import seed_demo_limits
from apps.ingestion.demo import DEMO_DAYS, demo_totals, load_demo
from apps.ingestion.models import RunStatus
from apps.metrics.demo import seed_demo_metrics


class Command(BaseCommand):
    help = (
        f"Load the demo organisation (Northwind Trading) with {DEMO_DAYS} days of usage through the real "
        "pipeline; safe to run again. Prints the run summaries, the totals and the demo logins."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--today", type=dt.date.fromisoformat, help="last day of usage (default: today, UTC)"
        )
        parser.add_argument("--scale", type=float, default=1.0, help="volume factor (default 1.0)")
        parser.add_argument("--directory", type=Path, help="where the usage files go (default: VAR_DIR/demo)")

    def handle(self, *args, **options) -> None:
        if options["scale"] <= 0:
            raise CommandError("--scale must be positive")
        started = time.monotonic()
        result = load_demo(options["today"], scale=options["scale"], directory=options["directory"])
        elapsed = time.monotonic() - started

        self.stdout.write(f"Demo organisation: {result.organisation.name} ({result.organisation.slug})")
        self.stdout.write(
            f"Files: {result.files.litellm} ({result.files.litellm_lines} requests, "
            f"${result.files.litellm_spend:,.2f} spend as LiteLLM reports it), "
            f"{len(result.files.openai_pages)} OpenAI usage pages ({result.files.openai_requests} requests)"
        )
        for run in result.runs:
            self.stdout.write(f"{run.source.name}: " + orjson.dumps(run.summary()).decode())
        self.stdout.write(seed_demo_limits(result.organisation).summary())
        self.stdout.write(seed_demo_metrics(result.organisation).summary())
        totals = demo_totals(result.organisation)
        self.stdout.write(
            f"Totals: {totals.rows} fact rows, {totals.requests} requests, "
            f"${totals.cost_usd:,} priced spend, ${totals.unattributed_cost_usd:,} unattributed, "
            f"{totals.unpriced_rows} unpriced rows, "
            f"{totals.failed_rows} failed requests ({elapsed:.1f}s)"
        )

        self.stdout.write("")
        self.stdout.write("Demo logins (demo passwords, printed on purpose):")
        width = max(len(login.email) for login in result.logins)
        self.stdout.write(f"  {'email':<{width}}  {'role':<8}  {'password':<16}  sees")
        for login in result.logins:
            self.stdout.write(
                f"  {login.email:<{width}}  {login.role:<8}  {login.password:<16}  {login.sees}"
            )

        failed = [run for run in result.runs if run.status != RunStatus.COMPLETED]
        for run in failed:
            self.stderr.write(f"load_demo: run {run.pk} ({run.source.name}) failed: {run.error}")
        if failed:
            sys.exit(2)
