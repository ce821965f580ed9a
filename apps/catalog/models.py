"""Providers, models, the provenance of every computed price, and the organisation's own price terms."""

from django.conf import settings
from django.db import models


class Provider(models.Model):
    # The slug is genai-prices' provider id where it has one (openai, anthropic, google, aws, azure, ...).
    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.name


class Tier(models.TextChoices):
    FRONTIER = "frontier", "Frontier"
    STANDARD = "standard", "Standard"
    SMALL = "small", "Small"
    UNKNOWN = "unknown", "Not tiered yet"


class AIModel(models.Model):
    """A model name as the sources report it (after normalisation), per provider."""

    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="models")
    name = models.CharField(max_length=200)
    tier = models.CharField(max_length=20, choices=Tier.choices, default=Tier.UNKNOWN)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "name"], name="model_unique_per_provider")]
        ordering = ["provider__slug", "name"]

    def __str__(self) -> str:
        return f"{self.provider.slug}/{self.name}"


class PriceRef(models.Model):
    """Which price data priced a fact: package and version, the matched provider/model, the context."""

    source = models.CharField(max_length=100)  # e.g. "genai-prices 0.2.3"
    provider_ref = models.CharField(max_length=100)
    model_ref = models.CharField(max_length=200)
    context = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "provider_ref", "model_ref", "context"], name="price_ref_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.source}: {self.provider_ref}/{self.model_ref} {self.context}".strip()


class ModelMapping(models.Model):
    """An organisation's answer for a model name no rule normalises: raw provider + model -> a known model.

    Keys are the names after the built-in rules (apps.catalog.normalise), as the unpriced queue shows them.
    Ingestion applies the mapping to new rows; saving one also moves the facts already stored under the
    raw name (a re-pricing run).
    """

    organisation = models.ForeignKey("org.Organisation", on_delete=models.CASCADE, related_name="+")
    raw_provider = models.CharField(max_length=50)
    raw_model = models.CharField(max_length=200)
    provider = models.CharField(max_length=50)  # canonical provider slug
    model = models.CharField(max_length=200)  # canonical model name
    note = models.CharField(max_length=300, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "raw_provider", "raw_model"], name="model_mapping_unique_raw"
            )
        ]
        ordering = ["raw_provider", "raw_model"]

    def __str__(self) -> str:
        return f"{self.raw_provider}/{self.raw_model} -> {self.provider}/{self.model}"


class OverrideKind(models.TextChoices):
    DISCOUNT = "discount", "Percentage discount"
    CUSTOM_PRICE = "custom_price", "Custom price"
    BATCH_DISCOUNT = "batch_discount", "Batch discount (where the price data has none)"


class PriceOverride(models.Model):
    """An organisation's own price term, effective from `valid_from` to `valid_to` (UTC dates, inclusive).

    - discount: `percent` off the net price of every row of the provider, or of one model;
    - custom_price: the model's price per million tokens of each kind (a negotiated rate, or the price of a
      model no price data knows);
    - batch_discount: `percent` off batch rows whose price data has no batch price of its own that day.

    List cost always stays the price data's; overrides change the net cost only (apps.catalog.prices).
    """

    organisation = models.ForeignKey("org.Organisation", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=20, choices=OverrideKind.choices)
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="+")
    model = models.ForeignKey(AIModel, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    percent = models.DecimalField(max_digits=7, decimal_places=4, null=True, blank=True)
    input_mtok = models.DecimalField(max_digits=18, decimal_places=6, null=True, blank=True)
    cache_read_mtok = models.DecimalField(max_digits=18, decimal_places=6, null=True, blank=True)
    cache_write_mtok = models.DecimalField(max_digits=18, decimal_places=6, null=True, blank=True)
    cache_write_1h_mtok = models.DecimalField(max_digits=18, decimal_places=6, null=True, blank=True)
    output_mtok = models.DecimalField(max_digits=18, decimal_places=6, null=True, blank=True)
    valid_from = models.DateField()
    valid_to = models.DateField(null=True, blank=True)  # the last day it applies; open-ended when empty
    note = models.CharField(max_length=300, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["provider__slug", "model__name", "kind", "valid_from"]
        indexes = [models.Index(fields=["organisation", "provider"], name="price_override_org_provider")]

    def __str__(self) -> str:
        target = self.model.name if self.model_id else f"all {self.provider.slug} models"
        return f"{self.get_kind_display()} on {target} from {self.valid_from}"

    def applies_on(self, day) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


class OverrideSet(models.Model):
    """The overrides that set a fact's net price, as one row: "3,17" (ids, ascending)."""

    key = models.CharField(max_length=200, unique=True)

    def __str__(self) -> str:
        return f"overrides {self.key}"

    @property
    def override_ids(self) -> list[int]:
        return [int(part) for part in self.key.split(",") if part]


class RepricingStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class RepricingRun(models.Model):
    """One re-pricing of stored facts after a change of overrides, mappings or price data.

    Scope: the organisation's priced (non-billing, non-failed) facts from `since` (UTC date; None = all
    history) of the models in scope["models"] (None = every model); scope["remap"] = [from, to] model ids
    first moves the facts of a newly mapped model. Money before/after covers exactly the facts in scope,
    so `net_after - net_before` is what the change moved.
    """

    organisation = models.ForeignKey("org.Organisation", on_delete=models.CASCADE, related_name="+")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by_label = models.CharField(max_length=254)
    reason = models.CharField(max_length=300)
    since = models.DateField(null=True, blank=True)
    scope = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=RepricingStatus.choices, default=RepricingStatus.QUEUED)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    rows = models.BigIntegerField(default=0)  # facts in scope
    rows_changed = models.BigIntegerField(default=0)  # of which list or net cost changed
    days_refreshed = models.IntegerField(default=0)
    list_before_nanos = models.BigIntegerField(default=0)
    list_after_nanos = models.BigIntegerField(default=0)
    net_before_nanos = models.BigIntegerField(default=0)
    net_after_nanos = models.BigIntegerField(default=0)
    unpriced_before = models.BigIntegerField(default=0)  # rows without a price
    unpriced_after = models.BigIntegerField(default=0)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"re-pricing run #{self.pk} ({self.status})"
