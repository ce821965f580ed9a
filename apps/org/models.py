"""Who spends: organisations, the team tree, people, tasks (use cases) and the identities that map to them."""

from django.db import models


class Organisation(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)
    time_zone = models.CharField(max_length=64, default="UTC")

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
    is_active = models.BooleanField(default=True)

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
    API_KEY = "api_key", "API key (id, hash or alias)"
    PROJECT = "project", "Project / workspace"
    USER = "user", "Provider or gateway user"
    GATEWAY_TEAM = "gateway_team", "Gateway team"
    TAG = "tag", "Tag or metadata task"


class Identity(models.Model):
    """One raw identity of a source (an API key, a project, a gateway user, a tag) and what it stands for.

    Any of person/team/task may be empty: a shared project key names a team but no person.
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="identities")
    kind = models.CharField(max_length=20, choices=IdentityKind.choices)
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
