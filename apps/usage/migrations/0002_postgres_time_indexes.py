"""PostgreSQL-only physical tuning of the fact table (SQLite keeps the portable b-tree indexes).

BRIN on ts lets rollup refreshes and drill-downs read only the blocks of the days they need, without a
b-tree that grows with every row; rows arrive roughly in time order, which is what BRIN needs.
"""

from django.db import migrations

BRIN = "CREATE INDEX IF NOT EXISTS usage_fact_ts_brin ON usage_usagefact USING brin (ts)"
DROP_BRIN = "DROP INDEX IF EXISTS usage_fact_ts_brin"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BRIN)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_BRIN)


class Migration(migrations.Migration):
    dependencies = [("usage", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
