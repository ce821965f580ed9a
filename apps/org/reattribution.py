"""Re-attribution: re-resolve every raw identity of an organisation and move its facts, set-wise.

The plan is computed from one aggregate of the fact table (rows and priced cost per raw identity,
source and current owner) and the raw identities' fields, never per fact in Python. A rule-editor
preview and the job compute the same plan with the same code, so the dollars a preview shows are the
dollars the job moves. Applying the plan is one UPDATE ... FROM a staged table of (raw identity,
source) -> new owner, on SQLite and PostgreSQL alike, followed by a rollup refresh of the days touched.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from dataclasses import dataclass, field

import orjson
from django.db import connection

from apps.org.attribution import Owner, RuleBook
from apps.org.models import Person, RawIdentity, Task, Team

STAGE = "org_reattribution_stage"
DIMENSIONS = ("team", "person", "task")


class PlanDrift(Exception):
    """The facts changed between planning and applying (a concurrent ingestion); the job is retried."""


@dataclass(frozen=True, slots=True)
class Move:
    source: Owner  # the owner the rows have now
    target: Owner  # the owner they get
    rows: int
    nanos: int  # priced cost of those rows (unpriced rows move too, and count 0)


@dataclass
class Plan:
    moves: list[Move]
    # (raw_identity_id, source_id) -> the owner all its facts get; only pairs with facts to move.
    changes: dict[tuple[int, int], Owner]
    raw_identities: int  # distinct raw identities with facts, all re-resolved
    total_rows: int
    total_nanos: int
    # (dimension, id) -> [rows, nanos] over the whole organisation, before and after.
    before: dict[tuple[str, int | None], list[int]] = field(default_factory=dict)
    after: dict[tuple[str, int | None], list[int]] = field(default_factory=dict)

    @property
    def rows_moved(self) -> int:
        return sum(move.rows for move in self.moves)

    @property
    def nanos_moved(self) -> int:
        return sum(move.nanos for move in self.moves)

    @property
    def fingerprint(self) -> str:
        """Identifies what the plan moves: a preview's fingerprint still matches when nothing changed."""
        moves = sorted(
            (_owner_key(move.source), _owner_key(move.target), move.rows, move.nanos) for move in self.moves
        )
        return hashlib.blake2b(orjson.dumps(moves), digest_size=12).hexdigest()

    def changed_owner_totals(self) -> list[tuple[str, int | None, list[int], list[int]]]:
        """(dimension, id, [rows, nanos] before, after) for each owner whose total changes."""
        keys = sorted(
            set(self.before) | set(self.after), key=lambda key: (key[0], key[1] is None, key[1] or 0)
        )
        return [
            (dimension, owner_id, self.before.get((dimension, owner_id), [0, 0]),
             self.after.get((dimension, owner_id), [0, 0]))
            for dimension, owner_id in keys
            if self.before.get((dimension, owner_id), [0, 0]) != self.after.get((dimension, owner_id), [0, 0])
        ]  # fmt: skip


def _owner_key(owner: Owner) -> tuple[int, int, int]:
    return (owner.team_id or 0, owner.person_id or 0, owner.task_id or 0)


def _fact_groups(organisation_id: int) -> list[tuple]:
    """Rows and priced cost per (raw identity, source, current owner): the one read of the fact table."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT raw_identity_id, source_id, team_id, person_id, task_id, COUNT(*), "
            "COALESCE(SUM(cost_nanos), 0) FROM usage_usagefact WHERE organisation_id = %s "
            "GROUP BY raw_identity_id, source_id, team_id, person_id, task_id",
            [organisation_id],
        )
        # PostgreSQL sums bigints as numeric (a Decimal here): amounts stay exact integers.
        return [(*row[:5], int(row[5]), int(row[6])) for row in cursor.fetchall()]


def plan_reattribution(organisation_id: int, book: RuleBook) -> Plan:
    """What re-resolving every raw identity with `book` would move, and everyone's totals before/after."""
    groups = _fact_groups(organisation_id)
    raw_ids = {group[0] for group in groups if group[0] is not None}
    fields_by_id: dict[int, dict] = {}
    ids = sorted(raw_ids)
    for start in range(0, len(ids), 1000):
        fields_by_id.update(
            RawIdentity.objects.filter(organisation_id=organisation_id, pk__in=ids[start : start + 1000])
            .values_list("pk", "fields")
            .iterator()
        )
    resolved: dict[tuple[int, int | None], Owner] = {}
    moves: dict[tuple[Owner, Owner], list[int]] = defaultdict(lambda: [0, 0])
    changes: dict[tuple[int, int], Owner] = {}
    before: dict[tuple[str, int | None], list[int]] = defaultdict(lambda: [0, 0])
    after: dict[tuple[str, int | None], list[int]] = defaultdict(lambda: [0, 0])
    total_rows = total_nanos = 0
    for raw_id, source_id, team_id, person_id, task_id, rows, nanos in groups:
        current = Owner(team_id, person_id, task_id)
        if raw_id is None:  # rows with no identity fields at all: nothing to resolve
            target = current
        else:
            # Without source-limited rules the answer depends on the raw identity alone.
            key = (raw_id, source_id if book.has_source_rules else None)
            target = resolved.get(key)
            if target is None:
                target = resolved[key] = book.attribute(fields_by_id.get(raw_id, {}), source_id)
        total_rows += rows
        total_nanos += nanos
        for dimension, old, new in zip(DIMENSIONS, _ids(current), _ids(target), strict=True):
            before[(dimension, old)][0] += rows
            before[(dimension, old)][1] += nanos
            after[(dimension, new)][0] += rows
            after[(dimension, new)][1] += nanos
        if target != current:
            moves[(current, target)][0] += rows
            moves[(current, target)][1] += nanos
            changes[(raw_id, source_id)] = target
    return Plan(
        moves=sorted(
            (Move(source, target, rows, nanos) for (source, target), (rows, nanos) in moves.items()),
            key=lambda move: (-move.nanos, -move.rows, _owner_key(move.source), _owner_key(move.target)),
        ),
        changes=changes,
        raw_identities=len(raw_ids),
        total_rows=total_rows,
        total_nanos=total_nanos,
        before=dict(before),
        after=dict(after),
    )


def _ids(owner: Owner) -> tuple[int | None, int | None, int | None]:
    return (owner.team_id, owner.person_id, owner.task_id)


def apply_plan(organisation_id: int, plan: Plan) -> list:
    """Move the planned facts in place; returns the days whose rollups must be refreshed.

    Runs inside the caller's transaction. Raises PlanDrift when the update touches a different number
    of rows than planned, or the team totals afterwards differ from the plan's: then nothing is kept.
    """
    if not plan.changes:
        return []
    with connection.cursor() as cursor:
        _create_stage(cursor)
        cursor.executemany(
            f"INSERT INTO {STAGE} (raw_identity_id, source_id, team_id, person_id, task_id) "  # noqa: S608
            "VALUES (%s, %s, %s, %s, %s)",
            [
                (raw_id, source_id, *_ids(owner))
                for (raw_id, source_id), owner in sorted(plan.changes.items())
            ],
        )
        moving = (
            "usage_usagefact.organisation_id = %s "
            "AND usage_usagefact.raw_identity_id = s.raw_identity_id "
            "AND usage_usagefact.source_id = s.source_id "
            "AND (usage_usagefact.team_id IS DISTINCT FROM s.team_id "
            "OR usage_usagefact.person_id IS DISTINCT FROM s.person_id "
            "OR usage_usagefact.task_id IS DISTINCT FROM s.task_id)"
        )
        cursor.execute(
            f"SELECT DISTINCT usage_usagefact.day FROM usage_usagefact JOIN {STAGE} s ON {moving}",  # noqa: S608
            [organisation_id],
        )
        days = sorted({_as_date(day) for (day,) in cursor.fetchall()})
        cursor.execute(
            f"UPDATE usage_usagefact SET team_id = s.team_id, person_id = s.person_id, "  # noqa: S608
            f"task_id = s.task_id FROM {STAGE} s WHERE {moving}",
            [organisation_id],
        )
        updated = cursor.rowcount
        cursor.execute(f"DELETE FROM {STAGE}")  # noqa: S608 - constant table name
        if updated != plan.rows_moved:
            raise PlanDrift(f"planned to move {plan.rows_moved} rows, the update moved {updated}")
        cursor.execute(
            "SELECT team_id, COUNT(*), COALESCE(SUM(cost_nanos), 0) FROM usage_usagefact "
            "WHERE organisation_id = %s GROUP BY team_id",
            [organisation_id],
        )
        teams_now = {team_id: [int(rows), int(nanos)] for team_id, rows, nanos in cursor.fetchall()}
    teams_planned = {
        owner_id: totals
        for (dimension, owner_id), totals in plan.after.items()
        if dimension == "team" and totals[0]
    }
    if teams_now != teams_planned:
        raise PlanDrift("team totals after the update differ from the plan")
    return days


def _create_stage(cursor) -> None:
    keep = " ON COMMIT DELETE ROWS" if connection.vendor == "postgresql" else ""
    cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} (raw_identity_id BIGINT NOT NULL, "
        f"source_id BIGINT NOT NULL, team_id BIGINT, person_id BIGINT, task_id BIGINT, "
        f"PRIMARY KEY (raw_identity_id, source_id)){keep}"
    )
    cursor.execute(f"DELETE FROM {STAGE}")  # noqa: S608 - constant table name


def _as_date(value) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


@dataclass(frozen=True, slots=True)
class OwnerLabels:
    """Names for owner ids, read once for a plan or a run."""

    teams: dict[int, str]
    people: dict[int, str]
    tasks: dict[int, str]

    @classmethod
    def for_ids(cls, organisation_id: int, owners: list[Owner]) -> OwnerLabels:
        team_ids = {owner.team_id for owner in owners if owner.team_id}
        person_ids = {owner.person_id for owner in owners if owner.person_id}
        task_ids = {owner.task_id for owner in owners if owner.task_id}
        return cls(
            teams=dict(Team.objects.filter(organisation_id=organisation_id, pk__in=team_ids).values_list("pk", "name")),
            people=dict(
                Person.objects.filter(organisation_id=organisation_id, pk__in=person_ids).values_list("pk", "email")
            ),
            tasks=dict(Task.objects.filter(organisation_id=organisation_id, pk__in=task_ids).values_list("pk", "name")),
        )  # fmt: skip

    def label(self, dimension: str, owner_id: int | None) -> str | None:
        if owner_id is None:
            return None
        names = {"team": self.teams, "person": self.people, "task": self.tasks}[dimension]
        return names.get(owner_id, f"#{owner_id}")

    def describe(self, owner: Owner) -> dict:
        return {
            "team": self.label("team", owner.team_id),
            "person": self.label("person", owner.person_id),
            "task": self.label("task", owner.task_id),
            "team_id": owner.team_id,
            "person_id": owner.person_id,
            "task_id": owner.task_id,
        }
