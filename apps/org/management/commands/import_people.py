"""manage.py import_people FILE [--apply] [--partial] [--organisation SLUG]

Without --apply: prints what applying would change (nothing is written). With --apply: applies it,
then re-attributes the organisation's usage in this process. Row errors go to stderr as
"FILE line N, FIELD: message"; the last stdout line is a JSON summary. Exit 0 when the file was read
(rows with errors included), 2 when it cannot be read.
"""

from __future__ import annotations

from pathlib import Path

import orjson
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apps.org import people_import, services
from apps.org.models import Organisation

ACTOR = "import_people command"


class Command(BaseCommand):
    help = "Preview (and with --apply, apply) people and teams from an HR CSV export."

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--apply", action="store_true", help="apply the changes (default: preview only)")
        parser.add_argument(
            "--partial", action="store_true", help="the file is not the full list: deactivate nobody"
        )
        parser.add_argument("--organisation", help="organisation slug (needed when there are several)")

    def handle(self, *args, file: Path, apply: bool, partial: bool, organisation: str | None, **options):
        target = self._organisation(organisation)
        try:
            content = people_import.decode(file.read_bytes(), file.name)
            plan = people_import.plan_import(target, content, file.name, full_list=not partial)
        except OSError as error:
            self.stderr.write(f"{file}: cannot be read ({error.strerror})")
            raise SystemExit(2) from None
        except people_import.PeopleFileError as error:
            self.stderr.write(str(error))
            raise SystemExit(2) from None
        for error in plan.errors:
            self.stderr.write(str(error))
        if plan.deactivation_withheld:
            self.stderr.write(plan.deactivation_withheld)
        self._print_plan(plan)
        summary = {**plan.summary(), "applied": False, "attribution_run": None}
        if apply and plan.has_changes:
            with transaction.atomic():
                plan = people_import.apply_import(
                    target, content, file.name, full_list=not partial, actor=ACTOR
                )
                run = services.attribution_run_request(
                    organisation_id=target.pk,
                    label=ACTOR,
                    reason=f"HR import of {file.name} (command)",
                    enqueue=False,
                )
            # Runs here rather than on a worker: the command returns when usage follows the new teams.
            run = services.attribution_run_execute(run_id=run.pk)
            summary.update(plan.summary(), applied=True, attribution_run=run.pk, rows_moved=run.rows_moved)
        elif apply:
            summary["applied"] = True
        self.stdout.write(orjson.dumps(summary).decode())

    def _organisation(self, slug: str | None) -> Organisation:
        if slug:
            found = Organisation.objects.filter(slug=slug).first()
            if found is None:
                raise CommandError(f"no organisation {slug!r}")
            return found
        organisations = list(Organisation.objects.all()[:2])
        if len(organisations) != 1:
            raise CommandError("several organisations (or none): name one with --organisation SLUG")
        return organisations[0]

    def _print_plan(self, plan: people_import.ImportPlan) -> None:
        for path in plan.new_teams:
            self.stdout.write(f"new team: {'/'.join(path)}")
        for email in plan.new_people:
            self.stdout.write(f"new person: {email}")
        for change in plan.changed_people:
            fields = "; ".join(f"{c.field}: {c.before or '-'} -> {c.after or '-'}" for c in change.changes)
            self.stdout.write(f"changed: {change.email} ({fields})")
        for email in plan.deactivated:
            self.stdout.write(f"deactivated: {email}")
        for change in plan.membership_changes:
            self.stdout.write(
                f"login {change.login}: {change.role_before} -> {change.role_after}, "
                f"manages {', '.join(change.teams_after) or 'no team'}"
            )
