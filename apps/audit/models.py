"""The audit trail: one append-only row per change to who-pays-for-what (rules, identities, people,
teams, roles, budgets, price overrides).

Append-only at two levels: the model and its queryset refuse to update or delete, and the database
refuses too (a trigger; see migration 0002), so neither the admin nor a bulk call nor raw SQL through
the application can rewrite history.
"""

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from apps.org.models import Organisation


class AuditEntryIsAppendOnly(Exception):
    """An attempt to change or delete an audit entry."""


class AuditEntryQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AuditEntryIsAppendOnly("audit entries cannot be updated")

    def delete(self):
        raise AuditEntryIsAppendOnly("audit entries cannot be deleted")

    update.queryset_only = True  # type: ignore[attr-defined]
    delete.queryset_only = True  # type: ignore[attr-defined]


class AuditEntry(models.Model):
    # No database constraint and no cascade on the two foreign keys: deleting an organisation or a
    # login must not delete (or rewrite) the history of what they did; actor_label keeps it readable.
    organisation = models.ForeignKey(
        Organisation, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_label = models.CharField(max_length=254)  # the login's email, or the system caller's name
    action = models.CharField(max_length=64)  # "<object>.<verb>", e.g. "rule.updated"
    object_type = models.CharField(max_length=64)  # "<app>.<model>", e.g. "org.rule"
    object_id = models.CharField(max_length=64, blank=True, default="")
    before = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    after = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)  # UTC, like every stored time
    request_id = models.CharField(max_length=64, blank=True, default="")
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["organisation", "-created_at"], name="audit_org_time")]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.action} {self.object_type}#{self.object_id} by {self.actor_label}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise AuditEntryIsAppendOnly("audit entries cannot be updated")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AuditEntryIsAppendOnly("audit entries cannot be deleted")
