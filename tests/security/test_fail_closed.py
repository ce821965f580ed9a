"""Fail-closed scoping (TESTPLAN F10): no viewer, no rows; and background code reads through selectors.

1. Every public selector that takes a viewer raises when given none, before it reads a single row.
2. A static check: tasks and management commands never query a scoped model's manager directly; they go
   through a selector or service, which scope by organisation. Exceptions are listed with their reason.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.accounts.scoping import ScopeMissing, scope_usage
from apps.usage.models import DailyRollup, UsageFact

ROOT = Path(__file__).resolve().parents[2]
SELECTOR_MODULES = sorted(
    f"apps.{path.parent.name}.{path.stem}" for path in (ROOT / "apps").glob("*/selectors.py")
)


def _viewer_selectors() -> list[tuple[str, str, object]]:
    found = []
    for module_name in SELECTOR_MODULES:
        module = importlib.import_module(module_name)
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("_") or function.__module__ != module_name:
                continue
            if "viewer" in inspect.signature(function).parameters:
                found.append((module_name, name, function))
    return found


def test_the_usage_scope_refuses_a_missing_viewer(db):
    for model in (UsageFact, DailyRollup):
        with pytest.raises(ScopeMissing):
            scope_usage(model.objects.all(), None)


def test_every_selector_module_that_scopes_is_covered():
    modules = {module for module, _, _ in _viewer_selectors()}
    # The modules whose reads are decided by a viewer; a new one shows up here and in the next test.
    assert modules == {
        "apps.audit.selectors", "apps.budgets.selectors", "apps.catalog.selectors",
        "apps.dashboards.selectors", "apps.ingestion.selectors", "apps.metrics.selectors",
        "apps.org.selectors", "apps.overuse.selectors", "apps.usage.selectors",
    }  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("module", "name", "function"), _viewer_selectors(), ids=lambda v: getattr(v, "__name__", v)
)
def test_a_selector_without_a_viewer_raises_before_reading_a_row(module, name, function):
    parameters = inspect.signature(function).parameters
    arguments = {
        parameter: None
        for parameter, spec in parameters.items()
        if spec.default is inspect.Parameter.empty
        and spec.kind not in (spec.VAR_POSITIONAL, spec.VAR_KEYWORD)
    }
    arguments.update({name: "team" for name in ("by", "series", "group_by") if name in arguments})
    arguments["viewer"] = None
    with CaptureQueriesContext(connection) as queries:
        with pytest.raises((ScopeMissing, AttributeError, TypeError)):
            result = function(**arguments)
            # A lazy queryset is a read too: evaluating it must fail just the same.
            list(result) if hasattr(result, "__iter__") and not isinstance(result, (str, bytes)) else None
    assert len(queries) == 0, f"{module}.{name} read {len(queries)} queries without a viewer"


# --- the static check ----------------------------------------------------------------------------------

# Models whose rows belong to an organisation (directly or through a parent) and so need a scope.
SCOPED_MODELS = {
    "UsageFact", "DailyRollup", "DayTeamModel", "DayTeamTask", "DayPerson", "DayPersonModel", "DayPersonTask",
    "MonthPerson", "Person", "Team", "Task", "Identity", "RawIdentity", "Rule", "AttributionRun", "PeopleImport",
    "Membership", "MachineKey", "AuditEntry", "ModelMapping", "PriceOverride", "RepricingRun", "DataSource",
    "IngestionRun", "RejectedRow", "IngestRequest", "PullSource", "PullEndpoint", "PromptObservation",
    "LabelFeedback", "ExcerptView", "OverusePolicy", "BudgetSettings", "Limit", "LimitState", "Alert",
    "BudgetAudit", "Metric", "MetricValue", "Adoption", "DigestSchedule", "DigestPreference", "DigestDelivery",
}  # fmt: skip
# (file, model): why the direct query is right there.
ALLOWED = {
    ("apps/ingestion/management/commands/pull_source.py", "PullSource"):
        "looks up the source the operator named, filtered by the organisation the operator named",
}  # fmt: skip


def _background_files() -> list[Path]:
    return sorted([*ROOT.glob("apps/*/tasks.py"), *ROOT.glob("apps/*/management/commands/*.py")])


def unscoped_queries(source: str) -> list[tuple[int, str]]:
    """(line, model) of every `Model.objects.…` / `Model._base_manager` use on a scoped model."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in ("objects", "_base_manager", "_default_manager")
            and isinstance(node.value, ast.Name)
            and node.value.id in SCOPED_MODELS
        ):
            found.append((node.lineno, node.value.id))
    return found


def test_the_static_check_finds_a_direct_query():
    assert unscoped_queries("def run():\n    return UsageFact.objects.filter(day=1)\n") == [(2, "UsageFact")]
    assert unscoped_queries("Organisation.objects.get(slug='acme')") == []


def test_tasks_and_commands_query_scoped_models_only_through_selectors_and_services():
    files = _background_files()
    assert len(files) >= 20  # the check reads real code, not an empty glob
    offenders, used_allowances = [], set()
    for path in files:
        relative = str(path.relative_to(ROOT))
        for line, model in unscoped_queries(path.read_text()):
            if (relative, model) in ALLOWED:
                used_allowances.add((relative, model))
            else:
                offenders.append(f"{relative}:{line}: {model}.objects outside a selector or service")
    assert not offenders, "\n".join(offenders)
    assert used_allowances == set(ALLOWED), "remove allowances that are no longer needed"
