from django.contrib import admin

from apps.overuse import services
from apps.overuse.models import (
    CheaperModelChoice,
    ExcerptView,
    LabelFeedback,
    ModelTierOverride,
    OverusePolicy,
)


@admin.register(OverusePolicy)
class OverusePolicyAdmin(admin.ModelAdmin):
    list_display = ("organisation", "prompt_storage", "excerpt_roles", "train_on_feedback", "updated_at")

    def save_model(self, request, obj, form, change) -> None:
        # Through the service: choosing "none" must also erase the text already stored.
        services.policy_set(
            organisation_id=obj.organisation_id,
            prompt_storage=obj.prompt_storage,
            excerpt_roles=obj.excerpt_roles,
            train_on_feedback=obj.train_on_feedback,
        )


@admin.register(ModelTierOverride)
class ModelTierOverrideAdmin(admin.ModelAdmin):
    list_display = (
        "organisation",
        "provider",
        "model_pattern",
        "tier",
        "open_weight",
        "effective_from",
        "note",
    )


@admin.register(CheaperModelChoice)
class CheaperModelChoiceAdmin(admin.ModelAdmin):
    list_display = ("organisation", "provider", "tier", "model", "reasons", "effective_from")


@admin.register(ExcerptView)
class ExcerptViewAdmin(admin.ModelAdmin):
    """The audit of excerpt reads: read-only."""

    list_display = ("organisation", "observation", "viewed_by", "viewed_at", "page")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(LabelFeedback)
class LabelFeedbackAdmin(admin.ModelAdmin):
    list_display = ("organisation", "record_key", "original_label", "corrected_label", "given_by", "given_at")
    exclude = ("text",)  # prompt text stays out of the admin
