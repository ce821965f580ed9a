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
