"""Every state transition of external tasks lives here.

The Camunda REST face, the Flowable face, the seed API, the console and management commands
call these functions; nothing else writes to ExternalTask or ExternalTaskLog. Each function is
one short transaction; claims are one statement; bulk variants are set-based and return counts.

Targets of operator actions (`set_retries`, `set_priority`, `suspend`, `activate`, `unlock`,
`delete`) are one id, a list of ids, or a queryset (e.g. a filtered console query). They are
always re-scoped to the acting user's tenants, so a foreign id is simply "not found".
"""

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection, transaction
from django.db.models import F, Q, QuerySet

from external_tasks import notify
from external_tasks.filters import json_lookup, variable
from external_tasks.models import ExternalTask, ExternalTaskLog
from project import audit, bulk, clock, incidents, metrics, tenancy
from project.bulk import BulkResult
from project.errors import BadUserRequest, InvalidRequest, NotFound
from project.models import Incident
from project.rest.dates import format_date
from project.rest.parsers import has_nul
from project.variables import from_request

Event = ExternalTaskLog.Event
# Rows per statement of a bulk action: few round trips for 100k rows, IN lists far below
# SQLite's variable limit (32766), row locks taken in bounded steps.
BATCH_SIZE = 5000
DEFAULT_RETRIES = 3
TARGET_TYPE = "external_task"


@dataclass
class TopicRequest:
    """One entry of fetchAndLock's `topics`: which tasks of a topic to lock and for how long."""

    topic_name: str
    lock_duration_ms: int
    business_key: str | None = None
    process_definition_ids: list[str] | None = None
    process_definition_keys: list[str] | None = None
    process_definition_version_tag: str | None = None
    tenant_ids: list[str] | None = None
    without_tenant_id: bool = False
    process_variables: Mapping = field(default_factory=dict)

    def condition(self) -> Q:
        q = Q(topic_name=self.topic_name)
        if self.business_key is not None:
            q &= Q(business_key=self.business_key)
        if self.process_definition_ids:
            q &= Q(process_definition_id__in=self.process_definition_ids)
        if self.process_definition_keys:
            q &= Q(process_definition_key__in=self.process_definition_keys)
        if self.process_definition_version_tag is not None:
            q &= Q(process_definition_version_tag=self.process_definition_version_tag)
        if self.without_tenant_id and self.tenant_ids:
            q &= Q(tenant_id__isnull=True) | Q(tenant_id__in=self.tenant_ids)
        elif self.without_tenant_id:
            q &= Q(tenant_id__isnull=True)
        elif self.tenant_ids:
            q &= Q(tenant_id__in=self.tenant_ids)
        for name, value in self.process_variables.items():
            # Camunda matches processVariables by equality of the (untyped) value.
            q &= json_lookup(variable(name, "value"), "exact", value)
        return q

    def matches(self, task: ExternalTask) -> bool:
        """The same test as `condition()`, on a loaded task (to pick its topic's options)."""
        if task.topic_name != self.topic_name:
            return False
        if self.business_key is not None and task.business_key != self.business_key:
            return False
        if self.process_definition_ids and (
            task.process_definition_id not in self.process_definition_ids
        ):
            return False
        if self.process_definition_keys and (
            task.process_definition_key not in self.process_definition_keys
        ):
            return False
        if self.process_definition_version_tag is not None and (
            task.process_definition_version_tag != self.process_definition_version_tag
        ):
            return False
        allowed = set(self.tenant_ids or ()) | ({None} if self.without_tenant_id else set())
        if (self.tenant_ids or self.without_tenant_id) and task.tenant_id not in allowed:
            return False
        variables = task.variables or {}
        return all(
            name in variables and variables[name].get("value") == value
            for name, value in self.process_variables.items()
        )


# ---------------------------------------------------------------------------------------------
# Helpers


def _log(task: ExternalTask, event: str, **kwargs) -> ExternalTaskLog:
    return ExternalTaskLog(
        task_id=task.id,
        event=event,
        **{name: getattr(task, name) for name in _LOG_COPIED},
        retries=kwargs.pop("retries", task.retries),
        **kwargs,
    )


def _insert_logs(task_ids: list[str], event: str, timestamp: datetime, **kwargs) -> int:
    """What _log builds for one task, for many: one INSERT … SELECT copying the tasks' columns
    (bulk actions on 100k tasks would otherwise build 100k objects); `kwargs` are constants."""
    columns = {
        "task_id": F("id"),
        "event": event,
        "timestamp": timestamp,
        **{name: F(name) for name in _LOG_COPIED},
        "retries": F("retries"),
        **kwargs,
    }
    source = ExternalTask.objects.filter(pk__in=task_ids).order_by("pk")
    return bulk.insert_select(ExternalTaskLog, source, columns)


_LOG_COPIED = (
    "topic_name",
    "tenant_id",
    "process_instance_id",
    "process_definition_key",
    "activity_id",
    "business_key",
    "priority",
    "activity_instance_id",
    "execution_id",
    "process_definition_id",
)


def _get_locked_for_update(user, task_id: str) -> ExternalTask:
    """The task row, locked for this transaction; other tenants' tasks look absent."""
    if has_nul(task_id):  # no such id can exist, and PostgreSQL would refuse the query
        raise NotFound(f"External task with id {task_id!r} does not exist")
    try:
        return ExternalTask.objects.visible_to(user).select_for_update().get(pk=task_id)
    except ExternalTask.DoesNotExist:
        raise NotFound(f"External task with id {task_id} does not exist") from None


class LockHolderError(BadUserRequest):
    """400: `worker_id` is not the worker the task is locked by (another one, or none). The
    message is Camunda's; each face may word it its own way from the attributes."""

    # What Camunda's commands say a wrong worker may not do, per action of ours.
    WORDING = {
        "complete": "External Task {id} cannot be completed by worker '{worker}'",
        "fail": "Failure of External Task {id} cannot be reported by worker '{worker}'",
        "bpmn_error": "Bpmn error of External Task {id} cannot be reported by worker '{worker}'",
        "extend_lock": "The lock of the External Task {id} cannot be extended by worker '{worker}'",
        "release": "The lock of the External Task {id} cannot be released by worker '{worker}'",
    }

    def __init__(self, task_id: str, worker_id: str, holder: str | None, action: str):
        refused = self.WORDING[action].format(id=task_id, worker=worker_id)
        # Camunda prints a missing holder as 'null'; we say it in words.
        held = (
            f"It is locked by worker '{holder}'." if holder else "It is not locked by any worker."
        )
        super().__init__(f"{refused}. {held}")
        self.task_id, self.worker_id, self.holder, self.action = task_id, worker_id, holder, action


def _check_lock_holder(task: ExternalTask, worker_id: str | None, action: str):
    """Camunda decides who may finish a task by worker id alone: a worker whose own lock ran out
    may still complete, fail or raise a BPMN error while nobody else has locked the task since
    (a handler that outlives its lock is not wasted work). Once another worker fetched or
    locked it, `worker_id` is theirs and the first worker is refused: no task finished twice."""
    if not worker_id:
        what = action.replace("_", " ")
        raise InvalidRequest(f"Cannot {what} external task {task.id}: workerId is required")
    if task.worker_id != worker_id:
        raise LockHolderError(task.id, worker_id, task.worker_id, action)


def _merge_variables(task: ExternalTask, variables, local_variables=None) -> dict:
    merged = dict(task.variables or {})
    merged.update(from_request(variables))
    merged.update(from_request(local_variables))
    return merged


def _reported(variables, local_variables=None) -> dict | None:
    reported = from_request(variables)
    reported.update(from_request(local_variables))
    return reported or None


def _duration_ms(task: ExternalTask, now: datetime) -> float | None:
    """Time since the task was last locked, for the log's duration column."""
    locked_at = (
        ExternalTaskLog.objects.filter(task_id=task.id, event=Event.LOCKED)
        .order_by("-timestamp")
        .values_list("timestamp", flat=True)
        .first()
    )
    return (now - locked_at).total_seconds() * 1000 if locked_at else None


def _json_safe(value):
    return format_date(value) if isinstance(value, datetime) else value


def _target_queryset(user, target) -> tuple[QuerySet, list[str] | None]:
    """(scoped queryset, requested ids or None) for an id, a list of ids or a queryset."""
    visible = ExternalTask.objects.visible_to(user)
    if isinstance(target, QuerySet):
        return tenancy.scope(target, user), None
    ids = [target] if isinstance(target, str) else [str(i) for i in target]
    # An id with a NUL character cannot exist (PostgreSQL would refuse it in the query): it is
    # left out of the query and reported missing like any unknown id.
    return visible.filter(pk__in=[i for i in ids if not has_nul(i)]), ids


def _check_all_found(ids: list[str] | None, found: Iterable[str]):
    if ids is None:
        return
    missing = sorted(set(ids) - set(found))
    if missing:
        raise NotFound(f"External task with id {', '.join(missing)} does not exist")


def _bulk(
    user,
    target,
    *,
    changes: dict,
    event: str,
    action: str,
    strict: bool,
    source: str,
    reason: str = "",
    filter,
    after,
    log_kwargs=None,
    only_if: Q | None = None,
    delete: bool = False,
    topics: set | None = None,
    after_batch: Callable[[list[str]], object] | None = None,
    resolves: str | None = None,
) -> BulkResult:
    """Apply `changes` (a dict for UPDATE) to the target rows in batches: one SELECT … FOR
    UPDATE and one UPDATE (or DELETE) per batch, log entries copied by the database, one audit
    entry. `topics`, when given, collects the topic names of the changed rows; `after_batch`
    is called with the ids each batch changed (incidents follow retries there); `resolves`
    names the incident type whose open incidents of the changed rows are resolved."""
    queryset, ids = _target_queryset(user, target)
    with transaction.atomic():
        # In id order, so two bulk actions over overlapping rows lock them in the same order
        # and wait for each other instead of deadlocking.
        rows = list(queryset.order_by("pk").values_list("pk", "tenant_id"))
        all_ids = [row_id for row_id, _ in rows]
        if strict:
            _check_all_found(ids, all_ids)
        requested = len(ids) if ids is not None else len(all_ids)
        change = _BatchChange(
            changes,
            event,
            clock.now(),
            log_kwargs,
            only_if,
            delete,
            topics,
            after_batch,
            resolves=resolves,
        )
        count, single_before = 0, None
        for start in range(0, len(all_ids), BATCH_SIZE):
            changed, before = change.apply(all_ids[start : start + BATCH_SIZE], requested == 1)
            count += changed
            single_before = before if before is not None else single_before
        skipped = max(requested - count, 0)
        audit.record(
            user,
            TARGET_TYPE,
            action,
            # The tenants of the rows the action reached, read by the query that found them.
            tenants={tenant for _, tenant in rows},
            ids=ids if ids is not None else all_ids,
            filter=filter,
            count=count,
            skipped=skipped,
            before=single_before,
            after=after,
            source=source,
            reason=reason,
        )
    return BulkResult(count, skipped)


@dataclass
class _BatchChange:
    """One bulk action's change, applied to one batch of ids at a time (inside its
    transaction): update or delete the rows that `only_if` admits and log each of them."""

    changes: dict
    event: str
    now: datetime  # one timestamp for every log entry of the action
    log_kwargs: dict | None = None
    only_if: Q | None = None
    delete: bool = False
    topics: set | None = None
    after_batch: Callable[[list[str]], object] | None = None
    # The incident type whose open incidents of the changed rows are resolved (set retries
    # above 0): on PostgreSQL in the statement that changes the rows.
    resolves: str | None = None
    # Only the rows of this queryset (the user's visible tasks) are changed, re-checked in the
    # statement that locks them: a batch chunk's ids are re-scoped by its creator's tenants.
    within: QuerySet | None = None

    def apply(self, batch: list, single: bool) -> tuple[int, dict | None]:
        """(rows changed, for a single requested task its values before the change)."""
        now = self.now
        if not self.delete and connection.vendor == "postgresql":
            also = ()
            if self.resolves is not None:
                state = Incident.State.RESOLVED
                also = (incidents.close_sql(self.resolves, state, 'SELECT "id" FROM changed', now),)
            changed = _update_batch_at_once(
                batch,
                self.changes,
                self.only_if,
                self.event,
                now,
                self.log_kwargs,
                within=self.within,
                also=also,
                # Old values only for the audit of a single task: without them the statement
                # needs no locking pre-pass.
                before=tuple(self.changes) if single else (),
            )
            self._collect_topics(changed)
            if changed and self.after_batch is not None:
                self.after_batch([row["id"] for row in changed])
            before = None
            if changed and single and self.changes:
                before = {k: _json_safe(changed[0][f"before_{k}"]) for k in self.changes}
            return len(changed), before
        # Only ids (and, for a single task, the audit's before values) come back to Python;
        # the log entries are copied by the database from the locked rows.
        rows = (self.within if self.within is not None else ExternalTask.objects).filter(
            pk__in=batch
        )
        if self.only_if is not None:
            rows = rows.filter(self.only_if)
        wanted = ["pk", *self.changes] + (["topic_name"] if self.topics is not None else [])
        locked = list(rows.select_for_update().order_by("pk").values(*wanted))
        if not locked:
            return 0, None
        self._collect_topics(locked)
        before = None
        if single and self.changes:
            before = {k: _json_safe(locked[0][k]) for k in self.changes}
        locked_ids = [row["pk"] for row in locked]
        _insert_logs(locked_ids, self.event, now, **(self.log_kwargs or {}))
        if self.delete:
            ExternalTask.objects.filter(pk__in=locked_ids).delete()
        else:
            ExternalTask.objects.filter(pk__in=locked_ids).update(**self.changes)
        if self.after_batch is not None:
            self.after_batch(locked_ids)
        if self.resolves is not None:
            incidents.resolve(self.resolves, locked_ids, now=now)
        return len(locked), before

    def _collect_topics(self, rows):
        if self.topics is not None:
            self.topics.update(row["topic_name"] for row in rows)


def _update_batch_at_once(
    ids, changes, only_if, event, now, log_kwargs, *, within=None, also=(), before=()
) -> list[dict]:
    """PostgreSQL: lock, update and log one batch in one statement (project.bulk), with the
    statements of `also` over the changed rows. The log rows copy the updated row, so a
    `retries` in `log_kwargs` (set_retries) is already there."""
    log_columns = {
        "task_id": F("id"),
        "event": event,
        "timestamp": now,
        **{name: F(name) for name in _LOG_COPIED},
        "retries": F("retries"),
        **(log_kwargs or {}),
    }
    return bulk.update_and_log(
        ExternalTask,
        ids,
        changes,
        ExternalTaskLog,
        log_columns,
        only_if=only_if,
        within=within,
        before=before,
        returning=("id", "topic_name"),
        also=also,
    )


# ---------------------------------------------------------------------------------------------
# Producers


# The fixed paths under /engine-rest/external-task/ that an id in the URL cannot take.
RESERVED_TASK_IDS = ("count", "topic-names", "fetchAndLock", "create", "retries", "retries-async")

CREATE_FIELDS = {
    "topicName": "topic_name",
    "priority": "priority",
    "retries": "retries",
    "tenantId": "tenant_id",
    "businessKey": "business_key",
    "activityId": "activity_id",
    "activityInstanceId": "activity_instance_id",
    "activityName": "activity_name",
    "executionId": "execution_id",
    "processInstanceId": "process_instance_id",
    "processDefinitionId": "process_definition_id",
    "processDefinitionKey": "process_definition_key",
    "processDefinitionName": "process_definition_name",
    "processDefinitionVersionTag": "process_definition_version_tag",
}


def _check_length(index: int, name: str, value: str, attr: str) -> None:
    # PostgreSQL would fail the insert with a 500; SQLite would store the string whole.
    limit = ExternalTask._meta.get_field(attr).max_length
    if limit is not None and len(value) > limit:
        raise InvalidRequest(f"Task {index}: '{name}' is longer than {limit} characters")


def _task_from_spec(user, spec, index: int) -> ExternalTask:
    if not isinstance(spec, Mapping):
        raise InvalidRequest(f"Task {index}: expected a JSON object")
    unknown = set(spec) - set(CREATE_FIELDS) - {"variables", "extensionProperties", "id"}
    if unknown:
        raise InvalidRequest(f"Task {index}: unknown field(s) {', '.join(sorted(unknown))}")
    values = {}
    for name, attr in CREATE_FIELDS.items():
        value = spec.get(name)
        if value is None:
            continue
        if attr in {"priority", "retries"}:
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidRequest(f"Task {index}: '{name}' must be an integer, got {value!r}")
            if attr == "retries" and value < 0:
                raise InvalidRequest(f"Task {index}: 'retries' must not be negative")
            if not -(2**63) <= value < 2**63:
                raise InvalidRequest(f"Task {index}: '{name}' is out of range")
        elif not isinstance(value, str):
            raise InvalidRequest(f"Task {index}: '{name}' must be a string, got {value!r}")
        else:
            _check_length(index, name, value, attr)
        values[attr] = value
    if not values.get("topic_name"):
        raise InvalidRequest(f"Task {index}: 'topicName' is required")
    if not tenancy.may_use_tenant(user, values.get("tenant_id")):
        raise InvalidRequest(
            f"Task {index}: you may not create tasks for tenant '{values['tenant_id']}'"
        )
    extension = spec.get("extensionProperties") or {}
    if not isinstance(extension, Mapping) or not all(
        isinstance(v, str) for v in extension.values()
    ):
        raise InvalidRequest(f"Task {index}: 'extensionProperties' must map names to strings")
    if spec.get("id") is not None:
        # Ids are unique across tenants: a chosen id that collided with a row the caller cannot
        # see would answer "already exists" where a free one succeeds, telling which ids other
        # tenants use. So only those who see every row (admins) choose ids; for anyone else the
        # answer is this one refusal, whatever the id.
        if tenancy.tenant_ids(user) is not None:
            raise InvalidRequest(
                f"Task {index}: only admins may choose a task's 'id' (ids are unique across "
                "tenants); leave it out and the server assigns one"
            )
        if not isinstance(spec["id"], str) or not spec["id"].strip():
            raise InvalidRequest(f"Task {index}: 'id' must be a non-empty string")
        # Such an id could never be addressed: /external-task/<id> would route elsewhere.
        if spec["id"] in RESERVED_TASK_IDS or "/" in spec["id"]:
            raise InvalidRequest(
                f"Task {index}: 'id' must not contain '/' nor be one of "
                f"{', '.join(RESERVED_TASK_IDS)}"
            )
        _check_length(index, "id", spec["id"], "id")
        values["id"] = spec["id"]
    return ExternalTask(
        variables=from_request(spec.get("variables")),
        extension_properties=dict(extension),
        **values,
    )


def create(user, specs, *, source: str = "api") -> list[ExternalTask]:
    """Create tasks from Camunda-named dicts (topicName, priority, tenantId, variables, …) and
    wake long-polling fetchers of their topics."""
    if isinstance(specs, Mapping):
        specs = [specs]
    if not isinstance(specs, list) or not specs:
        raise InvalidRequest("Expected a task object or a non-empty list of task objects")
    tasks = [_task_from_spec(user, spec, i) for i, spec in enumerate(specs)]
    now = clock.now()
    for task in tasks:
        task.create_time = now
    ids = [t.id for t in tasks]
    with transaction.atomic():
        if len(set(ids)) != len(ids) or ExternalTask.objects.filter(pk__in=ids).exists():
            raise InvalidRequest("An external task with one of the given ids already exists")
        ExternalTask.objects.bulk_create(tasks)
        ExternalTaskLog.objects.bulk_create([_log(t, Event.CREATED, timestamp=now) for t in tasks])
        failed = [t.id for t in tasks if t.retries == 0]
        if failed:
            # Created without retries: failed from the start, as Camunda's setRetries(0) is.
            incidents.open_for(
                incidents.FAILED_EXTERNAL_TASK, ExternalTask.objects.filter(id__in=failed)
            )
        notify.announce({t.topic_name for t in tasks})
    return tasks


# ---------------------------------------------------------------------------------------------
# Workers


def _compile_where(q: Q) -> tuple[str, list]:
    return bulk.where_of(ExternalTask.objects.filter(q))


def fetch_and_lock(
    user,
    worker_id: str,
    max_tasks: int,
    topics: list[TopicRequest],
    *,
    use_priority: bool = False,
    sort_create_time: str | None = None,
) -> list[ExternalTask]:
    """Claim up to `max_tasks` fetchable tasks of the given topics for `worker_id`.

    One statement: UPDATE … WHERE id IN (SELECT … [FOR UPDATE SKIP LOCKED] LIMIT n) RETURNING.
    On PostgreSQL concurrent claimers skip each other's rows instead of waiting or failing; on
    SQLite the immediate transaction serialises claimers. Either way no task is handed out twice
    while its lock is valid, and a full claim never returns fewer tasks than are free.
    """
    if not topics or max_tasks <= 0:
        return []
    now = clock.now()
    ordering = _claim_order(use_priority, sort_create_time)
    sql, params = _claim_sql(user, worker_id, max_tasks, topics, ordering, now)
    if connection.vendor == "postgresql":
        # Claim and "locked" log entries in one statement: no transaction round trips.
        insert, insert_params = _log_insert_sql(
            "claimed", {"event": Event.LOCKED, "timestamp": now, "worker_id": worker_id}
        )
        sql = f"WITH claimed AS ({sql}), logged AS ({insert}) SELECT * FROM claimed"
        tasks = list(ExternalTask.objects.raw(sql, [*params, *insert_params]))
    else:
        with transaction.atomic():
            tasks = list(ExternalTask.objects.raw(sql, params))
            ExternalTaskLog.objects.bulk_create(
                [_log(t, Event.LOCKED, worker_id=worker_id, timestamp=now) for t in tasks]
            )
    metrics.record_fetched([t.topic_name for t in tasks], worker_id=worker_id)
    # RETURNING gives rows in no particular order; answer them in claim order.
    tasks.sort(key=lambda t: t.id)
    tasks.sort(key=lambda t: t.create_time, reverse=sort_create_time == "desc")
    if use_priority:
        tasks.sort(key=lambda t: t.priority, reverse=True)
    return tasks


def _claim_order(use_priority: bool, sort_create_time: str | None) -> list[str]:
    ordering = ["-priority"] if use_priority else []
    ordering.append("-create_time" if sort_create_time == "desc" else "create_time")
    return [*ordering, "id"]


def _claim_sql(user, worker_id, max_tasks, topics, ordering, now) -> tuple[str, list]:
    """(sql, params) of the claim: UPDATE … SET the worker and each task's lock expiration
    WHERE id IN (the first `max_tasks` fetchable, visible tasks of `topics`) RETURNING *."""
    condition = Q(pk__in=[])
    for topic in topics:
        condition |= topic.condition()
    table = connection.ops.quote_name(ExternalTask._meta.db_table)
    inner = (
        ExternalTask.objects.fetchable(now)
        .visible_to(user)
        .filter(condition)
        .order_by(*ordering)
        .values("pk")[:max_tasks]
    )
    inner_sql, inner_params = inner.query.sql_with_params()
    if connection.features.has_select_for_update_skip_locked:
        # Spelled here rather than by select_for_update(), which Django refuses to compile
        # outside a transaction block: the claim is one statement, its own transaction.
        inner_sql += " " + connection.ops.for_update_sql(skip_locked=True)
    # Each task gets the lock duration of the first topic entry it matches.
    case_sql, case_params = [], []
    for topic in topics:
        where_sql, where_params = _compile_where(topic.condition())
        case_sql.append(f"WHEN {where_sql} THEN %s")
        expiration = clock.after(now, topic.lock_duration_ms)
        case_params += [*where_params, connection.ops.adapt_datetimefield_value(expiration)]
    sql = (
        f"UPDATE {table} SET worker_id = %s, "
        f"lock_expiration_time = CASE {' '.join(case_sql)} END "
        f"WHERE id IN ({inner_sql}) RETURNING *"
    )
    return sql, [worker_id, *case_params, *inner_params]


def lock(user, task_id: str, worker_id: str, lock_duration_ms: int) -> ExternalTask:
    """Lock one task for a worker (Camunda's POST /external-task/{id}/lock)."""
    if not worker_id:
        raise InvalidRequest("workerId is required")
    if lock_duration_ms is None or lock_duration_ms <= 0:
        raise InvalidRequest("lockDuration must be greater than 0")
    now = clock.now()
    with transaction.atomic():
        task = _get_locked_for_update(user, task_id)
        if task.locked and task.worker_id != worker_id:
            raise BadUserRequest(
                f"External task {task.id} is already locked by worker '{task.worker_id}'"
            )
        if task.suspended:
            raise BadUserRequest(f"External task {task.id} is suspended")
        task.worker_id = worker_id
        task.lock_expiration_time = clock.after(now, lock_duration_ms)
        task.save(update_fields=["worker_id", "lock_expiration_time"])
        _log(task, Event.LOCKED, worker_id=worker_id, timestamp=now).save()
    return task


def _log_insert_sql(source: str, constants: dict, computed: dict | None = None):
    """(sql, params) of what `_log` builds, for the rows of a CTE named `source` that returned
    the tasks' id, retries and copied columns: INSERT INTO log (…) SELECT … FROM source.
    `constants` are log field values; `computed` maps log columns to (SQL over source, params)."""
    quote = connection.ops.quote_name
    copied = ", ".join(quote(name) for name in ("retries", *_LOG_COPIED))
    fields = [ExternalTaskLog._meta.get_field(name) for name in constants]
    columns = [quote(f.column) for f in fields]
    selected = ["%s"] * len(fields)
    params = [f.get_db_prep_save(constants[f.name], connection) for f in fields]
    for column, (expression, expression_params) in (computed or {}).items():
        columns.append(quote(column))
        selected.append(expression)
        params += expression_params
    sql = (
        f"INSERT INTO {quote(ExternalTaskLog._meta.db_table)} "
        f"(task_id, {copied}, {', '.join(columns)}) "
        f"SELECT id, {copied}, {', '.join(selected)} FROM {source}"
    )
    return sql, params


# Stand for the task id and worker id while _held_by_where compiles its clause.
_ANY_TASK, _ANY_WORKER = "\x1etask-id", "\x1eworker-id"


@functools.lru_cache(maxsize=256)
def _held_by_where(alias: str, tenants: tuple | None) -> tuple[str, tuple, tuple]:
    """WHERE of "this task, locked by this worker (expired or not), of `tenants` (None: all)"
    compiled once per tenant scope: building and compiling the queryset was ~0.2 ms of a
    complete's ~1.5 ms of CPU. Returns the SQL, its parameters and the positions of the task
    id and worker id among them."""
    rows = tenancy.restrict(ExternalTask.objects.using(alias), tenants).filter(
        pk=_ANY_TASK, worker_id=_ANY_WORKER
    )
    where, params = bulk.where_of(rows)
    return where, tuple(params), tuple(params.index(v) for v in (_ANY_TASK, _ANY_WORKER))


def _finish_at_once(user, task_id: str, worker_id: str | None, now: datetime, event: str, **log):
    """PostgreSQL fast path of complete and bpmnError: if `worker_id` holds the task's lock
    (live or run out, see _check_lock_holder), delete it and write its log entry (with `log`
    values and the duration since the last "locked" entry) in one statement, without a
    transaction's round trips or a read first. Returns the task's topic, or None when nothing
    matched (unknown, another tenant's, another worker's): then the caller's locked read finds
    out which error to answer."""
    if connection.vendor != "postgresql" or not worker_id or has_nul([task_id, worker_id]):
        return None
    if user is None or not user.is_authenticated:
        return None  # sees no rows at all
    tenants = tenancy.tenant_ids(user)
    where, where_params, at = _held_by_where(
        connection.alias, None if tenants is None else tuple(sorted(tenants))
    )
    where_params = list(where_params)
    for position, value in zip(at, (task_id, worker_id), strict=True):
        where_params[position] = value
    quote = connection.ops.quote_name
    log_table = quote(ExternalTaskLog._meta.db_table)
    copied = ", ".join(quote(name) for name in ("retries", *_LOG_COPIED))
    locked_at = (
        f"(SELECT MAX(l.{quote('timestamp')}) FROM {log_table} l "
        "WHERE l.task_id = done.id AND l.event = %s)"
    )
    insert, insert_params = _log_insert_sql(
        "done",
        {"event": event, "timestamp": now, "worker_id": worker_id, **log},
        {"duration_ms": (f"EXTRACT(EPOCH FROM %s - {locked_at}) * 1000", [now, Event.LOCKED])},
    )
    # A task failed with no retries left may still be finished by its worker while it holds
    # the lock: its incident closes in the same statement.
    close, close_params = incidents.close_sql(
        incidents.FAILED_EXTERNAL_TASK,
        _incident_end_state(event),
        "SELECT id FROM done WHERE retries = 0",
        now,
    )
    sql = (
        f"WITH done AS (DELETE FROM {quote(ExternalTask._meta.db_table)} WHERE {where} "
        f"RETURNING id, {copied}), closed AS ({close}) {insert} RETURNING topic_name"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*where_params, *close_params, *insert_params])
        row = cursor.fetchone()
    return row[0] if row else None


def _finish(user, task_id: str, worker_id: str, event: str, action: str, **log) -> str:
    """The lock holder ends the task (complete, bpmnError): it leaves the runtime table and its
    `event` log entry keeps `log` and the duration. One statement when the worker holds the
    lock; else the locked read answers the right error. Returns the task's topic."""
    now = clock.now()
    topic = _finish_at_once(user, task_id, worker_id, now, event, **log)
    if topic is not None:
        return topic
    with transaction.atomic():
        task = _get_locked_for_update(user, task_id)
        _check_lock_holder(task, worker_id, action)
        duration_ms = _duration_ms(task, now)
        _log(task, event, worker_id=worker_id, duration_ms=duration_ms, timestamp=now, **log).save()
        task_id = task.id  # delete() clears it
        task.delete()
        if task.retries == 0:
            state = _incident_end_state(event)
            incidents.close(incidents.FAILED_EXTERNAL_TASK, [task_id], state, now)
    return task.topic_name


def _incident_end_state(event: str) -> str:
    # Camunda: completing resolves the incident; a BPMN error ends the activity, which deletes
    # the task (and so the incident) without resolving it.
    return Incident.State.RESOLVED if event == Event.COMPLETED else Incident.State.DELETED


def complete(user, task_id: str, worker_id: str, variables=None, local_variables=None) -> None:
    """The lock holder reports success: the task leaves the runtime table; its outcome
    (variables, worker, duration) stays in the log."""
    reported = _reported(variables, local_variables)
    topic = _finish(user, task_id, worker_id, Event.COMPLETED, "complete", variables=reported)
    metrics.record_task_outcome(topic, "completed", task_id=task_id, worker_id=worker_id)


def _check_failure_values(retries: int | None, retry_timeout_ms: int | None) -> None:
    if retries is not None and retries < 0:
        raise InvalidRequest("retries must be greater than or equal to 0")
    if retry_timeout_ms is not None and retry_timeout_ms < 0:
        raise InvalidRequest("retryTimeout must be greater than or equal to 0")


def handle_failure(
    user,
    task_id: str,
    worker_id: str,
    *,
    error_message: str | None = None,
    error_details: str | None = None,
    retries: int | None = None,
    retry_timeout_ms: int | None = None,
    variables=None,
    local_variables=None,
) -> ExternalTask:
    """The lock holder reports a failure. As in Camunda, the task stays locked for
    `retryTimeout` ms (then it is fetchable again); retries 0 makes it an incident."""
    _check_failure_values(retries, retry_timeout_ms)
    now = clock.now()
    with transaction.atomic():
        task = _get_locked_for_update(user, task_id)
        _check_lock_holder(task, worker_id, "fail")
        # retries None (Flowable's "absent") means one less than now, never below 0; a task
        # that never failed starts from DEFAULT_RETRIES, Flowable's default for new jobs.
        if retries is None:
            retries = max((task.retries if task.retries is not None else DEFAULT_RETRIES) - 1, 0)
        task.variables = _merge_variables(task, variables, local_variables)
        task.error_message = error_message
        task.error_details = error_details
        retries_before = task.retries
        task.retries = retries
        task.lock_expiration_time = clock.after(now, retry_timeout_ms or 0)
        task.save(
            update_fields=[
                "variables",
                "error_message",
                "error_details",
                "retries",
                "lock_expiration_time",
            ]
        )
        _log(
            task,
            Event.FAILED,
            worker_id=worker_id,
            error_message=error_message,
            error_details=error_details,
            variables=_reported(variables, local_variables),
            duration_ms=_duration_ms(task, now),
            timestamp=now,
        ).save()
        if retries == 0 or retries_before == 0:
            # Retries reached 0 (an incident opens) or rose from 0 (it resolves), as Camunda's
            # setRetriesAndManageIncidents; other failures cost no statement here.
            incidents.sync_ids(incidents.FAILED_EXTERNAL_TASK, ExternalTask, [task.id], now=now)
        if retries > 0 and not retry_timeout_ms:
            notify.announce({task.topic_name})
    metrics.record_task_outcome(
        task.topic_name,
        "failed",
        task_id=task_id,
        worker_id=worker_id,
        retries=retries,
        error=error_message,
    )
    return task


def handle_bpmn_error(
    user,
    task_id: str,
    worker_id: str,
    error_code: str | None,
    error_message: str | None = None,
    variables=None,
) -> None:
    """The lock holder reports a business error: like completion, the task leaves the runtime
    table (the process would continue on its error path); the log keeps code and message."""
    # Camunda requires a code (checked by its view); Flowable allows none.
    if error_code is not None and not isinstance(error_code, str):
        raise InvalidRequest("errorCode must be a string")
    topic = _finish(
        user,
        task_id,
        worker_id,
        Event.BPMN_ERROR,
        "bpmn_error",
        error_code=error_code,
        error_message=error_message,
        variables=_reported(variables),
    )
    metrics.record_task_outcome(
        topic, "bpmn_error", task_id=task_id, worker_id=worker_id, error=error_message
    )


def extend_lock(user, task_id: str, worker_id: str, new_duration_ms: int) -> ExternalTask:
    """The lock holder extends its lock to now + new_duration_ms."""
    if new_duration_ms is None or new_duration_ms <= 0:
        raise InvalidRequest("newDuration must be greater than 0")
    now = clock.now()
    with transaction.atomic():
        task = _get_locked_for_update(user, task_id)
        _check_lock_holder(task, worker_id, "extend_lock")
        # Unlike finishing, extending needs a live lock (Camunda's ExtendLockOnExternalTaskCmd).
        if task.lock_expiration_time is None or task.lock_expiration_time < now:
            raise BadUserRequest(
                "Cannot extend a lock that expired: lockExpirationTime is not greater than or "
                f"equal to {int(now.timestamp() * 1000)}"
            )
        task.lock_expiration_time = clock.after(now, new_duration_ms)
        task.save(update_fields=["lock_expiration_time"])
        _log(task, Event.LOCK_EXTENDED, worker_id=worker_id, timestamp=now).save()
    return task


def release(user, worker_id: str, task_id: str | None = None) -> int:
    """A worker gives back its own lock on one task (or on all its tasks): Flowable's unacquire.
    Unlike the operator's `unlock`, only the holder's locks are touched."""
    if not worker_id:
        raise InvalidRequest("workerId is required")
    now = clock.now()
    with transaction.atomic():
        if task_id is not None:
            task = _get_locked_for_update(user, task_id)
            _check_lock_holder(task, worker_id, "release")
            tasks = [task]
        else:
            tasks = list(
                ExternalTask.objects.visible_to(user)
                .filter(worker_id=worker_id, lock_expiration_time__gt=now)
                .select_for_update()
            )
        ids = [t.pk for t in tasks]
        ExternalTask.objects.filter(pk__in=ids).update(lock_expiration_time=None, worker_id=None)
        ExternalTaskLog.objects.bulk_create(
            [_log(t, Event.UNLOCKED, worker_id=worker_id, timestamp=now) for t in tasks]
        )
        notify.announce({t.topic_name for t in tasks})
    return len(ids)


# ---------------------------------------------------------------------------------------------
# Operators (ids, a list of ids or a queryset; audited)


# Each operator change as _BatchChange's fields: the synchronous action (_bulk) and the batch
# chunk (_chunk_of) apply the same change through _BatchChange.apply.
_UNLOCK = {"changes": {"lock_expiration_time": None, "worker_id": None}, "event": Event.UNLOCKED}


def unlock(
    user, target, *, strict: bool = True, source: str = "api", reason: str = "", filter=None
) -> BulkResult:
    """Clear lock expiration and worker: the tasks are fetchable again at once."""
    topics = set()
    with transaction.atomic():
        result = _bulk(
            user,
            target,
            **_UNLOCK,
            action="unlock",
            strict=strict,
            source=source,
            reason=reason,
            filter=filter,
            after={"locked": False},
            topics=topics,
        )
        if result.changed:
            notify.announce(sorted(topics)[:1000])
    return result


def _check_retries(retries):
    if retries is None or isinstance(retries, bool) or not isinstance(retries, int):
        raise InvalidRequest("The number of retries cannot be null and must be an integer")
    if retries < 0:
        raise InvalidRequest("The number of retries cannot be negative")
    if retries >= 2**31:
        raise InvalidRequest("The number of retries is out of range for java type int")


def _retries_change(retries: int) -> dict:
    change = {
        "changes": {"retries": retries},
        "event": Event.RETRIES_SET,
        "log_kwargs": {"retries": retries},
        "only_if": ~Q(retries=retries),
    }
    if retries > 0:
        # Resolved by the statement that sets the retries (no second look-up per batch).
        change["resolves"] = incidents.FAILED_EXTERNAL_TASK
    else:
        change["after_batch"] = lambda ids: incidents.open_for(
            incidents.FAILED_EXTERNAL_TASK, ExternalTask.objects.filter(id__in=ids)
        )
    return change


def set_retries(
    user,
    target,
    retries: int,
    *,
    strict: bool = True,
    source: str = "api",
    reason: str = "",
    filter=None,
) -> BulkResult:
    """Set retries on one task, listed tasks or a queryset; 0 makes them incidents, a positive
    value makes failed tasks fetchable again."""
    _check_retries(retries)
    # Tasks that already have these retries are left alone (counted as skipped): no new row
    # version in every index, no history entry saying nothing happened.
    # Announced from the rows changed: re-running the filter afterwards read them all again
    # (4 s for 100k tasks, the updates having cleared the visibility map).
    topics = set()
    with transaction.atomic():
        result = _bulk(
            user,
            target,
            **_retries_change(retries),
            action="set_retries",
            strict=strict,
            source=source,
            reason=reason,
            filter=filter,
            after={"retries": retries},
            topics=topics,
        )
        if result.changed and retries > 0:
            notify.announce(sorted(topics)[:1000])
    return result


def _priority_change(priority: int) -> dict:
    return {"changes": {"priority": priority}, "event": Event.PRIORITY_SET}


def _check_priority(priority) -> int:
    if priority is None or isinstance(priority, bool) or not isinstance(priority, int):
        raise InvalidRequest("Priority must be an integer (java type long)")
    if not -(2**63) <= priority < 2**63:
        raise InvalidRequest("Priority is out of range for java type long")
    return priority


def set_priority(
    user,
    target,
    priority: int,
    *,
    strict: bool = True,
    source: str = "api",
    reason: str = "",
    filter=None,
) -> BulkResult:
    """Set the priority used by fetchAndLock with usePriority."""
    _check_priority(priority)
    return _bulk(
        user,
        target,
        **_priority_change(priority),
        action="set_priority",
        strict=strict,
        source=source,
        reason=reason,
        filter=filter,
        after={"priority": priority},
    )


def _suspended_change(suspended: bool) -> dict:
    return {
        "changes": {"suspended": suspended},
        "event": Event.SUSPENDED if suspended else Event.ACTIVATED,
        "only_if": Q(suspended=not suspended),
    }


def suspend(
    user, target, *, strict: bool = True, source: str = "api", reason: str = "", filter=None
) -> BulkResult:
    """Suspended tasks are never fetched; already suspended rows count as skipped."""
    return _bulk(
        user,
        target,
        **_suspended_change(True),
        action="suspend",
        strict=strict,
        source=source,
        reason=reason,
        filter=filter,
        after={"suspended": True},
    )


def activate(
    user, target, *, strict: bool = True, source: str = "api", reason: str = "", filter=None
) -> BulkResult:
    """Make suspended tasks fetchable again; already active rows count as skipped."""
    topics = set()
    with transaction.atomic():
        result = _bulk(
            user,
            target,
            **_suspended_change(False),
            action="activate",
            strict=strict,
            source=source,
            reason=reason,
            filter=filter,
            after={"suspended": False},
            topics=topics,
        )
        if result.changed:
            notify.announce(sorted(topics)[:1000])
    return result


def delete(
    user, target, *, strict: bool = True, source: str = "api", reason: str = "", filter=None
) -> BulkResult:
    """Remove tasks from the runtime table; the log records who deleted them."""
    return _bulk(
        user,
        target,
        **_DELETE,
        action="delete",
        strict=strict,
        source=source,
        reason=reason,
        filter=filter,
        after=None,
    )


_DELETE = {
    "changes": {},
    "event": Event.DELETED,
    "delete": True,
    "after_batch": lambda ids: incidents.delete(incidents.FAILED_EXTERNAL_TASK, ids),
}


# ---------------------------------------------------------------------------------------------
# Batches (project.batches): the chunk functions of the external task batch types


def _chunk_of(change_for: Callable[[dict], dict], announces: Callable[[dict], bool]):
    """A BatchType.apply running the change of `change_for(parameters)` through
    _BatchChange.apply, the synchronous actions' per-batch path, on the ids of one chunk that
    are still there and visible to the batch's creator; no audit entry (the batch has one)."""

    def apply(user, ids, parameters) -> BulkResult:
        # Re-scoped by the statement that locks the rows (`within`), in id order.
        visible = ExternalTask.objects.visible_to(user)
        asked = [i for i in ids if not has_nul(i)]
        topics: set = set()
        change = _BatchChange(
            **change_for(parameters), topics=topics, now=clock.now(), within=visible
        )
        empty = not asked or visible.query.is_empty()
        changed, _ = (0, None) if empty else change.apply(asked, False)
        if changed and announces(parameters):
            notify.announce(sorted(topics)[:1000])
        return BulkResult(changed, max(len(ids) - changed, 0))

    return apply


def _only(parameters: dict, *names: str) -> dict:
    unknown = set(parameters) - set(names)
    if unknown:
        raise InvalidRequest(f"Unknown batch parameters: {', '.join(sorted(unknown))}")
    return parameters


def _check_retries_parameters(parameters: dict) -> dict:
    _only(parameters, "retries")
    _check_retries(parameters.get("retries"))
    return {"retries": parameters["retries"]}


def _check_priority_parameters(parameters: dict) -> dict:
    _only(parameters, "priority")
    return {"priority": _check_priority(parameters.get("priority"))}


def batch_types():
    """The external task batch types (external_tasks.apps registers them)."""
    from project.batches import BatchType

    def kind(name, action, change_for, words, check=_only, announces=lambda p: False, **extra):
        apply = _chunk_of(change_for, announces)
        return BatchType(name, TARGET_TYPE, action, ExternalTask, apply, words, check, **extra)

    return [
        kind(
            "set-external-task-retries",
            "set_retries",
            lambda p: _retries_change(p["retries"]),
            lambda p: f"set retries to {p['retries']}",
            _check_retries_parameters,
            announces=lambda p: p["retries"] > 0,
            before="retries",
        ),
        kind(
            "suspend-external-tasks",
            "suspend",
            lambda p: _suspended_change(True),
            lambda p: "suspend",
        ),
        kind(
            "activate-external-tasks",
            "activate",
            lambda p: _suspended_change(False),
            lambda p: "activate",
            announces=lambda p: True,
        ),
        kind(
            "unlock-external-tasks",
            "unlock",
            lambda p: _UNLOCK,
            lambda p: "unlock",
            announces=lambda p: True,
        ),
        kind(
            "set-external-task-priority",
            "set_priority",
            lambda p: _priority_change(p["priority"]),
            lambda p: f"set priority to {p['priority']}",
            _check_priority_parameters,
            before="priority",
        ),
        kind(
            "delete-external-tasks",
            "delete",
            lambda p: _DELETE,
            lambda p: "delete",
            deletes=True,
        ),
    ]
