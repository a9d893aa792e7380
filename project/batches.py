"""Batches: an operator action on a whole query, answered at once and run by the job executor
in chunks (Camunda's batch model).

`start()` takes a snapshot of the rows (their ids, in chunks of TASKYARD_BATCH_CHUNK_SIZE, by
one INSERT … SELECT), writes the Batch row and its audit entry, and has the engine create the
seed, monitor and batch job definitions and the seed job, all in one transaction; a selection
of more than TASKYARD_BATCH_SNAPSHOT_LIMIT rows is snapshotted by the seed job instead
(take_snapshot()), so the answer does not wait for reading every row. The engine
(jobs.batches, installed by jobs.apps with use_engine) runs the chunks: each chunk job applies
its BatchType's `apply` to its ids in one transaction with the batch's counters and the
deletion of its BatchChunk, so a chunk runs at most once however often its job runs.

project/ never imports the apps above it: the apps register their batch types (register())
and the engine (use_engine()) when they are ready.
"""

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import F, IntegerField, QuerySet, Subquery, Value
from django.db.models.expressions import RawSQL

from project import audit, clock, tenancy
from project.bulk import BulkResult
from project.errors import BadUserRequest, DomainError, InvalidRequest, NotFound
from project.ids import new_id
from project.models import AuditEntry, AuditTenant, Batch, BatchChunk

TARGET_TYPE = "batch"
DEFAULT_CHUNK_SIZE = 1000
DEFAULT_JOBS_PER_SEED = 100


@dataclass(frozen=True)
class BatchType:
    """What a kind of batch does to its rows; registered by the app that owns the rows."""

    name: str  # Camunda's type name ("set-job-retries") or ours ("suspend-jobs")
    target_type: str  # "job" | "external_task" (the audit's target type)
    action: str  # the audit verb, as the synchronous action records it ("set_retries")
    model: type  # the rows' model
    # (user, ids, parameters) -> BulkResult: one chunk, set-based, inside the caller's
    # transaction; re-scopes the ids by the user, writes the log rows and incidents like the
    # synchronous action, but no audit entry (the batch has one).
    apply: Callable
    # (parameters) -> str, e.g. "set retries to 3": the console's and the audit's words.
    words: Callable
    # (parameters) -> parameters: validated and normalised (JSON-safe) before anything is
    # written; raises InvalidRequest. None: taken as given.
    check: Callable | None = None
    # Deleting rows is an admin's action: such batches need tenancy.can_delete to start.
    deletes: bool = False
    # The field whose old values the audit entry's `before` counts ({"retries": {"0": 12}}),
    # as the synchronous action records them; None: no `before`.
    before: str | None = None


TYPES: dict[str, BatchType] = {}


def register(batch_type: BatchType) -> None:
    """Make a batch type known (apps call this in AppConfig.ready())."""
    TYPES[batch_type.name] = batch_type


_engine = None


def use_engine(engine) -> None:
    """Install the engine that runs batches (jobs.batches.ENGINE, from jobs.apps.ready())."""
    global _engine
    _engine = engine


def engine():
    if _engine is None:
        raise RuntimeError("No batch engine installed (is the jobs app installed?)")
    return _engine


def chunk_size() -> int:
    """Rows per batch job (Camunda's invocationsPerBatchJob): TASKYARD_BATCH_CHUNK_SIZE."""
    size = getattr(settings, "TASKYARD_BATCH_CHUNK_SIZE", DEFAULT_CHUNK_SIZE)
    return max(int(size), 1)


def jobs_per_seed() -> int:
    """Batch jobs the seed job creates per run (Camunda's batchJobsPerSeed)."""
    return max(int(getattr(settings, "TASKYARD_BATCH_JOBS_PER_SEED", DEFAULT_JOBS_PER_SEED)), 1)


def monitor_interval() -> timedelta:
    """How long the monitor job waits between its looks at a batch that is not done."""
    return timedelta(seconds=float(getattr(settings, "TASKYARD_BATCH_MONITOR_INTERVAL", 10)))


# --- roles ----------------------------------------------------------------------------------


def _forbidden(message: str) -> DomainError:
    return DomainError(message, status_code=403, error_type="AuthorizationException")


def _check_operator(user, what: str) -> None:
    if not tenancy.can_operate(user):
        raise _forbidden(f"You are not allowed to {what}: it needs the operator or admin role")


# --- starting -------------------------------------------------------------------------------

# Camunda's BadUserRequestException of setJobRetriesAsync / setRetriesAsync on no rows.
EMPTY_NAMES = {"job": "jobIds", "external_task": "externalTaskIds"}


def start(
    user,
    type_name: str,
    rows,
    parameters: dict,
    *,
    filter: dict | None = None,
    description: str = "",
    source: str = "api",
    reason: str = "",
) -> Batch:
    """Create a batch of `type_name` over `rows` (a queryset of the type's model, or ids) as
    the user sees them; answers the Batch at once, the executor does the work. The operator's
    `reason` is kept in the audit entry (`after.reason`), as the synchronous actions keep it.

    Bad parameters, an unknown type or no matching rows raise before anything is written; as
    Camunda, no rows is a 400 ("jobIds is empty"). Ids the user cannot see are not in the
    batch (they are not in its total either).

    Up to snapshot_limit() rows are copied into chunks here, so the answer has the batch's
    totals, as Camunda's has. A larger selection would keep the answer waiting for reading
    every row (a 100k-row topic is spread over most of the table's pages): the batch keeps
    the scoped query instead (Batch.selection) and its seed job takes the snapshot, within
    moments of the answer; until then totalJobs is 0 and the batch is `selecting`."""
    batch_type = TYPES.get(type_name)
    if batch_type is None:
        raise InvalidRequest(f"Unknown batch type '{type_name}'")
    if batch_type.deletes:
        if not tenancy.can_delete(user):
            raise _forbidden("You are not allowed to delete rows: it needs the admin role")
    else:
        _check_operator(user, "start a batch")
    if parameters is not None and not isinstance(parameters, dict):
        raise InvalidRequest("Batch parameters must be a JSON object")
    parameters = dict(parameters or {})
    if batch_type.check is not None:
        parameters = batch_type.check(parameters)
    sql, params = _selection(_scoped_rows(user, batch_type.model, rows), batch_type.before)
    empty = BadUserRequest(f"{EMPTY_NAMES.get(batch_type.target_type, 'ids')} is empty")
    size = chunk_size()
    now = clock.now()
    with transaction.atomic():
        limit = snapshot_limit()
        found = _count_upto(sql, params, limit + 1)
        if found == 0:
            raise empty
        frozen = _freeze_all(params) if found > limit else None
        batch = Batch.objects.create(
            id=new_id(),
            type=batch_type.name,
            target_type=batch_type.target_type,
            parameters=parameters,
            filter=filter,
            description=description or batch_type.words(parameters),
            invocations_per_batch_job=size,
            batch_jobs_per_seed=jobs_per_seed(),
            create_user_id=getattr(user, "username", None) or None,
            source=source,
            start_time=now,
            selection=None if frozen is None else {"sql": sql, "params": frozen},
        )
        if frozen is None:
            chunks, total, tenants, histogram = _snapshot(batch, sql, params, batch_type.before)
            if total == 0:
                raise empty  # rolls back the batch row: nothing is written
            _set_totals(batch, chunks, total, tenants)
        else:
            # The creator's tenants until the seed job knows the rows': those who may see the
            # batch only become more, never fewer, when it does.
            total, tenants, histogram = None, tenancy.tenant_ids(user), {}
        batch.audit_entry = audit.record(
            user,
            batch_type.target_type,
            batch_type.action,
            tenants=tenants,
            ids=_first_ids(batch),
            filter=filter,
            count=total or 0,
            # The snapshot's rows as they were when the batch started: what it is to change.
            before={batch_type.before: histogram} if batch_type.before and total else None,
            after={
                **parameters,
                "batch": batch.id,
                "batchType": batch_type.name,
                "outcome": Batch.Outcome.RUNNING,
                "planned": total,
            },
            source=source,
            reason=reason,
        )
        engine().create(batch)  # job definitions and the seed job; sets their ids on batch
        batch.save()
    return batch


def take_snapshot(batch: Batch) -> None:
    """Select the rows of a batch that start() left to its seed job (inside the seed job's
    transaction, the batch row locked): the chunks, the batch's totals and tenant, and its
    audit entry's planned count, first ids, `before` and tenants, as start() would have
    written them. No row left is a batch of 0 rows, for the caller to finish."""
    batch_type = TYPES[batch.type]
    sql, params = batch.selection["sql"], _thaw(batch.selection["params"])
    chunks, total, tenants, histogram = _snapshot(batch, sql, params, batch_type.before)
    _set_totals(batch, chunks, total, tenants)
    batch.selection = None
    batch.save(update_fields=["selection", "total_rows", "total_jobs", "tenant_id"])
    entry = AuditEntry.objects.filter(pk=batch.audit_entry_id).first()
    if entry is None:
        return
    entry.target_ids = _first_ids(batch)
    entry.count = total
    if batch_type.before and total:
        entry.before = {batch_type.before: histogram}
    entry.after = {**(entry.after or {}), "planned": total}
    entry.save(update_fields=["target_ids", "count", "before", "after"])
    audit.set_tenants(entry, creator(batch), tenants)


# One chunk by default: counting 10,001 rows of a topic just rewritten (no visibility map) took
# 67–84 ms in-process at 1M rows, 1,001 took 20 ms.
DEFAULT_SNAPSHOT_LIMIT = 1_000


def snapshot_limit() -> int:
    """The most rows start() copies into chunks itself (TASKYARD_BATCH_SNAPSHOT_LIMIT); the
    seed job selects a larger batch's rows."""
    return max(int(getattr(settings, "TASKYARD_BATCH_SNAPSHOT_LIMIT", DEFAULT_SNAPSHOT_LIMIT)), 0)


def _set_totals(batch: Batch, chunks: int, total: int, tenants: set) -> None:
    real = {tenant for tenant in tenants if tenant is not None}
    batch.tenant_id = next(iter(real)) if len(real) == 1 and None not in tenants else None
    batch.total_rows = total
    batch.total_jobs = chunks


def _first_ids(batch: Batch) -> list:
    """The first chunk's ids (the audit entry's sample of the rows), or [] before a snapshot."""
    first = BatchChunk.objects.filter(batch=batch, number=1).values_list("ids", flat=True)
    return list(first.first() or [])[: audit.MAX_IDS]


def _scoped_rows(user, model, rows) -> QuerySet:
    """The rows as a scoped queryset of `model`: a queryset is re-scoped (twice is harmless,
    forgetting once is a leak); ids go in as one array parameter, not a giant IN list."""
    if isinstance(rows, QuerySet):
        if rows.model is not model:
            raise InvalidRequest(f"{rows.model.__name__} rows for a {model.__name__} batch")
        return tenancy.scope(rows, user)
    ids = sorted({rows} if isinstance(rows, str) else {str(row) for row in rows})
    ids = [row_id for row_id in ids if "\x00" not in row_id]  # no such id can exist
    if not ids:
        return model.objects.none()
    if connection.vendor == "postgresql":
        listed = RawSQL("SELECT unnest(%s::text[])", [ids])
    else:
        listed = RawSQL("SELECT value FROM json_each(%s)", [json.dumps(ids)])
    return tenancy.scope(model.objects.filter(pk__in=listed), user)


def _selection(rows: QuerySet, before: str | None) -> tuple[str, list]:
    """The SQL (and its parameters) of the rows' ids, tenants and `before` values, in named
    columns (snapshot_id, snapshot_tenant, snapshot_before); a queryset that can match
    nothing (a user who sees nothing: queryset.none()) is a query of no rows."""
    selected = (
        rows.order_by()
        .annotate(
            snapshot_id=F("pk"),
            snapshot_tenant=F("tenant_id"),
            snapshot_before=F(before) if before else Value(None, output_field=IntegerField()),
        )
        .values("snapshot_id", "snapshot_tenant", "snapshot_before")
    )
    try:
        sql, params = selected.query.sql_with_params()
    except EmptyResultSet:
        nothing = "SELECT NULL AS snapshot_id, NULL AS snapshot_tenant, NULL AS snapshot_before"
        return f"{nothing} WHERE 1 = 0", []
    return sql, list(params)


def _count_upto(sql: str, params: list, limit: int) -> int:
    """How many rows the selection has, counting no further than `limit` (so a large one costs
    what `limit` rows do, not what all of them would)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) FROM (SELECT 1 FROM ({sql}) s LIMIT %s) bounded", [*params, limit]
        )
        return cursor.fetchone()[0]


# Parameters of a kept selection, as JSON: the types Django's compiled WHERE clauses pass.
_THAW = {
    "datetime": datetime.fromisoformat,
    "date": date.fromisoformat,
    "decimal": Decimal,
    "uuid": UUID,
}


def _freeze(value):
    if value is None or isinstance(value, (bool, int, str)):
        if isinstance(value, str) and "\x00" in value:  # jsonb has no NUL
            raise TypeError(value)
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, list):
        return [_freeze(item) for item in value]
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    if isinstance(value, Decimal) and value.is_finite():
        return {"decimal": str(value)}
    if isinstance(value, UUID):
        return {"uuid": str(value)}
    raise TypeError(type(value).__name__)


def _freeze_all(params: list) -> list | None:
    """The parameters as JSON, or None when one has a type JSON cannot keep exactly (the
    request then takes the snapshot itself: slower, never wrong)."""
    try:
        return [_freeze(value) for value in params]
    except TypeError:
        return None


def _thaw(value):
    if isinstance(value, list):
        return [_thaw(item) for item in value]
    if isinstance(value, dict):
        ((tag, text),) = value.items()
        return _THAW[tag](text)
    return value


def _snapshot(
    batch: Batch, sql: str, params: list, before: str | None = None
) -> tuple[int, int, set, dict]:
    """Copy the ids of the selection (`sql`, see _selection) into BatchChunk rows of
    batch.invocations_per_batch_job ids each with one INSERT … SELECT (the ids never travel
    to Python); returns (chunks, rows, the rows' tenants, and {str(value of `before`): rows}
    when `before` names a field, else {}).

    On PostgreSQL one statement reads the rows once for the chunks, their tenants and the
    histogram, so they are exactly the snapshot's. Chunks are numbered in the order the rows
    are read, not sorted by id: sorting 100k text ids was most of the statement, and nothing
    needs it (each chunk locks its own rows in id order when it runs)."""
    size = batch.invocations_per_batch_job
    table = connection.ops.quote_name(BatchChunk._meta.db_table)
    numbered = (
        "SELECT s.snapshot_id, s.snapshot_tenant, s.snapshot_before, "
        "(ROW_NUMBER() OVER () - 1) / %s + 1 AS chunk "
        f"FROM ({sql}) s"
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"WITH numbered AS MATERIALIZED ({numbered}), inserted AS ("
                f"INSERT INTO {table} (batch_id, number, ids, size) "
                "SELECT %s, chunk, jsonb_agg(snapshot_id), COUNT(*) FROM numbered "
                "GROUP BY chunk RETURNING size) "
                "SELECT (SELECT COUNT(*) FROM inserted), "
                "(SELECT COALESCE(SUM(size), 0) FROM inserted), "
                "(SELECT jsonb_agg(DISTINCT snapshot_tenant) FROM numbered), "
                # Python's str() of the value, as the synchronous actions key it ("None").
                + (
                    "(SELECT jsonb_object_agg(COALESCE(b::text, 'None'), n) FROM (SELECT "
                    "snapshot_before AS b, COUNT(*) AS n FROM numbered GROUP BY 1) h)"
                    if before
                    else "NULL"
                ),
                [size, *params, batch.id],
            )
            chunks, total, tenants, histogram = cursor.fetchone()
            if isinstance(tenants, str):
                tenants = json.loads(tenants)
            if isinstance(histogram, str):
                histogram = json.loads(histogram)
            return chunks, total, set(tenants or ()), histogram or {}
        # SQLite has no INSERT inside WITH; its transaction reads one snapshot, so the second
        # statement sees the rows the first copied.
        cursor.execute(
            f"INSERT INTO {table} (batch_id, number, ids, size) "
            "SELECT %s, numbered.chunk, json_group_array(numbered.snapshot_id), COUNT(*) "
            f"FROM ({numbered}) numbered GROUP BY numbered.chunk RETURNING size",
            [batch.id, size, *params],
        )
        sizes = [row[0] for row in cursor.fetchall()]
        cursor.execute(f"SELECT DISTINCT s.snapshot_tenant FROM ({sql}) s", params)
        tenants = {row[0] for row in cursor.fetchall()}
        histogram = {}
        if before:
            cursor.execute(
                f"SELECT s.snapshot_before, COUNT(*) FROM ({sql}) s GROUP BY s.snapshot_before",
                params,
            )
            histogram = {str(value): count for value, count in cursor.fetchall()}
    return len(sizes), sum(sizes), tenants, histogram


# --- reading --------------------------------------------------------------------------------


def visible(user) -> QuerySet:
    """Every batch (running or ended) the user may see (tenancy.scope_batches)."""
    return tenancy.scope_batches(Batch.objects.all(), user)


def get(user, batch_id: str, *, running: bool = False) -> Batch:
    """The batch, or NotFound (also for other tenants' batches); with `running`, an ended
    batch is not found either (Camunda's /batch/{id} only knows running ones)."""
    batches = visible(user)
    if running:
        batches = batches.filter(end_time__isnull=True)
    batch = None
    if isinstance(batch_id, str) and "\x00" not in batch_id:
        batch = batches.filter(id=batch_id).first()
    if batch is None:
        if running:
            raise NotFound(f"Batch for id '{batch_id}' cannot be found")
        raise NotFound(f"Historic batch for id '{batch_id}' cannot be found")
    return batch


def failed_jobs(batch_ids) -> dict[str, int]:
    """{batch id: its batch jobs with no retries left} (Camunda's failedJobs)."""
    return engine().failed_jobs(list(batch_ids))


def executors_seen(queue: str = "batch", within_seconds: int = 30) -> bool:
    """Whether a job executor running `queue` reported itself in the last `within_seconds`:
    without one, batches do not progress (the console says so)."""
    return engine().executors_seen(queue, within_seconds)


def creator(batch: Batch):
    """The user a batch acts for (its chunks re-scope by their tenants now), or None."""
    from django.contrib.auth import get_user_model

    users = get_user_model().objects.all()
    if batch.audit_entry_id is not None:
        # The audit entry's user in one query (every chunk asks): not the entry, then its user.
        of_entry = AuditEntry.objects.filter(pk=batch.audit_entry_id).values("user_id")[:1]
        user = users.filter(pk=Subquery(of_entry)).first()
        if user is not None:
            return user if user.is_active else None
    if batch.create_user_id:
        return users.filter(username=batch.create_user_id, is_active=True).first()
    return None


# --- operator actions -----------------------------------------------------------------------


def _tenants_of(batch: Batch):
    """The batch's tenants, as its audit entry recorded them (None: unknown)."""
    if batch.audit_entry_id is None:
        return None
    entry = AuditEntry.objects.filter(pk=batch.audit_entry_id).first()
    if entry is None or entry.admin_only:
        return None
    return set(AuditTenant.objects.filter(entry_id=entry.pk).values_list("tenant_id", flat=True))


def _record(user, batch: Batch, verb: str, source: str, **after) -> None:
    audit.record(
        user,
        TARGET_TYPE,
        verb,
        tenants=_tenants_of(batch),
        ids=[batch.id],
        count=1,
        after={"batchType": batch.type, **after},
        source=source,
    )


def set_suspended(user, batch_id: str, suspended: bool, *, source: str = "api") -> Batch:
    """Suspend (no further chunk starts; a running one finishes) or resume a running batch."""
    _check_operator(user, "suspend or activate a batch")
    if not isinstance(suspended, bool):
        raise InvalidRequest("suspended must be true or false")
    with transaction.atomic():
        get(user, batch_id, running=True)
        batch = Batch.objects.select_for_update().get(pk=batch_id)
        if batch.end_time is not None:
            raise NotFound(f"Batch for id '{batch_id}' cannot be found")
        if batch.suspended != suspended:
            batch.suspended = suspended
            batch.save(update_fields=["suspended"])
            engine().set_suspended(batch, suspended)
            verb = "suspend" if suspended else "activate"
            _record(user, batch, verb, source, suspended=suspended)
    return batch


def delete(user, batch_id: str, *, cascade: bool = False, source: str = "api") -> None:
    """Cancel a running batch: its jobs and job definitions go, a chunk that is running
    finishes first (its changes stay); its history stays, ended and "cancelled", unless
    `cascade` (admins only), which removes it too."""
    if cascade:
        if not tenancy.can_delete(user):
            raise _forbidden("You are not allowed to delete batch history: it needs the admin role")
    else:
        _check_operator(user, "cancel a batch")
    with transaction.atomic():
        get(user, batch_id, running=True)
        # Lock order, as a chunk takes them: its chunk rows (ascending), then the batch row.
        # A running chunk holds its chunk row, so this waits for it to commit.
        remaining = list(
            BatchChunk.objects.select_for_update()
            .filter(batch_id=batch_id)
            .order_by("number")
            .values_list("size", flat=True)
        )
        batch = Batch.objects.select_for_update().get(pk=batch_id)
        if batch.end_time is not None:
            raise NotFound(f"Batch for id '{batch_id}' cannot be found")
        engine().cancel(batch)
        BatchChunk.objects.filter(batch_id=batch_id).delete()
        _record(user, batch, "cancel", source, cascade=cascade, rowsNotRun=sum(remaining))
        if cascade:
            batch.delete()
            return
        batch.end_time = clock.now()
        batch.outcome = Batch.Outcome.CANCELLED
        batch.save(update_fields=["end_time", "outcome"])
        _complete_audit(batch)


def delete_history(user, batch_id: str, *, source: str = "api") -> None:
    """Remove an ended batch's history (DELETE /history/batch/{id}; admins only). A running
    batch must be cancelled first: its history is its runtime row too."""
    if not tenancy.can_delete(user):
        raise _forbidden("You are not allowed to delete batch history: it needs the admin role")
    with transaction.atomic():
        batch = get(user, batch_id)
        if batch.end_time is None:
            raise BadUserRequest(
                f"Batch {batch_id} is still running: cancel it (DELETE /batch/{batch_id}) first"
            )
        _record(user, batch, "delete_history", source, outcome=batch.outcome)
        Batch.objects.filter(pk=batch.pk).delete()


# --- for the engine -------------------------------------------------------------------------


def record_chunk(batch_id: str, result: BulkResult, size: int) -> bool:
    """Add one chunk's counts to its batch (inside the chunk's transaction; locks the row).
    Returns whether every chunk job has now completed: the caller then checks that no chunk
    is left and finishes the batch; other chunks need no further look at the batch."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        # One statement for the counts and the "was it the last?" answer (an UPDATE, then a
        # SELECT … FOR UPDATE of the same row and a look for chunks left, on every chunk).
        cursor.execute(
            f"UPDATE {quote(Batch._meta.db_table)} SET rows_changed = rows_changed + %s, "
            "rows_skipped = rows_skipped + %s, completed_jobs = completed_jobs + 1 "
            "WHERE id = %s RETURNING jobs_created >= total_jobs AND completed_jobs >= total_jobs",
            [result.changed, max(size - result.changed, 0), batch_id],
        )
        row = cursor.fetchone()
    return bool(row and row[0])


def finish(batch: Batch) -> Batch:
    """End a running batch whose chunks have all run (or whose jobs were deleted): chunks left
    over count as failed rows; its job definitions go; the audit entry is completed. The
    caller holds the batch row's lock."""
    leftover = BatchChunk.objects.filter(batch_id=batch.pk)
    failed = sum(leftover.values_list("size", flat=True))
    leftover.delete()
    batch.refresh_from_db()
    batch.rows_failed += failed
    batch.end_time = clock.now()
    batch.outcome = Batch.Outcome.COMPLETED
    batch.save(update_fields=["rows_failed", "end_time", "outcome"])
    engine().cancel(batch)
    _complete_audit(batch)
    return batch


def _complete_audit(batch: Batch) -> None:
    """The batch's audit entry, completed: rows changed, skipped and failed, and the outcome."""
    if batch.audit_entry_id is None:
        return
    entry = AuditEntry.objects.filter(pk=batch.audit_entry_id).first()
    if entry is None:
        return
    entry.count = batch.rows_changed
    entry.skipped = batch.rows_skipped
    entry.after = {
        **(entry.after or {}),
        "outcome": batch.outcome,
        "planned": batch.total_rows,
        "changed": batch.rows_changed,
        "skipped": batch.rows_skipped,
        "failed": batch.rows_failed,
        "notRun": max(
            batch.total_rows - batch.rows_changed - batch.rows_skipped - batch.rows_failed, 0
        ),
    }
    entry.save(update_fields=["count", "skipped", "after"])


def total_jobs(rows: int, per_job: int) -> int:
    """Camunda's totalJobs: rows ÷ invocationsPerBatchJob, rounded up."""
    return math.ceil(rows / max(per_job, 1))
