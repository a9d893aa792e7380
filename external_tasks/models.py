from django.contrib.postgres.indexes import OpClass
from django.db import models
from django.db.models import F, Q

from project import clock, tenancy
from project.filters import CREATION_LOG, DELETION_LOG, FAILURE_LOG, SUCCESS_LOG
from project.ids import new_id
from project.indexes import SortIndex, TrigramIndex, nulls_first
from project.states import Status, StatusTable

# Camunda fetches tasks whose retries are unset (never failed) or still positive: `has_retries`,
# which the database keeps. Conditions on retries itself would put the column into index
# predicates, and then no change of retries could be a HOT update (see has_retries).
FETCHABLE = Q(suspended=False, has_retries=True)
# Failed: no retries left (retries 0; negative retries are refused), an incident.
FAILED = Q(has_retries=False)


# An external task's statuses in precedence order (project.states): its badge, the console's
# status filter and the metrics' backlog states all read this table.
STATUSES = StatusTable(
    Status("failed", "Failed", "no retries left", lambda now: FAILED),
    Status("suspended", "Suspended", "not fetched until activated", lambda now: Q(suspended=True)),
    Status(
        "locked",
        "Locked",
        "a worker holds a live lock",
        lambda now: Q(lock_expiration_time__gt=now),
    ),
    Status(
        "retrying",
        "Retrying",
        "failed before, retries left",
        lambda now: Q(error_message__isnull=False),
    ),
    Status(
        "expired",
        "Expired lock",
        "the worker's lock ran out",
        lambda now: Q(worker_id__isnull=False),
    ),
    Status(
        "waiting", "Waiting", "waiting for a worker to fetch it", lambda now: Q(pk__isnull=False)
    ),
)


class ExternalTaskQuerySet(models.QuerySet):
    def visible_to(self, user) -> "ExternalTaskQuerySet":
        """The tasks `user` may see: their tenants' and tenant-less ones (tenancy.scope)."""
        return tenancy.scope(self, user)

    def failed(self) -> "ExternalTaskQuerySet":
        """Tasks with no retries left: each has a failedExternalTask incident."""
        return self.filter(FAILED)

    def fetchable(self, now=None) -> "ExternalTaskQuerySet":
        """Tasks a worker's fetchAndLock may lock now: active, retries left, no live lock."""
        now = now or clock.now()
        return self.filter(
            FETCHABLE, Q(lock_expiration_time__isnull=True) | Q(lock_expiration_time__lte=now)
        )

    def in_state(self, key: str, now=None) -> "ExternalTaskQuerySet":
        """Tasks whose status (STATUSES) is `key` at `now`."""
        return self.filter(STATUSES.q(key, now or clock.now()))

    def with_status(self, now=None) -> "ExternalTaskQuerySet":
        """Each task annotated with `status`, its key in STATUSES at `now`."""
        return self.annotate(status=STATUSES.annotation(now or clock.now()))


class ExternalTask(models.Model):
    """A unit of work for an external worker, fetched by topic and locked for one worker."""

    id = models.CharField(primary_key=True, max_length=64, default=new_id)
    topic_name = models.CharField(max_length=255)
    worker_id = models.CharField(max_length=255, null=True, blank=True)
    lock_expiration_time = models.DateTimeField(null=True, blank=True)
    retries = models.IntegerField(null=True, blank=True)
    error_message = models.TextField(null=True, blank=True)
    error_details = models.TextField(null=True, blank=True)
    priority = models.BigIntegerField(default=0)
    suspended = models.BooleanField(default=False)
    activity_id = models.CharField(max_length=255, null=True, blank=True)
    activity_instance_id = models.CharField(max_length=255, null=True, blank=True)
    activity_name = models.CharField(max_length=255, null=True, blank=True)
    execution_id = models.CharField(max_length=255, null=True, blank=True)
    process_instance_id = models.CharField(max_length=255, null=True, blank=True)
    process_definition_id = models.CharField(max_length=255, null=True, blank=True)
    process_definition_key = models.CharField(max_length=255, null=True, blank=True)
    # Camunda's processDefinitionName/processDefinitionNameLike filters need it stored.
    process_definition_name = models.CharField(max_length=255, null=True, blank=True)
    process_definition_version_tag = models.CharField(max_length=255, null=True, blank=True)
    tenant_id = models.CharField(max_length=64, null=True, blank=True)
    business_key = models.CharField(max_length=255, null=True, blank=True)
    # name -> {"type": ..., "value": ..., "valueInfo": {...}}, as Camunda's REST API carries them.
    variables = models.JSONField(default=dict, blank=True)
    extension_properties = models.JSONField(default=dict, blank=True)
    create_time = models.DateTimeField(default=clock.now)
    # Retries unset or positive, computed and stored by the database. Indexes test this instead
    # of `retries`, so setting retries on tasks that keep retries left (3 -> 5, unset -> 7)
    # changes no indexed column: PostgreSQL then writes the new row version beside the old one
    # in the same page (a HOT update) instead of a new entry in each of the ~20 indexes. With
    # the table's fillfactor (migration 0006) leaving room for it, 100k set-retries went from
    # 21 s to 5 s of UPDATE (bench/README.md). Read it in queries; a saved instance's value is
    # stale until reloaded.
    has_retries = models.GeneratedField(
        expression=Q(retries__isnull=True) | Q(retries__gt=0),
        output_field=models.BooleanField(),
        db_persist=True,
    )

    objects = ExternalTaskQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [
            # The fetch path: fetchable tasks of a topic, highest priority first.
            models.Index(
                "topic_name",
                models.F("priority").desc(),
                "create_time",
                name="ext_fetchable_idx",
                condition=FETCHABLE,
            ),
            # tenant_id included: a tenant's failed tasks count by an index-only scan.
            models.Index(
                fields=["-create_time"],
                name="ext_failed_idx",
                condition=FAILED,
                include=["tenant_id"],
            ),
            # The console's "Suspended" status, newest first; partial, so other rows cost nothing.
            # The "Expired lock" and "Retrying" statuses had such indexes too (worker_id, then
            # error_message not null): both answered as fast without them (38.7 vs 40.6 ms,
            # 68.1 vs 70.4 ms at 1M tasks; the status is common, so ext_created_idx finds a page
            # of it at once), while every failed task brought back paid for an entry in each.
            # Dropped with ext_topic_idx (topic, create_time, id) in migration 0010: its only
            # query that needs it is a topic's tasks by createTime past the first pages (20,000
            # deep 8 -> 286 ms); page one of a topic by time reads ext_created_idx, topic counts
            # ext_topic_priority_idx. bench/README.md "Index audit" has the figures.
            models.Index(
                fields=["-create_time"], name="ext_suspended_idx", condition=Q(suspended=True)
            ),
            # Sort keys, each (key, id) with nulls first so one index serves both directions
            # of Taskyard's order (project.indexes); equality filters on the key use them too.
            # fetchAndLock without usePriority: a topic's fetchable tasks oldest first. Without it
            # PostgreSQL walked ext_created_idx over every topic to find one topic's oldest.
            models.Index(
                fields=["topic_name", "create_time", "id"],
                name="ext_fetch_order_idx",
                condition=FETCHABLE,
            ),
            # A topic by priority, with the columns that notLocked and withRetriesLeft test, so
            # deep pages of a topic's open tasks are index-only.
            models.Index(
                fields=["topic_name", "priority", "id"],
                name="ext_topic_priority_idx",
                include=["lock_expiration_time", "has_retries"],
            ),
            SortIndex(nulls_first("lock_expiration_time"), "id", name="ext_lock_exp_idx"),
            # (key, id) with nulls first: the console's sort by worker is an index range both
            # ways (it sorted every tied row, 0.4-0.7 s at 1M tasks, while the key alone was).
            SortIndex(nulls_first("worker_id"), "id", name="ext_worker_idx"),
            # tenant_id included: a tenant's viewer pages deep into the default order (newest
            # first) by an index-only scan, the tenant tested on the index entry instead of a
            # heap visit per row skipped (page 2,000 took 0.5-1.4 s at 1M rows).
            models.Index(
                fields=["create_time", "id"], name="ext_created_idx", include=["tenant_id"]
            ),
            models.Index(fields=["priority", "id"], name="ext_priority_idx"),
            # `active` (suspended) included: "active by process instance" pages by an
            # index-only scan.
            SortIndex(
                nulls_first("process_instance_id"), "id", name="ext_pi_idx", include=["suspended"]
            ),
            models.Index(fields=["execution_id"], name="ext_execution_idx"),
            SortIndex(nulls_first("process_definition_key"), "id", name="ext_pdkey_idx"),
            SortIndex(nulls_first("process_definition_id"), "id", name="ext_pdid_idx"),
            # With id: bulk actions on an activity walk its ids in order from this index alone;
            # nulls first, so it is also the order of the console's sort by activity.
            SortIndex(nulls_first("activity_id"), "id", name="ext_activity_idx"),
            SortIndex(nulls_first("tenant_id"), "id", name="ext_tenant_idx"),
            # Pattern operators: the console's search finds a business key by its prefix
            # (LIKE 'abc%') through this index whatever the database's collation, and an
            # equal key (businessKey, the API's filter) still uses it. With id and nulls first
            # it is also the order of the console's sort by business key (bytewise, in the
            # pattern operators' order: console.tables.BytewiseOrder).
            SortIndex(
                nulls_first(OpClass(F("business_key"), name="varchar_pattern_ops")),
                "id",
                name="ext_business_key_idx",
            ),
            # The console's word search (console.resources.search_tasks): a trigram index on the
            # error messages (partial: only tasks that failed have one); topics are matched
            # through ext_topic_priority_idx (a loose index scan of the distinct topics).
            TrigramIndex("error_message", name="ext_message_trgm_idx"),
        ]

    def __str__(self):
        return f"{self.topic_name} task {self.id}"

    def status_at(self, now=None) -> Status:
        """This task's status, read from the database by the one table (see STATUSES)."""
        key = (
            ExternalTask.objects.filter(pk=self.pk)
            .with_status(now)
            .values_list("status", flat=True)
        )
        return STATUSES[key.first() or STATUSES.keys[-1]]

    @property
    def locked(self) -> bool:
        return self.lock_expiration_time is not None and self.lock_expiration_time > clock.now()


class ExternalTaskLogQuerySet(models.QuerySet):
    def visible_to(self, user) -> "ExternalTaskLogQuerySet":
        """The log entries `user` may see: their tenants' and tenant-less ones."""
        return tenancy.scope(self, user)

    def history(self) -> "ExternalTaskLogQuerySet":
        """The entries Camunda's historic external task log shows (HISTORY_EVENTS): creation,
        failure, success and deletion; not fetches, locks or operators' changes."""
        return self.filter(event__in=list(HISTORY_EVENTS))

    def in_history_state(self, state: str) -> "ExternalTaskLogQuerySet":
        """Entries of one Camunda external task log state: creationLog, failureLog, successLog
        or deletionLog."""
        return self.filter(event__in=[e for e, s in HISTORY_EVENTS.items() if s == state])


class ExternalTaskLog(models.Model):
    """History of one external task; completion outcomes (variables, worker) live here.

    Each entry keeps the task as it was after the event (topic, worker, retries, priority,
    activity and process fields, tenant): Camunda's historic external task log reads the
    entries of project.filters.HISTORY_STATES from here."""

    class Event(models.TextChoices):
        CREATED = "created"
        LOCKED = "locked"
        FAILED = "failed"
        BPMN_ERROR = "bpmn-error"
        COMPLETED = "completed"
        DELETED = "deleted"
        RETRIES_SET = "retries-set"
        PRIORITY_SET = "priority-set"
        SUSPENDED = "suspended"
        ACTIVATED = "activated"
        UNLOCKED = "unlocked"
        LOCK_EXTENDED = "lock-extended"

    task_id = models.CharField(max_length=64)
    event = models.CharField(max_length=32, choices=Event.choices)
    timestamp = models.DateTimeField(default=clock.now)
    worker_id = models.CharField(max_length=255, null=True, blank=True)
    retries = models.IntegerField(null=True, blank=True)
    error_message = models.TextField(null=True, blank=True)
    error_details = models.TextField(null=True, blank=True)
    error_code = models.CharField(max_length=255, null=True, blank=True)
    variables = models.JSONField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    # Copied from the task so history stays scoped and searchable after the task is gone.
    topic_name = models.CharField(max_length=255, blank=True, default="")
    tenant_id = models.CharField(max_length=64, null=True, blank=True)
    process_instance_id = models.CharField(max_length=255, null=True, blank=True)
    process_definition_key = models.CharField(max_length=255, null=True, blank=True)
    activity_id = models.CharField(max_length=255, null=True, blank=True)
    business_key = models.CharField(max_length=255, null=True, blank=True)
    # The rest of Camunda's HistoricExternalTaskLogDto, named as on ExternalTask (the services
    # copy them with the columns above).
    priority = models.BigIntegerField(null=True, blank=True)
    activity_instance_id = models.CharField(max_length=255, null=True, blank=True)
    execution_id = models.CharField(max_length=255, null=True, blank=True)
    process_definition_id = models.CharField(max_length=255, null=True, blank=True)

    objects = ExternalTaskLogQuerySet.as_manager()

    class Meta:
        ordering = ["-timestamp", "-id"]
        indexes = [
            models.Index(fields=["task_id", "-timestamp"], name="extlog_task_idx"),
            models.Index(fields=["-timestamp"], name="extlog_time_idx"),
            models.Index(fields=["event", "-timestamp"], name="extlog_event_idx"),
            models.Index(fields=["topic_name", "-timestamp"], name="extlog_topic_idx"),
        ]

    def __str__(self):
        return f"{self.task_id} {self.event} at {self.timestamp:%Y-%m-%d %H:%M:%S}"

    @property
    def history_state(self) -> str | None:
        """This entry's Camunda log state (HISTORY_EVENTS), or None: not in the history API."""
        return HISTORY_EVENTS.get(self.event)


# Camunda's external task log states, from our events: the one place that says which entries
# the history API shows and with which flag. A BPMN error ends the task as a delete does (the
# process leaves the activity on its error path): a deletion entry, as in Camunda. Fetches,
# locks, unlocks and operators' changes are for the console only.
HISTORY_EVENTS = {
    ExternalTaskLog.Event.CREATED: CREATION_LOG,
    ExternalTaskLog.Event.FAILED: FAILURE_LOG,
    ExternalTaskLog.Event.COMPLETED: SUCCESS_LOG,
    ExternalTaskLog.Event.BPMN_ERROR: DELETION_LOG,
    ExternalTaskLog.Event.DELETED: DELETION_LOG,
}
