"""Narrow rollups: one table per chart shape, so a dashboard reads rows bounded by days x a few dimensions.

day x team x model, day x team x task, day x person and month x person serve the organisation's and the
teams' pages (PERFORMANCE.md 3.3); day x person x model and day x person x task serve one person's pages
(a member sees only their own rows, so every page of theirs is a person question).

The full daily rollup (apps.usage DailyRollup: day x team x person x task x provider x model) grows with
the number of distinct combinations people produce, which grows with traffic; these tables do not
(PERFORMANCE.md DASH-1/2). Each is a GROUP BY of DailyRollup, refreshed for the days it was refreshed
(apps.dashboards.services), so every table holds exactly the same money as the ledger's rollup: each
DailyRollup row lands in exactly one row of each table, unattributed adjustment rows included.

The measures are those of the DailyRollup's that the pages read, with the same meaning (nano-dollars;
cost counts priced rows only; `requests` is NULL where no source counted requests), plus
`counted_cost_nanos`. Foreign keys carry no database constraint, like the ledger's: only the refresh
writes these rows, from ids it has just read.
"""

from django.db import models

from apps.catalog.models import AIModel, Provider
from apps.org.models import Organisation, Person, Task, Team

# Only what the pages read: a narrow table is scanned whole for a period, so every column costs.
MEASURES = (
    "cost_nanos",
    "counted_cost_nanos",
    "requests",
    "unpriced_rows",
    "input_uncached_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
)


def _ref(model, *, null: bool = True) -> models.ForeignKey:
    return models.ForeignKey(
        model, null=null, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )


class Measures(models.Model):
    organisation = _ref(Organisation, null=False)
    cost_nanos = models.BigIntegerField()  # priced rows only; unpriced rows count nothing
    # The cost of the rows whose requests a source counted: cost per request divides this, not cost_nanos,
    # so money without a request count (a bill's unexplained part) does not inflate it.
    counted_cost_nanos = models.BigIntegerField()
    requests = models.BigIntegerField(null=True)
    unpriced_rows = models.BigIntegerField()
    # Input tokens by kind: the cache hit rate, and what the prompt cache saved.
    input_uncached_tokens = models.BigIntegerField()
    cache_read_tokens = models.BigIntegerField()
    cache_write_5m_tokens = models.BigIntegerField()
    cache_write_1h_tokens = models.BigIntegerField()

    class Meta:
        abstract = True


class DayTeamModel(Measures):
    """day x team x model (the provider comes with the model): trends, teams, models, cache."""

    day = models.DateField()
    team = _ref(Team)
    provider = _ref(Provider, null=False)
    model = _ref(AIModel, null=False)

    class Meta:
        indexes = [models.Index(fields=["organisation", "day"], name="dash_dtm_org_day")]

    def __str__(self) -> str:
        return f"{self.day} team {self.team_id} model {self.model_id}"


class DayTeamTask(Measures):
    """day x team x task: the tasks page and a team's tasks."""

    day = models.DateField()
    team = _ref(Team)
    task = _ref(Task)

    class Meta:
        indexes = [models.Index(fields=["organisation", "day"], name="dash_dtt_org_day")]

    def __str__(self) -> str:
        return f"{self.day} team {self.team_id} task {self.task_id}"


class DayPerson(Measures):
    """day x person (with the team the usage counted in, which scoping filters on)."""

    day = models.DateField()
    person = _ref(Person)
    team = _ref(Team)

    class Meta:
        indexes = [
            models.Index(fields=["organisation", "day"], name="dash_dp_org_day"),
            # A person page reads one person's days, not the organisation's.
            models.Index(fields=["organisation", "person", "day"], name="dash_dp_org_person_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} person {self.person_id}"


class DayPersonModel(Measures):
    """day x person x model: one person's models (a person page, a member's models page) without reading
    the organisation's full rollup for the period."""

    day = models.DateField()
    person = _ref(Person)
    team = _ref(Team)
    provider = _ref(Provider, null=False)
    model = _ref(AIModel, null=False)

    class Meta:
        indexes = [
            models.Index(fields=["organisation", "day"], name="dash_dpm_org_day"),
            models.Index(fields=["organisation", "person", "day"], name="dash_dpm_org_person_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} person {self.person_id} model {self.model_id}"


class DayPersonTask(Measures):
    """day x person x task: one person's tasks, and a task's people."""

    day = models.DateField()
    person = _ref(Person)
    team = _ref(Team)
    task = _ref(Task)

    class Meta:
        indexes = [
            models.Index(fields=["organisation", "day"], name="dash_dpt_org_day"),
            models.Index(fields=["organisation", "person", "day"], name="dash_dpt_org_person_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} person {self.person_id} task {self.task_id}"


class MonthPerson(Measures):
    """organisation-local month x person: "top people" over long ranges reads months, not days."""

    month = models.DateField()  # the first day of the month
    person = _ref(Person)
    team = _ref(Team)

    class Meta:
        indexes = [models.Index(fields=["organisation", "month"], name="dash_mp_org_month")]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} person {self.person_id}"
