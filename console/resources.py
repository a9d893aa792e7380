"""The kinds of row the console shows, each described once: jobs and external tasks.

A Resource is the only place the console learns about a kind: its model and scoping, its
FilterSet and free-text search, its status table (the app's STATUSES), the columns, the
actions mapped to the app's service functions, the export fields, its URL names and its
templates. Views, tables, actions and template tags read these descriptions; a new kind or a
new column is one edit here (and its partials), not a switch on "job" or "task" elsewhere.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import F, Q

from external_tasks import services as task_services
from external_tasks.filters import ExternalTaskFilter
from external_tasks.models import STATUSES as TASK_STATUSES
from external_tasks.models import ExternalTask, ExternalTaskLog
from jobs import runner as job_runner
from jobs import services as job_services
from jobs.filters import JobFilter
from jobs.models import STATUSES as JOB_STATUSES
from jobs.models import Job, JobLog, QueuePause
from project import incidents, tenancy
from project.bulk import BulkResult
from project.errors import DomainError
from project.states import StatusTable

HISTORY_ROWS = 200


class ActionInputError(Exception):
    """The operator's input for an action cannot be used; the message says why."""


@dataclass(frozen=True)
class Column:
    key: str  # the name in `sort=`, in `columns=` and in the header
    label: str
    field: str | None = None  # model field to sort on; None = not sortable
    numeric: bool = False
    default: bool = True  # shown until the user chooses columns (console.models.ColumnChoice)
    required: bool = False  # always shown (the id links to the row)
    # Rows without a value sort after the others ascending, before them descending: "Due"
    # ascending is what is due next, and work without a due date is not due next. (The REST
    # API keeps Camunda's order, nulls smallest; only the console's order differs.)
    nulls_last: bool = False
    first: str = "asc"  # the direction of a first click on the header
    # Ties go by these fields before the id when the column is the last sort key: the keys its
    # index holds after it, so that index delivers the whole order (a topic's rows by priority,
    # then id, from ext_topic_priority_idx) instead of PostgreSQL sorting every tied row.
    then: tuple[str, ...] = ()
    # Ordered by the bytes of the value (PostgreSQL's pattern operators; SQLite's own order):
    # the one index that finds a prefix (LIKE 'abc%') then serves the sort too.
    bytewise: bool = False


@dataclass(frozen=True)
class ActionSpec:
    key: str
    label: str
    # The service call: run(user, target, values, **options) -> BulkResult, where target is a
    # list of ids or a queryset and options are source, filter and reason.
    run: Callable[..., BulkResult]
    admin: bool = False  # only admins (delete)
    danger: bool = False
    bulk: bool = True  # offered on selected / matching rows, not only on one row
    # Bulk changes commit together; running a job must not: its failure is recorded by the
    # executor's path and has to survive the error the console then reports.
    atomic: bool = True
    # The project.batches type that runs this action on all matching rows (and on big
    # selections) in the job executor; None: always synchronous.
    batch_type: str | None = None

    @property
    def value(self) -> str | None:
        """The input the action needs from the operator: retries / priority / due_date."""
        return ACTION_INPUTS.get(self.key)


ACTION_INPUTS = {
    "set_retries": "retries",
    "set_priority": "priority",
    "set_due_date": "due_date",
    "retry_with_payload": "payload",
}


@dataclass(frozen=True)
class Templates:
    row: str  # the cells of one table row
    actions: str  # the detail page's action forms
    facts: str  # the detail page's body while the row exists
    gone: str  # the detail page's body once the row finished or was deleted
    history: str  # the attempt history table
    extra: str = "console/_nothing.html"  # shown after the body, row or no row
    hit: str = ""  # one row of the global search results


@dataclass(frozen=True)
class Resource:
    key: str  # in URLs and forms: ?kind=job, the failure groups' kind
    noun: str  # "external task"
    plural: str
    model: type
    statuses: StatusTable
    filterset_class: type
    search: Callable  # (queryset, text) -> queryset
    columns: tuple[Column, ...]
    actions: tuple[ActionSpec, ...]
    export_fields: tuple[str, ...]
    target_type: str  # audit entries' target_type
    list_url: str
    detail_url: str
    action_url: str
    export_url: str
    templates: Templates
    history: Callable  # (user, row_id) -> list of log entries, newest first
    detail_extras: Callable  # (row or None, history) -> extra detail-page context
    search_hint: str
    empty_hint: str
    history_hint: str
    # Where a failure comes from (the handler of a job, the topic of a task), its message
    # field, and the list parameter that finds one source.
    source_field: str
    source_label: str
    message_field: str
    source_param: str
    holder_field: str  # who holds a row's lock: a job's lock owner, a task's worker
    # The log that records finished work: (model, event of a success, event of a failure).
    outcome_log: tuple
    incident_type: str  # the Camunda incident a row without retries has (project.incidents)
    default_sort: str = "-created"
    inline: tuple[str, ...] = ()  # FilterSet parameters shown inline; the rest under "More"
    hidden: tuple[str, ...] = ()  # parameters not offered as controls
    list_defer: tuple[str, ...] = ()  # big fields the table never shows
    detail_related: tuple[str, ...] = ()
    options: dict = field(default_factory=dict)  # extra keyword arguments of every service call
    retries_take_due_date: bool = False  # set retries may also move the due date
    # How the overview (console.overview) reads the kind's log (`outcome_log[0]`): the log
    # entries that bring a row into each status (a tile's change against 24 hours ago), the
    # events that create and end a row (a growing backlog), the log's column naming the
    # process that held a row's lock (a worker that stopped), and the column finished work is
    # grouped by in the throughput chart (a job's queue, a task's topic) with the list
    # parameter that finds it ("" when the list has none).
    status_events: dict = field(default_factory=dict)
    log_created: str = "created"
    log_ended: tuple[str, ...] = ()
    log_worker_field: str = "worker"
    throughput_field: str = ""
    throughput_label: str = ""
    throughput_param: str = ""

    @property
    def nav_section(self) -> str:
        return self.key

    def visible(self, user):
        """The rows `user` may see (the app's one scoping entry point)."""
        return self.model.objects.visible_to(user)

    def failed(self, user, annotation: str | None = None):
        """Rows without retries left; with `annotation`, only those whose open incident's
        annotation contains that text (any case)."""
        rows = self.visible(user).failed()
        if annotation:
            annotated = incidents.open_incidents(self.incident_type).filter(
                annotation__icontains=annotation
            )
            rows = rows.filter(pk__in=annotated.values("configuration"))
        return rows

    @property
    def columns_url(self) -> str:
        return f"{self.key}-columns"

    def column(self, key: str) -> Column | None:
        return next((c for c in self.columns if c.key == key), None)

    @property
    def incident_annotation_url(self) -> str:
        return f"{self.key}-incident-annotation"

    def incident(self, user, row_id):
        """The row's open incident, else its latest closed one (None if it never had one)."""
        return incidents.last_for(user, row_id, self.incident_type)

    def list_queryset(self, user):
        return self.visible(user).defer(*self.list_defer)

    def get(self, user, row_id):
        rows = self.visible(user).select_related(*self.detail_related)
        return rows.filter(pk=row_id).first()

    def action(self, key: str | None) -> ActionSpec | None:
        return next((a for a in self.actions if a.key == key), None)

    @property
    def bulk_actions(self) -> list[ActionSpec]:
        return [a for a in self.actions if a.bulk]

    def service_options(self, *, source, filter, reason) -> dict:
        return {"source": source, "filter": filter, "reason": reason, **self.options}


# ---------------------------------------------------------------------------------------------
# Free-text search: an exact identifier (indexed lookups) or, for tasks, a business key by its
# prefix (an index range) if one matches, else a word: a substring of the handler/topic or of
# the message. Every arm of the word search is an index on PostgreSQL, so a rare word is found
# without reading the table (it took seconds at 1M rows as a scan): the message columns have
# trigram indexes (pg_trgm, partial on rows with a message), and the few distinct handlers or
# topics are read from their btree index (a loose index scan) and matched here, so the query
# asks for `handler IN (the matching ones)`. Nothing is bounded: every match is found.


def distinct_values(model, field: str) -> list[str]:
    """The distinct non-null values of `field` in the whole table (not scoped: only used to
    build a filter that the scoped query then applies). On PostgreSQL one probe of the field's
    index per value (a recursive CTE), cheap while the values are few, whatever the row count."""
    column = model._meta.get_field(field).column
    table = model._meta.db_table
    if connection.vendor != "postgresql":
        return list(
            model.objects.exclude(**{f"{field}__isnull": True})
            .order_by()
            .values_list(field, flat=True)
            .distinct()
        )
    with connection.cursor() as cursor:
        cursor.execute(
            f'WITH RECURSIVE v(x) AS (SELECT min("{column}") FROM "{table}" UNION ALL '
            f'SELECT (SELECT min("{column}") FROM "{table}" WHERE "{column}" > v.x) '
            "FROM v WHERE v.x IS NOT NULL) SELECT x FROM v WHERE x IS NOT NULL"
        )
        return [row[0] for row in cursor.fetchall()]


def containing(model, field: str, text: str) -> Q:
    """`field` contains `text` in any case, as the values the table holds: `field IN (...)`
    (an index lookup) instead of a substring test on every row; an empty IN, which matches
    nothing, when no value contains it."""
    needle = text.lower()
    values = [v for v in distinct_values(model, field) if needle in v.lower()]
    return Q(**{f"{field}__in": values})


def search_jobs(queryset, text):
    exact = queryset.filter(
        Q(id=text)
        | Q(process_instance_id=text)
        | Q(execution_id=text)
        | Q(activity_id=text)
        | Q(process_definition_key=text)
        | Q(job_definition_id=text)
    )
    if exact.exists():
        return exact
    return queryset.filter(
        containing(Job, "handler", text) | Q(exception_message__icontains=text) | Q(lock_owner=text)
    )


def search_tasks(queryset, text):
    exact = queryset.filter(
        Q(id=text)
        | Q(process_instance_id=text)
        | Q(execution_id=text)
        | Q(business_key__startswith=text)
        | Q(activity_id=text)
        | Q(worker_id=text)
        | Q(topic_name=text)
        | Q(process_definition_key=text)
    )
    if exact.exists():
        return exact
    return queryset.filter(
        containing(ExternalTask, "topic_name", text) | Q(error_message__icontains=text)
    )


# ---------------------------------------------------------------------------------------------
# Actions: each maps the console's parsed values onto one service function.


def _execute_job(user, target, values, *, source, reason, **_ignored) -> BulkResult:
    try:
        job_runner.execute_now(user, target[0], source=source, reason=reason)
    except job_services.JobExecutionFailed as exc:
        raise ActionInputError(f"The job ran and failed: {exc.message}") from None
    return BulkResult(changed=1)


def _retry_with_payload(user, target, values, *, source, reason, **_ignored) -> BulkResult:
    try:
        job_services.retry_with_payload(
            user, target[0], values["payload"], values["retries"], source=source, reason=reason
        )
    except DomainError as error:
        raise ActionInputError(error.message) from None
    return BulkResult(changed=1)


def _set_retries_with_due_date(service):
    def run(user, target, values, **options):
        due = {"due_date": values["due_date"]} if values.get("due_date") else {}
        return service(user, target, values["retries"], **due, **options)

    return run


def _with_value(service, name):
    def run(user, target, values, **options):
        return service(user, target, values.get(name), **options)

    return run


def _plain(service):
    def run(user, target, values, **options):
        return service(user, target, **options)

    return run


JOB_ACTIONS = (
    ActionSpec(
        "set_retries",
        "Set retries",
        _set_retries_with_due_date(job_services.set_retries),
        batch_type="set-job-retries",
    ),
    ActionSpec("suspend", "Suspend", _plain(job_services.suspend), batch_type="suspend-jobs"),
    ActionSpec("activate", "Activate", _plain(job_services.activate), batch_type="activate-jobs"),
    ActionSpec(
        "set_priority",
        "Set priority",
        _with_value(job_services.set_priority, "priority"),
        batch_type="set-job-priority",
    ),
    ActionSpec(
        "set_due_date",
        "Set due date",
        _with_value(job_services.set_due_date, "due_date"),
        batch_type="set-job-due-date",
    ),
    ActionSpec("unlock", "Unlock", _plain(job_services.unlock), batch_type="unlock-jobs"),
    ActionSpec("execute", "Execute now", _execute_job, bulk=False, atomic=False),
    ActionSpec("retry_with_payload", "Retry with this payload", _retry_with_payload, bulk=False),
    ActionSpec(
        "delete",
        "Delete",
        _plain(job_services.delete),
        admin=True,
        danger=True,
        batch_type="delete-jobs",
    ),
)
TASK_ACTIONS = (
    ActionSpec(
        "set_retries",
        "Set retries",
        _with_value(task_services.set_retries, "retries"),
        batch_type="set-external-task-retries",
    ),
    ActionSpec(
        "suspend", "Suspend", _plain(task_services.suspend), batch_type="suspend-external-tasks"
    ),
    ActionSpec(
        "activate",
        "Activate",
        _plain(task_services.activate),
        batch_type="activate-external-tasks",
    ),
    ActionSpec(
        "set_priority",
        "Set priority",
        _with_value(task_services.set_priority, "priority"),
        batch_type="set-external-task-priority",
    ),
    ActionSpec(
        "unlock", "Unlock", _plain(task_services.unlock), batch_type="unlock-external-tasks"
    ),
    ActionSpec(
        "delete",
        "Delete",
        _plain(task_services.delete),
        admin=True,
        danger=True,
        batch_type="delete-external-tasks",
    ),
)


# ---------------------------------------------------------------------------------------------
# Detail pages: the history and the kind's own extras.


def job_history(user, job_id):
    logs = tenancy.scope(JobLog.objects.filter(job_id=job_id), user)
    return list(logs.order_by("-timestamp", "-id")[:HISTORY_ROWS])


def task_history(user, task_id):
    logs = tenancy.scope(ExternalTaskLog.objects.filter(task_id=task_id), user)
    return list(logs.order_by("-timestamp", "-id")[:HISTORY_ROWS])


def job_extras(job, history) -> dict:
    return {
        "payload_json": json.dumps(job.payload, indent=2, default=str) if job else "",
        # A paused queue keeps the job's status (Due, ...): the page says why it does not run.
        "queue_pause": QueuePause.objects.filter(name=job.queue_name).first() if job else None,
    }


def task_extras(task, history) -> dict:
    outcome = next((h for h in history if h.event == ExternalTaskLog.Event.COMPLETED), None)
    variables = task.variables if task else (outcome.variables if outcome else {})
    return {
        "outcome": outcome,
        "variables": variable_rows(variables),
        "extension_json": json.dumps(task.extension_properties, indent=2) if task else "",
    }


def variable_rows(variables):
    """Camunda typed variables as rows of (name, type, value text, value info)."""
    rows = []
    for name, variable in sorted((variables or {}).items()):
        if isinstance(variable, dict):
            value = variable.get("value")
            kind = variable.get("type") or "?"
            info = variable.get("valueInfo") or {}
        else:
            value, kind, info = variable, "?", {}
        text = value if isinstance(value, str) else json.dumps(value, indent=2, default=str)
        rows.append({"name": name, "type": kind, "value": text, "info": info})
    return rows


# ---------------------------------------------------------------------------------------------
# The two descriptions. Sortable columns are exactly the ones backed by an index (see the
# models' Meta.indexes).

JOBS = Resource(
    key="job",
    noun="job",
    plural="jobs",
    model=Job,
    statuses=JOB_STATUSES,
    filterset_class=JobFilter,
    search=search_jobs,
    columns=(
        Column("id", "ID", "id", required=True),
        Column("status", "Status"),
        Column("handler", "Handler"),
        Column("retries", "Retries", "retries", numeric=True),
        Column("priority", "Priority", "priority", numeric=True, first="desc"),
        Column("due", "Due", "due_date", nulls_last=True),
        Column("created", "Created", "create_time", first="desc"),
        Column("message", "Exception"),
        Column("process", "Process instance", "process_instance_id", default=False),
        Column("activity", "Activity", "activity_id", default=False),
        Column("lock", "Lock expires", "lock_expiration_time", default=False),
        Column("tenant", "Tenant", "tenant_id", default=False, then=("process_definition_key",)),
    ),
    actions=JOB_ACTIONS,
    export_fields=(
        "id",
        "type",
        "handler",
        "retries",
        "priority",
        "due_date",
        "create_time",
        "suspended",
        "exception_message",
        "failed_activity_id",
        "lock_owner",
        "lock_expiration_time",
        "process_instance_id",
        "execution_id",
        "process_definition_id",
        "process_definition_key",
        "activity_id",
        "job_definition_id",
        "tenant_id",
    ),
    target_type="job",
    list_url="job-list",
    detail_url="job-detail",
    action_url="job-action",
    export_url="job-export",
    templates=Templates(
        row="console/job/row.html",
        actions="console/job/actions.html",
        facts="console/job/facts.html",
        gone="console/job/gone.html",
        history="console/job/history.html",
        hit="console/job/hit.html",
    ),
    history=job_history,
    detail_extras=job_extras,
    search_hint="id, process instance, activity, handler, exception…",
    empty_hint="Jobs appear here when producers enqueue work.",
    history_hint="Runs, failures and operator actions are logged here.",
    source_field="handler",
    source_label="handler",
    message_field="exception_message",
    source_param="handler",
    holder_field="lock_owner",
    incident_type=incidents.FAILED_JOB,
    outcome_log=(JobLog, JobLog.Event.SUCCEEDED, JobLog.Event.FAILED),
    inline=("processDefinitionKey", "activityId", "tenantIdIn", "withException", "noRetriesLeft"),
    list_defer=("exception_stacktrace", "payload"),
    detail_related=("job_definition",),
    retries_take_due_date=True,
    status_events={
        "failed": Q(event=JobLog.Event.FAILED, retries=0),
        "suspended": Q(event=JobLog.Event.SUSPENDED),
        "locked": Q(event=JobLog.Event.STARTED),
        "expired": Q(event=JobLog.Event.LOCK_EXPIRED),
        "retrying": Q(event=JobLog.Event.FAILED, retries__gt=0),
        # A created job is due at once unless its due date lies ahead; a new due date ahead
        # makes it wait.
        "due": Q(event=JobLog.Event.CREATED)
        & (Q(due_date__isnull=True) | Q(due_date__lte=F("timestamp"))),
        "waiting": Q(event__in=[JobLog.Event.CREATED, JobLog.Event.DUE_DATE_SET])
        & Q(due_date__gt=F("timestamp")),
    },
    log_ended=(JobLog.Event.SUCCEEDED, JobLog.Event.DELETED),
    log_worker_field="worker",
    throughput_field="queue_name",
    throughput_label="queue",
)

EXTERNAL_TASKS = Resource(
    key="task",
    noun="external task",
    plural="external tasks",
    model=ExternalTask,
    statuses=TASK_STATUSES,
    filterset_class=ExternalTaskFilter,
    search=search_tasks,
    columns=(
        Column("id", "ID", "id", required=True),
        Column("status", "Status"),
        Column("topic", "Topic", "topic_name", then=("priority",)),
        # Not sortable: no index on retries (every retries update would pay for one).
        Column("retries", "Retries", numeric=True),
        Column("priority", "Priority", "priority", numeric=True, first="desc"),
        Column("created", "Created", "create_time", first="desc"),
        Column("worker", "Worker", "worker_id"),
        Column("lock", "Lock expires", "lock_expiration_time"),
        Column("message", "Error"),
        Column("process", "Process instance", "process_instance_id", default=False),
        Column("business_key", "Business key", "business_key", bytewise=True),
        Column("activity", "Activity", "activity_id", default=False),
        Column("tenant", "Tenant", "tenant_id", default=False),
    ),
    actions=TASK_ACTIONS,
    export_fields=(
        "id",
        "topic_name",
        "worker_id",
        "lock_expiration_time",
        "retries",
        "priority",
        "suspended",
        "error_message",
        "create_time",
        "business_key",
        "activity_id",
        "activity_instance_id",
        "execution_id",
        "process_instance_id",
        "process_definition_id",
        "process_definition_key",
        "tenant_id",
    ),
    target_type="external_task",
    list_url="external-task-list",
    detail_url="external-task-detail",
    action_url="external-task-action",
    export_url="external-task-export",
    templates=Templates(
        row="console/task/row.html",
        actions="console/task/actions.html",
        facts="console/task/facts.html",
        gone="console/task/gone.html",
        history="console/task/history.html",
        extra="console/task/variables.html",
        hit="console/task/hit.html",
    ),
    history=task_history,
    detail_extras=task_extras,
    search_hint="id, process instance, business key, topic, worker, error…",
    empty_hint="External tasks appear here when producers create them.",
    history_hint="Fetches, failures, completions and operator actions are logged here.",
    source_field="topic_name",
    source_label="topic",
    message_field="error_message",
    source_param="topicName",
    holder_field="worker_id",
    incident_type=incidents.FAILED_EXTERNAL_TASK,
    outcome_log=(ExternalTaskLog, ExternalTaskLog.Event.COMPLETED, ExternalTaskLog.Event.FAILED),
    inline=("topicName", "workerId", "tenantIdIn", "locked", "noRetriesLeft"),
    list_defer=("error_details", "variables", "extension_properties"),
    # The console reports rows that changed meanwhile as skipped instead of failing the action.
    options={"strict": False},
    # A task's lock running out writes no log entry: its "expired" tile has no change.
    status_events={
        "failed": Q(event=ExternalTaskLog.Event.FAILED, retries=0),
        "suspended": Q(event=ExternalTaskLog.Event.SUSPENDED),
        "locked": Q(event=ExternalTaskLog.Event.LOCKED),
        "retrying": Q(event=ExternalTaskLog.Event.FAILED, retries__gt=0),
        "waiting": Q(event=ExternalTaskLog.Event.CREATED),
    },
    log_ended=(
        ExternalTaskLog.Event.COMPLETED,
        ExternalTaskLog.Event.BPMN_ERROR,
        ExternalTaskLog.Event.DELETED,
    ),
    log_worker_field="worker_id",
    throughput_field="topic_name",
    throughput_label="topic",
    throughput_param="topicName",
)

RESOURCES = {resource.key: resource for resource in (JOBS, EXTERNAL_TASKS)}
