"""What the overuse detector keeps: one classification per usage fact that had prompt text, the
organisation's prompt policy, its tier overrides, feedback on labels and the audit of excerpt views.

Observations are keyed by the usage fact's natural key (source, ts, record_key) and reach the fact
through a ForeignObject: a join on those three columns, with no database constraint on the ledger.
"""

from django.conf import settings
from django.db import models

from apps.accounts.models import Role
from apps.catalog.models import Tier
from apps.ingestion.models import DataSource
from apps.org.models import Organisation
from apps.usage.models import UsageFact


class PromptLabel(models.TextChoices):
    TRIVIAL = "trivial", "Trivial"
    NON_WORK = "non_work", "Non-work"
    SUBSTANTIVE = "substantive", "Substantive"


class PromptStorage(models.TextChoices):
    NONE = "none", "Store no prompt text"
    EXCERPT = "excerpt", "Redacted excerpt (200 characters)"
    FULL = "full", "Full redacted text"


def _default_excerpt_roles() -> list[str]:
    return [Role.CIO.value, Role.FINOPS.value]


class OverusePolicy(models.Model):
    """One organisation's choices for prompt text: what is stored, who may read it, feedback training."""

    organisation = models.OneToOneField(Organisation, on_delete=models.CASCADE, related_name="overuse_policy")
    prompt_storage = models.CharField(
        max_length=10, choices=PromptStorage.choices, default=PromptStorage.EXCERPT
    )
    # Roles that may read excerpts of prompts in their scope; every read is logged (ExcerptView).
    excerpt_roles = models.JSONField(default=_default_excerpt_roles)
    # Whether "not trivial" feedback may be used to train this organisation's classifier.
    train_on_feedback = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "overuse policies"

    def __str__(self) -> str:
        return f"{self.organisation}: {self.prompt_storage}"


class PromptObservation(models.Model):
    """The classifier's verdict on one request's last user message (text only as the policy allows)."""

    id = models.BigAutoField(primary_key=True)
    organisation = models.ForeignKey(
        Organisation, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    source = models.ForeignKey(
        DataSource, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    ts = models.DateTimeField()
    record_key = models.CharField(max_length=200)
    fact = models.ForeignObject(
        UsageFact,
        on_delete=models.DO_NOTHING,
        from_fields=["source", "ts", "record_key"],
        to_fields=["source", "ts", "record_key"],
        related_name="prompt_observation",
    )
    label = models.CharField(max_length=12, choices=PromptLabel.choices)
    score = models.FloatField()  # the probability of `label`
    p_trivial = models.FloatField()
    p_non_work = models.FloatField()
    classifier_version = models.CharField(max_length=40)
    prompt_hash = models.CharField(max_length=64)  # HMAC-SHA256 hex of the normalised prompt
    prompt_chars = models.PositiveIntegerField()
    excerpt = models.TextField(blank=True, default="")  # redacted; empty under the "none" policy

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "ts", "record_key"], name="prompt_observation_natural_key"
            )
        ]
        indexes = [
            models.Index(fields=["organisation", "prompt_hash"], name="prompt_obs_org_hash"),
            models.Index(fields=["organisation", "label", "ts"], name="prompt_obs_org_label_ts"),
        ]

    def __str__(self) -> str:
        return f"{self.record_key}: {self.label} ({self.score:.2f})"


class ModelTierOverride(models.Model):
    """An organisation's own tier for models matching a pattern, from a date (wins over the rules file)."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    provider = models.CharField(max_length=50, blank=True, help_text="Provider slug; empty for any provider.")
    model_pattern = models.CharField(
        max_length=200, help_text="Regular expression searched in the model name."
    )
    tier = models.CharField(max_length=20, choices=[c for c in Tier.choices if c[0] != Tier.UNKNOWN])
    open_weight = models.BooleanField(null=True, blank=True)
    effective_from = models.DateField()
    note = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"{self.provider or '*'}/{self.model_pattern} → {self.tier} from {self.effective_from}"


class CheaperModelChoice(models.Model):
    """An organisation's own counterfactual model for a provider and tier, from a date."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    provider = models.CharField(max_length=50)
    tier = models.CharField(max_length=20, choices=[c for c in Tier.choices if c[0] != Tier.UNKNOWN])
    model = models.CharField(max_length=200)
    reasons = models.BooleanField(default=False, help_text="The target model produces reasoning tokens.")
    effective_from = models.DateField()

    def __str__(self) -> str:
        return f"{self.provider} {self.tier} → {self.model} from {self.effective_from}"


class LabelFeedback(models.Model):
    """ "Not trivial": a person's correction of one observation, kept for the organisation's next training."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    source = models.ForeignKey(
        DataSource, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    ts = models.DateTimeField()
    record_key = models.CharField(max_length=200)
    prompt_hash = models.CharField(max_length=64)
    original_label = models.CharField(max_length=12, choices=PromptLabel.choices)
    corrected_label = models.CharField(max_length=12, choices=PromptLabel.choices)
    # The redacted excerpt when the policy stored one: the only text a training run can learn from.
    text = models.TextField(blank=True, default="")
    given_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    given_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "source", "ts", "record_key"], name="label_feedback_once_per_request"
            )
        ]

    def __str__(self) -> str:
        return f"{self.record_key}: {self.original_label} → {self.corrected_label}"


class ClassifierTraining(models.Model):
    """A training run for one organisation: base data plus its feedback up to `feedback_up_to`."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    version = models.CharField(max_length=40)
    feedback_up_to = models.BigIntegerField()  # the highest LabelFeedback id included
    feedback_examples = models.PositiveIntegerField()
    trained_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.organisation}: {self.version}"


class ExcerptView(models.Model):
    """Audit: who read which prompt excerpt, and when (TESTPLAN H8)."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    observation = models.ForeignKey(PromptObservation, on_delete=models.CASCADE, related_name="+")
    viewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    viewed_at = models.DateTimeField(auto_now_add=True)
    page = models.CharField(max_length=100)

    def __str__(self) -> str:
        return f"{self.viewed_by} read {self.observation_id} at {self.viewed_at:%Y-%m-%d %H:%M}"
