"""Driving batches in tests: the job executor's batch queue, run in-process until nothing on
it is executable (the seed job creates the chunk jobs, they change the rows, the last one or
the monitor job ends the batch)."""

from io import StringIO

from django.core.management import call_command
from django.db.models import Q

from jobs.models import Job
from project import clock
from project.models import Batch

BATCH_QUEUE = "batch"


def executable_batch_jobs():
    due = Q(due_date__isnull=True) | Q(due_date__lte=clock.now())
    return (
        Job.objects.filter(queue_name=BATCH_QUEUE, retries__gt=0, suspended=False)
        .filter(due)
        .exclude(job_definition__suspended=True)
    )


def run_batches(rounds: int = 10) -> None:
    """Run the batch queue as an executor would, until no batch job is executable."""
    for _ in range(rounds):
        out = StringIO()
        call_command("runjobs", "--once", "--queue", BATCH_QUEUE, stdout=out, stderr=out)
        if not executable_batch_jobs().exists():
            return
    raise AssertionError(f"batch jobs still executable after {rounds} rounds")


def ended(batch_id: str) -> Batch:
    """The batch, which must have ended."""
    batch = Batch.objects.get(id=batch_id)
    assert batch.end_time is not None, batch
    return batch
