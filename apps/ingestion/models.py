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
