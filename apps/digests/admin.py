from django.contrib import admin

from apps.digests.models import DigestDelivery, DigestPreference, DigestSchedule


@admin.register(DigestSchedule)
class DigestScheduleAdmin(admin.ModelAdmin):
    list_display = ("organisation", "enabled", "weekday", "send_time")


@admin.register(DigestPreference)
class DigestPreferenceAdmin(admin.ModelAdmin):
    list_display = ("user", "subscribed", "changed_via", "changed_at")


@admin.register(DigestDelivery)
class DigestDeliveryAdmin(admin.ModelAdmin):
    """The ledger is read-only here: editing a row could send a digest twice, or never."""

    list_display = ("week", "email", "role", "status", "attempts", "sent_at")
    list_filter = ("status", "week")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
