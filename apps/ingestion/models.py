"""Where usage comes from (data sources), each ingestion run, and the rows it could not read."""

from django.db import models

from apps.org.models import Organisation


class DataSource(models.Model):
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="data_sources")
    name = models.CharField(max_length=100)
    format = models.CharField(max_length=50)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organisation", "name"], name="source_name_unique_per_org")
        ]

    def __str__(self) -> str:
        return self.name


class RunStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


class IngestionRun(models.Model):
    source = models.ForeignKey(DataSource, on_delete=models.CASCADE, related_name="runs")
    format = models.CharField(max_length=50)
    files = models.JSONField(default=list)  # paths of the files this run reads, in order
    file_names = models.JSONField(default=list)  # the names users gave them (uploads), shown in messages
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.PENDING)
    rows = models.BigIntegerField(default=0)
    accepted = models.BigIntegerField(default=0)
    duplicates = models.BigIntegerField(default=0)
    replaced = models.BigIntegerField(default=0)
    rejected = models.BigIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Where the last committed batch ended, written in that batch's transaction: a run picked up again
    # after a crash resumes there, so nothing is counted twice.
    resume_file = models.PositiveIntegerField(default=0)
    resume_line = models.BigIntegerField(default=0)
    touched_days = models.JSONField(default=list)  # organisation-local days whose rollups need a refresh
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.status})"

    def summary(self) -> dict:
        return {
            "run": self.pk,
            "rows": self.rows,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "replaced": self.replaced,
            "rejected": self.rejected,
        }


class RejectedRow(models.Model):
    """A row that could not be read, with where and why; `raw` is kept so it can be fixed and re-submitted."""

    run = models.ForeignKey(IngestionRun, on_delete=models.CASCADE, related_name="rejected_rows")
    file = models.CharField(max_length=500)
    line = models.BigIntegerField()
    field = models.CharField(max_length=200)
    reason = models.TextField()
    raw = models.TextField()

    class Meta:
        ordering = ["run", "file", "line"]

    def __str__(self) -> str:
        return f"{self.file}:{self.line} {self.field}: {self.reason}"


class IngestRequest(models.Model):
    """An ingest API call made with an Idempotency-Key: the same key and body replay the run's summary."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    body_sha256 = models.CharField(max_length=64)
    run = models.ForeignKey(IngestionRun, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organisation", "key"], name="ingest_request_key_unique")
        ]

    def __str__(self) -> str:
        return f"{self.key} -> run {self.run_id}"


class BufferedRequest(models.Model):
    """An ingest API body accepted for later (`Prefer: respond-async`): 202 at once, a worker ingests it.

    Gateways that send one record per request would otherwise pay for a whole run each; buffered bodies
    are drained together into one run per source (apps/ingestion/buffer.py). The row is the client's
    receipt: once drained it names its run and where its lines sit in the run's file, and its body goes
    (the run keeps the payload).
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    source = models.ForeignKey(DataSource, on_delete=models.CASCADE, related_name="+")
    format = models.CharField(max_length=50)
    suffix = models.CharField(max_length=8)
    body = models.BinaryField()
    body_sha256 = models.CharField(max_length=64)
    idempotency_key = models.CharField(max_length=200, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    run = models.ForeignKey(IngestionRun, on_delete=models.CASCADE, null=True, related_name="+")
    file_name = models.CharField(max_length=200, blank=True)
    first_line = models.BigIntegerField(null=True)
    lines = models.BigIntegerField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="buffered_request_key_unique",
            )
        ]
        # The drain reads the oldest pending bodies; the partial index keeps that cheap however many
        # drained receipts are kept.
        indexes = [
            models.Index(fields=["id"], condition=models.Q(run__isnull=True), name="buffered_request_pending")
        ]

    def __str__(self) -> str:
        return f"receipt {self.pk} ({f'run {self.run_id}' if self.run_id else 'queued'})"


# --- Scheduled pulls from provider admin APIs (apps/ingestion/pulls.py) ----------------------------


class PullProvider(models.TextChoices):
    OPENAI = "openai", "OpenAI (Usage + Costs)"
    ANTHROPIC = "anthropic", "Anthropic (usage report, cost report, Claude Code usage)"


class PullStatus(models.TextChoices):
    OK = "ok", "OK"
    BLOCKED_BY_PROVIDER_LIMIT = "blocked_by_provider_limit", "Blocked by provider limit"
    CREDENTIALS_REJECTED = "credentials_rejected", "Credentials rejected"
    FAILING = "failing", "Failing"


class PullSource(models.Model):
    """One provider admin account pulled on a schedule. Its endpoints (PullEndpoint) each feed a data source.

    The credential is stored only as Fernet ciphertext (apps/ingestion/credentials.py); `credential_hint`
    keeps its last four characters for display and `credential_fingerprint` (SHA-256) names the key for
    the shared rate limit. Only one worker pulls a source at a time: it holds the lease
    (`lease_token`, `lease_expires_at`), claimed with one conditional UPDATE.
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="pull_sources")
    name = models.CharField(max_length=80)  # its endpoints' data sources are named "NAME:KIND"
    provider = models.CharField(max_length=20, choices=PullProvider.choices)
    base_url = models.URLField(blank=True, default="")  # empty: the provider's public API
    credential_ciphertext = models.TextField(editable=False)
    credential_hint = models.CharField(max_length=8, editable=False)
    credential_fingerprint = models.CharField(max_length=64, editable=False)
    enabled = models.BooleanField(default=True)
    interval_minutes = models.PositiveIntegerField(default=60)
    backfill_days = models.PositiveIntegerField(default=30)  # how far back a first pull reaches
    status = models.CharField(max_length=30, choices=PullStatus.choices, default=PullStatus.OK)
    status_reason = models.TextField(blank=True, default="")
    status_at = models.DateTimeField(null=True, blank=True)
    next_pull_at = models.DateTimeField(null=True, blank=True)  # null: due now
    last_pull_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    lease_token = models.CharField(max_length=32, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organisation", "name"], name="pull_source_name_unique_per_org")
        ]

    def __str__(self) -> str:
        return self.name


class PullEndpoint(models.Model):
    """One endpoint of a pull source; `kind` is the adapter format its pages are read with.

    `cursor` is the end of the last complete bucket ingested: the next pull starts there, so a bucket
    still filling (today's) is fetched again and replaces itself through its natural key.
    """

    pull_source = models.ForeignKey(PullSource, on_delete=models.CASCADE, related_name="endpoints")
    kind = models.CharField(max_length=50)
    data_source = models.ForeignKey(DataSource, on_delete=models.PROTECT, related_name="+")
    cursor = models.DateTimeField(null=True, blank=True)
    last_run = models.ForeignKey(
        IngestionRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["pull_source", "kind"], name="pull_endpoint_kind_unique")
        ]

    def __str__(self) -> str:
        return f"{self.pull_source_id}:{self.kind}"


class RateLimitSlot(models.Model):
    """The shared request schedule of one provider key across every worker (apps/ingestion/ratelimit.py)."""

    key = models.CharField(max_length=64, unique=True)
    next_at = models.FloatField(default=0.0)  # unix seconds: the earliest moment the next request may go

    def __str__(self) -> str:
        return f"{self.key[:8]} @ {self.next_at}"
