"""Prometheus metrics for Taskyard.

Two kinds of numbers live here:

* Counters and histograms that the code paths bump as things happen: HTTP requests (recorded by
  `project.logs.RequestLogMiddleware`), worker operations on the three REST faces, tasks handed
  out, task outcomes, job runs, executor polls, lock expirations and long-poll waiters. The
  `record_*` functions and context managers below are the whole API; callers never touch the
  prometheus objects, so the event metric names stay in one file. Outcome functions also write one
  structured log line, so an operator sees the same event in metrics and logs.

* Backlog gauges: rows of a table per group and state, e.g. jobs by handler and status. Each app
  registers its own from `AppConfig.ready()` (`register_backlog`) with its status table, so this
  module knows no app and the gauges' states are the statuses the console shows. They come from
  a snapshot recounted at most every `TASKYARD_METRICS_REFRESH_SECONDS`, in a background thread
  (`SnapshotCache`), so a scrape only reads memory. A recount is bounded as well. Tables smaller
  than `TASKYARD_METRICS_SAMPLE_ROWS` (and SQLite, the embedded deployment) are counted exactly.
  On a big PostgreSQL table each state is first estimated from a block sample of about that many
  rows (TABLESAMPLE SYSTEM, scaled up); a state that is not clearly big is then counted on at
  most `TASKYARD_METRICS_EXACT_LIMIT` rows, which is exact for the states that are usually small
  and matter most (failed, suspended, expired locks). No recount reads millions of rows.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.core.cache import caches
from django.db import DatabaseError, connection, connections
from django.db.models import Count, Model, Q
from django.utils import timezone
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily

# Only Django's and prometheus' plumbing here, no models and no app: the request log imports this
# module while logging is configured, before the app registry is ready, and every app registers
# its backlog with it (register_backlog) rather than the other way round.
from project.faces import current_face

# The *_created series double the series count and no dashboard of ours reads them.
disable_created_metrics()

log = logging.getLogger("taskyard.metrics")
worker_log = logging.getLogger("taskyard.worker")
executor_log = logging.getLogger("taskyard.executor")

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
# Each process counts its own waiters (in memory, or in its own file of PROMETHEUS_MULTIPROC_DIR);
# in multiprocess mode a scrape adds up the live processes' files and first deletes the files of
# processes that are gone (forget_dead_processes), so a killed server's waiters do not linger.
LONG_POLL_WAITERS = Gauge(
    "taskyard_long_poll_waiters",
    "fetchAndLock requests currently waiting for work (long polling), summed over the live "
    "processes.",
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
def worker_operation(operation: str, *, face: str | None = None):
    """Time one worker call. `operation`: fetch_and_lock, complete, failure, bpmn_error,
    extend_lock, unlock. An exception with a 4xx `status_code` (the Camunda errors) counts as
    `rejected`, any other exception as `error`; the exception propagates unchanged."""
    face = face or current_face()
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
def long_poll_waiting(*, face: str | None = None):
    """Count a fetchAndLock request as waiting while the block runs (async code may use it too:
    it only touches memory)."""
    gauge = LONG_POLL_WAITERS.labels(face or current_face())
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()


def record_fetched(topics, *, worker_id: str | None = None, face: str | None = None) -> None:
    """Tasks were handed to a worker: pass one topic name per task locked (may be empty)."""
    face = face or current_face()
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
    topic: str,
    outcome: str,
    *,
    task_id: str | None = None,
    worker_id: str | None = None,
    retries: int | None = None,
    error: str | None = None,
    face: str | None = None,
) -> None:
    """A worker reported an outcome: `completed`, `failed` or `bpmn_error`."""
    face = face or current_face()
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
    detail: str = "",
    level: int | None = None,
) -> None:
    """The executor ran one job: `outcome` is `succeeded` or `failed`. `detail` is appended to
    the log line (e.g. the error and the next attempt); `level` overrides its level."""
    JOB_RUNS.labels(handler, outcome).observe(seconds)
    executor_log.log(
        level if level is not None else logging.WARNING if outcome == "failed" else logging.INFO,
        "job %s %s in %.1f ms%s",
        job_id,
        outcome,
        seconds * 1000,
        detail,
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


@dataclass(frozen=True)
class BacklogSource:
    """One table's backlog gauge, as the app that owns the table registered it."""

    table: str  # the `table` label of taskyard_backlog_estimated, e.g. "job"
    model: type[Model]
    group_field: str  # the column counted per value, e.g. the job's handler
    # Disjoint conditions covering every row, by state name: the app's own status table, so the
    # gauges count a row in the state the console shows and the executor acts on.
    states: Callable[[datetime], dict[str, Q]]
    metric: str  # the gauge's name, e.g. "taskyard_jobs"
    group_label: str  # the label the group value goes to, e.g. "handler"
    help: str


_backlog_sources: dict[str, BacklogSource] = {}


def register_backlog(
    table: str,
    model: type[Model],
    group_field: str,
    states: Callable[[datetime], dict[str, Q]],
    *,
    metric: str,
    group_label: str,
    help: str,
) -> None:
    """Export `model`'s backlog as the gauge `metric`{group_label, state}: rows counted per
    `group_field` value and per state of `states(now)`, whose conditions must be disjoint and
    cover every row. Apps call it from `AppConfig.ready()`; registering a table again replaces
    its source."""
    _backlog_sources[table] = BacklogSource(
        table, model, group_field, states, metric, group_label, help
    )


def backlog_sources() -> tuple[BacklogSource, ...]:
    """The registered backlogs, in registration order."""
    return tuple(_backlog_sources.values())


@dataclass
class Backlog:
    """Counts per (group, state) for one table, and whether any of them is an estimate."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    estimated: bool = False


@dataclass
class Snapshot:
    backlogs: dict[str, Backlog]  # by BacklogSource.table
    taken_at: float  # time.time() of the refresh
    duration: float  # seconds the refresh took


def _planner_rows(model) -> float:
    """PostgreSQL's estimate of the table's row count: planning only, no rows read. The planner
    scales the last ANALYZE's figure by the table's current size, so it tracks growth."""
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {table}")
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return float(plan[0]["Plan"]["Plan Rows"])


def _sampled_counts(rows, model, group_field: str, percent: float) -> dict[str, int]:
    """Counts per group from a block sample (TABLESAMPLE SYSTEM) scaled up by 100/percent.

    Unlike planner estimates, this evaluates the state's real condition on real rows, so
    correlated columns (a worker id is set exactly when a lock is) do not skew the numbers."""
    grouped = rows.order_by().values_list(group_field).annotate(n=Count("pk"))
    sql, params = grouped.query.sql_with_params()
    table = connection.ops.quote_name(model._meta.db_table)
    # TABLESAMPLE goes right after the table in FROM; `percent` is our own float, not input.
    sampled = sql.replace(f"FROM {table}", f"FROM {table} TABLESAMPLE SYSTEM ({percent:.6f})", 1)
    if sampled == sql:  # the ORM changed its SQL shape: count exactly rather than guess
        return dict(grouped)
    with connection.cursor() as cursor:
        cursor.execute(sampled, params)
        return {group: round(n * 100 / percent) for group, n in cursor.fetchall()}


def _bounded_counts(rows, model, group_field: str, limit: int) -> dict[str, int]:
    """Counts per group over at most limit+1 matching rows, aggregated in the database."""
    inner = rows.order_by().values_list(group_field)[: limit + 1]
    sql, params = inner.query.sql_with_params()
    column = connection.ops.quote_name(model._meta.get_field(group_field).column)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {column}, COUNT(*) FROM ({sql}) AS bounded GROUP BY {column}", params
        )
        return dict(cursor.fetchall())


def _exact_counts(rows, group_field: str) -> dict[str, int]:
    return dict(rows.order_by().values_list(group_field).annotate(n=Count("pk")))


def _count_backlog(model, group_field: str, states: dict[str, Q]) -> Backlog:
    limit = settings.TASKYARD_METRICS_EXACT_LIMIT
    backlog = Backlog()
    percent = 100.0
    if connection.vendor == "postgresql":
        total = _planner_rows(model)
        wanted = settings.TASKYARD_METRICS_SAMPLE_ROWS
        percent = 100.0 if total <= wanted else max(0.01, 100.0 * wanted / total)
    for state, condition in states.items():
        rows = model.objects.filter(condition)
        if percent >= 100:
            # A small table (or SQLite, the embedded deployment): counting it all is cheap.
            counts = _exact_counts(rows, group_field)
        else:
            # A block sample first (a few percent of the pages): if the state is clearly big, the
            # scaled-up sample is the answer. Otherwise count at most limit+1 rows, which is
            # exact for the small states operators care about most (failed, expired locks).
            counts = _sampled_counts(rows, model, group_field, percent)
            big = sum(counts.values()) > 2 * limit
            if not big:
                bounded = _bounded_counts(rows, model, group_field, limit)
                if sum(bounded.values()) <= limit:
                    counts = bounded
                else:
                    big = True
            backlog.estimated = backlog.estimated or big
        for group, count in counts.items():
            if count:
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
    started = time.perf_counter()
    now = timezone.now()
    backlogs = {
        source.table: _count_backlog(source.model, source.group_field, source.states(now))
        for source in backlog_sources()
    }
    return Snapshot(backlogs, time.time(), time.perf_counter() - started)


class SnapshotCache:
    """The backlog snapshot, refreshed at most every TASKYARD_METRICS_REFRESH_SECONDS.

    A scrape never waits for a refresh except the very first one of a process: a stale snapshot
    is served while a background thread counts anew (its age is exported, so nothing is hidden).
    Snapshots also go to the Django cache named by TASKYARD_METRICS_CACHE: with a shared cache
    (database, Redis, memcached) the server processes refresh in turn instead of each counting.
    """

    # The version names the Snapshot's shape: during a rolling upgrade the processes of the old
    # release and the new one must not read each other's pickles.
    KEY = "taskyard:metrics:backlog:v2"
    CLAIM_KEY = "taskyard:metrics:backlog:refreshing"

    def __init__(self):
        self._lock = threading.Lock()
        self.last: Snapshot | None = None
        self.failed = False  # the last refresh attempt raised
        self._refresher: threading.Thread | None = None

    @staticmethod
    def _cache():
        return caches[settings.TASKYARD_METRICS_CACHE]

    @staticmethod
    def _fresh(snapshot: Snapshot | None) -> bool:
        max_age = settings.TASKYARD_METRICS_REFRESH_SECONDS
        return snapshot is not None and time.time() - snapshot.taken_at < max_age

    def invalidate(self) -> None:
        """Forget every snapshot, so the next scrape counts (used by tests and after bulk loads)."""
        self.wait()
        self.last = None
        self._cache().delete_many([self.KEY, self.CLAIM_KEY])

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a background refresh of this process to finish."""
        refresher = self._refresher
        if refresher is not None:
            refresher.join(timeout)

    def get(self) -> Snapshot | None:
        """The snapshot to export; None only while a process's first count is still running."""
        if self._fresh(self.last):
            return self.last
        shared = self._cache().get(self.KEY)
        if shared is not None and (self.last is None or shared.taken_at > self.last.taken_at):
            self.last = shared
        if self._fresh(self.last):
            return self.last
        if self.last is None:
            # Nothing to show yet (a process's first scrape): wait a little for the count, and
            # if it takes longer, answer without backlog gauges this once.
            first_wait = settings.TASKYARD_METRICS_FIRST_WAIT_SECONDS
            if first_wait is None:
                return self.refresh()
            self._refresh_in_background(claim=False)
            self.wait(first_wait)
            return self.last
        self._refresh_in_background()
        return self.last

    def refresh(self) -> Snapshot:
        """Count now, in the calling thread."""
        with self._lock:
            try:
                snapshot = compute_snapshot()
            except DatabaseError:
                self.failed = True
                raise
            self.failed = False
            self.last = snapshot
            timeout = max(60.0, settings.TASKYARD_METRICS_REFRESH_SECONDS * 10)
            self._cache().set(self.KEY, snapshot, timeout=timeout)
            return snapshot

    def _refresh_in_background(self, claim: bool = True) -> None:
        if self._refresher is not None and self._refresher.is_alive():
            return
        # One refresh per interval among the processes sharing the cache; the claim simply
        # expires, so a process that dies mid-count blocks nobody for long.
        claim_for = max(1.0, settings.TASKYARD_METRICS_REFRESH_SECONDS)
        if claim and not self._cache().add(self.CLAIM_KEY, os.getpid(), timeout=claim_for):
            return
        self._refresher = threading.Thread(
            target=self._background, name="taskyard-metrics-refresh", daemon=True
        )
        self._refresher.start()

    def _background(self) -> None:
        try:
            self.refresh()
        except Exception:
            log.warning("metrics: background backlog refresh failed", exc_info=True)
        finally:
            # This thread's own database connections; the request threads keep theirs.
            connections.close_all()


snapshots = SnapshotCache()


def _backlog_families(snapshot: Snapshot):
    """One gauge per registered table, and which of them hold estimates."""
    estimated = GaugeMetricFamily(
        "taskyard_backlog_estimated",
        "1 when some backlog numbers of the table are planner estimates, 0 when all exact.",
        labels=["table"],
    )
    for source in backlog_sources():
        backlog = snapshot.backlogs.get(source.table, Backlog())
        gauge = GaugeMetricFamily(
            source.metric,
            f"{source.help}; see taskyard_backlog_estimated.",
            labels=[source.group_label, "state"],
        )
        for (group, state), count in sorted(backlog.counts.items()):
            gauge.add_metric([group, state], count)
        yield gauge
        estimated.add_metric([source.table], int(backlog.estimated))
    yield estimated


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
            "1 when backlog gauges are exported and their last refresh succeeded; 0 when the "
            "database could not be read or a process's first count is still running.",
            value=int(not snapshots.failed and snapshot is not None),
        )
        if snapshot is None:
            return
        yield from _backlog_families(snapshot)
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


# A "live" gauge's file of one process: gauge_livesum_4127.db (prometheus_client's naming).
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live[a-z]+_(\d+)\.db$")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    try:
        # A killed child its parent has not reaped yet is a zombie: gone all the same.
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def forget_dead_processes(path: str | None = None) -> list[int]:
    """Delete the live-gauge files (long-poll waiters) of processes that no longer run, so a
    process killed while requests waited does not count them for ever. Counters and histograms
    of dead processes stay: they are totals. Returns the pids forgotten."""
    path = path or os.environ["PROMETHEUS_MULTIPROC_DIR"]
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return []
    pids = {int(m.group(1)) for name in names if (m := _LIVE_GAUGE_FILE.match(name))}
    dead = sorted(pid for pid in pids if pid != os.getpid() and not _process_alive(pid))
    for pid in dead:
        multiprocess.mark_process_dead(pid, path)
    return dead


class _DeadProcessSweeper:
    """Forgets dead processes' live gauges right before the multiprocess collector reads the
    files (also on start_metrics_server's port, which keeps one registry)."""

    def describe(self):
        return []

    def collect(self):
        forget_dead_processes()
        return []


def _event_registry() -> CollectorRegistry:
    """This process's event metrics, or with PROMETHEUS_MULTIPROC_DIR set (several server
    processes on one host) the sum over all processes' files, live gauges of live processes
    only."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    registry.register(_DeadProcessSweeper())  # collected first, on every scrape
    multiprocess.MultiProcessCollector(registry)
    return registry


def exposition() -> bytes:
    """The text exposition of every metric: the event metrics and the backlog gauges."""
    return generate_latest(_event_registry()) + generate_latest(BACKLOG_REGISTRY)


def start_metrics_server(port: int, addr: str = "127.0.0.1"):
    """Serve this process's event metrics (not the backlog, which the web processes export) on
    a plain HTTP port, for processes without a web face, e.g. an executor on its own host.
    Returns (server, thread); `server.shutdown()` stops it. Bind to a private address: this
    endpoint has no authentication."""
    return start_http_server(port, addr=addr, registry=_event_registry())
