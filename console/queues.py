"""Queues & executors: each job queue's backlog, age, rate and failures, its pause, and the job
executors seen recently; and the rate, wait and stale workers of the topics page.

Queues and executors belong to the deployment, not to a tenant: every viewer sees the queue
names they have jobs in, every pause and every executor, but the numbers (backlog, rates,
failures, jobs an executor runs) only ever count the viewer's tenants' rows.
"""

from datetime import timedelta

from django.contrib import messages
from django.db.models import Count, Max
from django.http import HttpResponseBadRequest, HttpResponseForbidden
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from console import snapshots
from console.access import operator_required, viewer_required
from console.resources import JOBS
from external_tasks.models import ExternalTaskLog
from jobs import services as job_services
from jobs.models import ExecutorHeartbeat, Job, JobLog
from project import tenancy
from project.errors import DomainError

# Completions and failures per queue and topic are counted over this recent window.
RATE_WINDOW = timedelta(minutes=15)
# An executor reports every few seconds; one silent for longer than this has stopped (or hangs).
EXECUTOR_ALIVE = timedelta(seconds=30)
# Executors shown: those seen within this window (a stopped one stays listed for a while).
EXECUTOR_WINDOW = timedelta(hours=24)
EXECUTOR_ROWS = 200
QUEUE_ROWS = 500
# The queue batches run on (project.batches' chunk, seed and monitor jobs).
BATCH_QUEUE = "batch"
ALWAYS_LISTED = ("default", BATCH_QUEUE)
# Live locks the stale-worker check reads their lock entries for, latest-expiring first.
HELD_LOCKS_READ = 2000


def rate_minutes() -> int:
    return int(RATE_WINDOW.total_seconds() // 60)


# ---------------------------------------------------------------------------------------------
# Queues


def _queue_numbers(user) -> dict:
    """The per-queue counts of the user's jobs and job log: the expensive part, cached."""
    now = timezone.now()
    # One scan of the user's jobs (Job.objects.per_queue), the status table's counts.
    per_queue = Job.objects.visible_to(user).per_queue(now)
    outcomes: dict[str, dict[str, int]] = {}
    for row in (
        tenancy.scope(JobLog.objects.all(), user)
        .filter(
            timestamp__gte=now - RATE_WINDOW,
            event__in=[JobLog.Event.SUCCEEDED, JobLog.Event.FAILED],
            queue_name__isnull=False,
        )
        .values("queue_name", "event")
        .annotate(n=Count("id"))
        .order_by()[: QUEUE_ROWS * 2]
    ):
        outcomes.setdefault(row["queue_name"], {})[row["event"]] = row["n"]
    return {"per_queue": per_queue, "outcomes": outcomes}


snapshots.register("queues", _queue_numbers)


def _serves(executor: ExecutorHeartbeat, queue: str) -> bool:
    return not executor.queues or queue in executor.queues


def queue_rows(numbers: dict, pauses: dict, executors: list, now) -> list[dict]:
    """One row per queue: the user's numbers beside the deployment's pause and executors."""
    alive = [e for e in executors if e.last_seen >= now - EXECUTOR_ALIVE]
    names = set(numbers["per_queue"]) | set(numbers["outcomes"])
    names |= set(pauses) | set(ALWAYS_LISTED)
    names |= {queue for e in alive for queue in (e.queues or ())}
    rows = []
    for name in sorted(names):
        counts = numbers["per_queue"].get(name, {})
        outcomes = numbers["outcomes"].get(name, {})
        completed = outcomes.get(JobLog.Event.SUCCEEDED, 0)
        rows.append(
            {
                "name": name,
                "batch": name == BATCH_QUEUE,
                "pause": pauses.get(name),
                "ready": counts.get("ready", 0),
                "oldest_due": counts.get("oldest_due"),
                "running": counts.get("locked", 0),
                "waiting": counts.get("waiting", 0),
                "retrying": counts.get("retrying", 0),
                "failed": counts.get("failed", 0),
                "completed": completed,
                "rate": completed / rate_minutes(),
                "recent_failures": outcomes.get(JobLog.Event.FAILED, 0),
                "executors": sum(1 for e in alive if _serves(e, name)),
            }
        )
    return rows


def executor_rows(user, executors: list, now) -> list[dict]:
    """Executors with the user's jobs they hold now (a live lock), and whether they are alive.
    The count an executor reports covers every tenant: only users of all tenants see it."""
    running = {
        row["lock_owner"]: row["n"]
        for row in Job.objects.visible_to(user)
        .filter(lock_expiration_time__gt=now, lock_owner__in=[e.worker_id for e in executors])
        .values("lock_owner")
        .annotate(n=Count("id"))
        .order_by()
    }
    every_tenant = tenancy.tenant_ids(user) is None
    return [
        {
            "executor": executor,
            "alive": executor.last_seen >= now - EXECUTOR_ALIVE,
            "running": running.get(executor.worker_id, 0),
            "reported": executor.running if every_tenant else None,
        }
        for executor in executors
    ]


@viewer_required
def queues(request):
    numbers, counted_at, counted_now = snapshots.numbers(
        request, "queues", lambda: _queue_numbers(request.user)
    )
    now = timezone.now()
    # Pauses and heartbeats are a few rows each and change by a click: always read fresh.
    pauses = job_services.paused_queues()
    executors = list(
        ExecutorHeartbeat.objects.filter(last_seen__gte=now - EXECUTOR_WINDOW)[:EXECUTOR_ROWS]
    )
    rows = queue_rows(numbers, pauses, executors, now)
    context = {
        "nav_section": "queues",
        "counted_at": counted_at,
        "counted_now": counted_now,
        "queues": rows,
        "executors": executor_rows(request.user, executors, now),
        "alive_executors": sum(1 for e in executors if e.last_seen >= now - EXECUTOR_ALIVE),
        "alive_seconds": int(EXECUTOR_ALIVE.total_seconds()),
        "window_minutes": rate_minutes(),
        "executor_window_hours": int(EXECUTOR_WINDOW.total_seconds() // 3600),
        "jobs_url": reverse(JOBS.list_url),
        "can_operate": tenancy.can_operate(request.user),
        "can_pause": job_services.may_pause_queues(request.user),
        "batch_queue": BATCH_QUEUE,
    }
    return render(request, "console/queues.html", context)


@require_POST
@operator_required
def queue_action(request):
    """Pause or resume one queue (POST queue, action = pause | resume, optional reason)."""
    if not job_services.may_pause_queues(request.user):
        return HttpResponseForbidden(
            "Pausing a queue stops the jobs of every tenant: only admins may pause or resume."
        )
    action = request.POST.get("action")
    if action not in ("pause", "resume"):
        return HttpResponseBadRequest("Unknown action: pause or resume")
    name = request.POST.get("queue") or ""
    try:
        if action == "pause":
            done = job_services.pause_queue(
                request.user, name, reason=request.POST.get("reason") or "", source="console"
            )
            text = "Paused" if done else "Already paused:"
            note = " Running jobs finish; no executor takes its jobs until it is resumed."
            messages.success(request, f"{text} queue {name}.{note if done else ''}")
        else:
            done = job_services.resume_queue(request.user, name, source="console")
            text = "Resumed" if done else "Not paused:"
            messages.success(request, f"{text} queue {name}.")
    except DomainError as error:
        messages.error(request, error.message)
    return redirect("queues")


# ---------------------------------------------------------------------------------------------
# Topics: rate and wait beside the backlog; workers holding locks they are not seen keeping.


def topic_rates(user, now) -> dict[str, dict]:
    """{topic: completions, failures (failed + BPMN errors) in the rate window, rate/min}."""
    rates: dict[str, dict] = {}
    failure_events = {ExternalTaskLog.Event.FAILED, ExternalTaskLog.Event.BPMN_ERROR}
    for row in (
        tenancy.scope(ExternalTaskLog.objects.all(), user)
        .filter(
            timestamp__gte=now - RATE_WINDOW,
            event__in=[ExternalTaskLog.Event.COMPLETED, *failure_events],
        )
        .values("topic_name", "event")
        .annotate(n=Count("id"))
        .order_by()
    ):
        topic = rates.setdefault(row["topic_name"], {"completed": 0, "failures": 0})
        topic["failures" if row["event"] in failure_events else "completed"] += row["n"]
    for topic in rates.values():
        topic["rate"] = topic["completed"] / rate_minutes()
    return rates


def mark_stale_workers(workers: list[dict], tasks, now) -> None:
    """Flag each (worker, topic) row that holds live locks but whose worker has not been seen
    (no entry of it in the task log: fetch, complete, failure, lock extension, ...) for longer
    than its lock duration. A lock's duration is its expiry less the time of the log entry
    that took or extended it; a lock the log does not account for (history pruned, rows
    imported or locked outside the protocol) has none, and its holder counts as stale."""
    held = list(
        tasks.filter(lock_expiration_time__gt=now, worker_id__isnull=False)
        .order_by("-lock_expiration_time")
        .values_list("id", "worker_id", "topic_name", "lock_expiration_time")[:HELD_LOCKS_READ]
    )
    started = {
        (row["task_id"], row["worker_id"]): row["at"]
        for row in ExternalTaskLog.objects.filter(
            task_id__in=[task_id for task_id, *_ in held],
            event__in=[ExternalTaskLog.Event.LOCKED, ExternalTaskLog.Event.LOCK_EXTENDED],
        )
        .values("task_id", "worker_id")
        .annotate(at=Max("timestamp"))
        .order_by()
    }
    durations: dict[tuple, list] = {}
    for task_id, worker, topic, expires in held:
        at = started.get((task_id, worker))
        durations.setdefault((worker, topic), []).append(expires - at if at else None)
    # A worker seen on any topic is seen; its lock entries count even when older than the
    # workers list's window.
    last_seen: dict[str, object] = {}
    sightings = [(row["worker_id"], row["last"]) for row in workers]
    sightings += [(worker, at) for (_, worker), at in started.items()]
    for worker, at in sightings:
        previous = last_seen.get(worker)
        if at and (previous is None or at > previous):
            last_seen[worker] = at
    for row in workers:
        # None: none of its locks was among those read (more than HELD_LOCKS_READ held).
        read = durations.get((row["worker_id"], row["topic_name"]))
        known = [d for d in read or () if d]
        row["lock_duration"] = max(known) if known else None
        seen = last_seen.get(row["worker_id"])
        row["seen"] = seen
        row["stale"] = read is not None and (
            seen is None or not known or now - seen > row["lock_duration"]
        )
