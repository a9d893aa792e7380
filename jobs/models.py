from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Coalesce

from project import clock, tenancy
from project.filters import CREATION_LOG, DELETION_LOG, FAILURE_LOG, SUCCESS_LOG
from project.ids import new_id
from project.indexes import SortIndex, TrigramIndex, nulls_first
from project.states import Status, StatusTable

ACTIVE_WITH_RETRIES = Q(suspended=False, retries__gt=0)
# Camunda's withException: the job failed with an exception (a message or only a stack trace).
WITH_EXCEPTION = Q(exception_message__isnull=False) | Q(exception_stacktrace__isnull=False)


class JobDefinitionQuerySet(models.QuerySet):
    def visible_to(self, user) -> "JobDefinitionQuerySet":
        """The job definitions `user` may see: their tenants' and tenant-less ones."""
        return tenancy.scope(self, user)

    def log_columns(self, ids) -> dict[str, dict]:
        """{definition id: its job log columns (type, configuration)} for these ids: what each
        log entry of a job of the definition records about it, as Camunda's job log does."""
        rows = self.filter(pk__in=[i for i in ids if i]).values_list(
            "pk", "job_type", "job_configuration"
        )
        return {
            pk: {"job_definition_type": job_type, "job_definition_configuration": configuration}
            for pk, job_type, configuration in rows
        }


class JobDefinition(models.Model):
    """Configuration shared by the jobs of one activity: suspension and an overriding priority."""

    id = models.CharField(primary_key=True, max_length=64, default=new_id)
    activity_id = models.CharField(max_length=255, null=True, blank=True)
    job_type = models.CharField(max_length=255, null=True, blank=True)
    job_configuration = models.TextField(null=True, blank=True)
    process_definition_id = models.CharField(max_length=255, null=True, blank=True)
    process_definition_key = models.CharField(max_length=255, null=True, blank=True)
    tenant_id = models.CharField(max_length=64, null=True, blank=True)
    suspended = models.BooleanField(default=False)
    overriding_priority = models.BigIntegerField(null=True, blank=True)

    objects = JobDefinitionQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["process_definition_key"], name="jobdef_pdkey_idx"),
            models.Index(fields=["process_definition_id"], name="jobdef_pdid_idx"),
            models.Index(fields=["activity_id"], name="jobdef_activity_idx"),
            models.Index(fields=["tenant_id"], name="jobdef_tenant_idx"),
        ]

    def __str__(self):
        return f"{self.job_type or 'job'} {self.activity_id or self.id}"


def _definition_suspended(now=None) -> Exists:
    # A subquery rather than a join through the nullable foreign key: the executor's claim and
    # the status filters stay scans of the job table with an anti-join.
    return Exists(JobDefinition.objects.filter(pk=OuterRef("job_definition_id"), suspended=True))


def _is_due(now) -> Q:
    return Q(due_date__isnull=True) | Q(due_date__lte=now)


# A job's statuses in precedence order (project.states): its badge, the console's status
# filter, the metrics' backlog states and the executor's claim all read this table. A job is
# suspended when it or its job definition is: the executor skips both alike.
STATUSES = StatusTable(
    Status("failed", "Failed", "no retries left", lambda now: Q(retries=0)),
    Status(
        "suspended",
        "Suspended",
        "will not run until activated (the job or its job definition)",
        lambda now: Q(suspended=True) | Q(_definition_suspended()),
    ),
    Status(
        "locked",
        "Locked",
        "running: an executor holds a live lock",
        lambda now: Q(lock_expiration_time__gt=now),
    ),
    Status(
        "expired",
        "Expired lock",
        "the lock owner's lock ran out",
        lambda now: Q(lock_owner__isnull=False),
    ),
    Status(
        "retrying",
        "Retrying",
        "failed before, retries left",
        lambda now: Q(exception_message__isnull=False),
    ),
    Status("due", "Due", "will run as soon as an executor is free", _is_due),
    Status("waiting", "Waiting", "due date in the future", lambda now: Q(due_date__gt=now)),
)


def _status_conditions(now, *, definitions: bool) -> dict[str, Q]:
    """Each status's own condition at `now`; for jobs without a job definition
    (`definitions=False`) "suspended" is the job's own flag, which is then the same."""
    conditions = {status.key: status.condition(now) for status in STATUSES}
    if not definitions:
        conditions["suspended"] = Q(suspended=True)
    return conditions


def _in_precedence(conditions: dict[str, Q], key: str) -> Q:
    # As StatusTable.q: the status's condition and none of the earlier ones.
    q = Q()
    for status in STATUSES:
        if status.key == key:
            return q & conditions[key]
        q &= ~conditions[status.key]
    raise KeyError(key)


class JobQuerySet(models.QuerySet):
    def visible_to(self, user) -> "JobQuerySet":
        """The jobs `user` may see: their tenants' and tenant-less ones (tenancy.scope)."""
        return tenancy.scope(self, user)

    def failed(self) -> "JobQuerySet":
        """Jobs with no retries left: each has a failedJob incident."""
        return self.filter(STATUSES["failed"].condition(None))

    def executable(self, now=None) -> "JobQuerySet":
        """Camunda's `executable`: retries left and due (no due date, or one in the past)."""
        return self.filter(Q(retries__gt=0) & _is_due(now or clock.now()))

    def acquirable(self, now=None) -> "JobQuerySet":
        """Jobs an executor may claim now: executable, not suspended (job or definition), and
        not held by a live lock; that is due, retrying or expired in the status table, due."""
        now = now or clock.now()
        return (
            self.executable(now)
            .exclude(STATUSES["suspended"].condition(now))
            .exclude(STATUSES["locked"].condition(now))
        )

    def in_state(self, key: str, now=None) -> "JobQuerySet":
        """Jobs whose status (STATUSES) is `key` at `now`."""
        return self.filter(STATUSES.q(key, now or clock.now()))

    def with_status(self, now=None) -> "JobQuerySet":
        """Each job annotated with `status`, its key in STATUSES at `now`."""
        return self.annotate(status=STATUSES.annotation(now or clock.now()))

    def per_queue(self, now=None, keys=("failed", "locked", "retrying", "waiting")) -> dict:
        """{queue name: {status key: count for `keys`, "ready": what a claim may take now,
        "oldest_due": the due date (or creation) of the longest-waiting of those}}, read in one
        scan of these jobs. Counts agree with in_state() and acquirable() row for row."""
        now = now or clock.now()
        result: dict[str, dict] = {}
        # Without a job definition a job is suspended only by its own flag: the definition's
        # subquery, evaluated per row, cost five times the scan at 1M jobs, so jobs without
        # one are counted with the flag alone and the others with the whole table.
        for has_definition in (False, True):
            conditions = _status_conditions(now, definitions=has_definition)
            ready = (
                Q(retries__gt=0)
                & _is_due(now)
                & ~conditions["suspended"]
                & ~STATUSES["locked"].condition(now)
            )
            rows = (
                self.filter(job_definition_id__isnull=not has_definition)
                .values("queue_name")
                .annotate(
                    ready=models.Count("id", filter=ready),
                    oldest_due=models.Min(Coalesce("due_date", "create_time"), filter=ready),
                    **{
                        key: models.Count("id", filter=_in_precedence(conditions, key))
                        for key in keys
                    },
                )
                .order_by()
            )
            for row in rows:
                into = result.setdefault(
                    row.pop("queue_name"),
                    {**dict.fromkeys(keys, 0), "ready": 0, "oldest_due": None},
                )
                for key in (*keys, "ready"):
                    into[key] += row[key]
                if row["oldest_due"] and (
                    into["oldest_due"] is None or row["oldest_due"] < into["oldest_due"]
                ):
                    into["oldest_due"] = row["oldest_due"]
        return result


class Job(models.Model):
    """A unit of background work: a handler to call with a payload, due now or later."""

    class Type(models.TextChoices):
        TIMER = "timer", "Timer"
        MESSAGE = "message", "Message"

    id = models.CharField(primary_key=True, max_length=64, default=new_id)
    job_definition = models.ForeignKey(
        JobDefinition, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    type = models.CharField(max_length=16, choices=Type.choices, default=Type.MESSAGE)
    handler = models.CharField(max_length=255, blank=True, default="")
    payload = models.JSONField(default=dict, blank=True)
    # django.tasks queue: `runjobs --queue` runs only the named queues.
    queue_name = models.CharField(max_length=100, default="default")
    due_date = models.DateTimeField(null=True, blank=True)
    retries = models.IntegerField(default=3)
    exception_message = models.TextField(null=True, blank=True)
    exception_stacktrace = models.TextField(null=True, blank=True)
    failed_activity_id = models.CharField(max_length=255, null=True, blank=True)
    suspended = models.BooleanField(default=False)
    priority = models.BigIntegerField(default=0)
    process_instance_id = models.CharField(max_length=255, null=True, blank=True)
    execution_id = models.CharField(max_length=255, null=True, blank=True)
    process_definition_id = models.CharField(max_length=255, null=True, blank=True)
    process_definition_key = models.CharField(max_length=255, null=True, blank=True)
    activity_id = models.CharField(max_length=255, null=True, blank=True)
    tenant_id = models.CharField(max_length=64, null=True, blank=True)
    lock_owner = models.CharField(max_length=255, null=True, blank=True)
    lock_expiration_time = models.DateTimeField(null=True, blank=True)
    create_time = models.DateTimeField(default=clock.now)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [
            # The executor's acquisition path: active jobs with retries, by priority then due date.
            models.Index(
                models.F("priority").desc(),
                "due_date",
                name="job_acquirable_idx",
                condition=ACTIVE_WITH_RETRIES,
            ),
            # Failed jobs (incidents) are what operators look for first.
            # tenant_id included: a tenant's failed jobs count by an index-only scan.
            models.Index(
                fields=["-create_time"],
                name="job_failed_idx",
                condition=Q(retries=0),
                include=["tenant_id"],
            ),
            # The console's status filters and counts (suspended, expired lock, retrying) and the
            # metrics' states: each a small slice of a big table, read newest first. Partial, so
            # they cost nothing for the rows outside their state.
            models.Index(
                fields=["-create_time"], name="job_suspended_idx", condition=Q(suspended=True)
            ),
            models.Index(
                fields=["-create_time"],
                name="job_lock_owner_idx",
                condition=Q(lock_owner__isnull=False),
            ),
            # withException's condition (a message or a stack trace), with the key and tenant:
            # `withException` with a process definition key or tenants counts and pages by an
            # index-only scan (138 -> 36 ms for a key's 58k at 1M jobs). The console's
            # "retrying" (a message) implies it, so uses it too.
            models.Index(
                fields=["-create_time"],
                name="job_exception_idx",
                condition=WITH_EXCEPTION,
                include=["process_definition_key", "tenant_id"],
            ),
            # `executable` counts (retries left, due): an index-only scan of a narrow index
            # instead of the priority index's wide entries (150-250 -> 50-80 ms for 600k).
            SortIndex(
                nulls_first("due_date"), name="job_executable_idx", condition=Q(retries__gt=0)
            ),
            # Sort keys, each (key, id) with nulls first so one index serves both directions
            # of Taskyard's order (project.indexes); equality filters on the key use them too.
            SortIndex(nulls_first("due_date"), "id", name="job_due_idx"),
            # tenant_id included: a tenant's viewer pages deep into the default order (newest
            # first) by an index-only scan, the tenant tested on the index entry instead of a
            # heap visit per row skipped (page 2,000 took 0.5-1.4 s at 1M rows).
            models.Index(
                fields=["create_time", "id"], name="job_created_idx", include=["tenant_id"]
            ),
            # retries and due date included: `executable` by priority pages by an index-only scan.
            models.Index(
                fields=["priority", "id"], name="job_priority_idx", include=["retries", "due_date"]
            ),
            models.Index(fields=["retries", "id"], name="job_retries_idx"),
            # `messages` / `timers` by id, with the columns of withRetriesLeft / noRetriesLeft
            # and active / suspended: deep pages index-only (50,000 deep 614 -> 13 ms).
            models.Index(
                fields=["type", "id"], name="job_type_idx", include=["retries", "suspended"]
            ),
            SortIndex(nulls_first("process_instance_id"), "id", name="job_pi_idx"),
            SortIndex(nulls_first("execution_id"), "id", name="job_execution_idx"),
            # Filtered by key and sorted by due date (the console's and Cockpit's usual view).
            SortIndex(
                nulls_first("process_definition_key"),
                nulls_first("due_date"),
                "id",
                name="job_pdkey_idx",
            ),
            SortIndex(nulls_first("process_definition_id"), "id", name="job_pdid_idx"),
            # With id: bulk actions on an activity walk its ids in order from this index alone;
            # nulls first, so it is also the order of the console's sort by activity.
            SortIndex(nulls_first("activity_id"), "id", name="job_activity_idx"),
            # Tenant first: `tenantIdIn` / `withoutTenantId` with the common second sort keys.
            # Definition id included: `withoutTenantId` sorted by it reads the index alone.
            SortIndex(
                nulls_first("tenant_id"),
                nulls_first("process_definition_key"),
                "id",
                name="job_tenant_idx",
                include=["process_definition_id"],
            ),
            # (key, id) with nulls first: the console's sort by lock expiry is an index range
            # both ways instead of a sort of every tied (unlocked) job.
            SortIndex(nulls_first("lock_expiration_time"), "id", name="job_lock_exp_idx"),
            # The console's word search (console.resources.search_jobs): the distinct handlers
            # by a loose index scan (a handful of values, so deduplicated and small), which also
            # serves the list's `handler` filter; and a trigram index on the messages (partial:
            # only jobs that failed have one) for "a word in the exception".
            models.Index(fields=["handler"], name="job_handler_idx"),
            # The word search's `lock_owner = word` (an executor's name): without it that arm
            # rechecked every locked job's row (job_lock_owner_idx is by time), 0.25 s at 1M.
            models.Index(
                fields=["lock_owner"],
                name="job_lock_owner_name_idx",
                condition=Q(lock_owner__isnull=False),
            ),
            TrigramIndex("exception_message", name="job_message_trgm_idx"),
        ]

    def __str__(self):
        return f"{self.type} job {self.id}"

    def status_at(self, now=None) -> Status:
        """This job's status, read from the database by the one table (see STATUSES)."""
        key = Job.objects.filter(pk=self.pk).with_status(now).values_list("status", flat=True)
        return STATUSES[key.first() or STATUSES.keys[-1]]


class JobLogQuerySet(models.QuerySet):
    def visible_to(self, user) -> "JobLogQuerySet":
        """The log entries `user` may see: their tenants' and tenant-less ones."""
        return tenancy.scope(self, user)

    def history(self) -> "JobLogQuerySet":
        """The entries Camunda's historic job log shows (HISTORY_EVENTS): creation, failure,
        success and deletion; not claims, locks or operators' changes."""
        return self.filter(event__in=list(HISTORY_EVENTS))

    def in_history_state(self, state: str) -> "JobLogQuerySet":
        """Entries of one Camunda job log state: creationLog, failureLog, successLog or
        deletionLog."""
        return self.filter(event__in=[e for e, s in HISTORY_EVENTS.items() if s == state])


class JobLog(models.Model):
    """History of one job: created, started, failed, succeeded, deleted, retries set, ...

    Each entry keeps the job as it was after the event (due date, retries, priority, job
    definition, process fields, tenant) and the host that wrote it: Camunda's historic job log
    reads the entries of project.filters.HISTORY_STATES from here."""

    class Event(models.TextChoices):
        CREATED = "created"
        STARTED = "started"
        FAILED = "failed"
        SUCCEEDED = "succeeded"
        DELETED = "deleted"
        RETRIES_SET = "retries-set"
        SUSPENDED = "suspended"
        ACTIVATED = "activated"
        PRIORITY_SET = "priority-set"
        DUE_DATE_SET = "due-date-set"
        UNLOCKED = "unlocked"
        LOCK_EXPIRED = "lock-expired"

    job_id = models.CharField(max_length=64)
    event = models.CharField(max_length=32, choices=Event.choices)
    timestamp = models.DateTimeField(default=clock.now)
    worker = models.CharField(max_length=255, null=True, blank=True)
    retries = models.IntegerField(null=True, blank=True)
    exception_message = models.TextField(null=True, blank=True)
    exception_stacktrace = models.TextField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    return_value = models.JSONField(null=True, blank=True)
    # Copied from the job so history stays scoped and searchable after the job is gone.
    job_definition_id = models.CharField(max_length=64, null=True, blank=True)
    handler = models.CharField(max_length=255, blank=True, default="")
    queue_name = models.CharField(max_length=100, null=True, blank=True)
    # The job's payload, kept on the "created" entry: a finished django.tasks result still
    # answers its args and kwargs after the job row is gone.
    payload = models.JSONField(null=True, blank=True)
    tenant_id = models.CharField(max_length=64, null=True, blank=True)
    process_instance_id = models.CharField(max_length=255, null=True, blank=True)
    process_definition_key = models.CharField(max_length=255, null=True, blank=True)
    activity_id = models.CharField(max_length=255, null=True, blank=True)
    # The rest of Camunda's HistoricJobLogDto: named as on Job, so every path that copies a
    # job's columns onto its entries (jobs.services, jobs.claims) copies these too.
    due_date = models.DateTimeField(null=True, blank=True)
    priority = models.BigIntegerField(null=True, blank=True)
    execution_id = models.CharField(max_length=255, null=True, blank=True)
    process_definition_id = models.CharField(max_length=255, null=True, blank=True)
    failed_activity_id = models.CharField(max_length=255, null=True, blank=True)
    job_definition_type = models.CharField(max_length=255, null=True, blank=True)
    job_definition_configuration = models.TextField(null=True, blank=True)
    # The host of the process that wrote the entry (jobs.conf.hostname), as Camunda's engine
    # names itself in its job log.
    hostname = models.CharField(max_length=255, null=True, blank=True)

    objects = JobLogQuerySet.as_manager()

    class Meta:
        ordering = ["-timestamp", "-id"]
        indexes = [
            models.Index(fields=["job_id", "-timestamp"], name="joblog_job_idx"),
            models.Index(fields=["-timestamp"], name="joblog_time_idx"),
            models.Index(fields=["event", "-timestamp"], name="joblog_event_idx"),
        ]

    def __str__(self):
        return f"{self.job_id} {self.event} at {self.timestamp:%Y-%m-%d %H:%M:%S}"

    @property
    def history_state(self) -> str | None:
        """This entry's Camunda log state (HISTORY_EVENTS), or None: not in the history API."""
        return HISTORY_EVENTS.get(self.event)


# Camunda's job log states, from our events: the one place that says which entries the history
# API shows and with which flag. Our other events (started, lock-expired, retries-set, ...) are
# for the console's attempt history only. A successful job is deleted without a deletion entry,
# as in Camunda.
HISTORY_EVENTS = {
    JobLog.Event.CREATED: CREATION_LOG,
    JobLog.Event.FAILED: FAILURE_LOG,
    JobLog.Event.SUCCEEDED: SUCCESS_LOG,
    JobLog.Event.DELETED: DELETION_LOG,
}


class ExecutorHeartbeat(models.Model):
    """A job executor process, as it last reported itself (every few seconds while it runs):
    the console's executors list, and its warning that batches will not progress when none
    has been seen for a while."""

    worker_id = models.CharField(primary_key=True, max_length=255)
    hostname = models.CharField(max_length=255, blank=True, default="")
    pid = models.IntegerField(null=True, blank=True)
    # The queues it runs; empty: every queue.
    queues = models.JSONField(default=list, blank=True)
    started_at = models.DateTimeField(default=clock.now)
    last_seen = models.DateTimeField(default=clock.now)
    running = models.IntegerField(default=0)  # jobs it held when it last reported

    class Meta:
        ordering = ["-last_seen"]
        indexes = [models.Index(fields=["-last_seen"], name="executor_seen_idx")]

    def __str__(self):
        return f"{self.worker_id} (seen {self.last_seen:%Y-%m-%d %H:%M:%S})"


class QueuePause(models.Model):
    """A paused job queue: executors claim none of its jobs while this row exists (jobs.claims);
    jobs already running finish. Queues belong to the deployment, not to a tenant, so pausing
    one pauses every tenant's jobs in it (jobs.services.pause_queue says who may)."""

    name = models.CharField(primary_key=True, max_length=100)  # Job.queue_name
    paused_at = models.DateTimeField(default=clock.now)
    paused_by = models.CharField(max_length=150, blank=True, default="")
    reason = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"queue {self.name} paused by {self.paused_by or 'system'}"
