"""Running one claimed job: call its handler outside any transaction, record the outcome.

The executor (jobs.executor) runs the jobs it claimed through run_claimed_job; an operator's
"execute now" (execute_now) claims one job by id and runs it through the same path.
"""

import contextlib
import logging
import signal
import threading
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from inspect import iscoroutinefunction

from asgiref.sync import async_to_sync
from django.tasks import Task, TaskContext
from django.utils.json import normalize_json

from jobs import backends, claims, services
from jobs.claims import JobNotExecutable, JobOutcome, RetryCycle
from jobs.conf import executor_setting, parse_seconds
from jobs.handlers import HandlerNotAllowed, payload_arguments, resolve_handler
from jobs.models import Job
from project import audit
from project.errors import BadUserRequest

logger = logging.getLogger("jobs.executor")


class JobInterrupted(BaseException):
    """Raised inside a running handler by a second SIGTERM/SIGINT: stop now, release the job.

    A BaseException so a handler's `except Exception` cannot swallow the shutdown."""


class JobTimeout(TimeoutError):
    """The handler ran longer than the executor's timeout; recorded as an ordinary failure."""


@contextlib.contextmanager
def time_limit(seconds: float | None):
    """Raise JobTimeout inside the block after `seconds` (SIGALRM: main thread, Unix only).

    Elsewhere (e.g. a REST request thread running a job) the job simply has no time limit."""
    usable = (
        seconds
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def expire(signum, frame):
        raise JobTimeout(f"Job timed out after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


_running = threading.local()


def in_handler() -> bool:
    """Whether this thread is inside a job's handler right now (a signal may interrupt it)."""
    return getattr(_running, "in_handler", False)


def call_handler(job, *, timeout: float | None = None):
    """Call the job's handler with its payload and return what it returns."""
    target = resolve_handler(job.handler)
    args, kwargs = payload_arguments(job.payload)
    _running.in_handler = True
    try:
        with time_limit(timeout):
            if isinstance(target, Task):
                if target.takes_context:
                    result = backends.task_result_for(
                        job.id,
                        target.get_backend().alias,
                        running=True,
                        job=job,
                        logs=getattr(job, "history", None),
                    )
                    return target.call(TaskContext(task_result=result), *args, **kwargs)
                return target.call(*args, **kwargs)
            if iscoroutinefunction(target):
                return async_to_sync(target)(*args, **kwargs)
            return target(*args, **kwargs)
    finally:
        _running.in_handler = False


def json_value(value):
    """A return value as JSON for the log; what JSON cannot hold is kept as its repr()."""
    try:
        return normalize_json(value)
    except (TypeError, ValueError):
        logger.warning("Return value %r is not JSON; its repr() is logged instead", value)
        return repr(value)


def _record_failure(
    job: Job,
    worker_id: str,
    message: str,
    stacktrace: str,
    started: float,
    retry_cycle: RetryCycle | None,
    next_job: Callable[[], Job | None] | None,
    *,
    permanent: bool = True,
) -> JobOutcome:
    """Record a failed run (for good when `permanent`) and send django.tasks' task_finished
    when it is final."""
    duration_ms = (time.monotonic() - started) * 1000
    then_start = next_job() if next_job else None
    outcome = claims.fail_job(
        job,
        worker_id,
        message=message,
        stacktrace=stacktrace,
        duration_ms=duration_ms,
        retry_cycle=retry_cycle,
        then_start=then_start,
        permanent=permanent,
    )
    outcome.next_started = then_start
    backends.send_task_signal(job, started=False, outcome=outcome)
    return outcome


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
    started = time.monotonic()
    try:
        resolve_handler(job.handler)
    except (HandlerNotAllowed, ImportError) as error:
        # No retry could ever run it (refused, or its module or name is gone): one failure, for
        # good, instead of a retry cycle spending attempts on the same refusal.
        reason = (
            error
            if isinstance(error, HandlerNotAllowed)
            else (f"Handler {job.handler!r} cannot be imported: {error}")
        )
        message = (
            f"{reason}. It can never run, so the job is not retried (retries 0); set its "
            "retries again once the handler is fixed."
        )
        # No traceback to show: the last line names the exception, as a traceback's would.
        kind = type(error)
        stacktrace = f"{kind.__module__}.{kind.__qualname__}: {message}"
        return _record_failure(job, worker_id, message, stacktrace, started, retry_cycle, next_job)
    backends.send_task_signal(job, started=True)
    try:
        value = call_handler(job, timeout=timeout)
    except (JobInterrupted, KeyboardInterrupt):
        reason = "Executor shut down while the job ran; released unfinished"
        claims.release_job(job, worker_id, reason)
        raise
    except BaseException as error:  # noqa: BLE001 - a job's failure must never kill the executor
        message = str(error) or type(error).__name__
        stacktrace = "".join(traceback.format_exception(error))
        # Inside the except block, as django.tasks receivers expect: exc_info is available.
        return _record_failure(
            job, worker_id, message, stacktrace, started, retry_cycle, next_job, permanent=False
        )
    duration_ms = (time.monotonic() - started) * 1000
    if isinstance(value, claims.RunAgain):
        then_start = next_job() if next_job else None
        outcome = claims.run_again(
            job,
            worker_id,
            value,
            duration_ms=duration_ms,
            return_value=json_value(value.value),
            then_start=then_start,
        )
        outcome.next_started = then_start
        return outcome
    value = json_value(value)
    then_start = next_job() if next_job else None
    rows = claims.success_rows(
        job, worker_id, duration_ms=duration_ms, return_value=value, then_start=then_start
    )
    outcome = JobOutcome(job.id, job.handler, True, duration_ms, value, next_started=then_start)
    if defer_success is not None and not backends.finished_signal_awaited(job):
        # The caller writes it later, with other successes (complete_jobs), and sets held_lock.
        outcome.held_lock = None
        defer_success(job, rows, outcome)
        return outcome
    outcome.held_lock = job.id in claims.complete_jobs(worker_id, [(job.id, rows)])
    backends.send_task_signal(job, started=False, outcome=outcome)
    return outcome


def execute_job(job_id: str, worker_id: str, *, lock_time: timedelta | None = None) -> JobOutcome:
    """Run one job now through the executor's path (claim, run, succeed or fail)."""
    if lock_time is None:
        lock_time = timedelta(seconds=parse_seconds(executor_setting("LOCK_TIME"), "LOCK_TIME"))
    job = claims.claim_job(job_id, worker_id, lock_time=lock_time)
    return run_claimed_job(job, worker_id)


def execute_now(user, job_id: str, *, source: str = "api", reason: str = ""):
    """Run one job immediately, whatever its due date, through the executor's path: success
    deletes it and logs the result, failure decrements retries and records the exception
    (then services.JobExecutionFailed is raised). Returns the handler's return value."""
    job = services.get_job(user, job_id)
    audit.record(
        user,
        "job",
        "execute",
        tenants=[job.tenant_id],
        ids=[job.id],
        count=1,
        source=source,
        reason=reason,
    )
    try:
        outcome = execute_job(job.id, f"{source}:{services.actor_name(user)}")
    except JobNotExecutable as error:
        raise BadUserRequest(f"Cannot execute job {job.id}: {error}") from None
    if not outcome.succeeded:
        raise services.JobExecutionFailed(job.id, outcome.exception_message or "The job failed")
    return outcome.return_value
