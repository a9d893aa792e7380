"""Jobs that Taskyard schedules for itself, run by the job executor like any other job.

Camunda applies a job-definition suspension with an `executionDate` through a timer job; so do
we: the REST call creates a timer job whose handler is the task below.
"""

from django.tasks import task

from jobs import services


@task
def apply_job_definition_suspension(
    job_definition_ids: list[str], suspended: bool, include_jobs: bool, requested_by: str
) -> dict:
    """(De)activate job definitions on behalf of the user who scheduled it, with that user's
    tenant scope at the time it runs. Answers how many definitions changed."""
    result = services.apply_scheduled_suspension(
        job_definition_ids, suspended, include_jobs=include_jobs, requested_by=requested_by
    )
    return {"changed": result.changed, "skipped": result.skipped}
