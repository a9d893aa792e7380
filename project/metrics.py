"""Prometheus metrics for Taskyard.

Two kinds of numbers live here:

* Counters and histograms that the code paths bump as things happen: HTTP requests (recorded by
  `project.logs.RequestLogMiddleware`), worker operations on the three REST faces, tasks handed
  out, task outcomes, job runs, executor polls, lock expirations and long-poll waiters. The
  `record_*` functions and context managers below are the whole API; callers never touch the
  prometheus objects, so the metric names stay in one file. Outcome functions also write one
  structured log line, so an operator sees the same event in metrics and logs.

* Backlog gauges (external tasks by topic and state, jobs by handler and state). These come from a
  snapshot that each process refreshes at most once every `TASKYARD_METRICS_REFRESH_SECONDS`;
  a scrape in between only reads memory. A refresh is bounded too: every state is first counted
  on at most `TASKYARD_METRICS_EXACT_LIMIT` rows, which is exact for the states that are usually
  small (failed, suspended, expired locks) and for small installations; only a state with more
  rows than that is read from PostgreSQL's planner estimates, so a refresh never scans millions
  of rows. On SQLite (the embedded, small deployment) a big state is counted exactly instead.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import os
import threading
import time
from collections import Counter as Tally
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, connection
from django.db.models import Count, Q
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

from project import tenancy

log = logging.getLogger("taskyard.metrics")
worker_log = logging.getLogger("taskyard.worker")
executor_log = logging.getLogger("taskyard.executor")

# Faces, as the `face` label spells them.
CAMUNDA = "camunda"
FLOWABLE = "flowable"
SEED = "seed"

OTHER_GROUP = "__other__"  # label for groups past TASKYARD_METRICS_MAX_GROUPS

# ---------------------------------------------------------------------------------------------
# Event metrics. Latency buckets reach 30 minutes because long polls legitimately wait that long.

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
_JOB_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)

HTTP_REQUESTS = Histogram(
    "taskyard_http_request_duration_seconds",
    "HTTP request latency by face, method and status class.",
    ["face", "method", "status"],
    buckets=_LATENCY_BUCKETS,
)
WORKER_OPERATIONS = Histogram(
    "taskyard_worker_operation_duration_seconds",
    "fetchAndLock / complete / failure / bpmnError / extendLock / unlock calls by face and "
    "outcome (ok, rejected = 4xx, error = 5xx); _count is the rate.",
    ["operation", "face", "outcome"],
    buckets=_LATENCY_BUCKETS,
)
TASKS_FETCHED = Counter(
    "taskyard_external_tasks_fetched",
    "External tasks handed to workers (locked by fetchAndLock / acquire).",
    ["face", "topic"],
)
TASK_OUTCOMES = Counter(
    "taskyard_external_task_outcomes",
    "External task outcomes reported by workers: completed, failed, bpmn_error.",
    ["face", "topic", "outcome"],
)
LONG_POLL_WAITERS = Gauge(
    "taskyard_long_poll_waiters",
    "fetchAndLock requests currently waiting for work (long polling).",
    ["face"],
    multiprocess_mode="livesum",
)
LOCK_EXPIRATIONS = Counter(
    "taskyard_lock_expirations",
    "Locks that ran out while still owned and were taken over (kind = job or external_task).",
    ["kind"],
)
JOB_RUNS = Histogram(
    "taskyard_job_run_duration_seconds",
    "Job executions by handler and outcome (succeeded, failed); _count is the run rate.",
    ["handler", "outcome"],
    buckets=_JOB_BUCKETS,
)
EXECUTOR_POLLS = Histogram(
    "taskyard_executor_poll_duration_seconds",
    "Executor acquisition rounds (one claim statement each).",
    buckets=_LATENCY_BUCKETS,
)
EXECUTOR_ACQUIRED = Counter(
    "taskyard_executor_jobs_acquired", "Jobs claimed by executors for running."
)


def status_class(status: int) -> str:
    return f"{status // 100}xx"


def record_request(face: str, method: str, status: int, seconds: float) -> None:
    """One HTTP request finished (called by the request middleware)."""
    HTTP_REQUESTS.labels(face, method, status_class(status)).observe(seconds)


def _outcome_of(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and 400 <= status < 500:
        return "rejected"
    return "error"


@contextmanager
def worker_operation(operation: str, face: str):
    """Time one worker call. `operation`: fetch_and_lock, complete, failure, bpmn_error,
    extend_lock, unlock. An exception with a 4xx `status_code` (the Camunda errors) counts as
    `rejected`, any other exception as `error`; the exception propagates unchanged."""
    started = time.perf_counter()
    try:
        yield
    except BaseException as exc:
        WORKER_OPERATIONS.labels(operation, face, _outcome_of(exc)).observe(
            time.perf_counter() - started
        )
        raise
    WORKER_OPERATIONS.labels(operation, face, "ok").observe(time.perf_counter() - started)


@contextmanager
def long_poll_waiting(face: str):
    """Count a fetchAndLock request as waiting while the block runs (async code may use it too:
    it only touches memory)."""
    gauge = LONG_POLL_WAITERS.labels(face)
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()


def record_fetched(face: str, topics, *, worker_id: str | None = None) -> None:
    """Tasks were handed to a worker: pass one topic name per task locked (may be empty)."""
    tally = Tally(topics)
    for topic, count in tally.items():
        TASKS_FETCHED.labels(face, topic).inc(count)
    if tally:
        worker_log.info(
            "fetched %d task(s)",
            sum(tally.values()),
            extra={"event": "fetched", "face": face, "worker_id": worker_id, "topics": dict(tally)},
        )


def record_task_outcome(
    face: str,
    topic: str,
    outcome: str,
    *,
    task_id: str | None = None,
    worker_id: str | None = None,
    retries: int | None = None,
    error: str | None = None,
) -> None:
    """A worker reported an outcome: `completed`, `failed` or `bpmn_error`."""
    TASK_OUTCOMES.labels(face, topic, outcome).inc()
    worker_log.log(
        logging.WARNING if outcome == "failed" else logging.INFO,
        "task %s %s",
        task_id,
        outcome,
        extra={
            "event": outcome,
            "face": face,
            "topic": topic,
            "task_id": task_id,
            "worker_id": worker_id,
            "retries": retries,
            "error": error,
        },
    )


def record_lock_expired(kind: str, count: int = 1) -> None:
    """`count` rows whose lock ran out while owned were claimed again (`job`/`external_task`)."""
    if count:
        LOCK_EXPIRATIONS.labels(kind).inc(count)


def record_job_run(
    handler: str,
    outcome: str,
    seconds: float,
    *,
    job_id: str | None = None,
    worker: str | None = None,
    retries: int | None = None,
    error: str | None = None,
) -> None:
    """The executor ran one job: `outcome` is `succeeded` or `failed`."""
    JOB_RUNS.labels(handler, outcome).observe(seconds)
    executor_log.log(
        logging.WARNING if outcome == "failed" else logging.INFO,
        "job %s %s in %.1f ms",
        job_id,
        outcome,
        seconds * 1000,
        extra={
            "event": outcome,
            "job_id": job_id,
            "handler": handler,
            "worker": worker,
            "duration_ms": round(seconds * 1000, 3),
            "retries": retries,
            "error": error,
        },
    )


def record_executor_poll(acquired: int, seconds: float) -> None:
    """One executor acquisition round claimed `acquired` jobs in `seconds`."""
    EXECUTOR_POLLS.observe(seconds)
    if acquired:
        EXECUTOR_ACQUIRED.inc(acquired)


# ---------------------------------------------------------------------------------------------
# Backlog snapshot.


def external_task_states(now) -> dict[str, Q]:
    """Disjoint states covering every external task row (they add up to the table)."""
    fetchable = Q(suspended=False) & (Q(retries__isnull=True) | Q(retries__gt=0))
    return {
        "available": fetchable
        & (
            Q(lock_expiration_time__isnull=True)
            | Q(lock_expiration_time__lte=now, worker_id__isnull=True)
        ),
        "locked": fetchable & Q(lock_expiration_time__gt=now),
        # The worker that held it is gone or slow: the next fetch hands it to someone else.
        "lock_expired": fetchable & Q(lock_expiration_time__lte=now, worker_id__isnull=False),
        "failed": Q(suspended=False, retries__lte=0),
        "suspended": Q(suspended=True),
    }


def job_states(now) -> dict[str, Q]:
    """Disjoint states covering every job row. A job is suspended when it or its definition is."""
    active = Q(suspended=False) & (
        Q(job_definition__isnull=True) | Q(job_definition__suspended=False)
    )
    runnable = active & Q(retries__gt=0)
    unlocked = Q(lock_expiration_time__isnull=True) | Q(
        lock_expiration_time__lte=now, lock_owner__isnull=True
    )
    return {
        "executable": runnable & unlocked & (Q(due_date__isnull=True) | Q(due_date__lte=now)),
        "waiting": runnable & unlocked & Q(due_date__gt=now),
        "locked": runnable & Q(lock_expiration_time__gt=now),
        "lock_expired": runnable & Q(lock_expiration_time__lte=now, lock_owner__isnull=False),
        "failed": active & Q(retries__lte=0),
        "suspended": Q(suspended=True) | Q(job_definition__suspended=True),
    }


@dataclass
class Backlog:
    """Counts per (group, state) for one table, and whether any of them is an estimate."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    estimated: bool = False


@dataclass
class Snapshot:
    external_tasks: Backlog
    jobs: Backlog
    taken_at: float  # time.time() of the refresh
    duration: float  # seconds the refresh took


def _planner_estimate(queryset) -> int:
    """PostgreSQL's row estimate for a query: planning only, no rows read."""
    sql, params = queryset.values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def _distinct_topics(limit: int) -> list[str]:
    """Distinct topic names by skipping through ext_topic_idx (a loose index scan): one index
    probe per topic instead of reading every row."""
    from external_tasks.models import ExternalTask

    table = connection.ops.quote_name(ExternalTask._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH RECURSIVE topics(name) AS (
                (SELECT topic_name FROM {table} ORDER BY topic_name LIMIT 1)
                UNION ALL
                SELECT (SELECT topic_name FROM {table} WHERE topic_name > topics.name
                        ORDER BY topic_name LIMIT 1)
                FROM topics WHERE topics.name IS NOT NULL
            )
            SELECT name FROM topics WHERE name IS NOT NULL LIMIT %s
            """,
            [limit],
        )
        return [row[0] for row in cursor.fetchall()]


def _common_values(model, column: str) -> list[str]:
    """The column's most common values from PostgreSQL's statistics (empty before ANALYZE)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT most_common_vals::text::text[] FROM pg_stats "
            "WHERE schemaname = current_schema() AND tablename = %s AND attname = %s",
            [model._meta.db_table, column],
        )
        row = cursor.fetchone()
    return list(row[0] or []) if row else []


def _count_backlog(model, group_field: str, states: dict[str, Q], group_candidates) -> Backlog:
    limit = settings.TASKYARD_METRICS_EXACT_LIMIT
    backlog = Backlog()
    for state, condition in states.items():
        rows = model.objects.filter(condition)
        # Reading at most limit+1 group values tells whether the state is small enough to count
        # exactly from those very rows.
        sample = list(rows.values_list(group_field, flat=True).order_by()[: limit + 1])
        if len(sample) <= limit:
            for group, count in Tally(sample).items():
                backlog.counts[(group, state)] = count
            continue
        if connection.vendor == "postgresql":
            backlog.estimated = True
            for group in sorted(set(group_candidates()) | set(sample)):
                estimate = _planner_estimate(rows.filter(**{group_field: group}))
                if estimate:
                    backlog.counts[(group, state)] = estimate
        else:
            grouped = rows.order_by().values_list(group_field).annotate(n=Count("pk"))
            for group, count in grouped:
                backlog.counts[(group, state)] = count
    return _fold_groups(backlog, settings.TASKYARD_METRICS_MAX_GROUPS)


def _fold_groups(backlog: Backlog, max_groups: int) -> Backlog:
    """Keep the biggest groups as labels and add the rest up under `__other__`, so a runaway
    number of topics or handlers cannot blow up Prometheus' series count."""
    totals = Tally()
    for (group, _state), count in backlog.counts.items():
        totals[group] += count
    keep = {group for group, _ in totals.most_common(max_groups)}
    if len(totals) <= max_groups:
        return backlog
    folded = Tally()
    for (group, state), count in backlog.counts.items():
        folded[(group if group in keep else OTHER_GROUP, state)] += count
    return Backlog(counts=dict(folded), estimated=backlog.estimated)


def compute_snapshot() -> Snapshot:
    """Count the backlog now (bounded; see the module docstring)."""
    from external_tasks.models import ExternalTask
    from jobs.models import Job

    started = time.perf_counter()
    now = timezone.now()
    postgres = connection.vendor == "postgresql"
    max_groups = settings.TASKYARD_METRICS_MAX_GROUPS
    tasks = _count_backlog(
        ExternalTask,
        "topic_name",
        external_task_states(now),
        (lambda: _distinct_topics(max_groups + 1)) if postgres else list,
    )
    jobs = _count_backlog(
        Job,
        "handler",
        job_states(now),
        (lambda: _common_values(Job, "handler")) if postgres else list,
    )
    return Snapshot(tasks, jobs, time.time(), time.perf_counter() - started)


class SnapshotCache:
    """The last snapshot of this process. Stale after TASKYARD_METRICS_REFRESH_SECONDS; while one
    thread refreshes, concurrent scrapes get the previous snapshot instead of queueing."""

    def __init__(self):
        self._lock = threading.Lock()
        self.last: Snapshot | None = None
        self.failed = False  # the last refresh attempt raised
        self._taken_monotonic = 0.0

    def invalidate(self) -> None:
        self.last = None

    def get(self) -> Snapshot:
        snapshot = self.last
        max_age = settings.TASKYARD_METRICS_REFRESH_SECONDS
        if snapshot is not None and time.monotonic() - self._taken_monotonic < max_age:
            return snapshot
        if not self._lock.acquire(blocking=snapshot is None):
            return snapshot
        try:
            if self.last is snapshot:
                try:
                    self.last = compute_snapshot()
                except DatabaseError:
                    self.failed = True
                    raise
                self.failed = False
                self._taken_monotonic = time.monotonic()
            return self.last
        finally:
            self._lock.release()


snapshots = SnapshotCache()


class BacklogCollector:
    """Turns the cached snapshot into gauges at scrape time."""

    def describe(self):
        # Nothing at registration time: describing would otherwise query the database on import.
        return []

    def collect(self):
        try:
            snapshot = snapshots.get()
        except DatabaseError:
            # Event metrics stay scrapeable while the database is away; the backlog says it is
            # missing instead of turning the whole scrape into a 500.
            log.warning("metrics: backlog refresh failed", exc_info=True)
            snapshot = snapshots.last
        yield GaugeMetricFamily(
            "taskyard_backlog_up",
            "1 when the last backlog refresh succeeded, 0 when the database could not be read.",
            value=int(not snapshots.failed),
        )
        if snapshot is None:
            return
        tasks = GaugeMetricFamily(
            "taskyard_external_tasks",
            "External tasks by topic and state (available, locked, lock_expired, failed, "
            "suspended); see taskyard_backlog_estimated.",
            labels=["topic", "state"],
        )
        for (topic, state), count in sorted(snapshot.external_tasks.counts.items()):
            tasks.add_metric([topic, state], count)
        yield tasks
        jobs = GaugeMetricFamily(
            "taskyard_jobs",
            "Jobs by handler and state (executable, waiting, locked, lock_expired, failed, "
            "suspended); see taskyard_backlog_estimated.",
            labels=["handler", "state"],
        )
        for (handler, state), count in sorted(snapshot.jobs.counts.items()):
            jobs.add_metric([handler, state], count)
        yield jobs
        estimated = GaugeMetricFamily(
            "taskyard_backlog_estimated",
            "1 when some backlog numbers of the table are planner estimates, 0 when all exact.",
            labels=["table"],
        )
        estimated.add_metric(["external_task"], int(snapshot.external_tasks.estimated))
        estimated.add_metric(["job"], int(snapshot.jobs.estimated))
        yield estimated
        yield GaugeMetricFamily(
            "taskyard_backlog_snapshot_age_seconds",
            "Age of the backlog numbers in this scrape.",
            value=max(0.0, time.time() - snapshot.taken_at),
        )
        yield GaugeMetricFamily(
            "taskyard_backlog_refresh_duration_seconds",
            "How long the last backlog refresh took.",
            value=snapshot.duration,
        )


BACKLOG_REGISTRY = CollectorRegistry(auto_describe=False)
BACKLOG_REGISTRY.register(BacklogCollector())


def exposition() -> bytes:
    """The text exposition of every metric. With PROMETHEUS_MULTIPROC_DIR set (several server
    processes on one host), the event metrics are summed over all processes' files."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry) + generate_latest(BACKLOG_REGISTRY)


# ---------------------------------------------------------------------------------------------
# The /metrics view.


def _metrics_allowed(request) -> tuple[bool, int]:
    """(allowed, status if not): a bearer token from the environment, or a viewer/operator/admin
    account by HTTP Basic or session, or nothing at all when TASKYARD_METRICS_PUBLIC is set
    because a network rule already guards the path."""
    if settings.TASKYARD_METRICS_PUBLIC:
        return True, 200
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    token = settings.TASKYARD_METRICS_TOKEN
    if scheme.lower() == "bearer":
        ok = bool(token) and hmac.compare_digest(credentials.strip().encode(), token.encode())
        return ok, 200 if ok else 401
    user = getattr(request, "user", None)
    if scheme.lower() == "basic":
        try:
            username, _, password = (
                base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
            )
        except (ValueError, UnicodeDecodeError):
            return False, 401
        user = authenticate(request, username=username, password=password)
        if user is None:
            return False, 401
    if user is None or not user.is_authenticated:
        return False, 401
    return (True, 200) if tenancy.can_view(user) else (False, 403)


@login_not_required
@never_cache
@require_safe
def metrics_view(request):
    """Prometheus text exposition of every Taskyard metric."""
    allowed, status = _metrics_allowed(request)
    if not allowed:
        message = (
            "Metrics need a bearer token or a viewer account."
            if status == 401
            else "This account may not read metrics."
        )
        response = JsonResponse(
            {
                "type": "AuthenticationException" if status == 401 else "AuthorizationException",
                "message": message,
            },
            status=status,
        )
        if status == 401:
            response["WWW-Authenticate"] = 'Basic realm="taskyard metrics"'
        return response
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
