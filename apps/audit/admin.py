"""Read-only admin: the trail is append-only, here as everywhere else."""

from django.contrib import admin

from apps.audit.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "organisation", "actor_label", "action", "object_type", "object_id")
    list_filter = ("organisation", "action", "object_type")
    search_fields = ("actor_label", "object_id", "request_id")
    actions = None  # no bulk "delete selected"

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
