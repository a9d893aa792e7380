"""Every state transition of jobs and job definitions lives here.

The Camunda REST face, the console, the job executor and management commands call these
functions; nothing else writes to Job, JobDefinition or JobLog. Each function is one short
transaction; bulk variants are set-based (one UPDATE per batch) and return row counts.
"""

import functools
import json
import math
import re
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.tasks import Task
from django.utils import timezone
from django.utils.dateparse import parse_duration
from django.utils.module_loading import import_string

from jobs.models import Job, JobDefinition, JobLog
from project import audit, bulk, tenancy
from project.bulk import BulkResult
from project.errors import BadUserRequest, DomainError, InvalidRequest, NotFound
from project.rest.dates import format_date, parse_date

# =============================================================================================
# Creating, querying helpers and operator transitions
# (set_retries, suspend/activate, set_priority, set_due_date, unlock, delete, job definitions)
# =============================================================================================

# Bulk actions walk their rows in id order, this many per statement: IN lists well under
# SQLite's variable limit (32766), row locks held in bounded steps, memory flat for millions of
# rows, and few enough round trips that 100k rows take well under the 2 s target.
BATCH_SIZE = 5000

# Fields copied from a job onto each of its log entries, so history stays scoped and searchable
# after the job is gone. The payload is kept only on the "created" entry.
_LOG_COPY_EXCLUDE = {
    "id",
    "job_id",
    "event",
    "timestamp",
    "worker",
    "retries",
    "payload",
    # Only failure entries carry the exception; they pass it explicitly.
    "exception_message",
    "exception_stacktrace",
}


def _log_fields() -> list[str]:
    job_fields = {f.attname for f in Job._meta.concrete_fields}
    return [
        f.attname
        for f in JobLog._meta.concrete_fields
        if f.attname in job_fields and f.attname not in _LOG_COPY_EXCLUDE
    ]


def _log_entry(row: dict, event: str, *, worker: str | None = None, **extra) -> JobLog:
    """A JobLog for one job, from a `.values()` row (or a dict of the job's fields)."""
    fields = {name: row.get(name) for name in _log_fields() if name in row}
    fields.setdefault("handler", row.get("handler") or "")
    if fields.get("handler") is None:
        fields["handler"] = ""
    fields["retries"] = row.get("retries")
    fields.update(extra)
    return JobLog(job_id=row["id"], event=event, worker=worker, **fields)


def _log_values() -> list[str]:
    return ["id", "retries", *_log_fields()]


def _insert_logs(job_ids: list[str], event: str, timestamp: datetime, **extra) -> int:
    """One log entry per job in `job_ids`, copied from the job rows by one INSERT … SELECT
    (what _log_entry builds in Python for single jobs); `extra` sets columns to constants."""
    columns = {
        "job_id": F("id"),
        "event": event,
        "timestamp": timestamp,
        "retries": F("retries"),
        **{name: F(name) for name in _log_fields()},
        **extra,
    }
    return bulk.insert_select(JobLog, Job.objects.filter(id__in=job_ids).order_by("id"), columns)


def _actor(user) -> str:
    return getattr(user, "username", "") or "system"


# Called after each batch of a bulk action with (rows looked at, rows changed) so far: a
# management command or a streaming response can show progress on long runs.
Progress = Callable[[int, int], None]


def visible_jobs(user) -> QuerySet:
    """Jobs the user may see (tenant scoping); the base of every job query path."""
    return tenancy.scope(Job.objects.all(), user)


def visible_job_definitions(user) -> QuerySet:
    return tenancy.scope(JobDefinition.objects.all(), user)


def get_job(user, job_id: str) -> Job:
    """The job, or Camunda's 404 (also for jobs of other tenants: they do not exist for you)."""
    job = visible_jobs(user).filter(id=job_id).first()
    if job is None:
        raise NotFound(f"Job with id {job_id} does not exist")
    return job


def get_job_definition(user, job_definition_id: str) -> JobDefinition:
    definition = visible_job_definitions(user).filter(id=job_definition_id).first()
    if definition is None:
        raise NotFound(f"Job definition with id {job_definition_id} does not exist")
    return definition


def _select(user, rows, model) -> tuple[QuerySet, int | None]:
    """Rows given as a queryset, an id or an iterable of ids -> (scoped queryset, ids asked).
    For small selections (job definitions); jobs go through _batches.

    A queryset is re-scoped (scoping twice is harmless, forgetting it once is a leak)."""
    asked = _asked_ids(rows)
    if asked is None:
        return tenancy.scope(rows, user), None
    return tenancy.scope(model.objects.filter(id__in=asked), user), len(asked)


def _asked_ids(jobs) -> list[str] | None:
    """The ids a caller asked for, sorted and distinct; None when it passed a queryset."""
    if isinstance(jobs, QuerySet):
        return None
    return sorted({jobs} if isinstance(jobs, str) else {str(job_id) for job_id in jobs})


def _batches(user, jobs, model=Job):
    """Visible ids of `jobs` in id order, BATCH_SIZE at a time.

    A queryset is scoped and walked by keyset (rows leaving the filter while we update them do
    not shift later batches); a list of ids is walked in chunks, so a selection of 100k ids
    never becomes one giant IN list."""
    asked = _asked_ids(jobs)
    if asked is None:
        queryset = tenancy.scope(jobs, user).order_by("id")
        last = None
        while True:
            page = queryset if last is None else queryset.filter(id__gt=last)
            ids = list(page.values_list("id", flat=True)[:BATCH_SIZE])
            if not ids:
                return
            yield ids
            last = ids[-1]
    for start in range(0, len(asked), BATCH_SIZE):
        chunk = tenancy.scope(model.objects.filter(id__in=asked[start : start + BATCH_SIZE]), user)
        ids = list(chunk.order_by("id").values_list("id", flat=True))
        if ids:
            yield ids


def _histogram(counter: Counter, field: str) -> dict:
    return {field: {str(value): count for value, count in counter.items()}}


def _bulk_update(
    user,
    jobs,
    *,
    changes: dict,
    event: str,
    action: str,
    only_if: Q | None = None,
    before_field: str | None = None,
    after: dict | None = None,
    source: str = "api",
    reason: str = "",
    filter: dict | None = None,
    log_extra: dict | None = None,
    progress: Progress | None = None,
) -> BulkResult:
    """The one set-based update behind every job operator action.

    Per batch: lock the rows that still qualify, one UPDATE, one INSERT of log entries. The
    whole action is one transaction with its audit entry, so it lands completely or not at all.
    """
    asked = _asked_ids(jobs)
    changed = matched = 0
    ids_changed: list[str] = []
    before = Counter()
    now = timezone.now()
    with transaction.atomic():
        for ids in _batches(user, jobs):
            matched += len(ids)
            if connection.vendor == "postgresql":
                rows = _update_batch_at_once(
                    user, ids, changes, event, now, only_if, before_field, log_extra
                )
                row_ids = [row["id"] for row in rows]
                changed += len(rows)
                if before_field:
                    before.update(row[f"before_{before_field}"] for row in rows)
                if len(ids_changed) < audit.MAX_IDS:
                    ids_changed.extend(row_ids)
                if progress is not None and rows:
                    progress(matched, changed)
                continue
            # Lock in id order: two bulk actions over overlapping rows then wait for each
            # other instead of deadlocking (PostgreSQL locks rows in scan order otherwise).
            rows = Job.objects.select_for_update().filter(id__in=ids).order_by("id")
            if only_if is not None:
                rows = rows.filter(only_if)
            # Only ids (and the histogram's column) come back to Python; the log entries are
            # copied by the database from the locked rows.
            locked = list(rows.values_list("id", before_field or "id"))
            if not locked:
                continue
            row_ids = [row[0] for row in locked]
            _insert_logs(row_ids, event, now, worker=_actor(user), **(log_extra or {}))
            changed += Job.objects.filter(id__in=row_ids).update(**changes)
            if before_field:
                before.update(row[1] for row in locked)
            if len(ids_changed) < audit.MAX_IDS:
                ids_changed.extend(row_ids)
            if progress is not None:
                progress(matched, changed)
        skipped = (len(asked) if asked is not None else matched) - changed
        audit.record(
            user,
            "job",
            action,
            ids=ids_changed,
            filter=filter,
            count=changed,
            skipped=max(skipped, 0),
            before=_histogram(before, before_field) if before_field else None,
            after=after,
            source=source,
            reason=reason,
        )
    return BulkResult(changed, max(skipped, 0))


def _update_batch_at_once(user, ids, changes, event, now, only_if, before_field, log_extra):
    """PostgreSQL: lock, update and log one batch in one statement (project.bulk); the log rows
    copy the updated job, `log_extra` (e.g. set_retries' new retries) on top."""
    log_columns = {
        "job_id": F("id"),
        "event": event,
        "timestamp": now,
        "retries": F("retries"),
        **{name: F(name) for name in _log_fields()},
        "worker": _actor(user),
        **(log_extra or {}),
    }
    return bulk.update_and_log(
        Job,
        ids,
        changes,
        JobLog,
        log_columns,
        only_if=only_if,
        before=(before_field,) if before_field else (),
        returning=("id",),
    )


# --- creating -------------------------------------------------------------------------------

JOB_FIELDS = {
    "type",
    "handler",
    "payload",
    "due_date",
    "retries",
    "priority",
    "job_definition_id",
    "process_instance_id",
    "execution_id",
    "process_definition_id",
    "process_definition_key",
    "activity_id",
    "tenant_id",
    "queue_name",
}


def _within(module: str, packages) -> bool:
    return any(module == package or module.startswith(f"{package}.") for package in packages)


def check_handler(handler: str | None) -> None:
    """Refuse a handler the executor would refuse, when the job is created rather than when it
    first runs: anyone who may create a job picks its handler, so it must not be any dotted
    path (os.system). The executor's rule applies when it is installed; otherwise only
    callables in TASKYARD_EXECUTOR["HANDLER_MODULES"] are allowed."""
    if not handler:
        raise InvalidRequest("Every job needs a handler (the dotted path of a callable)")
    try:
        from jobs.executor import resolve_handler
    except ImportError:
        resolve_handler = None
    if resolve_handler is not None:
        try:
            resolve_handler(handler)
        except Exception as error:  # refused, missing module or attribute: all a bad handler
            raise InvalidRequest(f"Invalid handler '{handler}': {error}") from None
        return
    module = handler.rpartition(".")[0]
    plain_allowed = _within(
        module, getattr(settings, "TASKYARD_EXECUTOR", {}).get("HANDLER_MODULES") or ()
    )
    refusal = (
        f"Handler '{handler}' is not allowed: job handlers are django.tasks tasks of an "
        "installed app, or callables in a module listed in TASKYARD_EXECUTOR['HANDLER_MODULES']"
    )
    if not plain_allowed and not _within(module, [app.name for app in apps.get_app_configs()]):
        raise InvalidRequest(refusal)
    try:
        target = import_string(handler)
    except ImportError as error:
        raise InvalidRequest(f"Invalid handler '{handler}': {error}") from None
    if isinstance(target, Task):
        return
    if not plain_allowed:
        raise InvalidRequest(refusal)
    if not callable(target):
        raise InvalidRequest(f"Invalid handler '{handler}': not callable")


def _check_lengths(fields: dict) -> None:
    """Refuse strings longer than their column: PostgreSQL would fail the insert with a 500 and
    SQLite would store them whole."""
    for name, value in fields.items():
        limit = getattr(Job._meta.get_field(name), "max_length", None)
        if isinstance(value, str) and limit is not None and len(value) > limit:
            first, *rest = name.split("_")
            camel = first + "".join(part.title() for part in rest)
            raise InvalidRequest(f"'{camel}' is longer than {limit} characters")


def create_jobs(user, specs: list[dict], *, source: str = "api") -> list[Job]:
    """Create jobs from dicts of model field names; all or none. Logs "created" for each.

    A job of a job definition inherits the definition's tenant, process fields and
    overriding priority unless given, and starts suspended when the definition is."""
    jobs = []
    for spec in specs:
        unknown = set(spec) - JOB_FIELDS
        if unknown:
            raise InvalidRequest(f"Unknown job fields: {', '.join(sorted(unknown))}")
        fields = dict(spec)
        if fields.get("retries") is not None and fields["retries"] < 0:
            raise InvalidRequest(
                "The number of job retries must be a non-negative Integer, but "
                f"'{fields['retries']}' has been provided."
            )
        check_handler(fields.get("handler"))
        _check_lengths(fields)
        definition_id = fields.get("job_definition_id")
        if definition_id:
            definition = get_job_definition(user, definition_id)
            for name in ("process_definition_id", "process_definition_key", "activity_id"):
                if fields.get(name) is None:
                    fields[name] = getattr(definition, name)
            if fields.get("tenant_id") is None:
                fields["tenant_id"] = definition.tenant_id
            if fields.get("priority") is None and definition.overriding_priority is not None:
                fields["priority"] = definition.overriding_priority
            fields["suspended"] = definition.suspended
        if not tenancy.may_use_tenant(user, fields.get("tenant_id")):
            raise DomainError(
                f"Cannot create a job for tenant '{fields['tenant_id']}': "
                "you are not a member of that tenant",
                status_code=403,
                error_type="AuthorizationException",
            )
        if fields.get("type") is None:
            fields["type"] = Job.Type.TIMER if fields.get("due_date") else Job.Type.MESSAGE
        if fields["type"] not in Job.Type.values:
            raise InvalidRequest(f"Job type must be one of {', '.join(Job.Type.values)}")
        jobs.append(Job(**{name: value for name, value in fields.items() if value is not None}))
    with transaction.atomic():
        Job.objects.bulk_create(jobs)
        logs = []
        for job in jobs:
            row = {name: getattr(job, name, None) for name in _log_values()}
            log = _log_entry(row, JobLog.Event.CREATED, worker=_actor(user))
            if hasattr(log, "payload"):
                log.payload = job.payload
            logs.append(log)
        JobLog.objects.bulk_create(logs)
        audit.record(
            user,
            "job",
            "create",
            ids=[job.id for job in jobs],
            count=len(jobs),
            source=source,
        )
    return jobs


# --- retries --------------------------------------------------------------------------------


def _check_retries(retries) -> int:
    if retries is None or isinstance(retries, bool) or not isinstance(retries, int):
        raise InvalidRequest(
            f"The number of job retries must be a non-negative Integer, but '{retries}' "
            "has been provided."
        )
    if retries < 0:
        raise InvalidRequest(
            "The number of job retries must be a non-negative Integer, but "
            f"'{retries}' has been provided."
        )
    return retries


def set_retries(
    user,
    jobs,
    retries: int,
    *,
    due_date: datetime | None = None,
    source: str = "api",
    reason: str = "",
    filter: dict | None = None,
    progress: Progress | None = None,
) -> BulkResult:
    """Set retries (and optionally a new due date) on jobs: ids, one id, or a queryset.

    Setting retries above 0 on a failed job makes it executable again (the incident is
    resolved); the last exception stays visible until the next run."""
    retries = _check_retries(retries)
    changes = {"retries": retries}
    after = {"retries": retries}
    # Jobs that already look like this are left alone (counted as skipped): no new row
    # version in every index, no history entry saying nothing happened.
    unchanged = Q(retries=retries)
    if due_date is not None:
        changes["due_date"] = due_date
        after["dueDate"] = format_date(due_date)
        unchanged &= Q(due_date=due_date)
    return _bulk_update(
        user,
        jobs,
        changes=changes,
        event=JobLog.Event.RETRIES_SET,
        action="set_retries",
        before_field="retries",
        after=after,
        source=source,
        reason=reason,
        filter=filter,
        log_extra={"retries": retries},
        only_if=~unchanged,
        progress=progress,
    )


def set_job_definition_retries(
    user, job_definition_id: str, retries: int, *, source="api", reason: str = ""
):
    """Camunda's "retries of a job definition": reset the retries of its failed jobs only."""
    definition = get_job_definition(user, job_definition_id)
    return set_retries(
        user,
        Job.objects.filter(job_definition_id=definition.id, retries=0),
        retries,
        source=source,
        reason=reason,
        filter={"jobDefinitionId": definition.id, "noRetriesLeft": True},
    )


# --- suspension -----------------------------------------------------------------------------


def set_suspended(
    user,
    jobs,
    suspended: bool,
    *,
    source: str = "api",
    reason: str = "",
    filter: dict | None = None,
    progress: Progress | None = None,
) -> BulkResult:
    """Suspend (True) or activate (False) jobs; rows already in that state are skipped."""
    return _bulk_update(
        user,
        jobs,
        changes={"suspended": suspended},
        only_if=Q(suspended=not suspended),
        event=JobLog.Event.SUSPENDED if suspended else JobLog.Event.ACTIVATED,
        action="suspend" if suspended else "activate",
        after={"suspended": suspended},
        source=source,
        reason=reason,
        filter=filter,
        progress=progress,
    )


def suspend(user, jobs, **kwargs) -> BulkResult:
    return set_suspended(user, jobs, True, **kwargs)


def activate(user, jobs, **kwargs) -> BulkResult:
    return set_suspended(user, jobs, False, **kwargs)


def jobs_selected_by(
    *,
    job_definition_id: str | None = None,
    process_instance_id: str | None = None,
    process_definition_id: str | None = None,
    process_definition_key: str | None = None,
    process_definition_tenant_id: str | None = None,
    process_definition_without_tenant_id: bool = False,
) -> QuerySet:
    """Jobs picked by exactly one Camunda suspension selector (unscoped: callers scope)."""
    selectors = {
        "jobDefinitionId": job_definition_id,
        "processInstanceId": process_instance_id,
        "processDefinitionId": process_definition_id,
        "processDefinitionKey": process_definition_key,
    }
    given = [name for name, value in selectors.items() if value is not None]
    if len(given) != 1:
        raise InvalidRequest(
            "Only one of jobDefinitionId, processInstanceId, processDefinitionId or "
            "processDefinitionKey should be set to update the suspension state."
            if given
            else "Either jobDefinitionId, processInstanceId, processDefinitionId or "
            "processDefinitionKey should be set to update the suspension state."
        )
    _check_tenant_options(
        process_definition_key, process_definition_tenant_id, process_definition_without_tenant_id
    )
    queryset = Job.objects.all()
    if job_definition_id is not None:
        return queryset.filter(job_definition_id=job_definition_id)
    if process_instance_id is not None:
        return queryset.filter(process_instance_id=process_instance_id)
    if process_definition_id is not None:
        return queryset.filter(process_definition_id=process_definition_id)
    return _by_process_definition_key(
        queryset,
        process_definition_key,
        process_definition_tenant_id,
        process_definition_without_tenant_id,
    )


def _check_tenant_options(key, tenant_id, without_tenant_id) -> None:
    """Camunda's tenant options of a by-process-definition selector."""
    if key is None and (tenant_id is not None or without_tenant_id):
        raise InvalidRequest(
            "processDefinitionTenantId and processDefinitionWithoutTenantId can only be used "
            "with processDefinitionKey"
        )
    if tenant_id is not None and without_tenant_id:
        raise InvalidRequest(
            "processDefinitionTenantId and processDefinitionWithoutTenantId cannot be used together"
        )


def _by_process_definition_key(queryset, key, tenant_id, without_tenant_id) -> QuerySet:
    queryset = queryset.filter(process_definition_key=key)
    if tenant_id is not None:
        return queryset.filter(tenant_id=tenant_id)
    if without_tenant_id:
        return queryset.filter(tenant_id__isnull=True)
    return queryset


def job_definitions_selected_by(
    *,
    process_definition_id: str | None = None,
    process_definition_key: str | None = None,
    process_definition_tenant_id: str | None = None,
    process_definition_without_tenant_id: bool = False,
) -> QuerySet:
    """Job definitions picked by exactly one of processDefinitionId / processDefinitionKey."""
    if (process_definition_id is None) == (process_definition_key is None):
        raise InvalidRequest(
            "Only one of processDefinitionId or processDefinitionKey should be set to update "
            "the suspension state."
            if process_definition_id is not None
            else "Either processDefinitionId or processDefinitionKey should be set to update "
            "the suspension state."
        )
    _check_tenant_options(
        process_definition_key, process_definition_tenant_id, process_definition_without_tenant_id
    )
    queryset = JobDefinition.objects.all()
    if process_definition_id is not None:
        return queryset.filter(process_definition_id=process_definition_id)
    return _by_process_definition_key(
        queryset,
        process_definition_key,
        process_definition_tenant_id,
        process_definition_without_tenant_id,
    )


def set_job_definitions_suspended(
    user,
    definitions,
    suspended: bool,
    *,
    include_jobs: bool = False,
    source: str = "api",
    reason: str = "",
    filter: dict | None = None,
) -> BulkResult:
    """Suspend or activate job definitions (ids, one id or a queryset), with their jobs when
    `include_jobs`. The executor skips jobs of suspended definitions either way."""
    queryset, asked = _select(user, definitions, JobDefinition)
    with transaction.atomic():
        ids = list(queryset.filter(suspended=not suspended).values_list("id", flat=True))
        matched = queryset.count() if asked is None else asked
        changed = 0
        for start in range(0, len(ids), BATCH_SIZE):
            changed += JobDefinition.objects.filter(id__in=ids[start : start + BATCH_SIZE]).update(
                suspended=suspended
            )
        jobs_result = None
        if include_jobs:
            # Every job of the selected definitions, also of definitions already in the state.
            definition_ids = list(queryset.values_list("id", flat=True))
            jobs_result = set_suspended(
                user,
                Job.objects.filter(job_definition_id__in=definition_ids),
                suspended,
                source=source,
                reason=reason,
                filter={"jobDefinitionIdIn": definition_ids[: audit.MAX_IDS]},
            )
        audit.record(
            user,
            "job_definition",
            "suspend" if suspended else "activate",
            ids=ids,
            filter=filter,
            count=changed,
            skipped=max(matched - changed, 0),
            after={
                "suspended": suspended,
                "includeJobs": include_jobs,
                "jobsChanged": jobs_result.changed if jobs_result else 0,
            },
            source=source,
            reason=reason,
        )
    return BulkResult(changed, max(matched - changed, 0))


def schedule_job_definitions_suspension(
    user,
    definitions,
    suspended: bool,
    *,
    execution_date: datetime,
    include_jobs: bool = False,
    source: str = "api",
    reason: str = "",
    filter: dict | None = None,
) -> Job:
    """Camunda's delayed (de)activation: a timer job due at `execution_date` that applies the
    change to the definitions selected now, with the scheduling user's rights when it runs."""
    queryset, _ = _select(user, definitions, JobDefinition)
    ids = list(queryset.order_by("id").values_list("id", flat=True))
    tenants = set(queryset.values_list("tenant_id", flat=True).distinct())
    spec = {
        "type": Job.Type.TIMER,
        "handler": "jobs.scheduled.apply_job_definition_suspension",
        "payload": {
            "args": [],
            "kwargs": {
                "job_definition_ids": ids,
                "suspended": suspended,
                "include_jobs": include_jobs,
                "requested_by": _actor(user),
            },
        },
        "due_date": execution_date,
        # One tenant's definitions: the job belongs to that tenant, so its members see it.
        "tenant_id": tenants.pop() if len(tenants) == 1 else None,
        "retries": 3,
    }
    with transaction.atomic():
        [job] = create_jobs(user, [spec], source=source)
        audit.record(
            user,
            "job_definition",
            "schedule_suspend" if suspended else "schedule_activate",
            ids=ids,
            filter=filter,
            count=len(ids),
            after={
                "suspended": suspended,
                "includeJobs": include_jobs,
                "executionDate": format_date(execution_date),
                "jobId": job.id,
            },
            source=source,
            reason=reason,
        )
    return job


def apply_scheduled_suspension(
    job_definition_ids: list[str], suspended: bool, *, include_jobs: bool, requested_by: str
) -> BulkResult:
    """Run a scheduled (de)activation as the user who scheduled it (nothing if they are gone)."""
    user = get_user_model().objects.filter(username=requested_by, is_active=True).first()
    if user is None:
        return BulkResult(0, len(job_definition_ids))
    return set_job_definitions_suspended(
        user, job_definition_ids, suspended, include_jobs=include_jobs, source="scheduled"
    )


# --- priority -------------------------------------------------------------------------------


def _check_priority(priority) -> int:
    if priority is None or isinstance(priority, bool) or not isinstance(priority, int):
        raise InvalidRequest(f"Priority must be a long value, got '{priority}'")
    if not -(2**63) <= priority < 2**63:
        raise InvalidRequest(f"Priority {priority} is out of range for java type long")
    return priority


def set_priority(
    user,
    jobs,
    priority: int,
    *,
    source: str = "api",
    reason: str = "",
    filter: dict | None = None,
    progress: Progress | None = None,
) -> BulkResult:
    """Set the execution priority of jobs (higher runs first)."""
    priority = _check_priority(priority)
    return _bulk_update(
        user,
        jobs,
        changes={"priority": priority},
        event=JobLog.Event.PRIORITY_SET,
        action="set_priority",
        before_field="priority",
        after={"priority": priority},
        source=source,
        reason=reason,
        filter=filter,
        progress=progress,
    )


def set_job_definition_priority(
    user,
    job_definition_id: str,
    priority: int | None,
    *,
    include_jobs: bool = False,
    source: str = "api",
    reason: str = "",
) -> BulkResult:
    """Override (or with None, reset) the priority of a definition's future jobs; with
    `include_jobs` its existing jobs get the priority too."""
    definition = get_job_definition(user, job_definition_id)
    if priority is None and include_jobs:
        raise InvalidRequest(
            f"Cannot reset priority for job definition {definition.id} with includeJobs=true"
        )
    if priority is not None:
        priority = _check_priority(priority)
    with transaction.atomic():
        before = definition.overriding_priority
        JobDefinition.objects.filter(id=definition.id).update(overriding_priority=priority)
        jobs_result = None
        if include_jobs:
            jobs_result = set_priority(
                user,
                Job.objects.filter(job_definition_id=definition.id),
                priority,
                source=source,
                reason=reason,
                filter={"jobDefinitionId": definition.id},
            )
        audit.record(
            user,
            "job_definition",
            "set_priority",
            ids=[definition.id],
            count=1,
            before={"overridingJobPriority": before},
            after={
                "overridingJobPriority": priority,
                "includeJobs": include_jobs,
                "jobsChanged": jobs_result.changed if jobs_result else 0,
            },
            source=source,
            reason=reason,
        )
    return BulkResult(1)


# --- due dates ------------------------------------------------------------------------------


def set_due_date(
    user,
    jobs,
    due_date: datetime | None,
    *,
    cascade: bool = False,
    source: str = "api",
    reason: str = "",
    filter: dict | None = None,
    progress: Progress | None = None,
) -> BulkResult:
    """Set (or with None, clear: due now) the due date of jobs.

    `cascade` is accepted for Camunda compatibility; Taskyard timers do not repeat, so there
    are no subsequent timers to shift."""
    return _bulk_update(
        user,
        jobs,
        changes={"due_date": due_date},
        event=JobLog.Event.DUE_DATE_SET,
        action="set_due_date",
        after={"dueDate": format_date(due_date), "cascade": cascade},
        source=source,
        reason=reason,
        filter=filter,
        progress=progress,
    )


_TIMER_PREFIX = re.compile(r"^\s*(DATE|DURATION|CYCLE)\s*:\s*", re.IGNORECASE)


def timer_due_date(configuration: str | None, base: datetime) -> datetime | None:
    """The next due date a timer configuration gives from `base`: an ISO 8601 date, duration
    (PT5M) or repeating cycle (R3/PT5M), optionally prefixed as Camunda stores them
    ("DURATION: PT5M"). None when the configuration is not a timer."""
    if not configuration:
        return None
    text = _TIMER_PREFIX.sub("", configuration).strip()
    if text.upper().startswith("R"):
        parts = text.split("/")
        text = next((part for part in parts[1:] if part.upper().startswith("P")), "")
    if text.upper().startswith("P"):
        duration = parse_duration(text)
        return base + duration if duration is not None else None
    try:
        return parse_date(text)
    except InvalidRequest:
        return None


def recalculate_due_date(
    user, job_id: str, *, creation_date_based: bool = True, source: str = "api", reason: str = ""
) -> Job:
    """Recompute a timer job's due date from its job definition's timer configuration, based
    on the job's creation time (Camunda's default) or on now."""
    job = get_job(user, job_id)
    definition = job.job_definition
    base = job.create_time if creation_date_based else timezone.now()
    due_date = timer_due_date(definition.job_configuration if definition else None, base)
    if job.type != Job.Type.TIMER or due_date is None:
        raise BadUserRequest(
            f"Cannot recalculate the due date of job {job.id}: only timer jobs whose job "
            "definition has a timer configuration (a date, a duration such as PT5M or a "
            "cycle such as R3/PT5M) can be recalculated"
        )
    set_due_date(user, [job.id], due_date, source=source, reason=reason)
    job.due_date = due_date
    return job


# --- unlock, delete, execute ----------------------------------------------------------------


def unlock(
    user,
    jobs,
    *,
    source: str = "api",
    reason: str = "",
    filter: dict | None = None,
    progress: Progress | None = None,
) -> BulkResult:
    """Release executor locks (a crashed or stuck executor); unlocked rows are skipped."""
    return _bulk_update(
        user,
        jobs,
        changes={"lock_owner": None, "lock_expiration_time": None},
        only_if=Q(lock_owner__isnull=False) | Q(lock_expiration_time__isnull=False),
        event=JobLog.Event.UNLOCKED,
        action="unlock",
        after={"lockOwner": None},
        source=source,
        reason=reason,
        filter=filter,
        progress=progress,
    )


def delete(
    user,
    jobs,
    *,
    source: str = "api",
    reason: str = "",
    filter: dict | None = None,
    progress: Progress | None = None,
) -> BulkResult:
    """Delete jobs; each leaves a "deleted" entry in its history."""
    asked = _asked_ids(jobs)
    changed = matched = 0
    ids_deleted: list[str] = []
    now = timezone.now()
    with transaction.atomic():
        for ids in _batches(user, jobs):
            matched += len(ids)
            row_ids = list(
                Job.objects.select_for_update()
                .filter(id__in=ids)
                .order_by("id")
                .values_list("id", flat=True)
            )
            if row_ids:
                _insert_logs(row_ids, JobLog.Event.DELETED, now, worker=_actor(user))
                changed += Job.objects.filter(id__in=row_ids).delete()[0]
            if len(ids_deleted) < audit.MAX_IDS:
                ids_deleted.extend(row_ids)
            if progress is not None:
                progress(matched, changed)
        skipped = max((len(asked) if asked is not None else matched) - changed, 0)
        audit.record(
            user,
            "job",
            "delete",
            ids=ids_deleted,
            filter=filter,
            count=changed,
            skipped=skipped,
            source=source,
            reason=reason,
        )
    return BulkResult(changed, skipped)


class JobExecutionFailed(Exception):
    """Raised by execute_now when the job's handler raised; the failure is already recorded."""

    def __init__(self, job_id: str, message: str):
        super().__init__(message)
        self.job_id = job_id
        self.message = message


def execute_now(user, job_id: str, *, source: str = "api", reason: str = ""):
    """Run one job immediately, whatever its due date, through the executor's path: success
    deletes it and logs the result, failure decrements retries and records the exception
    (then JobExecutionFailed is raised). Returns the handler's return value."""
    job = get_job(user, job_id)
    audit.record(user, "job", "execute", ids=[job.id], count=1, source=source, reason=reason)
    # The executor section below owns how a job runs (`execute_job`: claim, run outside any
    # transaction, succeed or fail with back-off). Until it is merged, a minimal inline runner
    # with the same outcome keeps this endpoint working.
    execute_job = globals().get("execute_job")
    worker = f"{source}:{_actor(user)}"
    if execute_job is None:
        # Same refusals as the executor's claim: suspended, or held by a live executor lock.
        if job.suspended or (job.job_definition_id and job.job_definition.suspended):
            raise BadUserRequest(f"Cannot execute job {job.id}: it is suspended")
        if job.lock_expiration_time and job.lock_expiration_time > timezone.now():
            raise BadUserRequest(f"Cannot execute job {job.id}: it is locked by {job.lock_owner}")
        return _run_inline(job.id, worker=worker)
    try:
        outcome = execute_job(job.id, worker)
    except Exception as error:
        if type(error).__name__ == "JobNotExecutable":
            raise BadUserRequest(f"Cannot execute job {job.id}: {error}") from None
        raise
    if not outcome.succeeded:
        raise JobExecutionFailed(job.id, outcome.exception_message or "The job failed")
    return outcome.return_value


def _run_inline(job_id: str, *, worker: str):
    job = Job.objects.get(id=job_id)
    check_handler(job.handler)
    payload = job.payload if isinstance(job.payload, dict) else {}
    started = time.monotonic()
    try:
        handler = import_string(job.handler)
        call = handler.call if isinstance(handler, Task) else handler
        result = call(*payload.get("args", []), **payload.get("kwargs", {}))
    except Exception as error:
        message = f"{type(error).__name__}: {error}"
        stacktrace = traceback.format_exc()
        with transaction.atomic():
            retries = max(job.retries - 1, 0)
            Job.objects.filter(id=job.id).update(
                retries=retries,
                exception_message=message,
                exception_stacktrace=stacktrace,
                failed_activity_id=job.activity_id,
                lock_owner=None,
                lock_expiration_time=None,
            )
            row = {name: getattr(job, name, None) for name in _log_values()}
            _log_entry(
                row,
                JobLog.Event.FAILED,
                worker=worker,
                retries=retries,
                exception_message=message,
                exception_stacktrace=stacktrace,
                duration_ms=(time.monotonic() - started) * 1000,
            ).save()
        raise JobExecutionFailed(job.id, message) from error
    with transaction.atomic():
        Job.objects.filter(id=job.id).delete()
        row = {name: getattr(job, name, None) for name in _log_values()}
        _log_entry(
            row,
            JobLog.Event.SUCCEEDED,
            worker=worker,
            duration_ms=(time.monotonic() - started) * 1000,
            return_value=_jsonable(result),
        ).save()
    return result


def _jsonable(value):
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


# =============================================================================================
# The executor: acquire (claim), execute, succeed, fail with back-off, expired locks
# =============================================================================================
# Jobs are claimed by one statement (PostgreSQL) or inside one IMMEDIATE transaction (SQLite),
# run outside any transaction, then finished by a conditional write that only the lock holder's
# executor performs. A crashed executor simply stops renewing: its lock expires and the job is
# claimed again (logged as "lock-expired"), without spending a retry, as in Camunda.

# PostgreSQL channel an idle `runjobs` LISTENs on; sent (on commit) whenever work becomes ready.
JOBS_CHANNEL = "taskyard_jobs"

EXECUTOR_DEFAULTS = {
    "RETRY_CYCLE": "R3/PT5M",
    "BACKOFF_FACTOR": 2.0,
    "MAX_RETRY_DELAY": "PT1H",
    "LOCK_TIME": "PT5M",
    "POLL_INTERVAL": 1.0,
    "TIMEOUT": None,
    "HANDLER_MODULES": [],
    # Jobs each executor process claims per statement (see acquire_jobs and executor.Executor).
    "PREFETCH": 10,
}


def executor_setting(name: str):
    """One value of settings.TASKYARD_EXECUTOR, falling back to EXECUTOR_DEFAULTS."""
    return getattr(settings, "TASKYARD_EXECUTOR", {}).get(name, EXECUTOR_DEFAULTS[name])


MAX_SECONDS = 10 * 366 * 24 * 3600


def parse_seconds(value, name: str) -> float | None:
    """Seconds from a number, a numeric string or an ISO 8601 duration; None/0 = no value."""
    if value is None or value == "":
        return None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            duration = parse_duration(text) if text.upper().startswith("P") else None
            if duration is None:
                raise ValueError(
                    f"{name}: '{value}' is neither seconds nor a duration like PT5M"
                ) from None
            seconds = duration.total_seconds()
    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_SECONDS:
        raise ValueError(f"{name}: '{value}' must be between 0 and {MAX_SECONDS} seconds")
    return seconds or None


MAX_RETRY_DELAY_SECONDS = 366 * 24 * 3600  # whatever the settings say, retry within a year

_CYCLE_RE = re.compile(r"^R(?P<count>\d+)/(?P<interval>P\S+)$", re.IGNORECASE)


@dataclass(frozen=True)
class RetryCycle:
    """Camunda's failedJobRetryTimeCycle: `R3/PT5M` (3 retries, 5 minutes apart, grown by the
    back-off factor up to max_delay) or an explicit list `PT1M,PT5M,PT30M`."""

    retries: int
    delays: tuple[timedelta, ...]
    backoff_factor: float = 1.0
    max_delay: timedelta | None = None

    @classmethod
    def parse(cls, text: str, backoff_factor: float = 1.0, max_delay=None) -> "RetryCycle":
        text = (text or "").strip()
        if max_delay is not None and not isinstance(max_delay, timedelta):
            seconds = parse_seconds(max_delay, "MAX_RETRY_DELAY")
            max_delay = timedelta(seconds=seconds) if seconds else None
        match = _CYCLE_RE.match(text)
        if match:
            interval = parse_duration(match["interval"])
            if interval is None:
                raise ValueError(f"Invalid retry cycle '{text}': bad interval")
            factor = float(backoff_factor)
            if factor < 1:
                raise ValueError(f"Invalid back-off factor {backoff_factor}: must be >= 1")
            return cls(int(match["count"]), (interval,), factor, max_delay)
        parts = [part.strip() for part in text.split(",") if part.strip()]
        delays = tuple(
            parse_duration(part) if part.upper().startswith("P") else None for part in parts
        )
        if not parts or any(delay is None for delay in delays):
            raise ValueError(
                f"Invalid retry cycle '{text}': expected R<n>/<ISO duration> (e.g. R3/PT5M) "
                "or a comma-separated list of durations (e.g. PT1M,PT5M,PT30M)"
            )
        # An explicit list is its own back-off; the factor only grows a repeated interval.
        return cls(len(delays), delays, 1.0, max_delay)

    def delay(self, failure: int) -> timedelta:
        """Wait before the next attempt after the `failure`-th consecutive failure (1-based)."""
        failure = max(failure, 1)
        if len(self.delays) > 1:
            seconds = self.delays[min(failure, len(self.delays)) - 1].total_seconds()
        else:
            # Grown in floats and capped before it becomes a timedelta: R50/PT1H with factor 2
            # would otherwise overflow.
            seconds = self.delays[0].total_seconds()
            try:
                seconds *= self.backoff_factor ** (failure - 1)
            except OverflowError:
                seconds = math.inf if seconds else 0.0
        if self.max_delay is not None:
            seconds = min(seconds, self.max_delay.total_seconds())
        return timedelta(seconds=min(seconds, MAX_RETRY_DELAY_SECONDS))


def default_retry_cycle() -> RetryCycle:
    """The configured retry cycle; a bad setting is a configuration error, reported loudly."""
    try:
        return RetryCycle.parse(
            executor_setting("RETRY_CYCLE"),
            executor_setting("BACKOFF_FACTOR"),
            executor_setting("MAX_RETRY_DELAY"),
        )
    except ValueError as error:
        raise ImproperlyConfigured(f"TASKYARD_EXECUTOR: {error}") from None


class JobNotExecutable(Exception):
    """The job cannot be executed now: suspended, or locked by another live executor."""


@dataclass
class JobOutcome:
    """What happened when a claimed job ran."""

    job_id: str
    handler: str
    succeeded: bool
    duration_ms: float
    return_value: object = None
    exception_message: str | None = None
    exception_stacktrace: str | None = None
    retries: int | None = None  # retries left after a failure
    next_due_date: object = None
    # False when another executor took the job over meanwhile (our lock had expired); None while
    # a deferred success is not written yet.
    held_lock: bool | None = True
    # The claimed job the same write logged as "started" (the executor's next one), if any.
    next_started: Job | None = None


def _executor_log_values(job: Job, event: str, fields: dict) -> dict:
    return {
        "job_id": job.id,
        "event": event,
        "job_definition_id": job.job_definition_id,
        "handler": job.handler,
        "queue_name": job.queue_name,
        "tenant_id": job.tenant_id,
        "process_instance_id": job.process_instance_id,
        "process_definition_key": job.process_definition_key,
        "activity_id": job.activity_id,
        **fields,
    }


def _executor_log_entry(job: Job, event: str, **fields) -> JobLog:
    entry = JobLog(**_executor_log_values(job, event, fields))
    # The executor keeps a claimed job's history in memory (attach_history) when something will
    # build its TaskResult, so the django.tasks signals need not read the log back per write.
    if getattr(job, "history", None) is not None:
        job.history.append(entry)
    return entry


def _executor_log_row(job: Job, event: str, **fields) -> dict:
    """A log entry as the column values _insert_sql writes: what _executor_log_entry builds,
    without a model instance when no history is kept (a JobLog costs more than the rest of a
    no-op job's bookkeeping)."""
    values = _executor_log_values(job, event, fields)
    if getattr(job, "history", None) is not None:
        job.history.append(JobLog(**values))
    return values


def _started_entry(job: Job, worker_id: str, now) -> JobLog:
    return _executor_log_entry(
        job, JobLog.Event.STARTED, timestamp=now, worker=worker_id, retries=job.retries
    )


def _started_row(job: Job, worker_id: str, now) -> dict:
    return _executor_log_row(
        job, JobLog.Event.STARTED, timestamp=now, worker=worker_id, retries=job.retries
    )


def _insert_sql(rows: list[dict]) -> tuple[str, list]:
    """PostgreSQL: INSERT of log `rows` (column values by attname, as _executor_log_row gives),
    as SQL to embed in a statement, with the rows as one JSON parameter. One short statement
    whatever the number of rows: the driver binds a parameter per row and column client-side
    and re-parses a long statement on every call, which cost more than the database took to run
    it; json.dumps is C, and the text stays the same, so the driver's parse is cached."""
    return _log_insert_sql(), [json.dumps(rows, default=_json_time)]


def _json_time(value):
    if isinstance(value, datetime):
        return value.isoformat()  # aware (USE_TZ): PostgreSQL reads the offset
    raise TypeError(f"{type(value).__name__} is not JSON")


@functools.cache
def _log_insert_sql() -> str:
    quote = connection.ops.quote_name
    fields = [field for field in JobLog._meta.concrete_fields if not field.primary_key]
    columns = ", ".join(quote(field.column) for field in fields)
    # A missing key or JSON null is SQL NULL; the executor's rows always carry a handler.
    types = ", ".join(f"{quote(field.column)} {field.db_type(connection)}" for field in fields)
    return (
        f"INSERT INTO {quote(JobLog._meta.db_table)} ({columns}) "
        f"SELECT {columns} FROM jsonb_to_recordset(%s::jsonb) AS entry ({types})"
    )


def notify_jobs_ready() -> None:
    """Wake idle PostgreSQL executors (delivered when the current transaction commits); for
    changes the NOTIFY trigger does not see, such as a released lock."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"NOTIFY {JOBS_CHANNEL}")


def enqueue_job(
    handler: str,
    payload,
    *,
    priority: int = 0,
    queue_name: str = "default",
    due_date=None,
    retries: int | None = None,
    tenant_id: str | None = None,
) -> Job:
    """Create a job for the executor (the django.tasks backend's enqueue): a timer when it has a
    due date, otherwise a message; logged as "created" with its payload."""
    if retries is None:
        retries = default_retry_cycle().retries
    with transaction.atomic():
        job = Job.objects.create(
            type=Job.Type.TIMER if due_date is not None else Job.Type.MESSAGE,
            handler=handler,
            payload=payload,
            priority=priority,
            queue_name=queue_name,
            due_date=due_date,
            retries=retries,
            tenant_id=tenant_id,
        )
        _executor_log_entry(
            job, JobLog.Event.CREATED, timestamp=job.create_time, retries=retries, payload=payload
        ).save()
        # Idle PostgreSQL executors are woken by the jobs table's NOTIFY trigger (migration
        # 0002_executor_*), which also covers jobs created through the REST API.
    return job


def executable_jobs(now=None, queues=None):
    """Jobs an executor may claim now: active (job and definition), retries left, due, and not
    held by a live lock. Highest priority first, then the longest overdue."""
    now = now or timezone.now()
    suspended_definition = JobDefinition.objects.filter(
        pk=OuterRef("job_definition_id"), suspended=True
    )
    queryset = (
        Job.objects.filter(suspended=False, retries__gt=0)
        .filter(Q(due_date__isnull=True) | Q(due_date__lte=now))
        .filter(Q(lock_expiration_time__isnull=True) | Q(lock_expiration_time__lte=now))
        .filter(~Exists(suspended_definition))
    )
    if queues:
        queryset = queryset.filter(queue_name__in=list(queues))
    return queryset.order_by(F("priority").desc(), F("due_date").asc(nulls_last=True))


def _claim_candidates(now, queues) -> QuerySet:
    return executable_jobs(now, queues).values(
        "id", previous_owner=F("lock_owner"), previous_expiry=F("lock_expiration_time")
    )


# A stand-in for "now" while the claim statement is compiled: the statement is compiled once
# per batch size and queue list (compiling the ORM query cost about as much as running it) and
# its parameters at this value are replaced by the claim's time.
_CLAIM_NOW = datetime(2000, 1, 1, 0, 0, 0, 424242, tzinfo=UTC)
_CLAIM_SQL: dict[tuple, tuple[str, list, list[int]]] = {}
# The log columns a claim copies from the job; the others are the claim's own.
_CLAIM_LOG_COPIED = [
    "job_definition_id",
    "handler",
    "queue_name",
    "tenant_id",
    "process_instance_id",
    "process_definition_key",
    "activity_id",
]


def _claim_statement(now, limit: int, queues) -> tuple[str, list]:
    """The PostgreSQL claim as one statement, so one round trip and one commit: lock up to
    `limit` executable rows nobody else has locked (UPDATE … FROM (SELECT … FOR UPDATE SKIP
    LOCKED LIMIT n) … RETURNING), log "lock-expired" for those a previous owner held and
    "started" for the first few, and return the rows. Parameters after it: worker id, lock
    expiry, now, how many to log as started (None: all)."""
    key = (connection.alias, limit, tuple(queues or ()))
    cached = _CLAIM_SQL.get(key)
    if cached is None:
        candidates = _claim_candidates(_CLAIM_NOW, queues)
        with transaction.atomic():  # select_for_update compiles only inside a transaction
            sub_sql, sub_params = candidates.select_for_update(skip_locked=True, of=("self",))[
                :limit
            ].query.sql_with_params()
        quote = connection.ops.quote_name
        table = quote(Job._meta.db_table)
        copied = ", ".join(quote(name) for name in _CLAIM_LOG_COPIED)
        columns = ", ".join(
            quote(name)
            for name in ["job_id", "event", "timestamp", "worker", "retries", "exception_message"]
        )
        # Python's datetime.isoformat(timespec="microseconds") of the UTC time, as the SQLite
        # path writes it.
        expiry = (
            "to_char(previous_expiry AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') "
            "|| '+00:00'"
        )
        sql = (
            f"WITH claimed AS (UPDATE {table} SET lock_owner = %s, lock_expiration_time = %s "
            f"FROM ({sub_sql}) AS claim WHERE {table}.id = claim.id "
            f"RETURNING {table}.*, claim.previous_owner, claim.previous_expiry), "
            f"logged AS (INSERT INTO {quote(JobLog._meta.db_table)} ({columns}, {copied}) "
            f"SELECT id, '{JobLog.Event.LOCK_EXPIRED}', %s, previous_owner, retries, "
            f"'Lock of ' || previous_owner || ' expired at ' || {expiry} "
            f"|| '; claimed by ' || %s, {copied} "
            "FROM claimed WHERE previous_owner <> '' AND previous_expiry IS NOT NULL "
            f"UNION ALL (SELECT id, '{JobLog.Event.STARTED}', %s, %s, retries, NULL, {copied} "
            # The order acquire_jobs returns them in.
            'FROM claimed ORDER BY priority DESC, due_date ASC NULLS LAST, id COLLATE "C" '
            "LIMIT %s)) "
            "SELECT * FROM claimed"
        )
        at_now = [index for index, value in enumerate(sub_params) if type(value) is datetime]
        if any(sub_params[index] != _CLAIM_NOW for index in at_now):
            raise RuntimeError("the claim compares with a time other than now")
        cached = _CLAIM_SQL[key] = (sql, list(sub_params), at_now)
    sql, params, at_now = cached
    params = list(params)
    for index in at_now:
        params[index] = now
    return sql, params


def acquire_jobs(
    worker_id: str,
    *,
    lock_time: timedelta,
    limit: int = 1,
    queues=None,
    start: int | None = None,
) -> list[Job]:
    """Claim up to `limit` executable jobs for `worker_id` until now + lock_time, exclusively:
    two executors never hold the same job. Returns them highest priority first. Logs
    "lock-expired" (a crashed or stalled holder) for each claimed job and "started" for the
    first `start` of them (default: all) in the same transaction; the executor logs the rest
    when it starts them (log_started, or with the previous job's outcome)."""
    now = timezone.now()
    expires = now + lock_time
    if connection.vendor == "postgresql":
        # One statement: rows another executor is claiming right now are skipped, not waited
        # for, so concurrent executors never block each other or double-claim.
        sql, params = _claim_statement(now, limit, queues)
        jobs = list(
            Job.objects.raw(
                sql, [worker_id, expires, *params, now, worker_id, now, worker_id, start]
            )
        )
        jobs.sort(key=_claim_order(now))
        return jobs
    with transaction.atomic():
        # SQLite: the IMMEDIATE transaction already holds the database's write lock, so
        # select-then-update cannot interleave with another executor's claim.
        candidates = _claim_candidates(now, queues)
        if connection.features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True, of=("self",))
        rows = list(candidates[:limit])
        ids = [row["id"] for row in rows]
        Job.objects.filter(id__in=ids).update(lock_owner=worker_id, lock_expiration_time=expires)
        previous = {row["id"]: row for row in rows}
        jobs = list(Job.objects.filter(id__in=ids))
        for job in jobs:
            job.previous_owner = previous[job.id]["previous_owner"]
            job.previous_expiry = previous[job.id]["previous_expiry"]
        jobs.sort(key=_claim_order(now))
        entries = []
        for index, job in enumerate(jobs):
            if job.previous_owner and job.previous_expiry is not None:
                expiry = job.previous_expiry.astimezone(UTC).isoformat(timespec="microseconds")
                entries.append(
                    _executor_log_entry(
                        job,
                        JobLog.Event.LOCK_EXPIRED,
                        timestamp=now,
                        worker=job.previous_owner,
                        retries=job.retries,
                        exception_message=(
                            f"Lock of {job.previous_owner} expired at {expiry}; "
                            f"claimed by {worker_id}"
                        ),
                    )
                )
            if start is None or index < start:
                entries.append(_started_entry(job, worker_id, now))
        JobLog.objects.bulk_create(entries)
    return jobs


def _claim_order(now):
    # Highest priority first, then the longest overdue; ids break ties as the PostgreSQL claim
    # statement does (COLLATE "C" compares like Python).
    return lambda job: (-job.priority, job.due_date is None, job.due_date or now, job.id)


def attach_history(jobs: list[Job]) -> None:
    """Read the log of claimed jobs once, with one query for all of them, and keep it on each
    job (`job.history`); the executor's writes append to it, and the django.tasks signals build
    their TaskResult from it instead of reading the log back after every job."""
    history = {job.id: [] for job in jobs}
    for entry in JobLog.objects.filter(job_id__in=list(history)).order_by("timestamp", "id"):
        history[entry.job_id].append(entry)
    for job in jobs:
        job.history = history[job.id]


def log_started(job: Job, worker_id: str) -> None:
    """Log that a claimed job starts now (a job claimed ahead of time whose start the previous
    job's outcome did not record)."""
    _started_entry(job, worker_id, timezone.now()).save()


def release_unstarted_jobs(jobs: list[Job], worker_id: str) -> int:
    """Give back claimed jobs this executor has not started (shutdown, or a batch held too
    long): their locks go, nothing is logged (their claim was not either), and idle executors
    are woken to take them."""
    if not jobs:
        return 0
    with transaction.atomic():
        released = Job.objects.filter(id__in=[job.id for job in jobs], lock_owner=worker_id).update(
            lock_owner=None, lock_expiration_time=None
        )
        if released:
            notify_jobs_ready()
    return released


def claim_job(job_id: str, worker_id: str, *, lock_time: timedelta) -> Job:
    """Claim one job by id to run it now (Camunda's `POST /job/{id}/execute`): regardless of due
    date and retries, but never a suspended job or one another executor holds."""
    now = timezone.now()
    with transaction.atomic():
        job = (
            Job.objects.select_for_update(of=("self",))
            .select_related("job_definition")
            .get(id=job_id)
        )
        if job.suspended or (job.job_definition is not None and job.job_definition.suspended):
            raise JobNotExecutable(f"Job {job_id} is suspended")
        if (
            job.lock_expiration_time
            and job.lock_expiration_time > now
            and job.lock_owner != worker_id
        ):
            raise JobNotExecutable(
                f"Job {job_id} is locked by {job.lock_owner} until "
                f"{job.lock_expiration_time.isoformat()}"
            )
        job.lock_owner = worker_id
        job.lock_expiration_time = now + lock_time
        job.save(update_fields=["lock_owner", "lock_expiration_time"])
        _executor_log_entry(
            job, JobLog.Event.STARTED, timestamp=now, worker=worker_id, retries=job.retries
        ).save()
    return job


def extend_job_locks(job_ids, worker_id: str, *, lock_time: timedelta) -> int:
    """Renew the locks a running executor still holds; returns how many it still held."""
    job_ids = list(job_ids)
    if not job_ids:
        return 0
    with transaction.atomic():
        return Job.objects.filter(id__in=job_ids, lock_owner=worker_id).update(
            lock_expiration_time=timezone.now() + lock_time
        )


_JOB_TABLE = f'"{Job._meta.db_table}"'  # quoted alike by PostgreSQL and SQLite


def _still_ours(worker_id: str) -> Q:
    # An operator's unlock (lock_owner cleared) does not take the job away from the run that
    # already happened; only another executor's claim does.
    return Q(lock_owner=worker_id) | Q(lock_owner__isnull=True)


def success_rows(
    job: Job,
    worker_id: str,
    *,
    duration_ms: float,
    return_value=None,
    then_start: Job | None = None,
) -> list[dict]:
    """The log entries of a success, stamped now: "succeeded" and, with `then_start`, the
    executor's next claimed job "started" (complete_jobs writes them)."""
    now = timezone.now()
    rows = [
        _executor_log_row(
            job,
            JobLog.Event.SUCCEEDED,
            timestamp=now,
            worker=worker_id,
            retries=job.retries,
            duration_ms=duration_ms,
            return_value=return_value,
        )
    ]
    if then_start is not None:
        rows.append(_started_row(then_start, worker_id, now))
    return rows


def complete_jobs(worker_id: str, successes: list[tuple[str, list[dict]]]) -> set[str]:
    """Record handlers that returned: delete each job (id, log rows from success_rows) still
    ours and write all the log rows, atomically, in one statement on PostgreSQL. Returns the
    ids deleted; a job missing there had been taken over by another executor (its lock expired
    under us), and its run is logged anyway."""
    if not successes:
        return set()
    ids = [job_id for job_id, _ in successes]
    rows = [row for _, job_rows in successes for row in job_rows]
    if connection.vendor == "postgresql":
        # One statement, so one round trip and one commit for them all: the DELETE and the log
        # INSERT are atomic as a single statement in autocommit mode.
        insert_sql, insert_params = _insert_sql(rows)
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH done AS (DELETE FROM {_JOB_TABLE} WHERE id = ANY(%s) "
                "AND (lock_owner = %s OR lock_owner IS NULL) RETURNING id), "
                f"logged AS ({insert_sql}) SELECT id FROM done",
                [ids, worker_id, *insert_params],
            )
            return {row[0] for row in cursor.fetchall()}
    with transaction.atomic():
        ours = Job.objects.filter(_still_ours(worker_id))
        if len(ids) == 1:
            deleted, _ = ours.filter(id=ids[0]).delete()
            done = set(ids) if deleted else set()
        else:
            done = set(ours.filter(id__in=ids).values_list("id", flat=True))
            Job.objects.filter(id__in=done).delete()
        JobLog.objects.bulk_create([JobLog(**row) for row in rows])
    return done


def complete_job(
    job: Job,
    worker_id: str,
    *,
    duration_ms: float,
    return_value=None,
    then_start: Job | None = None,
) -> bool:
    """The handler returned: delete the job and log the success (and, with `then_start`, that
    the executor's next claimed job starts). Returns False when another executor had taken the
    job over (its lock expired under us); the run is logged anyway."""
    rows = success_rows(
        job, worker_id, duration_ms=duration_ms, return_value=return_value, then_start=then_start
    )
    return job.id in complete_jobs(worker_id, [(job.id, rows)])


def fail_job(
    job: Job,
    worker_id: str,
    *,
    message: str,
    stacktrace: str,
    duration_ms: float | None = None,
    retry_cycle: RetryCycle | None = None,
    then_start: Job | None = None,
) -> JobOutcome:
    """The handler raised: spend one retry, keep the message and stack trace, and schedule the
    next attempt from the retry cycle. At 0 retries the job stays as a failure (an incident)
    until an operator sets retries again. `then_start`: as in complete_job."""
    cycle = retry_cycle or default_retry_cycle()
    now = timezone.now()
    outcome = JobOutcome(
        job.id, job.handler, False, duration_ms or 0.0, None, message, stacktrace, job.retries
    )
    with transaction.atomic():
        current = Job.objects.select_for_update().filter(_still_ours(worker_id), id=job.id).first()
        if current is None:
            outcome.held_lock = False
        else:
            current.retries = max(current.retries - 1, 0)
            if current.retries > 0:
                # Failures so far, counted against the cycle: an operator who raises retries
                # above the cycle's count restarts the back-off from its first interval.
                current.due_date = now + cycle.delay(cycle.retries - current.retries)
            current.exception_message = message
            current.exception_stacktrace = stacktrace
            current.failed_activity_id = current.activity_id
            current.lock_owner = None
            current.lock_expiration_time = None
            current.save(
                update_fields=[
                    "retries",
                    "due_date",
                    "exception_message",
                    "exception_stacktrace",
                    "failed_activity_id",
                    "lock_owner",
                    "lock_expiration_time",
                ]
            )
            outcome.retries = current.retries
            outcome.next_due_date = current.due_date if current.retries > 0 else None
            current.history = getattr(job, "history", None)
            job = current
        entries = [
            _executor_log_entry(
                job,
                JobLog.Event.FAILED,
                timestamp=now,
                worker=worker_id,
                retries=outcome.retries,
                duration_ms=duration_ms,
                exception_message=message,
                exception_stacktrace=stacktrace,
            )
        ]
        if then_start is not None:
            entries.append(_started_entry(then_start, worker_id, now))
        JobLog.objects.bulk_create(entries)
    return outcome


def release_job(job: Job, worker_id: str, reason: str) -> bool:
    """Give a claimed job back without spending a retry (executor shutting down mid-job)."""
    with transaction.atomic():
        released = Job.objects.filter(id=job.id, lock_owner=worker_id).update(
            lock_owner=None, lock_expiration_time=None
        )
        if released:
            _executor_log_entry(
                job,
                JobLog.Event.UNLOCKED,
                worker=worker_id,
                retries=job.retries,
                exception_message=reason,
            ).save()
            notify_jobs_ready()
    return bool(released)


def run_claimed_job(
    job: Job,
    worker_id: str,
    *,
    timeout: float | None = None,
    retry_cycle: RetryCycle | None = None,
    next_job: Callable[[], Job | None] | None = None,
    defer_success: Callable[[Job, list[dict], "JobOutcome"], None] | None = None,
) -> JobOutcome:
    """Run a job this worker has claimed, outside any transaction, and record the outcome.

    `next_job`, asked once the handler has returned, names the claimed job the executor runs
    next: the write recording this outcome also logs that one as started (outcome.next_started),
    which saves a statement and a commit per job. `defer_success`, when given, takes a success
    to record later (with its log rows) instead of writing it now, unless a project's
    django.tasks task_finished receiver waits for it: then it is written first, as always. The
    caller sends task_finished for a deferred success once it is written."""
    from jobs import backends, executor

    backends.send_task_signal(job, started=True)
    started = time.monotonic()
    try:
        value = executor.call_handler(job, timeout=timeout)
    except (executor.JobInterrupted, KeyboardInterrupt):
        release_job(job, worker_id, "Executor shut down while the job ran; released unfinished")
        raise
    except BaseException as error:  # noqa: BLE001 - a job's failure must never kill the executor
        duration_ms = (time.monotonic() - started) * 1000
        message = str(error) or type(error).__name__
        stacktrace = "".join(traceback.format_exception(error))
        then_start = next_job() if next_job else None
        outcome = fail_job(
            job,
            worker_id,
            message=message,
            stacktrace=stacktrace,
            duration_ms=duration_ms,
            retry_cycle=retry_cycle,
            then_start=then_start,
        )
        outcome.next_started = then_start
        # Inside the except block, as django.tasks receivers expect: exc_info is available.
        backends.send_task_signal(job, started=False, outcome=outcome)
        return outcome
    duration_ms = (time.monotonic() - started) * 1000
    value = executor.json_value(value)
    then_start = next_job() if next_job else None
    rows = success_rows(
        job, worker_id, duration_ms=duration_ms, return_value=value, then_start=then_start
    )
    outcome = JobOutcome(job.id, job.handler, True, duration_ms, value, next_started=then_start)
    if defer_success is not None and not backends.finished_signal_awaited(job):
        # The caller writes it later, with other successes (complete_jobs), and sets held_lock.
        outcome.held_lock = None
        defer_success(job, rows, outcome)
        return outcome
    outcome.held_lock = job.id in complete_jobs(worker_id, [(job.id, rows)])
    backends.send_task_signal(job, started=False, outcome=outcome)
    return outcome


def execute_job(job_id: str, worker_id: str, *, lock_time: timedelta | None = None) -> JobOutcome:
    """Run one job now through the executor's path (claim, run, succeed or fail)."""
    if lock_time is None:
        lock_time = timedelta(seconds=parse_seconds(executor_setting("LOCK_TIME"), "LOCK_TIME"))
    job = claim_job(job_id, worker_id, lock_time=lock_time)
    return run_claimed_job(job, worker_id)
