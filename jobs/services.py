"""Every state transition of jobs and job definitions lives here.

The Camunda REST face, the console, the job executor and management commands call these
functions; nothing else writes to Job, JobDefinition or JobLog. Each function is one short
transaction; bulk variants are set-based (one UPDATE per batch) and return row counts.
"""

import math
import re
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone
from django.utils.dateparse import parse_duration

from jobs.models import Job, JobDefinition, JobLog

# =============================================================================================
# Creating, querying helpers and operator transitions
# (set_retries, suspend/activate, set_priority, set_due_date, unlock, delete, job definitions)
# =============================================================================================


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
    # False when another executor took the job over meanwhile (our lock had expired).
    held_lock: bool = True


def _executor_log_entry(job: Job, event: str, **fields) -> JobLog:
    return JobLog(
        job_id=job.id,
        event=event,
        job_definition_id=job.job_definition_id,
        handler=job.handler,
        queue_name=job.queue_name,
        tenant_id=job.tenant_id,
        process_instance_id=job.process_instance_id,
        process_definition_key=job.process_definition_key,
        activity_id=job.activity_id,
        **fields,
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


def acquire_jobs(worker_id: str, *, lock_time: timedelta, limit: int = 1, queues=None) -> list[Job]:
    """Claim up to `limit` executable jobs for `worker_id` until now + lock_time, exclusively:
    two executors never hold the same job. Logs "lock-expired" (a crashed or stalled holder) and
    "started" for each claimed job in the same transaction."""
    now = timezone.now()
    expires = now + lock_time
    candidates = executable_jobs(now, queues).values(
        "id", previous_owner=F("lock_owner"), previous_expiry=F("lock_expiration_time")
    )
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # One statement: lock candidate rows nobody else has locked, stamp our lock on them
            # and return them. Rows another executor is claiming right now are skipped, not
            # waited for, so concurrent executors never block each other or double-claim.
            sub_sql, sub_params = candidates.select_for_update(skip_locked=True, of=("self",))[
                :limit
            ].query.sql_with_params()
            table = connection.ops.quote_name(Job._meta.db_table)
            jobs = list(
                Job.objects.raw(
                    f"UPDATE {table} SET lock_owner = %s, lock_expiration_time = %s "
                    f"FROM ({sub_sql}) AS claim WHERE {table}.id = claim.id "
                    f"RETURNING {table}.*, claim.previous_owner, claim.previous_expiry",
                    [worker_id, expires, *sub_params],
                )
            )
        else:
            # SQLite: the IMMEDIATE transaction already holds the database's write lock, so
            # select-then-update cannot interleave with another executor's claim.
            if connection.features.has_select_for_update_skip_locked:
                candidates = candidates.select_for_update(skip_locked=True, of=("self",))
            rows = list(candidates[:limit])
            ids = [row["id"] for row in rows]
            Job.objects.filter(id__in=ids).update(
                lock_owner=worker_id, lock_expiration_time=expires
            )
            previous = {row["id"]: row for row in rows}
            jobs = list(Job.objects.filter(id__in=ids))
            for job in jobs:
                job.previous_owner = previous[job.id]["previous_owner"]
                job.previous_expiry = previous[job.id]["previous_expiry"]
        entries = []
        for job in jobs:
            if job.previous_owner and job.previous_expiry is not None:
                entries.append(
                    _executor_log_entry(
                        job,
                        JobLog.Event.LOCK_EXPIRED,
                        timestamp=now,
                        worker=job.previous_owner,
                        retries=job.retries,
                        exception_message=(
                            f"Lock of {job.previous_owner} expired at "
                            f"{job.previous_expiry.isoformat()}; claimed by {worker_id}"
                        ),
                    )
                )
            entries.append(
                _executor_log_entry(
                    job, JobLog.Event.STARTED, timestamp=now, worker=worker_id, retries=job.retries
                )
            )
        JobLog.objects.bulk_create(entries)
    jobs.sort(key=lambda job: (-job.priority, job.due_date is None, job.due_date or now))
    return jobs


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


def _still_ours(worker_id: str) -> Q:
    # An operator's unlock (lock_owner cleared) does not take the job away from the run that
    # already happened; only another executor's claim does.
    return Q(lock_owner=worker_id) | Q(lock_owner__isnull=True)


def complete_job(job: Job, worker_id: str, *, duration_ms: float, return_value=None) -> bool:
    """The handler returned: delete the job and log the success. Returns False when another
    executor had taken the job over (its lock expired under us); the run is logged anyway."""
    with transaction.atomic():
        deleted, _ = Job.objects.filter(_still_ours(worker_id), id=job.id).delete()
        _executor_log_entry(
            job,
            JobLog.Event.SUCCEEDED,
            worker=worker_id,
            retries=job.retries,
            duration_ms=duration_ms,
            return_value=return_value,
        ).save()
    return bool(deleted)


def fail_job(
    job: Job,
    worker_id: str,
    *,
    message: str,
    stacktrace: str,
    duration_ms: float | None = None,
    retry_cycle: RetryCycle | None = None,
) -> JobOutcome:
    """The handler raised: spend one retry, keep the message and stack trace, and schedule the
    next attempt from the retry cycle. At 0 retries the job stays as a failure (an incident)
    until an operator sets retries again."""
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
            job = current
        _executor_log_entry(
            job,
            JobLog.Event.FAILED,
            timestamp=now,
            worker=worker_id,
            retries=outcome.retries,
            duration_ms=duration_ms,
            exception_message=message,
            exception_stacktrace=stacktrace,
        ).save()
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
    job: Job, worker_id: str, *, timeout: float | None = None, retry_cycle: RetryCycle | None = None
) -> JobOutcome:
    """Run a job this worker has claimed, outside any transaction, and record the outcome."""
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
        outcome = fail_job(
            job,
            worker_id,
            message=message,
            stacktrace=stacktrace,
            duration_ms=duration_ms,
            retry_cycle=retry_cycle,
        )
        # Inside the except block, as django.tasks receivers expect: exc_info is available.
        backends.send_task_signal(job, started=False, outcome=outcome)
        return outcome
    duration_ms = (time.monotonic() - started) * 1000
    value = executor.json_value(value)
    held = complete_job(job, worker_id, duration_ms=duration_ms, return_value=value)
    outcome = JobOutcome(job.id, job.handler, True, duration_ms, value, held_lock=held)
    backends.send_task_signal(job, started=False, outcome=outcome)
    return outcome


def execute_job(job_id: str, worker_id: str, *, lock_time: timedelta | None = None) -> JobOutcome:
    """Run one job now through the executor's path (claim, run, succeed or fail)."""
    if lock_time is None:
        lock_time = timedelta(seconds=parse_seconds(executor_setting("LOCK_TIME"), "LOCK_TIME"))
    job = claim_job(job_id, worker_id, lock_time=lock_time)
    return run_claimed_job(job, worker_id)
