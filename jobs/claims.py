"""The executor's side of a job's life: enqueue, claim, complete, fail with back-off, release.

Jobs are claimed by one statement (PostgreSQL) or inside one IMMEDIATE transaction (SQLite),
run outside any transaction (jobs.runner), then finished by a conditional write that only the
lock holder's executor performs. A crashed executor simply stops renewing: its lock expires and
the job is claimed again (logged as "lock-expired"), without spending a retry, as in Camunda.
"""

import functools
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils.dateparse import parse_duration

from jobs.conf import executor_setting, hostname, parse_seconds
from jobs.models import Job, JobDefinition, JobLog, QueuePause
from project import clock, incidents

# PostgreSQL channel an idle `runjobs` LISTENs on; sent (on commit) whenever work becomes ready.
JOBS_CHANNEL = "taskyard_jobs"


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


@dataclass(frozen=True)
class RunAgain:
    """A handler's answer "done for now, run me again at `at`": the executor keeps the job (its
    retries too), sets its due date and releases its lock instead of deleting it. For jobs that
    look at something periodically (a batch's monitor): one row for as long as it takes, not a
    new job and its log rows per look. `value` is logged as the run's return value. `retries`,
    when given, replace the job's: a periodic job's next run may start with a full set, as a
    new job would, so that failures months apart do not add up to an incident."""

    at: datetime
    value: object = None
    retries: int | None = None


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


def _definition_columns(job: Job) -> dict:
    """The job log's columns about the job's definition, read once per job object (most
    executor jobs, django.tasks', have none and cost no query)."""
    columns = getattr(job, "definition_log_columns", None)
    if columns is None:
        found = JobDefinition.objects.log_columns([job.job_definition_id])
        columns = found.get(job.job_definition_id, {}) if job.job_definition_id else {}
        job.definition_log_columns = columns
    return columns


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
        "due_date": job.due_date,
        "priority": job.priority,
        "execution_id": job.execution_id,
        "process_definition_id": job.process_definition_id,
        "failed_activity_id": job.failed_activity_id,
        "hostname": hostname(),
        **_definition_columns(job),
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
            due_date=clock.to_ms(due_date),
            retries=retries,
            tenant_id=tenant_id,
        )
        _executor_log_entry(
            job, JobLog.Event.CREATED, timestamp=job.create_time, retries=retries, payload=payload
        ).save()
        # Idle PostgreSQL executors are woken by the jobs table's NOTIFY trigger (migration
        # 0002_executor_*), which also covers jobs created through the REST API.
    return job


def _claim_candidates(now, queues) -> QuerySet:
    """What a claim may take (the status table's acquirable jobs), in the executor's order:
    highest priority first, then the longest overdue."""
    candidates = Job.objects.acquirable(now)
    if queues:
        candidates = candidates.filter(queue_name__in=list(queues))
    # Paused queues (jobs.services.pause_queue) give nothing: an anti-join on a table of a few
    # rows inside the same statement, so the claim stays one statement and a pause takes
    # effect at every executor's next claim. Jobs already claimed run to their end.
    candidates = candidates.exclude(Exists(QueuePause.objects.filter(name=OuterRef("queue_name"))))
    return candidates.order_by(F("priority").desc(), F("due_date").asc(nulls_last=True)).values(
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
    "due_date",
    "priority",
    "execution_id",
    "process_definition_id",
    "failed_activity_id",
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
    now = clock.now()
    expires = clock.to_ms(now + lock_time)
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
        return _with_definition_columns(jobs)
    return _claim_in_transaction(worker_id, now, expires, limit, queues, start)


def _with_definition_columns(jobs: list[Job]) -> list[Job]:
    """Keep each claimed job's definition columns for its log entries (_definition_columns),
    read with one query for the batch, and none when no job has a definition."""
    ids = {job.job_definition_id for job in jobs if job.job_definition_id}
    found = JobDefinition.objects.log_columns(ids) if ids else {}
    for job in jobs:
        job.definition_log_columns = found.get(job.job_definition_id, {})
    return jobs


def _claim_in_transaction(worker_id, now, expires, limit, queues, start) -> list[Job]:
    """acquire_jobs where the claim cannot be one statement (SQLite)."""
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
        jobs = _with_definition_columns(list(Job.objects.filter(id__in=ids)))
        for job in jobs:
            job.previous_owner = previous[job.id]["previous_owner"]
            job.previous_expiry = previous[job.id]["previous_expiry"]
        jobs.sort(key=_claim_order(now))
        entries = []
        for index, job in enumerate(jobs):
            if job.previous_owner and job.previous_expiry is not None:
                entries.append(_lock_expired_entry(job, worker_id, now))
            if start is None or index < start:
                entries.append(_started_entry(job, worker_id, now))
        JobLog.objects.bulk_create(entries)
    return jobs


def _lock_expired_entry(job: Job, worker_id: str, now) -> JobLog:
    # Worded as the PostgreSQL claim statement words it.
    expiry = job.previous_expiry.astimezone(UTC).isoformat(timespec="microseconds")
    return _executor_log_entry(
        job,
        JobLog.Event.LOCK_EXPIRED,
        timestamp=now,
        worker=job.previous_owner,
        retries=job.retries,
        exception_message=(
            f"Lock of {job.previous_owner} expired at {expiry}; claimed by {worker_id}"
        ),
    )


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
    _started_entry(job, worker_id, clock.now()).save()


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
    now = clock.now()
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
        job.lock_expiration_time = clock.to_ms(now + lock_time)
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
            lock_expiration_time=clock.to_ms(clock.now() + lock_time)
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
    now = clock.now()
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
    # A job run with no retries left (Camunda's manual execute of a failed job) has an incident
    # that its success resolves; the common case, retries left, costs no extra statement.
    succeeded = (row for row in rows if row["event"] == JobLog.Event.SUCCEEDED)
    failed = {row["job_id"] for row in succeeded if row["retries"] == 0}
    if failed:
        with transaction.atomic():
            done = _delete_succeeded(worker_id, ids, rows)
            incidents.resolve(incidents.FAILED_JOB, sorted(done & failed))
        return done
    return _delete_succeeded(worker_id, ids, rows)


def _delete_succeeded(worker_id: str, ids: list[str], rows: list[dict]) -> set[str]:
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


def run_again(
    job: Job,
    worker_id: str,
    again: RunAgain,
    *,
    duration_ms: float,
    return_value=None,
    then_start: Job | None = None,
) -> JobOutcome:
    """The handler answered RunAgain: keep the job, due at `again.at` and unlocked, and log the
    run ("due-date-set", with its duration and return value), in one transaction. A killed
    executor leaves the job locked until its lock expires, then it runs again, as any job.
    As complete_job, a job another executor had taken over is left to it (held_lock False)."""
    now = clock.now()
    due = clock.to_ms(again.at)
    retries = job.retries if again.retries is None else again.retries
    # Retries only when the handler gives them: an operator's set_retries meanwhile stays.
    given = {} if again.retries is None else {"retries": again.retries}
    outcome = JobOutcome(job.id, job.handler, True, duration_ms, return_value)
    with transaction.atomic():
        kept = Job.objects.filter(_still_ours(worker_id), id=job.id).update(
            type=Job.Type.TIMER,
            due_date=due,
            lock_owner=None,
            lock_expiration_time=None,
            exception_message=None,
            exception_stacktrace=None,
            **given,
        )
        outcome.held_lock = bool(kept)
        if kept and retries > 0 and job.retries == 0:
            # Run by hand with no retries left, and given them back: its incident is resolved,
            # as a success resolves it (complete_jobs).
            incidents.resolve(incidents.FAILED_JOB, [job.id], now=now)
        outcome.next_due_date = due
        _log_run(
            job,
            JobLog.Event.DUE_DATE_SET,
            worker_id,
            now,
            then_start,
            retries=retries,
            duration_ms=duration_ms,
            return_value=return_value,
            due_date=due,
        )
    return outcome


def _log_run(job: Job, event: str, worker_id: str, now, then_start: Job | None, **fields):
    """Log how a run ended (and, with `then_start`, that the executor's next job starts)."""
    entries = [_executor_log_entry(job, event, timestamp=now, worker=worker_id, **fields)]
    if then_start is not None:
        entries.append(_started_entry(then_start, worker_id, now))
    JobLog.objects.bulk_create(entries)


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
    permanent: bool = False,
) -> JobOutcome:
    """The handler raised: spend one retry, keep the message and stack trace, and schedule the
    next attempt from the retry cycle. At 0 retries the job stays as a failure (an incident)
    until an operator sets retries again. `permanent` (a handler that can never run): retries
    go to 0 at once, no retry cycle. `then_start`: as in complete_job."""
    cycle = retry_cycle or default_retry_cycle()
    now = clock.now()
    outcome = JobOutcome(
        job.id, job.handler, False, duration_ms or 0.0, None, message, stacktrace, job.retries
    )
    with transaction.atomic():
        current = Job.objects.select_for_update().filter(_still_ours(worker_id), id=job.id).first()
        if current is None:
            outcome.held_lock = False
        else:
            _spend_retry(current, cycle, now, message, stacktrace, permanent)
            if current.retries == 0:
                incidents.open_for(incidents.FAILED_JOB, Job.objects.filter(id=current.id), now=now)
            outcome.retries = current.retries
            outcome.next_due_date = current.due_date if current.retries > 0 else None
            current.history = getattr(job, "history", None)
            current.definition_log_columns = getattr(job, "definition_log_columns", None)
            job = current
        _log_run(
            job,
            JobLog.Event.FAILED,
            worker_id,
            now,
            then_start,
            retries=outcome.retries,
            duration_ms=duration_ms,
            exception_message=message,
            exception_stacktrace=stacktrace,
        )
    return outcome


def _spend_retry(
    job: Job, cycle: RetryCycle, now, message: str, stacktrace: str, permanent: bool = False
) -> None:
    """Save a failed attempt on the (locked) job: one retry less (all of them if `permanent`),
    the exception kept, the lock gone and, while retries are left, the next attempt due after
    the cycle's delay."""
    job.retries = 0 if permanent else max(job.retries - 1, 0)
    if job.retries > 0:
        # Failures so far, counted against the cycle: an operator who raises retries above the
        # cycle's count restarts the back-off from its first interval.
        job.due_date = clock.to_ms(now + cycle.delay(cycle.retries - job.retries))
    job.exception_message = message
    job.exception_stacktrace = stacktrace
    job.failed_activity_id = job.activity_id
    job.lock_owner = None
    job.lock_expiration_time = None
    job.save(
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
