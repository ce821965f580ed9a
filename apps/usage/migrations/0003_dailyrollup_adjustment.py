"""Rollup rows that reconcile a provider-day to its billed total (apps.usage.reconcile).

A database default too, so that existing rows and any writer that names only the old columns get False.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("usage", "0002_postgres_time_indexes")]

    operations = [
        migrations.AddField(
            model_name="dailyrollup",
            name="adjustment",
            field=models.BooleanField(db_default=False, default=False),
        ),
    ]
