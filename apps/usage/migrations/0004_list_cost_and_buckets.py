"""List cost beside the net cost on every fact and rollup, the overrides that set a net price, the cost
buckets of each rollup row, and a partial index for the unpriced-models queue.

Stored facts and rollups were priced without overrides, so their list cost is their cost.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0002_price_terms"),
        ("usage", "0003_dailyrollup_adjustment"),
    ]

    operations = [
        migrations.AddField(
            model_name="dailyrollup",
            name="billed_cost_nanos",
            field=models.BigIntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name="dailyrollup",
            name="estimated_cost_nanos",
            field=models.BigIntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name="dailyrollup",
            name="list_cost_nanos",
            field=models.BigIntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name="dailyrollup",
            name="unpriced_reported_nanos",
            field=models.BigIntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name="usagefact",
            name="list_cost_nanos",
            field=models.BigIntegerField(null=True),
        ),
        migrations.AddField(
            model_name="usagefact",
            name="override_set",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="catalog.overrideset",
            ),
        ),
        migrations.AddIndex(
            model_name="usagefact",
            index=models.Index(
                condition=models.Q(("cost_nanos__isnull", True)),
                fields=["organisation", "model"],
                name="usage_fact_unpriced",
            ),
        ),
        migrations.RunSQL(
            "UPDATE usage_usagefact SET list_cost_nanos = cost_nanos WHERE cost_nanos IS NOT NULL",
            migrations.RunSQL.noop,
        ),
        migrations.RunSQL(
            "UPDATE usage_dailyrollup SET list_cost_nanos = cost_nanos", migrations.RunSQL.noop
        ),
    ]
