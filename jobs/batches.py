"""The batch engine: batches (project.batches) run here as jobs on the "batch" queue.

As Camunda runs them: each batch has three job definitions, the seed ("batch-seed-job"), the
monitor ("batch-monitor-job") and the batch jobs' (job type = the batch type), all with the
batch id as their job configuration and the batch's tenant. The seed job creates up to
batch_jobs_per_seed chunk jobs per run (then the next seed job, or once all exist, the monitor
job); each chunk job runs one BatchChunk; the monitor ends the batch once no chunk is left or
no chunk job is (chunks of batch jobs deleted after failing count as failed rows), else it
reschedules itself (one monitor job per batch, due again every interval).

Suspending a batch suspends its job definitions, and the executor claims no job of a
suspended definition; a job claimed just before (prefetched) hands its work to a fresh job
instead of running, so no chunk starts after the suspension committed.

A chunk is one transaction: lock its BatchChunk row, apply the batch type to its ids
(set-based, rows locked in id order), add the counts to the batch, delete the BatchChunk. A
killed executor leaves either all of it or none; the job runs again after its lock expires
and finds its chunk gone (or still there, untouched) either way.
"""

from datetime import timedelta

from django.db import transaction
from django.db.models import Count
from django.tasks import task

from jobs.claims import RunAgain
from jobs.models import ExecutorHeartbeat, Job, JobDefinition, JobLog
from jobs.services import _insert_logs
from project import batches, clock, incidents
from project.models import Batch, BatchChunk

QUEUE = "batch"
SEED_JOB_TYPE = "batch-seed-job"
MONITOR_JOB_TYPE = "batch-monitor-job"
SEED_HANDLER = "jobs.batches.run_seed"
MONITOR_HANDLER = "jobs.batches.run_monitor"
CHUNK_HANDLER = "jobs.batches.run_chunk"
# Chunk jobs go before seed and monitor jobs: the batch's work before creating more of it.
CHUNK_PRIORITY = 1
CHUNK_RETRIES = 3


def _definition(batch: Batch, job_type: str) -> JobDefinition:
    return JobDefinition(
        job_type=job_type,
        job_configuration=batch.id,
        tenant_id=batch.tenant_id,
        suspended=batch.suspended,
    )


def _enqueue(batch: Batch, definition_id: str, handler: str, payload: dict, **options) -> list:
    """A job of a batch, created with its "created" log entry."""
    return _enqueue_many(batch, definition_id, handler, [payload], **options)


def _enqueue_many(
    batch: Batch, definition_id: str, handler: str, payloads: list, due=None, priority: int = 0
):
    now = clock.now()
    jobs = [
        Job(
            job_definition_id=definition_id,
            type=Job.Type.TIMER if due is not None else Job.Type.MESSAGE,
            handler=handler,
            payload=payload,
            queue_name=QUEUE,
            due_date=clock.to_ms(due),
            retries=CHUNK_RETRIES,
            priority=priority,
            tenant_id=batch.tenant_id,
            create_time=now,
        )
        for payload in payloads
    ]
    Job.objects.bulk_create(jobs)
    _insert_logs([job.id for job in jobs], JobLog.Event.CREATED, now, worker="batch")
    _wake_executors()
    return jobs


def _wake_executors() -> None:
    from jobs.claims import notify_jobs_ready

    notify_jobs_ready()


class Engine:
    """What project.batches asks of the job executor (installed by jobs.apps)."""

    def create(self, batch: Batch) -> None:
        """The batch's job definitions and its first seed job (inside start()'s transaction)."""
        seed, monitor, chunks = (
            _definition(batch, SEED_JOB_TYPE),
            _definition(batch, MONITOR_JOB_TYPE),
            _definition(batch, batch.type),
        )
        JobDefinition.objects.bulk_create([seed, monitor, chunks])
        batch.seed_job_definition_id = seed.id
        batch.monitor_job_definition_id = monitor.id
        batch.batch_job_definition_id = chunks.id
        _enqueue(batch, seed.id, SEED_HANDLER, {"batch": batch.id})

    def definition_ids(self, batch: Batch) -> list[str]:
        return [
            i
            for i in (
                batch.seed_job_definition_id,
                batch.monitor_job_definition_id,
                batch.batch_job_definition_id,
            )
            if i
        ]

    def set_suspended(self, batch: Batch, suspended: bool) -> None:
        JobDefinition.objects.filter(id__in=self.definition_ids(batch)).update(suspended=suspended)
        if not suspended:
            _wake_executors()

    def cancel(self, batch: Batch) -> None:
        """Delete the batch's waiting jobs and its job definitions (when it ends or is
        cancelled). A job an executor is running right now (a chunk that just committed, or
        the one calling this) keeps its row, so the executor records its end as usual; it
        loses its definition, and its chunk is gone, so a re-run does nothing."""
        ids = self.definition_ids(batch)
        now = clock.now()
        waiting = Job.objects.filter(job_definition_id__in=ids)
        waiting = waiting.exclude(lock_expiration_time__gt=now)
        job_ids = list(waiting.values_list("id", flat=True))
        if job_ids:
            _insert_logs(job_ids, JobLog.Event.DELETED, now, worker="batch")
            Job.objects.filter(id__in=job_ids).delete()
            incidents.delete(incidents.FAILED_JOB, job_ids)
        JobDefinition.objects.filter(id__in=ids).delete()

    def failed_jobs(self, batch_ids: list[str]) -> dict[str, int]:
        """{batch id: its batch jobs with no retries left}, every asked id present."""
        counts = dict.fromkeys(batch_ids, 0)
        rows = (
            Job.objects.filter(
                retries=0,
                job_definition__job_configuration__in=batch_ids,
                job_definition__job_type__in=list(batches.TYPES),
            )
            .values("job_definition__job_configuration")
            .annotate(failed=Count("id"))
            .order_by()
        )
        for row in rows:
            counts[row["job_definition__job_configuration"]] = row["failed"]
        return counts

    def executors_seen(self, queue: str, within_seconds: int) -> bool:
        since = clock.now() - timedelta(seconds=within_seconds)
        seen = ExecutorHeartbeat.objects.filter(last_seen__gte=since).values_list(
            "queues", flat=True
        )
        return any(not queues or queue in queues for queues in seen)


ENGINE = Engine()


def _running_batch(batch_id: str) -> Batch | None:
    """The batch, locked, if it is still running."""
    return Batch.objects.select_for_update().filter(pk=batch_id, end_time__isnull=True).first()


def _started(batch: Batch) -> None:
    if batch.execution_start_time is None:
        batch.execution_start_time = clock.now()
        Batch.objects.filter(pk=batch.pk).update(execution_start_time=batch.execution_start_time)


@task
def run_seed(batch: str) -> dict:
    """Create the next batch_jobs_per_seed chunk jobs, then the next seed or the monitor job;
    the first run of a batch whose selection start() left takes its snapshot first."""
    with transaction.atomic():
        current = _running_batch(batch)
        if current is None:
            return {"created": 0}
        if current.suspended:
            # Claimed just before the suspension: a fresh seed job waits in the suspended
            # definition instead.
            _enqueue(current, current.seed_job_definition_id, SEED_HANDLER, {"batch": batch})
            return {"created": 0, "suspended": True}
        _started(current)
        if current.selecting:
            # A selection too large for the request: its rows are chosen now, and the batch's
            # job definitions and jobs take the tenant they turn out to have.
            batches.take_snapshot(current)
            ids = ENGINE.definition_ids(current)
            JobDefinition.objects.filter(id__in=ids).update(tenant_id=current.tenant_id)
            Job.objects.filter(job_definition_id__in=ids).update(tenant_id=current.tenant_id)
            if current.total_jobs == 0:  # the rows changed or went meanwhile
                batches.finish(current)
                return {"created": 0}
        first = current.jobs_created + 1
        last = min(current.jobs_created + current.batch_jobs_per_seed, current.total_jobs)
        numbers = list(range(first, last + 1))
        _enqueue_many(
            current,
            current.batch_job_definition_id,
            CHUNK_HANDLER,
            [{"batch": batch, "chunk": number} for number in numbers],
            priority=CHUNK_PRIORITY,
        )
        current.jobs_created += len(numbers)
        Batch.objects.filter(pk=batch).update(jobs_created=current.jobs_created)
        if current.jobs_created < current.total_jobs:
            _enqueue(current, current.seed_job_definition_id, SEED_HANDLER, {"batch": batch})
        else:
            _enqueue(
                current,
                current.monitor_job_definition_id,
                MONITOR_HANDLER,
                {"batch": batch},
                due=clock.now() + batches.monitor_interval(),
            )
    return {"created": len(numbers)}


@task
def run_chunk(batch: str, chunk: int) -> dict:
    """Run one chunk of a batch, atomically with the batch's counts; ends the batch when it
    was the last chunk. A chunk already run (or cancelled) is nothing to do."""
    with transaction.atomic():
        # Lock order: the chunk row, then (at the end) the batch row; cancel() takes the same.
        snapshot = BatchChunk.objects.select_for_update().filter(batch_id=batch, number=chunk)
        snapshot = snapshot.first()
        if snapshot is None:
            return {"changed": 0, "skipped": 0, "done": True}
        current = Batch.objects.filter(pk=batch, end_time__isnull=True).first()
        if current is None:
            return {"changed": 0, "skipped": 0, "done": True}
        if current.suspended:
            # Claimed just before the suspension committed: a fresh job of the (suspended)
            # definition takes the chunk over, to run once the batch is resumed.
            _enqueue(
                current,
                current.batch_job_definition_id,
                CHUNK_HANDLER,
                {"batch": batch, "chunk": chunk},
                priority=CHUNK_PRIORITY,
            )
            return {"changed": 0, "skipped": 0, "suspended": True}
        batch_type = batches.TYPES[current.type]
        result = batch_type.apply(batches.creator(current), list(snapshot.ids), current.parameters)
        snapshot.delete()
        # Each chunk counts once (its BatchChunk goes in this transaction), so the counters say
        # when the last one ran; a chunk left over (its job failed) is the monitor's to count.
        if batches.record_chunk(batch, result, snapshot.size):
            locked = _running_batch(batch)
            if locked is not None and not BatchChunk.objects.filter(batch_id=batch).exists():
                batches.finish(locked)
    return {"changed": result.changed, "skipped": snapshot.size - result.changed}


@task
def run_monitor(batch: str):
    """End the batch once no chunk is left, or no chunk job is (those left failed and were
    deleted); else look again after the monitor interval: the same job, due again (RunAgain),
    not a new job per look as long as the batch runs."""
    with transaction.atomic():
        current = _running_batch(batch)
        if current is None:
            return {"finished": False}
        chunks_left = BatchChunk.objects.filter(batch_id=batch).exists()
        jobs_left = Job.objects.filter(job_definition_id=current.batch_job_definition_id).exists()
        if current.jobs_created >= current.total_jobs and (not chunks_left or not jobs_left):
            batches.finish(current)
            return {"finished": True}
    return RunAgain(clock.now() + batches.monitor_interval(), {"finished": False})
