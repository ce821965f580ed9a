"""The organisation's price terms: model mappings, dated overrides, override sets and re-pricing runs."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0001_initial"),
        ("org", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="OverrideSet",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("key", models.CharField(max_length=200, unique=True)),
            ],
        ),
        migrations.CreateModel(
            name="RepricingRun",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("requested_by_label", models.CharField(max_length=254)),
                ("reason", models.CharField(max_length=300)),
                ("since", models.DateField(blank=True, null=True)),
                ("scope", models.JSONField(default=dict)),
                (
                    "status",
                    models.CharField(
                        choices=[("queued", "Queued"), ("done", "Done"), ("failed", "Failed")],
                        default="queued",
                        max_length=10,
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("rows", models.BigIntegerField(default=0)),
                ("rows_changed", models.BigIntegerField(default=0)),
                ("days_refreshed", models.IntegerField(default=0)),
                ("list_before_nanos", models.BigIntegerField(default=0)),
                ("list_after_nanos", models.BigIntegerField(default=0)),
                ("net_before_nanos", models.BigIntegerField(default=0)),
                ("net_after_nanos", models.BigIntegerField(default=0)),
                ("unpriced_before", models.BigIntegerField(default=0)),
                ("unpriced_after", models.BigIntegerField(default=0)),
                ("error", models.TextField(blank=True, default="")),
                (
                    "organisation",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="org.organisation"
                    ),
                ),
                (
                    "requested_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-pk"],
            },
        ),
        migrations.CreateModel(
            name="ModelMapping",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("raw_provider", models.CharField(max_length=50)),
                ("raw_model", models.CharField(max_length=200)),
                ("provider", models.CharField(max_length=50)),
                ("model", models.CharField(max_length=200)),
                ("note", models.CharField(blank=True, default="", max_length=300)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "organisation",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="org.organisation"
                    ),
                ),
            ],
            options={
                "ordering": ["raw_provider", "raw_model"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("organisation", "raw_provider", "raw_model"), name="model_mapping_unique_raw"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="PriceOverride",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("discount", "Percentage discount"),
                            ("custom_price", "Custom price"),
                            ("batch_discount", "Batch discount (where the price data has none)"),
                        ],
                        max_length=20,
                    ),
                ),
                ("percent", models.DecimalField(blank=True, decimal_places=4, max_digits=7, null=True)),
                ("input_mtok", models.DecimalField(blank=True, decimal_places=6, max_digits=18, null=True)),
                (
                    "cache_read_mtok",
                    models.DecimalField(blank=True, decimal_places=6, max_digits=18, null=True),
                ),
                (
                    "cache_write_mtok",
                    models.DecimalField(blank=True, decimal_places=6, max_digits=18, null=True),
                ),
                (
                    "cache_write_1h_mtok",
                    models.DecimalField(blank=True, decimal_places=6, max_digits=18, null=True),
                ),
                ("output_mtok", models.DecimalField(blank=True, decimal_places=6, max_digits=18, null=True)),
                ("valid_from", models.DateField()),
                ("valid_to", models.DateField(blank=True, null=True)),
                ("note", models.CharField(blank=True, default="", max_length=300)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "model",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="catalog.aimodel",
                    ),
                ),
                (
                    "organisation",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="org.organisation"
                    ),
                ),
                (
                    "provider",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="+", to="catalog.provider"
                    ),
                ),
            ],
            options={
                "ordering": ["provider__slug", "model__name", "kind", "valid_from"],
                "indexes": [
                    models.Index(fields=["organisation", "provider"], name="price_override_org_provider")
                ],
            },
        ),
    ]
