"""Who may see what: a user's role in one organisation, and the teams a manager manages."""

from django.conf import settings
from django.db import models

from apps.org.models import Organisation, Person, Team


class Role(models.TextChoices):
    CIO = "cio", "CIO"
    FINOPS = "finops", "FinOps"
    MANAGER = "manager", "Manager"
    MEMBER = "member", "Member"


ORGANISATION_WIDE_ROLES = frozenset({Role.CIO, Role.FINOPS})


class Membership(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership")
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.MEMBER)
    person = models.ForeignKey(Person, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    managed_teams = models.ManyToManyField(Team, blank=True, related_name="managers")

    def __str__(self) -> str:
        return f"{self.user} ({self.role} of {self.organisation})"


class KeyScope(models.TextChoices):
    INGEST = "ingest", "Push usage (ingest API)"
    GATEWAY = "gateway", "Budget checks (gateway)"
    READ = "read", "Read spend (reporting API)"


class MachineKey(models.Model):
    """A key for machines (gateways, exporters), bound to one organisation and its scopes.

    Only a SHA-256 of the secret is stored: the secret is 32 random bytes, so a fast hash is enough,
    and the full key is shown once, when it is created. `prefix` finds the row without the secret.
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="machine_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
