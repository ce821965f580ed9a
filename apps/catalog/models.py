"""Providers, models and the provenance of every computed price."""

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
