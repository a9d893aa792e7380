"""A django.tasks backend that stores tasks as Taskyard jobs, run by `manage.py runjobs`.

    TASKS = {"default": {"BACKEND": "jobs.backends.DatabaseBackend"}}

`my_task.enqueue(*args, **kwargs)` creates a Job (handler = the task's import path, payload =
{"args", "kwargs"}, priority, queue name; `run_after` makes it a timer due then). The result id
is the job id, so operators find the task in the console and the Camunda API, and
`get_result(id)` answers from the job while it exists and from its log once it is gone.
The job is written in the caller's transaction: a rolled-back enqueue leaves no job behind.
"""

import contextlib
import logging
import sys

from django.core import checks
from django.tasks import Task, TaskResult, TaskResultStatus
from django.tasks import signals as task_signals
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.base import TaskError
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.utils.json import normalize_json

from jobs import claims
from jobs.handlers import HandlerNotAllowed, payload_arguments, resolve_handler
from jobs.models import Job, JobLog
from project import clock

logger = logging.getLogger("jobs.executor")


class DatabaseBackend(BaseTaskBackend):
    """Tasks as jobs in Taskyard's database; OPTIONS may set TENANT_ID and RETRIES."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias, params):
        super().__init__(alias, params)
        self.tenant_id = self.options.get("TENANT_ID")
        self.retries = self.options.get("RETRIES")

    def enqueue(self, task, args, kwargs):
        self.validate_task(task)
        check_enqueueable(task)
        payload = {"args": normalize_json(list(args)), "kwargs": normalize_json(dict(kwargs))}
        job = claims.enqueue_job(
            task.module_path,
            payload,
            priority=task.priority,
            queue_name=task.queue_name,
            due_date=task.run_after,
            retries=self.retries,
            tenant_id=self.tenant_id,
        )
        result = build_result(task, job, [], self.alias)
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id):
        return task_result_for(result_id, self.alias)

    def check(self, **kwargs):
        try:
            claims.default_retry_cycle()
        except Exception as error:
            yield checks.Error(str(error), id="jobs.E001")
        if self.retries is not None and (not isinstance(self.retries, int) or self.retries < 0):
            yield checks.Error(
                f"TASKS[{self.alias!r}]['OPTIONS']['RETRIES'] must be a whole number >= 0",
                id="jobs.E002",
            )


def check_enqueueable(task: Task) -> None:
    """Refuse, when it is enqueued, a task the executor would refuse to run.

    Tasks enqueued through django.tasks are the application's own code: a task defined in a
    module of an installed app (or of TASKYARD_EXECUTOR["HANDLER_MODULES"], the allowlist of
    jobs created over REST), which the executor imports by its path. Anything else (a script's
    `__main__`, a module outside the apps) would only fail when it runs, so it is an InvalidTask
    here and no job is written."""
    path = task.module_path
    try:
        target = resolve_handler(path)
    except HandlerNotAllowed:
        raise InvalidTask(
            f"Task {path!r} cannot be enqueued: tasks must be defined in a module of an "
            "installed app (INSTALLED_APPS) or of TASKYARD_EXECUTOR['HANDLER_MODULES'], "
            "where the job executor may import them"
        ) from None
    except ImportError as error:
        raise InvalidTask(
            f"Task {path!r} cannot be enqueued: the job executor cannot import it ({error})"
        ) from None
    if not isinstance(target, Task) or target.func is not task.func:
        raise InvalidTask(
            f"Task {path!r} cannot be enqueued: that path names something else than this task"
        )


def _stand_in(handler: str, alias: str) -> Task:
    """A Task for the result of a job whose handler can never run (not allowed, or not
    importable): the caller's own task when its module is loaded already (so that
    `task.get_result()` matches it), else a stub named by the handler's path. Nothing is
    imported: a refused handler stays unimported."""
    module_name, _, name = handler.rpartition(".")
    module = sys.modules.get(module_name)
    loaded = getattr(module, name, None) if module is not None else None
    if isinstance(loaded, Task):
        return loaded

    def never_runs(*args, **kwargs):
        raise HandlerNotAllowed(f"Handler {handler!r} cannot run")

    never_runs.__module__ = module_name or "unknown"
    never_runs.__name__ = never_runs.__qualname__ = name or "unknown"
    return Task(func=never_runs, backend=alias)


def _task_for(handler: str, job, alias: str) -> Task:
    try:
        target = resolve_handler(handler)
    except (ImportError, HandlerNotAllowed):
        # The job exists and has a status (its run failed for good): answer it.
        return _stand_in(handler, alias)
    if not isinstance(target, Task):
        # A job created through the API with an allowed plain callable still answers a result.
        try:
            target = Task(func=target, backend=alias)
        except InvalidTask:
            return _stand_in(handler, alias)
    if job is not None:
        # Show the job's current priority and queue; values this backend would refuse (e.g. a
        # Camunda priority above 100 set by an operator) keep the task's own.
        changes = {"priority": job.priority, "queue_name": job.queue_name}
        for key, value in changes.items():
            if getattr(target, key) == value:
                continue
            with contextlib.suppress(InvalidTask):
                target = target.using(**{key: value})
    return target


def _exception_class_path(entry: JobLog) -> str:
    # The last line of a Python traceback is "<qualified class>: <message>"; builtins have no
    # module prefix there.
    lines = (entry.exception_stacktrace or "").strip().splitlines()
    name = lines[-1].split(":", 1)[0].strip() if lines else ""
    if not name or " " in name:
        return "builtins.Exception"
    return name if "." in name else f"builtins.{name}"


def build_result(task: Task, job: Job | None, logs: list[JobLog], alias: str, running=False):
    """The TaskResult for a job (None once it is gone) and its log, oldest entry first."""
    now = clock.now()
    created = next((e for e in logs if e.event == JobLog.Event.CREATED), None)
    started = [e for e in logs if e.event == JobLog.Event.STARTED]
    failed = [e for e in logs if e.event == JobLog.Event.FAILED]
    succeeded = next((e for e in reversed(logs) if e.event == JobLog.Event.SUCCEEDED), None)
    finished_at = None
    if job is not None:
        payload = job.payload
        enqueued_at = job.create_time
        if running or (
            job.lock_owner and job.lock_expiration_time and job.lock_expiration_time > now
        ):
            status = TaskResultStatus.RUNNING
        elif job.retries <= 0:
            status = TaskResultStatus.FAILED
            finished_at = failed[-1].timestamp if failed else None
        else:
            status = TaskResultStatus.READY
    else:
        payload = created.payload if created else None
        enqueued_at = created.timestamp if created else None
        if succeeded is not None:
            status = TaskResultStatus.SUCCESSFUL
            finished_at = succeeded.timestamp
        else:
            # Deleted before it ever succeeded.
            status = TaskResultStatus.FAILED
            finished_at = logs[-1].timestamp

    args, kwargs = payload_arguments(payload)
    result = TaskResult(
        task=task,
        id=job.id if job is not None else logs[0].job_id,
        status=status,
        enqueued_at=enqueued_at,
        started_at=started[0].timestamp if started else None,
        last_attempted_at=started[-1].timestamp if started else None,
        finished_at=finished_at,
        args=args,
        kwargs=kwargs,
        backend=alias,
        errors=[
            TaskError(
                exception_class_path=_exception_class_path(entry),
                traceback=entry.exception_stacktrace or entry.exception_message or "",
            )
            for entry in failed
        ],
        worker_ids=[entry.worker or "" for entry in started],
    )
    if status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", succeeded.return_value)
    return result


_LOOK_UP = object()


def task_result_for(result_id, alias: str, running=False, job=_LOOK_UP, logs=None) -> TaskResult:
    """Look up a result by job id; TaskResultDoesNotExist when neither job nor log knows it.
    The executor passes the job it holds (or None once deleted) and, when it keeps it, the
    job's log (oldest first), to save the lookups."""
    result_id = str(result_id)
    if job is _LOOK_UP:
        job = Job.objects.filter(id=result_id).first()
    if logs is None:
        logs = list(JobLog.objects.filter(job_id=result_id).order_by("timestamp", "id"))
    if job is None and not logs:
        raise TaskResultDoesNotExist(result_id)
    handler = job.handler if job is not None else logs[-1].handler
    task = _task_for(handler, job, alias)
    return build_result(task, job, logs, alias, running=running)


# Django connects its own receivers to task_started / task_finished; all they do is log to the
# "django.tasks" logger. A TaskResult built for them alone is wasted when that logger is off.
_DJANGO_LOG_RECEIVERS = {
    task_started: getattr(task_signals, "log_task_started", None),
    task_finished: getattr(task_signals, "log_task_finished", None),
}
_django_tasks_logger = logging.getLogger("django.tasks")


def _receivers(signal, sender) -> tuple[bool, bool]:
    """Whether `signal` sent by `sender` reaches receivers of the project's, and Django's own
    log receiver."""
    try:
        # Private, but the only way to see which receivers a send would call; if it changes,
        # every receiver counts as the project's (slower, never wrong).
        sync_receivers, async_receivers = signal._live_receivers(sender)
    except Exception:
        return signal.has_listeners(sender), False
    own = _DJANGO_LOG_RECEIVERS.get(signal)
    project = bool(async_receivers) or any(receiver is not own for receiver in sync_receivers)
    return project, own is not None and own in sync_receivers


def task_signal_wanted(signal, sender=None, level=logging.INFO) -> bool:
    """Whether sending `signal` reaches anyone: a receiver of the project's, or Django's own log
    receiver with the "django.tasks" logger enabled at `level`. Building a TaskResult costs more
    than running a no-op job, so the executor asks before building one."""
    project, django_log = _receivers(signal, sender or DatabaseBackend)
    return project or (django_log and _django_tasks_logger.isEnabledFor(level))


def history_wanted(jobs) -> bool:
    """Whether the log of claimed jobs is worth reading up front (claims.attach_history):
    only when something builds their TaskResult, i.e. a wanted signal or a task taking a
    context. Without it, whoever still needs a result reads the log then."""
    if task_signal_wanted(task_started) or task_signal_wanted(task_finished):
        return True

    for handler in {job.handler for job in jobs}:
        try:
            target = resolve_handler(handler)
        except Exception:  # refused or broken: the run reports it
            continue
        if isinstance(target, Task) and target.takes_context:
            return True
    return False


def finished_signal_awaited(job: Job) -> bool:
    """Whether a task_finished receiver of the project's waits for this job's success: it may
    read the result back, so the success is written before the signal is sent. (Django's own
    receiver only logs; the executor sends it the signal after a deferred write.)"""

    try:
        target = resolve_handler(job.handler)
    except Exception:  # refused or broken: the run reports it
        return False
    backend = target.get_backend() if isinstance(target, Task) else None
    return isinstance(backend, DatabaseBackend) and _receivers(task_finished, type(backend))[0]


def send_task_signal(job: Job, started: bool, outcome=None) -> None:
    """django.tasks' task_started / task_finished for a job whose handler is a task of this
    backend. Finished means finished for good: succeeded, or failed with no retries left.
    A receiver's error is logged; it never decides a job's outcome."""

    known = _LOOK_UP
    if started:
        known = job
    elif outcome is not None and outcome.held_lock:
        if not outcome.succeeded and outcome.retries:
            return  # will be retried: not finished
        known = None if outcome.succeeded else _LOOK_UP
    try:
        try:
            target = resolve_handler(job.handler)
        except (ImportError, HandlerNotAllowed):
            return  # the run itself reports it
        backend = target.get_backend() if isinstance(target, Task) else None
        if not isinstance(backend, DatabaseBackend):
            return
        if started:
            wanted = task_signal_wanted(task_started, type(backend))
        else:
            failed = outcome is not None and not outcome.succeeded
            level = logging.ERROR if failed else logging.INFO
            wanted = task_signal_wanted(task_finished, type(backend), level)
        if not wanted:
            return
        logs = None if known is _LOOK_UP else getattr(job, "history", None)
        result = task_result_for(job.id, backend.alias, running=started, job=known, logs=logs)
        if started:
            task_started.send(type(backend), task_result=result)
        elif result.is_finished:
            task_finished.send(type(backend), task_result=result)
    except Exception:
        logger.exception("job %s: a django.tasks signal receiver failed", job.id)
