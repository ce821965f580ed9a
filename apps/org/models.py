"""Who spends: organisations, the team tree, people, tasks (use cases), the identities and rules that map
raw usage fields to them, HR imports, and the record of each re-attribution run."""

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models


class Organisation(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)
    time_zone = models.CharField(max_length=64, default="UTC")
    # Raised with every change of identities, rules or people: a running ingestion sees it and reloads
    # what it attributes with (apps.org.attribution.Resolver).
    attribution_version = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return self.name


class Team(models.Model):
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="teams")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    name = models.CharField(max_length=200)
    slug = models.SlugField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organisation", "slug"], name="team_slug_unique_per_org")
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Person(models.Model):
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="people")
    email = models.EmailField()
    name = models.CharField(max_length=200)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="members")
    # Deactivated, never deleted: their past usage stays theirs.
    is_active = models.BooleanField(default=True)
    manager = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reports"
    )
    cost_centre = models.CharField(max_length=100, blank=True, default="")
    annual_loaded_cost = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organisation", "email"], name="person_email_unique_per_org")
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Task(models.Model):
    """A use case the organisation pays for (support triage, code review, ...)."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="tasks")
    key = models.SlugField(max_length=100)
    name = models.CharField(max_length=200)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organisation", "key"], name="task_key_unique_per_org")
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class IdentityKind(models.TextChoices):
    """The raw identity kinds the adapters produce (the keys of NormalisedRow.identity).

    Tag-based sources (Bedrock request metadata, Azure and GCP resource tags, Gemini labels) pass any tag
    key through as a kind of its own, so an Identity or Rule may name a kind not listed here.
    """

    USER = "user", "Provider or gateway user"
    EMAIL = "email", "Email address (Claude Code, SSO session)"
    END_USER = "end_user", "End user of an application"
    API_KEY = "api_key", "API key (id or hash)"
    API_KEY_ALIAS = "api_key_alias", "API key name or alias"
    SERVICE_ACCOUNT = "service_account", "Service account"
    ARN = "arn", "AWS IAM ARN"
    GATEWAY_TEAM = "gateway_team", "Gateway team"
    GATEWAY_TEAM_ALIAS = "gateway_team_alias", "Gateway team alias"
    TEAM = "team", "Team tag"
    PROJECT = "project", "Project / app"
    WORKSPACE = "workspace", "Workspace"
    DEPLOYMENT = "deployment", "Deployment"
    RESOURCE = "resource", "Cloud resource"
    RESOURCE_GROUP = "resource_group", "Resource group"
    SUBSCRIPTION = "subscription", "Subscription"
    ACCOUNT = "account", "Cloud account"
    TAG = "tag", "Tag or metadata task"


identity_kind_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9_.:-]*$", "lower-case letters, digits and _ . : - (e.g. api_key, cost_center)"
)


class Identity(models.Model):
    """One raw identity of a source (an API key, a project, a gateway user, a tag) and what it stands for.

    Any of person/team/task may be empty: a shared project key names a team but no person.
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="identities")
    kind = models.CharField(max_length=64, validators=[identity_kind_validator])  # see IdentityKind
    value = models.CharField(max_length=300)
    person = models.ForeignKey(Person, null=True, blank=True, on_delete=models.CASCADE)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE)
    task = models.ForeignKey(Task, null=True, blank=True, on_delete=models.CASCADE)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organisation", "kind", "value"], name="identity_unique_per_org")
        ]
        verbose_name_plural = "identities"

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


class RawIdentity(models.Model):
    """The distinct combination of raw identity fields seen on usage rows, stored once.

    Facts point here instead of repeating the strings on every row; attribution is a function of this
    row, so it is resolved once per combination and can be recomputed when identities change.
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    digest = models.CharField(max_length=32)
    fields = models.JSONField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organisation", "digest"], name="raw_identity_unique")]

    def __str__(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(self.fields.items()))


class Rule(models.Model):
    """An ordered pattern rule: when a raw field matches `pattern`, the row goes to team/person/task.

    Rules fill what exact Identity rows left open, in `order` (then creation order); the first matching
    rule that names a team gives the team, and likewise for person and task.
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="rules")
    order = models.PositiveIntegerField(default=100)
    source = models.ForeignKey(
        "ingestion.DataSource", null=True, blank=True, on_delete=models.RESTRICT, related_name="+"
    )
    field = models.CharField(max_length=64, validators=[identity_kind_validator])  # an identity kind
    pattern = models.CharField(max_length=500)  # a Python regular expression, searched in the value
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.RESTRICT, related_name="+")
    person = models.ForeignKey(Person, null=True, blank=True, on_delete=models.RESTRICT, related_name="+")
    task = models.ForeignKey(Task, null=True, blank=True, on_delete=models.RESTRICT, related_name="+")
    note = models.CharField(max_length=300, blank=True, default="")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["order", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(team__isnull=False)
                | models.Q(person__isnull=False)
                | models.Q(task__isnull=False),
                name="rule_has_a_target",
            )
        ]

    def __str__(self) -> str:
        return f"#{self.order} {self.field} ~ /{self.pattern}/"


class AttributionRunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class AttributionRun(models.Model):
    """One re-attribution of an organisation's usage: who asked, why, and what moved from whom to whom.

    `moves`: [{"from": owner, "to": owner, "rows": n, "nanos": n}] with owner = {"team", "person",
    "task"} labels; `owner_totals`: [{"dimension", "id", "label", "before_rows", "after_rows",
    "before_nanos", "after_nanos"}] for each team, person and task whose total changed.
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="attribution_runs")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by_label = models.CharField(max_length=254)
    reason = models.CharField(max_length=300)
    status = models.CharField(
        max_length=10, choices=AttributionRunStatus.choices, default=AttributionRunStatus.QUEUED
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    raw_identities = models.BigIntegerField(default=0)  # distinct raw identities re-resolved
    rows_moved = models.BigIntegerField(default=0)
    nanos_moved = models.BigIntegerField(default=0)  # priced cost of the rows moved
    total_rows = models.BigIntegerField(null=True, blank=True)  # the organisation's, before = after
    total_nanos = models.BigIntegerField(null=True, blank=True)
    days_refreshed = models.IntegerField(default=0)
    moves = models.JSONField(default=list)
    owner_totals = models.JSONField(default=list)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"attribution run #{self.pk} ({self.status})"


class PeopleImport(models.Model):
    """An uploaded HR file, kept so that its preview and its application read the same content."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="people_imports")
    file_name = models.CharField(max_length=255)
    content = models.TextField()
    full_list = models.BooleanField(default=True)  # people missing from a full list are deactivated
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    uploaded_by_label = models.CharField(max_length=254)
    created_at = models.DateTimeField(auto_now_add=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    summary = models.JSONField(null=True, blank=True)  # counts of what applying changed
    attribution_run = models.ForeignKey(
        AttributionRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return self.file_name
