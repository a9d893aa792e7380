"""Driving batches in tests: the job executor's batch queue, run in-process until the batches
it holds have ended (the seed job creates the chunk jobs, they change the rows, the monitor job
ends the batch)."""

from io import StringIO

from django.core.management import call_command

from jobs.models import Job
from project.models import Batch

BATCH_QUEUE = "batch"


def run_batches(rounds: int = 50) -> None:
    """Run the batch queue until no running batch has a job left; fail if it does not end."""
    for _ in range(rounds):
        if not Job.objects.filter(queue_name=BATCH_QUEUE).exists():
            return
        out = StringIO()
        call_command("runjobs", "--once", "--queue", BATCH_QUEUE, stdout=out, stderr=out)
    raise AssertionError(
        f"batch jobs left after {rounds} rounds: "
        f"{list(Job.objects.filter(queue_name=BATCH_QUEUE).values('handler', 'retries'))}"
    )


def ended(batch_id: str) -> Batch:
    """The batch, which must have ended."""
    batch = Batch.objects.get(id=batch_id)
    assert batch.end_time is not None, batch
    return batch
