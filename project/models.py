from django.conf import settings
from django.db import models


class Membership(models.Model):
    """A user belongs to a tenant: they see and act on that tenant's rows."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    tenant_id = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "tenant_id"], name="membership_unique")
        ]
        ordering = ["user_id", "tenant_id"]

    def __str__(self):
        return f"{self.user} in {self.tenant_id}"


class AuditEntryQuerySet(models.QuerySet):
    def within(self, tenants) -> "AuditEntryQuerySet":
        """The entries whose every touched tenant is in `tenants` (None: all entries); entries
        of unknown tenants only with None. Callers go through tenancy.scope_audit(user)."""
        if tenants is None:
            return self
        foreign = AuditTenant.objects.filter(
            entry=models.OuterRef("pk"), tenant_id__isnull=False
        ).exclude(tenant_id__in=sorted(tenants))
        return self.filter(admin_only=False).exclude(models.Exists(foreign))


class AuditEntry(models.Model):
    """One operator action: who, when, what, which ids or filter, how many rows, before/after,
    and the tenants of the rows it touched (AuditTenant)."""

    timestamp = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150)
    action = models.CharField(max_length=64)  # e.g. "job.set_retries"
    target_type = models.CharField(max_length=32)  # "job", "job_definition", "external_task"
    # The ids touched (capped for huge bulk actions; `count` is always exact).
    target_ids = models.JSONField(default=list)
    # The filter a bulk action ran on (query parameters), when it ran on a filter.
    filter = models.JSONField(null=True, blank=True)
    count = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    source = models.CharField(max_length=16, default="console")  # console / api / command
    # The touched tenants are unknown (entries written before tenants were recorded) or are
    # every tenant (pruning the history): only admins see the entry.
    admin_only = models.BooleanField(default=False)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-timestamp", "-id"]
        indexes = [models.Index(fields=["target_type", "-timestamp"], name="audit_target_idx")]
        verbose_name_plural = "audit entries"

    def __str__(self):
        return f"{self.timestamp:%Y-%m-%d %H:%M:%S} {self.username} {self.action} ({self.count})"


class AuditTenant(models.Model):
    """A tenant whose rows an audit entry touched; tenant_id null stands for rows without a
    tenant (shared by everyone, so it hides the entry from nobody)."""

    entry = models.ForeignKey(AuditEntry, on_delete=models.CASCADE, related_name="tenants")
    tenant_id = models.CharField(max_length=64, null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["entry", "tenant_id"], name="audit_tenant_unique")
        ]
        indexes = [models.Index(fields=["tenant_id", "entry"], name="audit_tenant_idx")]

    def __str__(self):
        return f"{self.entry_id}: {self.tenant_id or '(no tenant)'}"


class Incident(models.Model):
    """Camunda's incident: a job (`failedJob`) or an external task (`failedExternalTask`) whose
    retries reached 0. One table for both kinds; project.incidents opens and closes them.

    Resolved and deleted incidents stay (state, end_time), as Camunda's incident history keeps
    them; /incident serves the open ones. A failed job or task is its own cause and root cause
    (no process engine raises incidents up an activity tree here), so Camunda's
    causeIncidentId and rootCauseIncidentId are the id, not stored twice."""

    FAILED_JOB = "failedJob"
    FAILED_EXTERNAL_TASK = "failedExternalTask"

    class State(models.TextChoices):
        OPEN = "open"
        RESOLVED = "resolved"  # retries set above 0, or the row completed
        DELETED = "deleted"  # the row was deleted (or ended by a BPMN error)

    id = models.CharField(primary_key=True, max_length=64)
    incident_type = models.CharField(max_length=64)
    incident_timestamp = models.DateTimeField()
    end_time = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN)
    # The job's or external task's id, as Camunda's `configuration` holds it.
    configuration = models.CharField(max_length=64)
    incident_message = models.TextField(null=True, blank=True)
    tenant_id = models.CharField(max_length=64, null=True, blank=True)
    activity_id = models.CharField(max_length=255, null=True, blank=True)
    failed_activity_id = models.CharField(max_length=255, null=True, blank=True)
    execution_id = models.CharField(max_length=255, null=True, blank=True)
    process_instance_id = models.CharField(max_length=255, null=True, blank=True)
    process_definition_id = models.CharField(max_length=255, null=True, blank=True)
    # Not in Camunda's IncidentDto, but its processDefinitionKeyIn filter needs it.
    process_definition_key = models.CharField(max_length=255, null=True, blank=True)
    job_definition_id = models.CharField(max_length=64, null=True, blank=True)
    annotation = models.TextField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # At most one open incident per row; opening and closing look them up by row.
            models.Index(
                fields=["configuration"],
                name="incident_open_config_idx",
                condition=models.Q(state="open"),
            ),
            models.Index(fields=["-incident_timestamp"], name="incident_timestamp_idx"),
            models.Index(fields=["tenant_id"], name="incident_tenant_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["incident_type", "configuration"],
                condition=models.Q(state="open"),
                name="incident_one_open_per_row",
            )
        ]

    def __str__(self):
        return f"{self.incident_type} {self.configuration} ({self.state})"


class Batch(models.Model):
    """Camunda's batch: an operator action on a fixed set of rows (a snapshot taken when it is
    created), run by the job executor in chunks. One table for runtime and history: a batch
    is running (Camunda's /batch) while `end_time` is null, and every batch, running or ended,
    is Camunda's historic batch (/history/batch) until its history is deleted.

    project.batches creates, suspends, cancels and finishes batches; the job executor runs
    them (jobs.batches: the seed, monitor and batch job definitions and their jobs)."""

    class Outcome(models.TextChoices):
        RUNNING = "running"
        COMPLETED = "completed"  # every chunk ran (or its failed job was deleted)
        CANCELLED = "cancelled"  # deleted while running (DELETE /batch/{id} without cascade)

    id = models.CharField(primary_key=True, max_length=64)
    # Camunda's type name ("set-job-retries", "set-external-task-retries") or ours for the
    # console's other bulk actions; project.batches.TYPES says what each does.
    type = models.CharField(max_length=64)
    # What the rows are, as the audit names them: "job" or "external_task".
    target_type = models.CharField(max_length=32)
    # The operation's values (e.g. {"retries": 3}), as its BatchType reads them.
    parameters = models.JSONField(default=dict, blank=True)
    # The filter the rows were selected by (audit.record's `filter`) and the same in words, as
    # the confirmation said it: the console shows both.
    filter = models.JSONField(null=True, blank=True)
    description = models.TextField(blank=True, default="")
    # The rows still to be selected: the scoped query's SQL and its parameters (JSON, tagged
    # where JSON has no such type), kept when the selection is too large to copy into chunks
    # within the request; the seed job takes the snapshot and clears it. Null: snapshotted.
    selection = models.JSONField(null=True, blank=True)
    # Rows: snapshotted, changed, skipped (changed meanwhile, or already as asked), and in
    # chunks whose job failed for good and was deleted.
    total_rows = models.IntegerField(default=0)
    rows_changed = models.IntegerField(default=0)
    rows_skipped = models.IntegerField(default=0)
    rows_failed = models.IntegerField(default=0)
    # Camunda's counts of batch jobs: a chunk is one batch job of up to
    # invocations_per_batch_job rows.
    total_jobs = models.IntegerField(default=0)
    jobs_created = models.IntegerField(default=0)
    completed_jobs = models.IntegerField(default=0)
    batch_jobs_per_seed = models.IntegerField(default=100)
    invocations_per_batch_job = models.IntegerField(default=1000)
    seed_job_definition_id = models.CharField(max_length=64, null=True, blank=True)
    monitor_job_definition_id = models.CharField(max_length=64, null=True, blank=True)
    batch_job_definition_id = models.CharField(max_length=64, null=True, blank=True)
    suspended = models.BooleanField(default=False)
    # The one tenant of all its rows, or null (rows of several tenants, or of none).
    tenant_id = models.CharField(max_length=64, null=True, blank=True)
    create_user_id = models.CharField(max_length=150, null=True, blank=True)
    source = models.CharField(max_length=16, default="api")  # console / api / command
    start_time = models.DateTimeField()
    execution_start_time = models.DateTimeField(null=True, blank=True)
    end_time = models.DateTimeField(null=True, blank=True)
    removal_time = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.RUNNING)
    # Written when the batch starts, completed when it ends; its tenants (AuditTenant) are the
    # batch's, so tenancy scopes batches through it.
    audit_entry = models.ForeignKey(
        AuditEntry, null=True, blank=True, on_delete=models.SET_NULL, related_name="batches"
    )

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["-start_time"],
                name="batch_running_idx",
                condition=models.Q(end_time__isnull=True),
            ),
            models.Index(fields=["-start_time"], name="batch_start_idx"),
            models.Index(fields=["tenant_id"], name="batch_tenant_idx"),
        ]

    def __str__(self):
        return f"{self.type} batch {self.id} ({self.outcome})"

    @property
    def selecting(self) -> bool:
        """Whether its seed job has still to select the rows (its totals are not known yet)."""
        return self.selection is not None and self.end_time is None


class BatchChunk(models.Model):
    """The rows of one batch job: up to Batch.invocations_per_batch_job target ids (in the
    order the snapshot read them). Deleted in the same transaction as the chunk's changes, so
    a chunk runs at most once however often its job is retried (a killed executor's job runs
    again and finds it gone)."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="chunks")
    number = models.IntegerField()
    ids = models.JSONField(default=list)
    size = models.IntegerField()

    class Meta:
        ordering = ["batch_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "number"], name="batch_chunk_unique")
        ]

    def __str__(self):
        return f"{self.batch_id} chunk {self.number} ({self.size} rows)"
