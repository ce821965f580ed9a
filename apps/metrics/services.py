"""Writes: metric definitions, metric values (CSV upload and API, one path), adoption dates.

Values are upserted on (metric, team or task, period): sending a period again replaces its value, and
sending the same value again changes nothing (not even its timestamp). A bad row is reported with its
file, line and field and left out; the good rows of the same file or request are stored.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import transaction
from django.http import Http404
from django.utils import timezone

from apps.accounts.models import Role
from apps.accounts.scoping import Viewer
from apps.audit.services import audit_record
from apps.ingestion.adapters.base import RowError
from apps.metrics.models import (
    Adoption,
    Aggregation,
    Direction,
    Metric,
    MetricGrain,
    MetricScope,
    MetricValue,
)
from apps.metrics.periods import PeriodInvalid, period_parse
from apps.org.models import Organisation, Task, Team

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_API_VALUES = 10_000
# Below 10**11 with four decimals: 15 significant digits, which SQLite (the zero-setup database) keeps
# exactly too; a hundred billion per period and team is beyond any outcome we expect.
MAX_VALUE = Decimal(10) ** 11
VALUE_DECIMALS = 4
RESERVED_KEYS = frozenset({"new", "upload", "adoption", "edit"})  # page names under /metrics/

CSV_COLUMNS = {
    "metric": "metric",
    "metric_key": "metric",
    "team": "team",
    "team_slug": "team",
    "task": "task",
    "task_key": "task",
    "period": "period",
    "period_start": "period",
    "value": "value",
}
API_FIELDS = frozenset({"team", "task", "period", "value"})
_DELIMITERS = (",", ";", "\t")


class MetricInvalid(ValueError):
    """A metric definition that cannot be saved; the message names the field."""


class ValuesFileError(ValueError):
    """The file as a whole cannot be read (not UTF-8, no header, a column missing or unknown)."""


@dataclass(frozen=True, slots=True)
class RawRow:
    """One CSV line or API item, as text, before it is read."""

    file: str
    line: int
    cells: dict[str, object]
    raw: str


@dataclass(slots=True)
class ImportResult:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len(self.errors)

    def summary(self) -> dict:
        return {
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
        }


@dataclass(frozen=True, slots=True)
class _GoodRow:
    line: int
    metric: Metric
    subject_id: int  # team id or task id, as the metric's scope says
    period_start: dt.date
    value: Decimal


# --- metric definitions -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetricSpec:
    key: str
    name: str
    unit: str
    direction: str = Direction.HIGHER
    value_per_unit: Decimal | None = None
    scope: str = MetricScope.TEAM
    grain: str = MetricGrain.WEEK
    aggregation: str = Aggregation.SUM
    description: str = ""


def _require_definer(viewer: Viewer) -> None:
    if not viewer.sees_organisation:
        raise Http404("no such page")


def _check_spec(spec: MetricSpec) -> None:
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,99}", spec.key):
        raise MetricInvalid("key: lower-case letters, digits and dashes, starting with a letter or digit")
    if spec.key in RESERVED_KEYS:
        raise MetricInvalid(f"key: {spec.key!r} is reserved for a page name")
    if not spec.name.strip():
        raise MetricInvalid("name: is missing")
    if not spec.unit.strip():
        raise MetricInvalid("unit: is missing")
    if spec.value_per_unit is not None:
        if not spec.value_per_unit.is_finite() or spec.value_per_unit <= 0:
            raise MetricInvalid("value per unit: must be a positive amount in USD")
        if spec.aggregation != Aggregation.SUM or spec.direction != Direction.HIGHER:
            raise MetricInvalid(
                "value per unit: only for outcomes that add up and where higher is better "
                "(a score or an average has no value per unit)"
            )


def _snapshot(metric: Metric) -> dict:
    return {
        "key": metric.key,
        "name": metric.name,
        "unit": metric.unit,
        "direction": metric.direction,
        "value_per_unit": None if metric.value_per_unit is None else str(metric.value_per_unit),
        "scope": metric.scope,
        "grain": metric.grain,
        "aggregation": metric.aggregation,
    }


def metric_create(*, viewer: Viewer, actor, spec: MetricSpec) -> Metric:
    """Define a metric (CIO/FinOps). Raises MetricInvalid for a bad definition or a key in use."""
    _require_definer(viewer)
    _check_spec(spec)
    if Metric.objects.filter(organisation_id=viewer.organisation_id, key=spec.key).exists():
        raise MetricInvalid(f"key: a metric {spec.key!r} exists already")
    with transaction.atomic():
        metric = Metric.objects.create(
            organisation_id=viewer.organisation_id,
            key=spec.key,
            name=spec.name.strip(),
            unit=spec.unit.strip(),
            direction=spec.direction,
            value_per_unit=spec.value_per_unit,
            scope=spec.scope,
            grain=spec.grain,
            aggregation=spec.aggregation,
            description=spec.description.strip(),
        )
        audit_record(
            organisation=viewer.organisation_id,
            actor=actor,
            action="metric.created",
            target=metric,
            after=_snapshot(metric),
        )
    return metric


def metric_update(*, viewer: Viewer, actor, metric: Metric, spec: MetricSpec) -> Metric:
    """Change a definition. The key, scope and grain say what the stored values mean, so they stay."""
    _require_definer(viewer)
    if metric.organisation_id != viewer.organisation_id:
        raise Http404("no such metric")
    if (spec.key, spec.scope, spec.grain) != (metric.key, metric.scope, metric.grain):
        raise MetricInvalid("key, scope and grain cannot change once a metric exists; define a new one")
    _check_spec(spec)
    before = _snapshot(metric)
    metric.name = spec.name.strip()
    metric.unit = spec.unit.strip()
    metric.direction = spec.direction
    metric.value_per_unit = spec.value_per_unit
    metric.aggregation = spec.aggregation
    metric.description = spec.description.strip()
    with transaction.atomic():
        metric.save()
        if _snapshot(metric) != before:
            audit_record(
                organisation=viewer.organisation_id,
                actor=actor,
                action="metric.updated",
                target=metric,
                before=before,
                after=_snapshot(metric),
            )
    return metric


# --- adoption dates -------------------------------------------------------------------------------------


def adoption_set(*, viewer: Viewer, actor, team: Team, adopted_on: dt.date | None, note: str = "") -> None:
    """Record (or clear, with None) the day `team` adopted AI in its work (CIO/FinOps)."""
    _require_definer(viewer)
    if team.organisation_id != viewer.organisation_id:
        raise Http404("no such team")
    existing = Adoption.objects.filter(team=team).first()
    before = {"adopted_on": existing.adopted_on.isoformat(), "note": existing.note} if existing else None
    with transaction.atomic():
        if adopted_on is None:
            if existing is None:
                return
            existing.delete()
            after = None
        else:
            Adoption.objects.update_or_create(
                team=team,
                defaults={
                    "organisation_id": team.organisation_id,
                    "adopted_on": adopted_on,
                    "note": note.strip()[:300],
                    "updated_by": actor if getattr(actor, "pk", None) else None,
                },
            )
            after = {"adopted_on": adopted_on.isoformat(), "note": note.strip()[:300]}
        if after != before:
            audit_record(
                organisation=viewer.organisation_id,
                actor=actor,
                action="metric.adoption_set",
                target=team,
                before=before,
                after=after,
            )


# --- reading values -------------------------------------------------------------------------------------


def read_values_csv(data: bytes, file_name: str) -> list[RawRow]:
    """The rows of an uploaded values file. Raises ValuesFileError when the file cannot be mapped.

    UTF-8 (a byte-order mark is fine), comma, semicolon or tab separated (the header decides), CRLF or LF,
    quoted cells may hold newlines. Every column must be one we know: a misspelt header is refused by
    name rather than silently ignored.
    """
    if len(data) > MAX_UPLOAD_BYTES:
        raise ValuesFileError(f"{file_name}: larger than the limit of {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValuesFileError(f"{file_name}: not UTF-8 text (byte {error.start})") from None
    first_line = text.split("\n", 1)[0]
    delimiter = max(_DELIMITERS, key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(reader, None)
    if not header or not any(cell.strip() for cell in header):
        raise ValuesFileError(f"{file_name}: the file is empty (expected a header line)")
    positions: dict[str, int] = {}
    unknown = []
    for position, name in enumerate(header):
        key = re.sub(r"[\s.\-]+", "_", name.strip().lower())
        column = CSV_COLUMNS.get(key)
        if column is None:
            if key:
                unknown.append(name.strip())
            continue
        if column in positions:
            raise ValuesFileError(f"{file_name} line 1: column {column} appears twice")
        positions[column] = position
    if unknown:
        raise ValuesFileError(
            f"{file_name} line 1: unknown column(s) {', '.join(unknown)}; "
            "the columns are metric, team or task, period, value"
        )
    missing = [column for column in ("period", "value") if column not in positions]
    if "team" not in positions and "task" not in positions:
        missing.append("team (or task)")
    if missing:
        raise ValuesFileError(f"{file_name} line 1: missing column(s) {', '.join(missing)}")
    rows = []
    line = reader.line_num + 1
    for record in reader:
        start, line = line, reader.line_num + 1
        if not any(cell.strip() for cell in record):
            continue
        cells = {column: record[p].strip() if p < len(record) else "" for column, p in positions.items()}
        rows.append(RawRow(file=file_name, line=start, cells=cells, raw=delimiter.join(record)[:500]))
    return rows


def api_rows(items: list, file_name: str = "request body") -> Iterator[RawRow]:
    """The items of an API request as rows; line = the item's position (1-based)."""
    for position, item in enumerate(items, start=1):
        yield RawRow(file=file_name, line=position, cells=item, raw=repr(item)[:500])


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value).strip()


_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def value_parse(raw: object) -> Decimal:
    """An outcome value: a finite, non-negative decimal with at most four decimals.

    Negative values are refused: cost per outcome and value per dollar are not defined on them.
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise ValueError("is missing")
    if isinstance(raw, bool) or not isinstance(raw, str | int | float | Decimal):
        raise ValueError(f"expected a number, got {raw!r}")
    text = _text(raw)
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"expected a number, got {raw!r}")
    value = Decimal(text)
    if value < 0:
        raise ValueError(f"is negative ({text}); outcome values are zero or more")
    if value >= MAX_VALUE:
        raise ValueError(f"{text} is too large (the limit is 10^11)")
    if value.normalize().as_tuple().exponent < -VALUE_DECIMALS:  # type: ignore[operator]
        raise ValueError(f"{text} has more than {VALUE_DECIMALS} decimal places")
    return value


class _Resolver:
    """Metric, team and task lookups for one import, limited to what the viewer may write."""

    def __init__(self, viewer: Viewer, default_metric: Metric | None) -> None:
        self.viewer = viewer
        self.default_metric = default_metric
        metrics = Metric.objects.filter(organisation_id=viewer.organisation_id)
        if not viewer.sees_organisation:
            metrics = metrics.filter(scope=MetricScope.TEAM)  # task values are organisation-wide
        self.metrics = {metric.key: metric for metric in metrics}
        teams = Team.objects.filter(organisation_id=viewer.organisation_id)
        if not viewer.sees_organisation:
            teams = teams.filter(pk__in=viewer.team_ids or ())
        self.teams = dict(teams.values_list("slug", "pk"))
        tasks = (
            Task.objects.filter(organisation_id=viewer.organisation_id) if viewer.sees_organisation else []
        )
        self.tasks = {task.key: task.pk for task in tasks}
        tz = ZoneInfo(Organisation.objects.get(pk=viewer.organisation_id).time_zone)
        self.today = timezone.now().astimezone(tz).date()

    def read(self, row: RawRow) -> _GoodRow:
        """The row's values, or RowInvalid-like (field, reason) via _Rejected."""
        cells = row.cells
        if not isinstance(cells, dict):
            raise _Rejected("-", f"expected an object with team/task, period and value, got {cells!r}"[:300])
        extra = sorted(str(name) for name in cells if name not in API_FIELDS and name != "metric")
        if extra:
            raise _Rejected(
                extra[0], f"unknown field(s) {', '.join(extra)}; expected team or task, period, value"
            )
        metric = self.default_metric
        metric_key = _text(cells.get("metric"))
        if metric_key and (metric is None or metric_key != metric.key):
            if self.default_metric is not None:
                raise _Rejected("metric", f"{metric_key!r} is not the metric being uploaded ({metric.key})")
            metric = self.metrics.get(metric_key)
            if metric is None:
                raise _Rejected("metric", f"no metric {metric_key!r}")
        if metric is None:
            raise _Rejected("metric", "is missing")
        team_text, task_text = _text(cells.get("team")), _text(cells.get("task"))
        if metric.scope == MetricScope.TEAM:
            if task_text:
                raise _Rejected("task", f"{metric.key} is counted per team; leave task empty")
            if not team_text:
                raise _Rejected("team", f"is missing ({metric.key} is counted per team)")
            subject_id = self.teams.get(team_text)
            if subject_id is None:  # unknown and out of scope read the same: no existence leak
                raise _Rejected("team", f"no team {team_text!r}")
        else:
            if team_text:
                raise _Rejected("team", f"{metric.key} is counted per task; leave team empty")
            if not task_text:
                raise _Rejected("task", f"is missing ({metric.key} is counted per task)")
            subject_id = self.tasks.get(task_text)
            if subject_id is None:
                raise _Rejected("task", f"no task {task_text!r}")
        try:
            period_start = period_parse(_text(cells.get("period")), metric.grain)
        except PeriodInvalid as error:
            raise _Rejected("period", str(error)) from None
        if period_start > self.today:
            raise _Rejected("period", f"{period_start.isoformat()} is in the future")
        try:
            value = value_parse(cells.get("value"))
        except ValueError as error:
            raise _Rejected("value", str(error)) from None
        return _GoodRow(row.line, metric, subject_id, period_start, value)


class _Rejected(Exception):
    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field_name
        self.reason = reason


def require_writer(viewer: Viewer) -> None:
    if not (viewer.sees_organisation or (viewer.role == Role.MANAGER and viewer.team_ids)):
        raise Http404("no such page")


def metric_values_import(
    *,
    viewer: Viewer,
    rows: Iterable[RawRow],
    source: str,
    metric: Metric | None = None,
) -> ImportResult:
    """Upsert the good rows; report the bad ones. `metric` fixes the metric (the API, a chosen upload);
    otherwise each row names it in a `metric` column.

    A manager writes only team metrics of the teams they see; CIO/FinOps write any of the organisation's.
    """
    require_writer(viewer)
    if metric is not None and metric.organisation_id != viewer.organisation_id:
        raise Http404("no such metric")
    resolver = _Resolver(viewer, metric)
    if metric is not None and metric.key not in resolver.metrics:
        raise Http404("no such metric")
    result = ImportResult()
    good: dict[tuple[int, int, dt.date], _GoodRow] = {}
    for row in rows:
        result.rows += 1
        try:
            parsed = resolver.read(row)
        except _Rejected as rejection:
            result.errors.append(RowError(row.file, row.line, rejection.field, rejection.reason, row.raw))
            continue
        natural_key = (parsed.metric.pk, parsed.subject_id, parsed.period_start)
        first = good.get(natural_key)
        if first is not None:
            scope = parsed.metric.scope
            result.errors.append(
                RowError(
                    row.file,
                    row.line,
                    "period",
                    f"the same metric, {scope} and period as line {first.line}; send one value per period",
                    row.raw,
                )
            )
            continue
        good[natural_key] = parsed
    by_metric: dict[int, list[_GoodRow]] = {}
    for parsed in good.values():
        by_metric.setdefault(parsed.metric.pk, []).append(parsed)
    with transaction.atomic():
        for metric_rows in by_metric.values():
            _upsert(metric_rows, source, result)
    return result


def _upsert(rows: list[_GoodRow], source: str, result: ImportResult) -> None:
    metric = rows[0].metric
    column = "team_id" if metric.scope == MetricScope.TEAM else "task_id"
    existing = {
        (row[column], row["period_start"]): row["value"]
        for row in MetricValue.objects.filter(
            metric=metric,
            **{f"{column}__in": {row.subject_id for row in rows}},
            period_start__in={row.period_start for row in rows},
        ).values(column, "period_start", "value")
    }
    now = timezone.now()
    changed = []
    for row in rows:
        before = existing.get((row.subject_id, row.period_start))
        if before is not None and before == row.value:
            result.unchanged += 1
            continue
        if before is None:
            result.created += 1
        else:
            result.updated += 1
        changed.append(
            MetricValue(
                metric=metric,
                period_start=row.period_start,
                value=row.value,
                source=source[:200],
                updated_at=now,
                **{column: row.subject_id},
            )
        )
    if changed:
        # ON CONFLICT on the natural key: a value another request stored meanwhile is replaced, not
        # duplicated (the counts above may then call it "created"; the stored state is right either way).
        MetricValue.objects.bulk_create(
            changed,
            batch_size=1_000,
            update_conflicts=True,
            unique_fields=["metric", column.removesuffix("_id"), "period_start"],
            update_fields=["value", "source", "updated_at"],
        )
