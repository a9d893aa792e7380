"""The no-op task every job system runs in the executor comparison."""

from django.tasks import task


@task(queue_name="bench")
def noop():
    return None
