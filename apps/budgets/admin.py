"""Read-only admin: limits change through the budget pages, where the rules and the audit trail live."""

from django.contrib import admin

from apps.budgets.models import Alert, BudgetAudit, BudgetSettings, Limit, LimitState


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Limit)
class LimitAdmin(ReadOnlyAdmin):
    list_display = (
        "pk",
        "organisation",
        "scope_kind",
        "team",
        "person",
        "task",
        "unit",
        "amount",
        "period",
        "is_active",
    )
    list_filter = ("organisation", "scope_kind", "period", "unit", "is_active")


@admin.register(LimitState)
class LimitStateAdmin(ReadOnlyAdmin):
    list_display = (
        "scope",
        "period_start",
        "period_end",
        "spent",
        "limit_amount",
        "projected",
        "refreshed_at",
    )


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "organisation", "kind", "threshold", "status", "message")
    list_filter = ("organisation", "kind", "status")


@admin.register(BudgetAudit)
class BudgetAuditAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "organisation", "actor_label", "action", "limit", "reason")
    list_filter = ("organisation", "action")


@admin.register(BudgetSettings)
class BudgetSettingsAdmin(ReadOnlyAdmin):
    list_display = ("organisation", "fiscal_year_start_month")
