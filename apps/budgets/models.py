"""Budgets: limits managers own, their state in the current period, the alerts they raised, and an audit trail.

A limit is set on one scope (a team, optionally with its sub-teams; a person; a task; or a per-person
default inside a team), in USD (stored as integer nano-dollars, like the ledger) or in tokens, for a
recurring period (month, quarter, fiscal year) or fixed dates, all in the organisation's time zone.

`LimitState` is what the check API and the pages read: spend so far and the forecast, recomputed when an
ingestion refreshes rollups (never computed in a request). `CheckEntry` maps each subject a gateway can
name (a person, a team, a task) to the states that constrain it, so a check is one indexed lookup.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.org.models import Organisation, Person, Task, Team

DEFAULT_THRESHOLDS = [50, 80, 100]


def default_thresholds() -> list[int]:
    return list(DEFAULT_THRESHOLDS)


class BudgetSettings(models.Model):
    """What budgets need to know about an organisation that the organisation model does not hold."""

    organisation = models.OneToOneField(
        Organisation, on_delete=models.CASCADE, related_name="budget_settings"
    )
    fiscal_year_start_month = models.PositiveSmallIntegerField(default=1)  # 1 = January ... 12 = December
    alert_emails = models.TextField(blank=True, default="")  # comma-separated, get every alert
    webhook_url = models.URLField(blank=True, default="", max_length=500)  # Slack-compatible JSON POST
    # Bumped in the transaction of every state change: web processes poll it to know when to reload.
    state_version = models.BigIntegerField(default=0)

    class Meta:
        verbose_name_plural = "budget settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(fiscal_year_start_month__gte=1, fiscal_year_start_month__lte=12),
                name="budget_settings_fiscal_month_valid",
            )
        ]

    def __str__(self) -> str:
        return f"budget settings of {self.organisation}"


class ScopeKind(models.TextChoices):
    TEAM = "team", "Team"
    PERSON = "person", "Person"
    TASK = "task", "Task"
    PERSON_DEFAULT = "person_default", "Each person in a team"


class Unit(models.TextChoices):
    USD = "usd", "USD"
    TOKENS = "tokens", "Tokens"


class Period(models.TextChoices):
    MONTH = "month", "Calendar month"
    QUARTER = "quarter", "Quarter"
    FISCAL_YEAR = "fiscal_year", "Fiscal year"
    CUSTOM = "custom", "Custom dates"


class Limit(models.Model):
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="budget_limits")
    scope_kind = models.CharField(max_length=20, choices=ScopeKind.choices)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    person = models.ForeignKey(Person, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    task = models.ForeignKey(Task, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    # Team: the sub-teams' spend counts too. Per-person default: people of the sub-teams get it too.
    include_subteams = models.BooleanField(default=False)
    unit = models.CharField(max_length=10, choices=Unit.choices, default=Unit.USD)
    amount = models.BigIntegerField()  # nano-dollars for USD, tokens for tokens
    period = models.CharField(max_length=20, choices=Period.choices, default=Period.MONTH)
    custom_start = models.DateField(null=True, blank=True)
    custom_end = models.DateField(null=True, blank=True)  # inclusive
    thresholds = models.JSONField(default=default_thresholds)  # percentages, ascending
    notify_emails = models.TextField(blank=True, default="")  # comma-separated, besides the settings' list
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="budget_limit_amount_positive"),
            models.CheckConstraint(
                condition=(
                    Q(scope_kind="team", team__isnull=False, person__isnull=True, task__isnull=True)
                    | Q(scope_kind="person", team__isnull=True, person__isnull=False, task__isnull=True)
                    | Q(scope_kind="task", team__isnull=True, person__isnull=True, task__isnull=False)
                    | Q(
                        scope_kind="person_default",
                        team__isnull=False,
                        person__isnull=True,
                        task__isnull=True,
                    )
                ),
                name="budget_limit_scope_consistent",
            ),
            models.CheckConstraint(
                condition=(
                    ~Q(period="custom")
                    | Q(
                        custom_start__isnull=False,
                        custom_end__isnull=False,
                        custom_end__gte=models.F("custom_start"),
                    )
                ),
                name="budget_limit_custom_dates",
            ),
        ]

    def __str__(self) -> str:
        return f"limit {self.pk} ({self.scope_kind})"


class LimitState(models.Model):
    """One limit's current period (per person, for a per-person default): spend so far and the forecast."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    limit = models.ForeignKey(Limit, on_delete=models.CASCADE, related_name="states")
    person = models.ForeignKey(Person, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    scope = models.CharField(max_length=300)  # what the check API answers, e.g. "team:platform"
    unit = models.CharField(max_length=10, choices=Unit.choices)
    limit_amount = models.BigIntegerField()
    recurring = models.BooleanField()  # False for custom dates: the limit ends with its period
    period_start = models.DateField()
    period_end = models.DateField()
    spent = models.BigIntegerField(default=0)
    # Forecast of the period's end (same unit); null when there is no history to project from.
    projected = models.BigIntegerField(null=True)
    projected_low = models.BigIntegerField(null=True)
    projected_high = models.BigIntegerField(null=True)
    exhaustion_date = models.DateField(null=True)  # first day spend reaches the limit, actual or projected
    refreshed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["limit"], condition=Q(person__isnull=True), name="budget_state_one_per_limit"
            ),
            models.UniqueConstraint(
                fields=["limit", "person"],
                condition=Q(person__isnull=False),
                name="budget_state_one_per_person",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.period_start}..{self.period_end}"


class StateDay(models.Model):
    """A state's spend on one organisation-local day: the period so far plus a look-back for forecasts.

    Kept so that an ingestion recomputes only the days it touched, not the whole period.
    """

    state = models.ForeignKey(LimitState, on_delete=models.CASCADE, related_name="days")
    day = models.DateField()
    amount = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["state", "day"], name="budget_state_day_unique")]

    def __str__(self) -> str:
        return f"{self.day}: {self.amount}"


class CheckEntry(models.Model):
    """Subject -> a state that constrains it. Subjects: "p:<person id>", "t:<team id>", "k:<task id>".

    A team limit with sub-teams has one entry per team of its subtree, so the check needs no tree walk.
    """

    organisation_id = models.BigIntegerField()
    subject = models.CharField(max_length=40)
    state = models.ForeignKey(LimitState, on_delete=models.CASCADE, related_name="+")

    class Meta:
        indexes = [models.Index(fields=["organisation_id", "subject"], name="budget_check_subject")]

    def __str__(self) -> str:
        return self.subject


class AlertKind(models.TextChoices):
    THRESHOLD = "threshold", "Threshold reached"
    FORECAST = "forecast", "Projected to exceed"


class AlertStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SUPERSEDED = "superseded", "Superseded by a higher threshold"


class Alert(models.Model):
    """One alert of one limit (and person, for per-person defaults) in one period; raised at most once."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    limit = models.ForeignKey(Limit, on_delete=models.CASCADE, related_name="alerts")
    person = models.ForeignKey(Person, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    period_start = models.DateField()
    period_end = models.DateField()
    kind = models.CharField(max_length=20, choices=AlertKind.choices)
    threshold = models.PositiveSmallIntegerField()  # percent; 100 for a forecast alert
    unit = models.CharField(max_length=10, choices=Unit.choices)
    spent = models.BigIntegerField()
    limit_amount = models.BigIntegerField()
    projected = models.BigIntegerField(null=True)
    exhaustion_date = models.DateField(null=True)
    message = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=20, choices=AlertStatus.choices, default=AlertStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_until = models.DateTimeField(null=True, blank=True)
    email_recipients = models.TextField(blank=True, default="")
    email_sent_at = models.DateTimeField(null=True, blank=True)
    email_error = models.TextField(blank=True, default="")
    webhook_url = models.URLField(blank=True, default="", max_length=500)
    webhook_sent_at = models.DateTimeField(null=True, blank=True)
    webhook_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            # The database, not a check in code, makes "once per threshold per period" hold under races.
            models.UniqueConstraint(
                fields=["limit", "period_start", "kind", "threshold"],
                condition=Q(person__isnull=True),
                name="budget_alert_once",
            ),
            models.UniqueConstraint(
                fields=["limit", "person", "period_start", "kind", "threshold"],
                condition=Q(person__isnull=False),
                name="budget_alert_once_per_person",
            ),
        ]

    def __str__(self) -> str:
        return self.message


class AuditAction(models.TextChoices):
    CREATED = "created", "Created"
    UPDATED = "updated", "Updated"
    DEACTIVATED = "deactivated", "Deactivated"
    SETTINGS = "settings", "Settings changed"
    REFUSED = "refused", "Refused"


class BudgetAudit(models.Model):
    """Every change to a limit or the budget settings, and every refused attempt (who, what, before, after)."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=254)  # the user's email, or the system caller's name
    limit = models.ForeignKey(Limit, null=True, blank=True, on_delete=models.SET_NULL, related_name="audits")
    action = models.CharField(max_length=20, choices=AuditAction.choices)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True, default="")
    request_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)  # UTC, like every stored time

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_label}"
