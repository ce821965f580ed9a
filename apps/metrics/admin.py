from django.contrib import admin

from apps.metrics.models import Adoption, Metric


@admin.register(Metric)
class MetricAdmin(admin.ModelAdmin):
    list_display = ("name", "key", "organisation", "unit", "scope", "grain", "direction", "value_per_unit")
    list_filter = ("organisation", "scope", "grain")


@admin.register(Adoption)
class AdoptionAdmin(admin.ModelAdmin):
    list_display = ("team", "adopted_on", "organisation")
