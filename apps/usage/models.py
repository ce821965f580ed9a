"""The usage ledger: one fact row per request or provider bucket, and the daily rollups reports read.

Money is integer nano-dollars (1e-9 USD): exact on SQLite and PostgreSQL alike, and a 64-bit sum
holds $9.2 billion. NULL cost means "unknown" (unpriced), never zero.

The foreign keys of these two tables have no database constraint and no ORM cascade. Only the pipeline
and the rollup refresh write them, with ids of dimension rows they have just read or created; on
PostgreSQL the deferred constraint checks cost a third of an ingest (nine index probes per fact row at
commit). Dimension rows (teams, people, models, ...) are deactivated, not deleted, while facts use them.
"""

from django.db import models

from apps.catalog.models import AIModel, OverrideSet, PriceRef, Provider
from apps.ingestion.models import DataSource
from apps.org.models import Organisation, Person, RawIdentity, Task, Team

NANOS_PER_USD = 1_000_000_000


class Grain(models.IntegerChoices):
    REQUEST = 0, "request"
    MINUTE = 1, "1m"
    HOUR = 2, "1h"
    DAY = 3, "1d"


class TokenColumns(models.Model):
    """The token kinds (apps.usage.columns.TOKEN_COLUMNS), kept apart so that pricing is a dot product;
    reasoning is a part of output. 64-bit: daily aggregates pass 2**32."""

    input_uncached_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cache_write_5m_tokens = models.BigIntegerField(default=0)
    cache_write_1h_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)

    class Meta:
        abstract = True


class UsageFact(TokenColumns):
    # Written by apps.usage.services.store_facts (COPY on PostgreSQL), never row by row through the ORM.
    id = models.BigAutoField(primary_key=True)
    source = models.ForeignKey(
        DataSource, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    ts = models.DateTimeField()  # request time, or the bucket's start (UTC)
    record_key = models.CharField(
        max_length=200
    )  # natural id within the source: request id or bucket group hash
    organisation = models.ForeignKey(
        Organisation, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    day = models.DateField()  # the organisation-local day the row counts in (a 1d bucket keeps its own date)
    grain = models.PositiveSmallIntegerField(choices=Grain.choices)
    run_id = models.BigIntegerField()  # the ingestion run that last wrote this row
    provider = models.ForeignKey(
        Provider, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    model = models.ForeignKey(
        AIModel, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    team = models.ForeignKey(
        Team, null=True, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    person = models.ForeignKey(
        Person, null=True, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    task = models.ForeignKey(
        Task, null=True, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    raw_identity = models.ForeignKey(
        RawIdentity,
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    requests = models.BigIntegerField(null=True)  # unknown for sources that do not count requests
    failed = models.BooleanField(default=False)
    batch = models.BooleanField(default=False)
    cost_nanos = models.BigIntegerField(null=True)  # computed from tokens x price; NULL = unpriced
    reported_cost_nanos = models.BigIntegerField(null=True)  # as the source reported it, kept beside ours
    price_ref = models.ForeignKey(
        PriceRef,
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    # cost_nanos is the net cost (after the organisation's overrides): what every total counts. The list
    # cost is the price data's own, kept beside it; billed rows have list = net = billed.
    list_cost_nanos = models.BigIntegerField(null=True)
    override_set = models.ForeignKey(
        OverrideSet,
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )

    class Meta:
        constraints = [
            # Time first: loads append near the end of the index instead of touching random pages.
            models.UniqueConstraint(fields=["source", "ts", "record_key"], name="usage_fact_natural_key"),
        ]
        indexes = [
            models.Index(fields=["organisation", "day"], name="usage_fact_org_day"),
            # The unpriced-models queue reads only the (few) rows without a price.
            models.Index(
                fields=["organisation", "model"],
                name="usage_fact_unpriced",
                condition=models.Q(cost_nanos__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.record_key} @ {self.ts:%Y-%m-%d %H:%M}"


class DailyRollup(TokenColumns):
    """day x team x person x task x provider x model, refreshed for the days an ingestion touched."""

    organisation = models.ForeignKey(
        Organisation, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    day = models.DateField()
    team = models.ForeignKey(
        Team, null=True, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    person = models.ForeignKey(
        Person, null=True, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    task = models.ForeignKey(
        Task, null=True, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    provider = models.ForeignKey(
        Provider, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    model = models.ForeignKey(
        AIModel, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    fact_rows = models.BigIntegerField()
    unpriced_rows = models.BigIntegerField()
    failed_rows = models.BigIntegerField()
    requests = models.BigIntegerField(null=True)
    cost_nanos = models.BigIntegerField()  # sum over priced rows only
    reported_cost_nanos = models.BigIntegerField(null=True)
    # The buckets of cost_nanos: billed (invoice lines) + estimated (a source's own figure, not an invoice)
    # + computed (our prices; the rest). Unpriced rows count nothing; what their sources reported for
    # them is kept apart, never added to a total.
    list_cost_nanos = models.BigIntegerField(default=0, db_default=0)
    billed_cost_nanos = models.BigIntegerField(default=0, db_default=0)
    estimated_cost_nanos = models.BigIntegerField(default=0, db_default=0)
    unpriced_reported_nanos = models.BigIntegerField(default=0, db_default=0)
    # The part of a provider-day's billed total no split row explains (apps.usage.reconcile): cost only.
    adjustment = models.BooleanField(default=False, db_default=False)

    class Meta:
        indexes = [models.Index(fields=["organisation", "day"], name="daily_rollup_org_day")]

    def __str__(self) -> str:
        return f"{self.day} rollup"
