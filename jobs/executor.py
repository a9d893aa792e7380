"""The job executor behind `manage.py runjobs`: claim, run outside the transaction, record.

The process loop: claims go through jobs.claims and each job runs through jobs.runner; this
module keeps the locks of running jobs alive, writes quick successes in the background, waits
for work (LISTEN/NOTIFY on PostgreSQL, polling elsewhere), handles SIGTERM/SIGINT and runs
several worker processes.
"""

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

from django import db
from django.db import connection

from jobs import backends, claims, runner
from jobs.models import ExecutorHeartbeat
from jobs.runner import JobInterrupted
from project import clock, metrics

logger = logging.getLogger("jobs.executor")


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# ---------------------------------------------------------------------------------------------
# Keeping locks of running jobs alive


class LockRenewer(threading.Thread):
    """Extends the locks of this executor's running jobs every third of the lock time, so a long
    job keeps its lock while the process lives, and loses it soon after the process dies."""

    def __init__(self, worker_id: str, lock_time: timedelta):
        super().__init__(name=f"lock-renewer {worker_id}", daemon=True)
        self.worker_id = worker_id
        self.lock_time = lock_time
        self.job_ids: set[str] = set()
        self.guard = threading.Lock()
        self.stopping = threading.Event()

    def track(self, job_id):
        with self.guard:
            self.job_ids.add(job_id)

    def untrack(self, job_id):
        with self.guard:
            self.job_ids.discard(job_id)

    def run(self):
        interval = max(self.lock_time.total_seconds() / 3, 0.05)
        try:
            while not self.stopping.wait(interval):
                with self.guard:
                    ids = list(self.job_ids)
                if not ids:
                    continue
                try:
                    held = claims.extend_job_locks(ids, self.worker_id, lock_time=self.lock_time)
                except Exception:
                    logger.exception("Could not renew job locks of %s", self.worker_id)
                    continue
                if held < len(ids):
                    logger.warning(
                        "%s lost %d of %d job locks (taken over after expiry or unlocked)",
                        self.worker_id,
                        len(ids) - held,
                        len(ids),
                    )
        finally:
            db.connections.close_all()

    def stop(self):
        self.stopping.set()
        if self.is_alive():
            self.join()


# ---------------------------------------------------------------------------------------------
# Telling the world this executor is alive

HEARTBEAT_INTERVAL = 5.0  # seconds between two ExecutorHeartbeat writes


class Heartbeat(threading.Thread):
    """Writes this executor's ExecutorHeartbeat row (host, pid, queues, jobs held) every few
    seconds from its own thread and connection; the row goes on a clean stop. The console's
    executors list reads the rows, and project.batches.executors_seen() warns when no executor
    of the batch queue has been seen for a while (then batches do not progress)."""

    def __init__(self, worker_id: str, queues: list[str], renewer: "LockRenewer", interval=None):
        super().__init__(name=f"heartbeat {worker_id}", daemon=True)
        self.worker_id = worker_id
        self.queues = list(queues)
        self.renewer = renewer
        self.interval = HEARTBEAT_INTERVAL if interval is None else interval
        self.stopping = threading.Event()
        self.started_at = clock.now()

    def beat(self) -> None:
        """Write the row now; a failed write is logged, never fatal (the next one may work)."""
        with self.renewer.guard:
            running = len(self.renewer.job_ids)
        try:
            ExecutorHeartbeat.objects.update_or_create(
                worker_id=self.worker_id,
                defaults={"last_seen": clock.now(), "running": running},
                create_defaults={
                    "hostname": socket.gethostname(),
                    "pid": os.getpid(),
                    "queues": self.queues,
                    "started_at": self.started_at,
                    "last_seen": clock.now(),
                    "running": running,
                },
            )
        except db.DatabaseError:
            logger.warning("%s: cannot write its heartbeat", self.worker_id, exc_info=True)
            if threading.current_thread() is self:
                db.connections.close_all()  # a fresh connection for the next beat

    def run(self):
        try:
            while not self.stopping.wait(self.interval):
                self.beat()
        finally:
            db.connections.close_all()

    def stop(self) -> None:
        """Stop beating and remove the row (called from the executor's own thread)."""
        self.stopping.set()
        if self.is_alive():
            self.join()
        try:
            ExecutorHeartbeat.objects.filter(worker_id=self.worker_id).delete()
        except db.DatabaseError:
            logger.warning("%s: cannot remove its heartbeat", self.worker_id, exc_info=True)


# ---------------------------------------------------------------------------------------------
# Writing successes in the background


class SuccessRecorder(threading.Thread):
    """Writes this executor's successes from its own thread and connection, all that have
    arrived since its last write in one statement and one commit (claims.complete_jobs).

    A commit waits for the disk (1–2 ms, more on a busy machine): longer than a quick job
    takes. Written one by one, the executor ran its jobs at the disk's pace; here the next job
    runs while the previous successes are written, and successes that arrive meanwhile share
    the next commit. Each job's log rows carry the time of its event, whenever written. Until
    its success is written a job stays locked by this executor (its lock renewed): no other
    executor runs it. If the process dies first, those jobs run again once their locks expire,
    as a job whose success could not be recorded always has (at-least-once); there are at most
    MAX_PENDING of them, and a write is rarely more than one commit behind."""

    MAX_PENDING = 100  # successes waiting to be written; the executor waits beyond that

    def __init__(self, worker_id: str, renewer: "LockRenewer"):
        super().__init__(name=f"success-recorder {worker_id}", daemon=True)
        self.worker_id = worker_id
        self.renewer = renewer
        self.pending: list[tuple] = []
        self.changed = threading.Condition()
        self.stopping = False
        self.writing = False

    def submit(self, job, rows: list[dict], outcome: claims.JobOutcome):
        """Take a success to write (runner.run_claimed_job's `defer_success`)."""
        with self.changed:
            while len(self.pending) >= self.MAX_PENDING and self.is_alive():
                self.changed.wait()
            self.pending.append((job, rows, outcome))
            self.changed.notify_all()

    def run(self):
        try:
            while True:
                with self.changed:
                    while not self.pending and not self.stopping:
                        self.changed.wait()
                    if not self.pending:
                        return
                    batch, self.pending = self.pending, []
                    self.writing = True
                    self.changed.notify_all()
                try:
                    self.write(batch)
                finally:
                    with self.changed:
                        self.writing = False
                        self.changed.notify_all()
        finally:
            db.connections.close_all()

    def write(self, batch):
        try:
            held = claims.complete_jobs(self.worker_id, [(job.id, rows) for job, rows, _ in batch])
        except Exception:
            # As when a success cannot be written at once: the jobs' locks expire (they are no
            # longer renewed) and they run again. The recorder itself carries on.
            logger.exception(
                "%s: cannot record %d successful jobs; they will run again",
                self.worker_id,
                len(batch),
            )
            db.connections.close_all()
            held = None
        for job, _, outcome in batch:
            self.renewer.untrack(job.id)
            if held is not None:
                outcome.held_lock = job.id in held
                log_outcome(outcome, self.worker_id)
                # Only Django's log receiver can be listening (run_claimed_job writes at once
                # for the project's); it logs from this thread.
                backends.send_task_signal(job, started=False, outcome=outcome)

    def stop(self):
        with self.changed:
            self.stopping = True
            self.changed.notify_all()
        if self.is_alive():
            self.join()


# ---------------------------------------------------------------------------------------------
# Waiting for work


class Waiter:
    """Sleeps until new work may be there: a NOTIFY on PostgreSQL, else the poll interval."""

    SLICE = 0.25  # seconds; how quickly a shutdown request ends a wait

    def __init__(self, poll_interval: float, stopping: threading.Event):
        self.poll_interval = poll_interval
        self.stopping = stopping
        self.listener = None
        if connection.vendor == "postgresql":
            try:
                import psycopg

                params = connection.get_connection_params()
                params.pop("cursor_factory", None)
                params.pop("context", None)
                self.listener = psycopg.connect(**params, autocommit=True)
                self.listener.execute(f"LISTEN {claims.JOBS_CHANNEL}")
            except Exception:
                logger.exception("LISTEN failed; falling back to polling")
                self.listener = None

    def wait(self):
        deadline = time.monotonic() + self.poll_interval
        while not self.stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self.listener is None:
                self.stopping.wait(min(remaining, self.SLICE))
                continue
            try:
                for _notify in self.listener.notifies(
                    timeout=min(remaining, self.SLICE), stop_after=1
                ):
                    return
            except Exception:
                logger.exception("LISTEN connection failed; falling back to polling")
                self.close()

    def close(self):
        if self.listener is not None:
            with contextlib.suppress(Exception):
                self.listener.close()
            self.listener = None


# ---------------------------------------------------------------------------------------------
# The executor loop


@dataclass
class ExecutorOptions:
    worker_id: str = field(default_factory=default_worker_id)
    queues: list[str] = field(default_factory=list)
    lock_time: timedelta = timedelta(minutes=5)
    poll_interval: float = 1.0
    timeout: float | None = None
    max_jobs: int | None = None
    once: bool = False
    retry_cycle: claims.RetryCycle | None = None
    # Jobs claimed per statement; the ones beyond the first wait in this process (see Executor).
    prefetch: int = 10
    # A pool child stops (gracefully) when the supervising process has gone away.
    parent_pid: int | None = None


# How long claimed jobs may wait in an executor before it gives back the ones it has not
# started (capped at a third of the lock time, so a started job's lock outlives the first renewal).
PREFETCH_WINDOW = 1.0  # seconds


class Executor:
    """One executor process: claims a batch of jobs in one statement and runs them one after
    another in the main thread.

    Prefetching trades a little fairness for throughput. A claim costs a statement and a commit;
    claiming `prefetch` jobs at once makes it a fraction per job. In exchange, jobs of a batch wait
    here while others run, so another idle executor cannot take them and a higher-priority job
    enqueued meanwhile waits for them. Both are bounded: a batch is only worked through for
    PREFETCH_WINDOW; then (or on shutdown) the jobs not yet started are given back (idle
    executors are woken) and the next claim takes one job, until jobs are quick again. Jobs
    claimed ahead of time are logged as started only when they start: by the write that records
    the previous job's outcome, so that costs nothing either. `prefetch` 1 turns it off.
    """

    def __init__(self, options: ExecutorOptions):
        self.options = options
        self.stopping = threading.Event()
        self.jobs_run = 0
        self.recorder: SuccessRecorder | None = None

    # Signals: the first asks to stop after the running job; the second interrupts it.
    def request_stop(self, signum=None, frame=None):
        if self.stopping.is_set() and runner.in_handler():
            logger.warning(
                "%s: second signal, interrupting the running job", self.options.worker_id
            )
            raise JobInterrupted(f"signal {signum}")
        if not self.stopping.is_set():
            logger.info("%s: stopping after the running job", self.options.worker_id)
        self.stopping.set()

    @contextlib.contextmanager
    def signal_handlers(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {
            sig: signal.signal(sig, self.request_stop) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def run(self) -> int:
        """Run jobs until stopped (or, with `once`, until nothing is executable); returns the
        number of jobs run."""
        options = self.options
        renewer = LockRenewer(options.worker_id, options.lock_time)
        heartbeat = Heartbeat(options.worker_id, options.queues, renewer)
        # Successes are written from a second connection, which sees only committed rows: not
        # inside a caller's transaction (tests), and not on SQLite (one writer at a time).
        self.recorder = None
        if connection.vendor == "postgresql" and not connection.in_atomic_block:
            self.recorder = SuccessRecorder(options.worker_id, renewer)
        # LISTEN before the first look for work, so a job enqueued in between still wakes us.
        waiter = None if options.once else Waiter(options.poll_interval, self.stopping)
        with self.signal_handlers():
            logger.info(
                "%s: running jobs of %s, %d per claim",
                options.worker_id,
                ", ".join(options.queues) or "every queue",
                max(options.prefetch, 1),
            )
            renewer.start()
            if self.recorder is not None:
                self.recorder.start()
            heartbeat.beat()
            # From a thread of its own only where it can see committed rows and write beside
            # us: not inside a caller's transaction (tests) nor for a one-off `--once` run.
            if not options.once and not connection.in_atomic_block:
                heartbeat.start()
            try:
                self.run_until_stopped(renewer, waiter)
            except JobInterrupted:
                pass
            finally:
                if self.recorder is not None:
                    self.recorder.stop()  # writes what it still holds
                heartbeat.stop()
                renewer.stop()
                if waiter is not None:
                    waiter.close()
        return self.jobs_run

    def run_until_stopped(self, renewer: "LockRenewer", waiter: "Waiter | None") -> None:
        """Claim and run batches until stopped, out of jobs (`once`) or at `max_jobs`."""
        options = self.options
        limit = max(options.prefetch, 1)
        while not self.stopping.is_set():
            if options.parent_pid is not None and os.getppid() != options.parent_pid:
                logger.warning("%s: supervisor is gone, stopping", options.worker_id)
                return
            if options.max_jobs is not None:
                limit = min(limit, options.max_jobs - self.jobs_run)
                if limit <= 0:
                    return
            jobs = self.claim(limit)
            if jobs is None:
                continue
            if not jobs:
                if options.once:
                    return
                waiter.wait()
                continue
            # Slow jobs (a batch outlasting the window): claim one at a time then.
            limit = max(options.prefetch, 1) if self.run_batch(jobs, renewer) else 1

    def claim(self, limit: int) -> list | None:
        """Claim up to `limit` jobs, the first logged as started; None while the database is
        away (restart, failover): the process stays and tries again after a poll interval."""
        options = self.options
        polled = time.perf_counter()
        try:
            jobs = claims.acquire_jobs(
                options.worker_id,
                lock_time=options.lock_time,
                limit=limit,
                queues=options.queues,
                start=1,
            )
            metrics.record_executor_poll(len(jobs), time.perf_counter() - polled)
            metrics.record_lock_expired("job", sum(1 for job in jobs if job.previous_owner))
            if jobs and backends.history_wanted(jobs):
                claims.attach_history(jobs)
        except db.DatabaseError:
            logger.exception("%s: cannot claim jobs; retrying", options.worker_id)
            db.connections.close_all()
            self.stopping.wait(options.poll_interval)
            return None
        return jobs

    def run_batch(self, jobs: list, renewer: LockRenewer) -> bool:
        """Run claimed jobs in order (the claim logged the first as started); give back the
        ones not started when stopping or when the batch is older than the prefetch window.
        Returns whether the whole batch ran within the window (the jobs are quick)."""
        window = min(PREFETCH_WINDOW, self.options.lock_time.total_seconds() / 3)
        fresh_until = time.monotonic() + window
        pending = list(jobs)

        def next_job():
            # Asked when a job's handler has returned: the job to log as started with its outcome.
            if not pending or self.stopping.is_set() or time.monotonic() > fresh_until:
                return None
            return pending[0]

        started = True
        try:
            while pending:
                job = pending[0]
                if not started:
                    if self.stopping.is_set() or time.monotonic() > fresh_until:
                        return False
                    claims.log_started(job, self.options.worker_id)
                pending.pop(0)
                outcome = self.run_one(job, renewer, next_job)
                started = outcome is not None and outcome.next_started is not None
            return time.monotonic() <= fresh_until
        except db.DatabaseError:
            logger.exception("%s: cannot start job %s", self.options.worker_id, pending[0].id)
            db.connections.close_all()
            return False
        finally:
            if pending:
                try:
                    claims.release_unstarted_jobs(pending, self.options.worker_id)
                except db.DatabaseError:
                    # Their locks expire after the lock time; other executors run them then.
                    logger.exception("%s: cannot release unstarted jobs", self.options.worker_id)
                    db.connections.close_all()

    def run_one(self, job, renewer: LockRenewer, next_job=None):
        renewer.track(job.id)
        deferred = False
        try:
            outcome = runner.run_claimed_job(
                job,
                self.options.worker_id,
                timeout=self.options.timeout,
                retry_cycle=self.options.retry_cycle,
                next_job=next_job,
                defer_success=self.recorder.submit if self.recorder is not None else None,
            )
            # A deferred success keeps its lock renewed until the recorder has written it.
            deferred = outcome.held_lock is None
        except JobInterrupted:
            logger.warning("job %s %s interrupted and released", job.id, job.handler)
            raise
        except db.DatabaseError:
            # The outcome could not be recorded; the lock will expire and the job run again
            # (jobs are at-least-once: handlers should be idempotent).
            logger.exception("job %s %s: cannot record the outcome", job.id, job.handler)
            db.connections.close_all()
            return None
        finally:
            if not deferred:
                renewer.untrack(job.id)
        self.jobs_run += 1
        if not deferred:
            log_outcome(outcome, self.options.worker_id)
        return outcome


def log_outcome(outcome: claims.JobOutcome, worker_id: str | None = None):
    """One line per job (logger "taskyard.executor"), and the job-run metrics."""
    detail = f" ({outcome.handler})"
    level = None
    if not outcome.succeeded:
        detail += f": {outcome.exception_message}"
        if outcome.retries:
            when = outcome.next_due_date.isoformat() if outcome.next_due_date else "now"
            detail += f"; {outcome.retries} retries left, next attempt at {when}"
        else:
            detail += "; no retries left"
            level = logging.ERROR
    if not outcome.held_lock:
        detail += " (its lock had expired: another executor took it over)"
    elif outcome.succeeded:
        # Hundreds of jobs a second: a line each is for debugging; failures stay warnings.
        level = logging.DEBUG
    metrics.record_job_run(
        outcome.handler,
        "succeeded" if outcome.succeeded else "failed",
        outcome.duration_ms / 1000,
        job_id=outcome.job_id,
        worker=worker_id,
        retries=outcome.retries,
        error=outcome.exception_message,
        detail=detail,
        level=level,
    )


# ---------------------------------------------------------------------------------------------
# Several worker processes


def run_pool(options: ExecutorOptions, concurrency: int) -> int:
    """Fork `concurrency` executor processes and supervise them; signals are passed on, so one
    SIGTERM stops them all gracefully and a second interrupts their running jobs. A process
    that dies (a handler crashing the interpreter, the OOM killer) is replaced; its job runs
    again once its lock expires.

    Processes rather than threads: handlers run truly in parallel, time limits can interrupt
    them (SIGALRM), and a crashing handler takes down only its own process."""
    if concurrency <= 1:
        Executor(options).run()
        return 0
    # Connections must not be shared across fork: each child opens its own.
    db.connections.close_all()
    return Pool(options, concurrency).run()


class Pool:
    """The supervisor of run_pool's executor processes."""

    def __init__(self, options: ExecutorOptions, concurrency: int):
        self.options = options
        self.concurrency = concurrency
        self.supervisor = os.getpid()
        self.children: dict[int, tuple[int, ExecutorOptions]] = {}
        self.generations = [0] * concurrency
        self.stopping = False

    def run(self) -> int:
        """Start the processes, replace those that die, and return 1 if any failed."""
        previous = {
            sig: signal.signal(sig, self.forward) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            for index in range(self.concurrency):
                child_options = self.child_options(index)
                if child_options.max_jobs != 0:
                    self.spawn(index, child_options)
            return 1 if self.supervise() else 0
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def child_options(self, index: int) -> ExecutorOptions:
        options = self.options
        child_options = ExecutorOptions(**{**options.__dict__})
        if options.max_jobs is not None:
            # --max-jobs is the total: split it between the processes.
            child_options.max_jobs = options.max_jobs // self.concurrency + (
                index < options.max_jobs % self.concurrency
            )
        return child_options

    def supervise(self) -> int:
        """Wait for the processes; returns how many failed while they were meant to stop."""
        options = self.options
        failed = 0
        while self.children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            index, child_options = self.children.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            if code == 0:
                continue
            if self.stopping or options.once or options.max_jobs is not None:
                failed += 1
                continue
            logger.error("executor process %d died (exit %s); starting another", index + 1, code)
            time.sleep(1)  # no tight loop if something kills every process at once
            if not self.stopping:
                self.spawn(index, child_options)
        return failed

    def spawn(self, index: int, child_options: ExecutorOptions) -> None:
        generation = self.generations[index]
        suffix = f"{index + 1}" + (f"r{generation}" if generation else "")
        self.generations[index] += 1
        pid = os.fork()
        if pid:
            self.children[pid] = (index, child_options)
            return
        self.run_child(suffix, child_options)  # the child from here on; never returns

    def run_child(self, suffix: str, child_options: ExecutorOptions) -> None:
        code = 0
        try:
            # Its own process group: a terminal's Ctrl-C reaches only the supervisor, which
            # passes it on once (a second copy would interrupt the running job).
            os.setpgid(0, 0)
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, signal.SIG_DFL)
            child_options.worker_id = f"{self.options.worker_id}/{suffix}"
            child_options.parent_pid = self.supervisor
            Executor(child_options).run()
        except BaseException:
            logger.exception("executor process %s crashed", suffix)
            code = 1
        finally:
            with contextlib.suppress(Exception):
                db.connections.close_all()
            logging.shutdown()
            os._exit(code)

    def forward(self, signum, frame) -> None:
        self.stopping = True
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
