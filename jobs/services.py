"""The operator transitions of jobs and job definitions: create, set retries, suspend and
activate, priority, due dates, unlock, delete, scheduled suspension, timer recalculation.

The Camunda REST face, the console and management commands call these functions; the
executor's own transitions (claim, complete, fail, release) are in jobs.claims. Each function
is one short transaction; bulk variants are set-based (one UPDATE per batch) and return row counts.
"""

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils.dateparse import parse_duration

from jobs import claims
from jobs.conf import hostname
from jobs.handlers import check_handler
from jobs.models import Job, JobDefinition, JobLog, QueuePause
from project import audit, bulk, clock, incidents, tenancy
from project.bulk import BulkResult
from project.errors import BadUserRequest, DomainError, InvalidRequest, NotFound
from project.models import Incident
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
    fields["hostname"] = hostname()
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
        "job_definition_type": F("job_definition__job_type"),
        "job_definition_configuration": F("job_definition__job_configuration"),
        "hostname": hostname(),
        **extra,
    }
    return bulk.insert_select(JobLog, Job.objects.filter(id__in=job_ids).order_by("id"), columns)


def actor_name(user) -> str:
    """Who acted, as the audit and the job log name them: the username, or "system"."""
    return getattr(user, "username", "") or "system"


# Called after each batch of a bulk action with (rows looked at, rows changed) so far: a
# management command or a streaming response can show progress on long runs.
Progress = Callable[[int, int], None]


def get_job(user, job_id: str) -> Job:
    """The job, or Camunda's 404 (also for jobs of other tenants: they do not exist for you)."""
    job = Job.objects.visible_to(user).filter(id=job_id).first()
    if job is None:
        raise NotFound(f"Job with id {job_id} does not exist")
    return job


def get_job_definition(user, job_definition_id: str) -> JobDefinition:
    """The job definition, or Camunda's 404 (also for other tenants' definitions)."""
    definition = JobDefinition.objects.visible_to(user).filter(id=job_definition_id).first()
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


def _batches(user, jobs, tenants: set, model=Job):
    """Visible ids of `jobs` in id order, BATCH_SIZE at a time; the tenants of the rows reached
    are added to `tenants` (for the audit entry) by the same statements, not per row.

    A queryset is scoped and walked by keyset (rows leaving the filter while we update them do
    not shift later batches); a list of ids is walked in chunks, so a selection of 100k ids
    never becomes one giant IN list."""
    asked = _asked_ids(jobs)
    if asked is None:
        queryset = tenancy.scope(jobs, user).order_by("id")
        last = None
        while True:
            page = queryset if last is None else queryset.filter(id__gt=last)
            ids = _ids_and_tenants(page[:BATCH_SIZE], tenants)
            if not ids:
                return
            yield ids
            last = ids[-1]
    for start in range(0, len(asked), BATCH_SIZE):
        chunk = tenancy.scope(model.objects.filter(id__in=asked[start : start + BATCH_SIZE]), user)
        ids = _ids_and_tenants(chunk.order_by("id"), tenants)
        if ids:
            yield ids


def _ids_and_tenants(queryset, tenants: set) -> list[str]:
    rows = list(queryset.values_list("id", "tenant_id"))
    tenants.update(tenant for _, tenant in rows)
    return [row_id for row_id, _ in rows]


def _histogram(counter: Counter, field: str) -> dict:
    return {field: {str(value): count for value, count in counter.items()}}


@dataclass(frozen=True)
class _Change:
    """One operator change of jobs, applied a batch of ids at a time: set `changes` on the
    rows `only_if` admits, log `event` for each (with `log_extra`), then `on_changed(ids)`
    (set_retries opens and resolves incidents there). The synchronous actions and the batch
    chunks (project.batches) run it through the same _apply_change."""

    changes: dict
    event: str
    only_if: Q | None = None
    before_field: str | None = None
    log_extra: dict | None = None
    on_changed: Callable[[list[str]], object] | None = None
    # The incident type whose open incidents of the changed rows are resolved (set retries
    # above 0): on PostgreSQL in the statement that changes the rows.
    resolves: str | None = None


def _apply_change(
    user, ids: list[str], change: _Change, now, within=None, keep_before: bool = True
) -> list[tuple]:
    """Lock, update and log the rows of `ids` that still qualify (and are in `within`, a Job
    queryset, when given: a chunk's re-scoping), in id order; returns (id, value of
    `before_field` before the change) per row changed; without `keep_before` that value is
    not read on PostgreSQL (a batch chunk: its audit counts the snapshot's values)."""
    if connection.vendor == "postgresql":
        rows = _update_batch_at_once(user, ids, change, now, within, keep_before)
    else:
        rows = _update_batch_in_steps(user, ids, change, now, within)
        if rows and change.resolves is not None:
            incidents.resolve(change.resolves, [row_id for row_id, _ in rows], now=now)
    if rows and change.on_changed is not None:
        change.on_changed([row_id for row_id, _ in rows])
    return rows


def _bulk_update(
    user,
    jobs,
    change: _Change,
    *,
    action: str,
    after: dict | None = None,
    source: str = "api",
    reason: str = "",
    filter: dict | None = None,
    progress: Progress | None = None,
) -> BulkResult:
    """The one set-based update behind every synchronous job operator action.

    Per batch of BATCH_SIZE ids: _apply_change. The whole action is one transaction with its
    audit entry, so it lands completely or not at all.
    """
    asked = _asked_ids(jobs)
    changed = matched = 0
    ids_changed: list[str] = []
    before = Counter()
    before_field = change.before_field
    now = clock.now()
    tenants: set = set()
    with transaction.atomic():
        for ids in _batches(user, jobs, tenants):
            matched += len(ids)
            rows = _apply_change(user, ids, change, now)
            if not rows:
                continue
            changed += len(rows)
            if before_field:
                before.update(value for _, value in rows)
            if len(ids_changed) < audit.MAX_IDS:
                ids_changed.extend(row_id for row_id, _ in rows)
            if progress is not None:
                progress(matched, changed)
        skipped = (len(asked) if asked is not None else matched) - changed
        audit.record(
            user,
            "job",
            action,
            tenants=tenants,
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


def _update_batch_at_once(user, ids, change: _Change, now, within=None, keep_before=True):
    """PostgreSQL: lock, update and log one batch in one statement (project.bulk), resolving
    the incidents of `change.resolves` in it too; the log rows copy the updated job,
    `log_extra` (e.g. set_retries' new retries) on top. Returns (id, value before the change
    of `before_field`) per row changed."""
    event, before_field, log_extra = change.event, change.before_field, change.log_extra
    if not keep_before:
        before_field = None  # no locking pre-pass for old values nobody reads
    also = ()
    if change.resolves is not None:
        state = Incident.State.RESOLVED
        also = (incidents.close_sql(change.resolves, state, 'SELECT "id" FROM changed', now),)
    log_columns = {
        "job_id": F("id"),
        "event": event,
        "timestamp": now,
        "retries": F("retries"),
        **{name: F(name) for name in _log_fields()},
        "worker": actor_name(user),
        "hostname": hostname(),
        **(log_extra or {}),
    }
    rows = bulk.update_and_log(
        Job,
        ids,
        change.changes,
        JobLog,
        log_columns,
        only_if=change.only_if,
        within=within,
        before=(before_field,) if before_field else (),
        returning=("id",),
        also=also,
    )
    before = f"before_{before_field}" if before_field else "id"
    return [(row["id"], row[before]) for row in rows]


def _update_batch_in_steps(user, ids, change: _Change, now, within=None):
    """Elsewhere (SQLite): lock, log and update one batch in three statements. Like
    _update_batch_at_once, returns (id, value before the change of `before_field`) per row
    changed."""
    changes, event, before_field, log_extra = (
        change.changes,
        change.event,
        change.before_field,
        change.log_extra,
    )
    # Lock in id order: two bulk actions over overlapping rows then wait for each other
    # instead of deadlocking (PostgreSQL locks rows in scan order otherwise).
    rows = (within if within is not None else Job.objects).select_for_update().filter(id__in=ids)
    rows = rows.order_by("id")
    if change.only_if is not None:
        rows = rows.filter(change.only_if)
    # Only ids (and the histogram's column) come back to Python; the log entries are copied by
    # the database from the locked rows.
    locked = list(rows.values_list("id", before_field or "id"))
    if locked:
        row_ids = [row_id for row_id, _ in locked]
        _insert_logs(row_ids, event, now, worker=actor_name(user), **(log_extra or {}))
        Job.objects.filter(id__in=row_ids).update(**changes)
    return locked


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
        fields["due_date"] = clock.to_ms(fields.get("due_date"))
        jobs.append(Job(**{name: value for name, value in fields.items() if value is not None}))
    with transaction.atomic():
        Job.objects.bulk_create(jobs)
        logs = []
        definitions = JobDefinition.objects.log_columns({job.job_definition_id for job in jobs})
        for job in jobs:
            row = {name: getattr(job, name, None) for name in _log_values()}
            log = _log_entry(
                row,
                JobLog.Event.CREATED,
                worker=actor_name(user),
                **definitions.get(job.job_definition_id, {}),
            )
            if hasattr(log, "payload"):
                log.payload = job.payload
            logs.append(log)
        JobLog.objects.bulk_create(logs)
        failed = [job.id for job in jobs if job.retries == 0]
        if failed:
            # Created without retries: failed from the start, as Camunda's setRetries(0) is.
            incidents.open_for(incidents.FAILED_JOB, Job.objects.filter(id__in=failed))
        audit.record(
            user,
            "job",
            "create",
            tenants={job.tenant_id for job in jobs},
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

    Setting retries above 0 on a failed job makes it executable again and resolves its
    failedJob incident; setting them to 0 opens one. The last exception stays visible until
    the next run."""
    retries = _check_retries(retries)
    due_date = clock.to_ms(due_date)
    after = {"retries": retries}
    if due_date is not None:
        after["dueDate"] = format_date(due_date)
    return _bulk_update(
        user,
        jobs,
        _retries_change(retries, due_date),
        action="set_retries",
        after=after,
        source=source,
        reason=reason,
        filter=filter,
        progress=progress,
    )


def _retries_change(retries: int, due_date: datetime | None) -> _Change:
    changes = {"retries": retries}
    # Jobs that already look like this are left alone (counted as skipped): no new row
    # version in every index, no history entry saying nothing happened.
    unchanged = Q(retries=retries)
    if due_date is not None:
        changes["due_date"] = due_date
        unchanged &= Q(due_date=due_date)
    return _Change(
        changes=changes,
        event=JobLog.Event.RETRIES_SET,
        only_if=~unchanged,
        before_field="retries",
        log_extra={"retries": retries},
        # Above 0: resolved by the statement that sets the retries; 0: incidents opened.
        resolves=incidents.FAILED_JOB if retries > 0 else None,
        on_changed=None
        if retries > 0
        else lambda ids: incidents.open_for(incidents.FAILED_JOB, Job.objects.filter(id__in=ids)),
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
        _suspended_change(suspended),
        action="suspend" if suspended else "activate",
        after={"suspended": suspended},
        source=source,
        reason=reason,
        filter=filter,
        progress=progress,
    )


def _suspended_change(suspended: bool) -> _Change:
    return _Change(
        changes={"suspended": suspended},
        event=JobLog.Event.SUSPENDED if suspended else JobLog.Event.ACTIVATED,
        only_if=Q(suspended=not suspended),
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
        tenants = set(queryset.order_by().values_list("tenant_id", flat=True).distinct())
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
            tenants=tenants,
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
    tenants = set(queryset.order_by().values_list("tenant_id", flat=True).distinct())
    spec = {
        "type": Job.Type.TIMER,
        "handler": "jobs.scheduled.apply_job_definition_suspension",
        "payload": {
            "args": [],
            "kwargs": {
                "job_definition_ids": ids,
                "suspended": suspended,
                "include_jobs": include_jobs,
                "requested_by": actor_name(user),
            },
        },
        "due_date": clock.to_ms(execution_date),
        # One tenant's definitions: the job belongs to that tenant, so its members see it.
        "tenant_id": next(iter(tenants)) if len(tenants) == 1 else None,
        "retries": 3,
    }
    with transaction.atomic():
        [job] = create_jobs(user, [spec], source=source)
        audit.record(
            user,
            "job_definition",
            "schedule_suspend" if suspended else "schedule_activate",
            tenants=tenants,
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
        _priority_change(priority),
        action="set_priority",
        after={"priority": priority},
        source=source,
        reason=reason,
        filter=filter,
        progress=progress,
    )


def _priority_change(priority: int) -> _Change:
    return _Change(
        changes={"priority": priority}, event=JobLog.Event.PRIORITY_SET, before_field="priority"
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
            tenants=[definition.tenant_id],
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
    due_date = clock.to_ms(due_date)
    return _bulk_update(
        user,
        jobs,
        _due_date_change(due_date),
        action="set_due_date",
        after={"dueDate": format_date(due_date), "cascade": cascade},
        source=source,
        reason=reason,
        filter=filter,
        progress=progress,
    )


def _due_date_change(due_date: datetime | None) -> _Change:
    return _Change(changes={"due_date": due_date}, event=JobLog.Event.DUE_DATE_SET)


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
    base = job.create_time if creation_date_based else clock.now()
    due_date = clock.to_ms(
        timer_due_date(definition.job_configuration if definition else None, base)
    )
    if job.type != Job.Type.TIMER or due_date is None:
        raise BadUserRequest(
            f"Cannot recalculate the due date of job {job.id}: only timer jobs whose job "
            "definition has a timer configuration (a date, a duration such as PT5M or a "
            "cycle such as R3/PT5M) can be recalculated"
        )
    set_due_date(user, [job.id], due_date, source=source, reason=reason)
    job.due_date = due_date
    return job


# --- retry with an edited payload -----------------------------------------------------------

# The payload an operator may write back: what a handler is called with (jobs.handlers).
MAX_PAYLOAD_CHARS = 1_000_000


def retry_with_payload(
    user, job_id: str, payload, retries: int = 1, *, source: str = "api", reason: str = ""
) -> Job:
    """Give a job a corrected payload and retries, due now: the operator's fix for a job that
    failed on its arguments. Refused while an executor runs the job (its live lock), since the
    running call keeps the old arguments. Logged and audited with the payload before and after.
    """
    retries = _check_retries(retries)
    if retries < 1:
        raise InvalidRequest("A retry needs at least 1 retry")
    try:
        text = json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError):
        raise InvalidRequest("The payload must be JSON (no NaN or infinity)") from None
    if len(text) > MAX_PAYLOAD_CHARS:
        raise InvalidRequest(f"The payload is longer than {MAX_PAYLOAD_CHARS:,} characters")
    now = clock.now()
    with transaction.atomic():
        get_job(user, job_id)  # 404 for unknown and other tenants' jobs, before any lock
        job = Job.objects.select_for_update().get(pk=job_id)
        if job.lock_expiration_time is not None and job.lock_expiration_time > now:
            raise BadUserRequest(
                f"Job {job_id} is running (locked by {job.lock_owner}): retry it once it ends"
            )
        before = {"payload": job.payload, "retries": job.retries}
        job.payload = payload
        job.retries = retries
        job.due_date = clock.to_ms(now)
        job.save(update_fields=["payload", "retries", "due_date"])
        row = {f.attname: getattr(job, f.attname) for f in Job._meta.concrete_fields}
        _log_entry(
            row, JobLog.Event.RETRIES_SET, worker=actor_name(user), timestamp=now, payload=payload
        ).save()
        incidents.retries_set(incidents.FAILED_JOB, Job, [job.id], retries)
        audit.record(
            user,
            "job",
            "retry_with_payload",
            tenants=[job.tenant_id],
            ids=[job.id],
            count=1,
            before=before,
            after={"payload": payload, "retries": retries, "dueDate": format_date(job.due_date)},
            source=source,
            reason=reason,
        )
    return job


# --- unlock, delete, execute ----------------------------------------------------------------


_UNLOCK = _Change(
    changes={"lock_owner": None, "lock_expiration_time": None},
    event=JobLog.Event.UNLOCKED,
    only_if=Q(lock_owner__isnull=False) | Q(lock_expiration_time__isnull=False),
)


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
        _UNLOCK,
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
    now = clock.now()
    tenants: set = set()
    with transaction.atomic():
        for ids in _batches(user, jobs, tenants):
            matched += len(ids)
            row_ids = _delete_ids(user, ids, now)
            changed += len(row_ids)
            if len(ids_deleted) < audit.MAX_IDS:
                ids_deleted.extend(row_ids)
            if progress is not None:
                progress(matched, changed)
        skipped = max((len(asked) if asked is not None else matched) - changed, 0)
        audit.record(
            user,
            "job",
            "delete",
            tenants=tenants,
            ids=ids_deleted,
            filter=filter,
            count=changed,
            skipped=skipped,
            source=source,
            reason=reason,
        )
    return BulkResult(changed, skipped)


def _delete_ids(user, ids: list[str], now) -> list[str]:
    """Lock (in id order), log and delete the jobs of `ids` still there, their incidents with
    them; returns the ids deleted. The one delete path of the action and of a batch chunk."""
    locked = Job.objects.select_for_update().filter(id__in=ids).order_by("id")
    row_ids = list(locked.values_list("id", flat=True))
    if row_ids:
        _insert_logs(row_ids, JobLog.Event.DELETED, now, worker=actor_name(user))
        Job.objects.filter(id__in=row_ids).delete()
        incidents.delete(incidents.FAILED_JOB, row_ids)
    return row_ids


# ---------------------------------------------------------------------------------------------
# Queues: paused as a whole, for every tenant at once.

QUEUE_NAME_MAX = Job._meta.get_field("queue_name").max_length
REASON_MAX = 1000


def may_pause_queues(user) -> bool:
    """Who may pause and resume queues: operators whose tenants are not restricted (today
    that is admins). A queue belongs to the deployment: pausing it stops every tenant's jobs
    in it, which an operator of some tenants may not decide for the others."""
    return tenancy.can_operate(user) and tenancy.tenant_ids(user) is None


def _check_queue_name(name) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequest("A queue name is required")
    if "\x00" in name:
        raise InvalidRequest("A queue name may not contain NUL characters")
    if len(name) > QUEUE_NAME_MAX:
        raise InvalidRequest(f"A queue name has at most {QUEUE_NAME_MAX} characters")
    return name


def _check_pause_permission(user) -> None:
    if not may_pause_queues(user):
        raise DomainError(
            "Only operators of every tenant (admins) may pause or resume a queue: "
            "it stops the jobs of all tenants",
            status_code=403,
            error_type="AuthorizationException",
        )


def paused_queues() -> dict[str, QueuePause]:
    """{queue name: its pause} for every paused queue (deployment-wide, for any viewer)."""
    return {pause.name: pause for pause in QueuePause.objects.all()}


def pause_queue(user, name: str, *, reason: str = "", source: str = "api") -> bool:
    """Pause a job queue: executors claim none of its jobs until it is resumed; running jobs
    finish. Any name may be paused, also one without jobs yet (a queue exists by its jobs and
    its executors). Returns False when it was paused already (nothing changes, no audit)."""
    _check_pause_permission(user)
    name = _check_queue_name(name)
    reason = (reason or "").strip()
    if "\x00" in reason or len(reason) > REASON_MAX:
        raise InvalidRequest(f"A reason has at most {REASON_MAX} characters and no NUL")
    with transaction.atomic():
        _, created = QueuePause.objects.get_or_create(
            name=name, defaults={"paused_by": actor_name(user), "reason": reason}
        )
        if created:
            # Rows without a tenant are everyone's: the pause is shown to every viewer of the
            # queues page, so its audit entry is too. It names no job and counts none.
            audit.record(
                user,
                "queue",
                "pause",
                tenants=[None],
                ids=[name],
                count=1,
                before={"paused": False},
                after={"paused": True},
                source=source,
                reason=reason,
            )
    return created


def resume_queue(user, name: str, *, source: str = "api") -> bool:
    """Resume a paused job queue; idle executors are woken to take its jobs. Returns False when
    it was not paused (nothing changes, no audit)."""
    _check_pause_permission(user)
    name = _check_queue_name(name)
    with transaction.atomic():
        pause = QueuePause.objects.select_for_update().filter(name=name).first()
        if pause is None:
            return False
        pause.delete()
        audit.record(
            user,
            "queue",
            "resume",
            tenants=[None],
            ids=[name],
            count=1,
            before={
                "paused": True,
                "pausedBy": pause.paused_by,
                "pausedAt": pause.paused_at.isoformat(),
            },
            after={"paused": False},
            source=source,
        )
        # Delivered on commit: PostgreSQL executors waiting on LISTEN claim at once.
        claims.notify_jobs_ready()
    return True


class JobExecutionFailed(Exception):
    """Raised by runner.execute_now when the job's handler raised; the failure is already
    recorded. Here rather than in the runner: the REST face and the console catch it beside
    the other operator errors."""

    def __init__(self, job_id: str, message: str):
        super().__init__(message)
        self.job_id = job_id
        self.message = message


# --- batches (project.batches): the chunk functions of the job batch types -----------------


def _visible_ids(user, ids: list[str]) -> list[str]:
    """The ids of a chunk that are still there and still visible to the batch's creator."""
    rows = tenancy.scope(Job.objects.filter(id__in=list(ids)), user).order_by("id")
    return list(rows.values_list("id", flat=True))


def _chunk_of(change_for: Callable[[dict], _Change]):
    """A BatchType.apply running `change_for(parameters)` through _apply_change: the same
    statements as the synchronous action, on one chunk, without an audit entry."""

    def apply(user, ids, parameters) -> BulkResult:
        # Re-scoped by the statement that locks the rows (`within`), not a SELECT before it.
        visible = tenancy.scope(Job.objects.all(), user)
        rows = []
        if ids and not visible.query.is_empty():
            change = change_for(parameters)
            rows = _apply_change(user, list(ids), change, clock.now(), visible, keep_before=False)
        return BulkResult(len(rows), max(len(ids) - len(rows), 0))

    return apply


def _delete_chunk(user, ids, parameters) -> BulkResult:
    deleted = _delete_ids(user, _visible_ids(user, ids), clock.now())
    return BulkResult(len(deleted), max(len(ids) - len(deleted), 0))


def _only(parameters: dict, *names: str) -> dict:
    unknown = set(parameters) - set(names)
    if unknown:
        raise InvalidRequest(f"Unknown batch parameters: {', '.join(sorted(unknown))}")
    return parameters


def _due_date_parameter(value) -> str | None:
    """A due date of batch parameters, as stored (Camunda's date format) or None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return format_date(clock.to_ms(value))
    if not isinstance(value, str):
        raise InvalidRequest(f"dueDate must be a date string, got {value!r}")
    return format_date(clock.to_ms(parse_date(value)))


def _read_due_date(value) -> datetime | None:
    return clock.to_ms(parse_date(value)) if value is not None else None


def _check_retries_parameters(parameters: dict) -> dict:
    _only(parameters, "retries", "dueDate")
    checked = {"retries": _check_retries(parameters.get("retries"))}
    if parameters.get("dueDate") is not None:
        checked["dueDate"] = _due_date_parameter(parameters["dueDate"])
    return checked


def _retries_words(parameters: dict) -> str:
    words = f"set retries to {parameters['retries']}"
    if parameters.get("dueDate"):
        words += f" and due date to {parameters['dueDate']}"
    return words


def _check_priority_parameters(parameters: dict) -> dict:
    _only(parameters, "priority")
    return {"priority": _check_priority(parameters.get("priority"))}


def _check_due_date_parameters(parameters: dict) -> dict:
    _only(parameters, "dueDate")
    return {"dueDate": _due_date_parameter(parameters.get("dueDate"))}


def _no_parameters(parameters: dict) -> dict:
    return _only(parameters)


def batch_types():
    """The job batch types (jobs.apps registers them with project.batches)."""
    from project.batches import BatchType

    def kind(name, action, apply, words, check=_no_parameters, deletes=False, before=None):
        return BatchType(name, "job", action, Job, apply, words, check, deletes, before)

    return [
        kind(
            "set-job-retries",
            "set_retries",
            _chunk_of(lambda p: _retries_change(p["retries"], _read_due_date(p.get("dueDate")))),
            _retries_words,
            _check_retries_parameters,
            before="retries",
        ),
        kind(
            "suspend-jobs",
            "suspend",
            _chunk_of(lambda p: _suspended_change(True)),
            lambda p: "suspend",
        ),
        kind(
            "activate-jobs",
            "activate",
            _chunk_of(lambda p: _suspended_change(False)),
            lambda p: "activate",
        ),
        kind("unlock-jobs", "unlock", _chunk_of(lambda p: _UNLOCK), lambda p: "unlock"),
        kind(
            "set-job-priority",
            "set_priority",
            _chunk_of(lambda p: _priority_change(p["priority"])),
            lambda p: f"set priority to {p['priority']}",
            _check_priority_parameters,
            before="priority",
        ),
        kind(
            "set-job-due-date",
            "set_due_date",
            _chunk_of(lambda p: _due_date_change(_read_due_date(p.get("dueDate")))),
            lambda p: f"set due date to {p['dueDate']}" if p.get("dueDate") else "clear due date",
            _check_due_date_parameters,
        ),
        kind("delete-jobs", "delete", _delete_chunk, lambda p: "delete", deletes=True),
    ]
