"""Camunda's BatchDto for the bulk operations Taskyard finishes within the request."""

from project.bulk import BulkResult
from project.ids import new_id


def completed_batch(batch_type: str, result: BulkResult, user, *, rows_per_batch: int) -> dict:
    """The batch of a set-based update that finished within the request: complete on return.
    As Camunda does, it counts the rows the batch was made for, those already at the requested
    values too."""
    total = result.changed + result.skipped
    return {
        "id": new_id(),
        "type": batch_type,
        "totalJobs": total,
        "jobsCreated": total,
        "batchJobsPerSeed": rows_per_batch,
        "invocationsPerBatchJob": 1,
        "seedJobDefinitionId": None,
        "monitorJobDefinitionId": None,
        "batchJobDefinitionId": None,
        "suspended": False,
        "tenantId": None,
        "createUserId": user.username,
    }
