"""Business outcomes the organisation runs on (tickets resolved, PRs merged, deals closed, revenue), their
values per team or task and period, and the dates teams adopted AI (what before/after comparisons pivot on).

A value is stored once per metric, team (or task) and period: sending it again replaces it. Values are
exact decimals; money per unit is in USD, like every amount in SpendWatch.
"""

from django.conf import settings
from django.db import models

from apps.org.models import Organisation, Task, Team


class Direction(models.TextChoices):
    HIGHER = "higher", "Higher is better"
    LOWER = "lower", "Lower is better"


class MetricScope(models.TextChoices):
    TEAM = "team", "Team"
    TASK = "task", "Task"


class MetricGrain(models.TextChoices):
    DAY = "day", "Day"
    WEEK = "week", "Week (ISO, from Monday)"
    MONTH = "month", "Month"


class Aggregation(models.TextChoices):
    """How periods and teams combine: counts and amounts add up; scores and rates are averaged."""

    SUM = "sum", "Sum (counts, amounts)"
    MEAN = "mean", "Average (scores, rates)"


class Metric(models.Model):
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="metrics")
    key = models.SlugField(max_length=100)
    name = models.CharField(max_length=200)
    unit = models.CharField(max_length=50)  # what one counts: "tickets", "PRs", "USD", "points"
    direction = models.CharField(max_length=10, choices=Direction.choices, default=Direction.HIGHER)
    # What one unit is worth to the business, in USD; only for summed, higher-is-better metrics.
    value_per_unit = models.DecimalField(max_digits=18, decimal_places=6, null=True, blank=True)
    scope = models.CharField(max_length=10, choices=MetricScope.choices, default=MetricScope.TEAM)
    grain = models.CharField(max_length=10, choices=MetricGrain.choices, default=MetricGrain.WEEK)
    aggregation = models.CharField(max_length=10, choices=Aggregation.choices, default=Aggregation.SUM)
    description = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organisation", "key"], name="metric_key_unique_per_org"),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def has_cost_per_outcome(self) -> bool:
        """Cost per outcome only reads sensibly for outcomes one wants more of and that add up."""
        return self.aggregation == Aggregation.SUM and self.direction == Direction.HIGHER


class MetricValue(models.Model):
    """One period's value for a team or a task (exactly one of the two, as the metric's scope says)."""

    metric = models.ForeignKey(Metric, on_delete=models.CASCADE, related_name="metric_values")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    task = models.ForeignKey(Task, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    period_start = models.DateField()  # the first day of the period (a Monday, the 1st of a month, ...)
    # 15 significant digits at most: exact on PostgreSQL and through SQLite's 64-bit floats alike.
    value = models.DecimalField(max_digits=15, decimal_places=4)
    source = models.CharField(max_length=200, blank=True, default="")  # where it last came from
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            # Two plain (not partial) unique constraints: the unused column is NULL, and NULLs never
            # collide, so each scope is unique on its own column and an upsert can name it in ON CONFLICT.
            models.UniqueConstraint(
                fields=["metric", "team", "period_start"], name="metric_value_team_period"
            ),
            models.UniqueConstraint(
                fields=["metric", "task", "period_start"], name="metric_value_task_period"
            ),
            models.CheckConstraint(
                condition=models.Q(team__isnull=False, task__isnull=True)
                | models.Q(team__isnull=True, task__isnull=False),
                name="metric_value_team_or_task",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.metric.key} {self.period_start}: {self.value}"


class Adoption(models.Model):
    """The day a team adopted AI in its work (a rollout, not its first request): the pivot of the
    before/after comparison. Teams without one serve as comparison teams."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    team = models.OneToOneField(Team, on_delete=models.CASCADE, related_name="+")
    adopted_on = models.DateField()
    note = models.CharField(max_length=300, blank=True, default="")
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["adopted_on", "team__name"]

    def __str__(self) -> str:
        return f"{self.team} adopted AI on {self.adopted_on}"
