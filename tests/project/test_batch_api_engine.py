"""The batch resources over batches the engine started and runs: POST /job/retries answers a
batch whose job definitions and jobs the job API finds, its statistics follow the batch jobs
(failed ones included), and suspend, activate, delete and history deletion act on the real
jobs and rows."""

from io import StringIO

import pytest
from django.core.management import call_command

from jobs.models import Job, JobDefinition
from project.models import Batch
from tests.batches import ended, run_batches
from tests.jobs.factories import make_job

pytestmark = pytest.mark.django_db

URL = "/engine-rest/batch"
HISTORY = "/engine-rest/history/batch"


@pytest.fixture(autouse=True)
def small_chunks(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.TASKYARD_BATCH_CHUNK_SIZE = 2


@pytest.fixture
def failed(db):
    for index in range(5):
        make_job(f"f{index}", tenant_id="acme", retries=0, exception_message="boom")
    make_job("healthy", tenant_id="acme")
    make_job("theirs", tenant_id="globex", retries=0)


def start(api, retries=4):
    body = {"retries": retries, "jobQuery": {"noRetriesLeft": True}}
    response = api.post("/engine-rest/job/retries", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def run_one_job():
    out = StringIO()
    call_command("runjobs", "--once", "--queue", "batch", "--max-jobs", "1", stdout=out)


def retries_of(*ids):
    return set(Job.objects.filter(id__in=ids).values_list("retries", flat=True))


FAILED = [f"f{index}" for index in range(5)]


def test_the_answer_is_the_running_batch_with_real_job_definitions(operator_api, failed):
    batch = start(operator_api)
    # Five of bob's failed jobs (globex's is not his) in chunks of two: three batch jobs.
    assert (batch["totalJobs"], batch["invocationsPerBatchJob"]) == (3, 2)
    assert (batch["jobsCreated"], batch["tenantId"], batch["createUserId"]) == (0, "acme", "bob")
    assert operator_api.get(f"{URL}/{batch['id']}").json() == batch
    definitions = {
        batch["seedJobDefinitionId"]: "batch-seed-job",
        batch["monitorJobDefinitionId"]: "batch-monitor-job",
        batch["batchJobDefinitionId"]: "set-job-retries",
    }
    for definition_id, job_type in definitions.items():
        [found] = operator_api.get(
            "/engine-rest/job-definition", {"jobDefinitionId": definition_id}
        ).json()
        assert (found["jobType"], found["jobConfiguration"]) == (job_type, batch["id"])
        assert found["tenantId"] == "acme"
    seed = {"jobDefinitionId": batch["seedJobDefinitionId"]}
    seed_jobs = operator_api.get("/engine-rest/job", seed).json()
    assert [job["batchId"] for job in seed_jobs] == [batch["id"]]
    assert operator_api.get("/engine-rest/job/f0").json()["batchId"] is None
    [stats] = operator_api.get(f"{URL}/statistics").json()
    assert (stats["remainingJobs"], stats["completedJobs"], stats["failedJobs"]) == (3, 0, 0)
    assert retries_of(*FAILED) == {0}  # nothing changed yet


def test_the_executor_runs_the_batch_into_the_history(operator_api, failed):
    batch = start(operator_api)
    run_one_job()  # the seed creates the three batch jobs
    assert operator_api.get(f"{URL}/{batch['id']}").json()["jobsCreated"] == 3
    chunk_jobs = operator_api.get(
        "/engine-rest/job", {"jobDefinitionId": batch["batchJobDefinitionId"]}
    ).json()
    assert len(chunk_jobs) == 3
    assert {job["batchId"] for job in chunk_jobs} == {batch["id"]}
    run_batches()
    assert retries_of(*FAILED) == {4}
    assert retries_of("theirs") == {0}
    assert operator_api.get(URL).json() == []
    [historic] = operator_api.get(HISTORY, {"completed": "true"}).json()
    assert historic["id"] == batch["id"] and historic["endTime"] is not None
    assert historic["executionStartTime"] is not None
    assert ended(batch["id"]).rows_changed == 5
    # Its job definitions went with it.
    assert not JobDefinition.objects.filter(job_configuration=batch["id"]).exists()


def test_failed_batch_jobs_show_in_statistics_and_with_failures(operator_api, failed):
    batch = start(operator_api)
    run_one_job()  # its seed: the three batch jobs
    other = start(operator_api, retries=2)  # the same rows: a second batch, no failures
    Job.objects.filter(job_definition_id=batch["batchJobDefinitionId"]).update(
        retries=0, exception_message="chunk failed"
    )
    rows = {row["id"]: row for row in operator_api.get(f"{URL}/statistics").json()}
    assert rows[batch["id"]]["failedJobs"] == 3
    assert rows[other["id"]]["failedJobs"] == 0
    with_failures = operator_api.get(URL, {"withFailures": "true"}).json()
    assert [row["id"] for row in with_failures] == [batch["id"]]
    without = operator_api.get(f"{URL}/statistics/count", {"withoutFailures": "true"}).json()
    assert without == {"count": 1}


def test_a_suspended_batch_runs_nothing_until_activated(operator_api, failed):
    batch = start(operator_api)
    response = operator_api.put(f"{URL}/{batch['id']}/suspended", {"suspended": True}, "json")
    assert response.status_code == 204
    assert operator_api.get(URL, {"suspended": "true"}).json()[0]["id"] == batch["id"]
    assert JobDefinition.objects.get(id=batch["seedJobDefinitionId"]).suspended is True
    run_batches()
    assert retries_of(*FAILED) == {0}
    assert Batch.objects.get(id=batch["id"]).end_time is None

    response = operator_api.put(f"{URL}/{batch['id']}/suspended", {"suspended": False}, "json")
    assert response.status_code == 204
    run_batches()
    assert retries_of(*FAILED) == {4}
    assert ended(batch["id"]).outcome == Batch.Outcome.COMPLETED


def test_deleting_a_batch_cancels_it_and_keeps_its_history(operator_api, failed):
    batch = start(operator_api)
    assert operator_api.delete(f"{URL}/{batch['id']}").status_code == 204
    assert not Job.objects.filter(queue_name="batch").exists()
    assert not JobDefinition.objects.filter(job_configuration=batch["id"]).exists()
    run_batches()
    assert retries_of(*FAILED) == {0}
    assert operator_api.get(f"{URL}/count").json() == {"count": 0}
    historic = operator_api.get(f"{HISTORY}/{batch['id']}").json()
    assert historic["endTime"] is not None
    assert ended(batch["id"]).outcome == Batch.Outcome.CANCELLED
    # Deleting it again: it is no running batch any more.
    message = operator_api.delete(f"{URL}/{batch['id']}").json()["message"]
    assert message == f"Unable to delete batch with id '{batch['id']}'"


def test_deleting_with_cascade_removes_the_history_too(admin_api, failed):
    batch = start(admin_api)
    assert admin_api.delete(f"{URL}/{batch['id']}?cascade=true").status_code == 204
    assert admin_api.get(f"{HISTORY}/{batch['id']}").status_code == 404
    assert not Job.objects.filter(queue_name="batch").exists()
    assert retries_of(*FAILED) == {0}


def test_history_of_a_running_batch_is_deleted_only_once_it_ended(admin_api, failed):
    batch = start(admin_api)
    response = admin_api.delete(f"{HISTORY}/{batch['id']}")
    assert response.status_code == 400
    assert "cancel it" in response.json()["message"]
    assert Batch.objects.filter(id=batch["id"]).exists()
    run_batches()
    assert admin_api.delete(f"{HISTORY}/{batch['id']}").status_code == 204
    assert admin_api.get(f"{HISTORY}/{batch['id']}").status_code == 404
    assert admin_api.get(f"{HISTORY}/count").json() == {"count": 0}


def test_a_viewer_may_not_start_suspend_or_cancel_a_batch(viewer_api, operator_api, failed):
    body = {"retries": 4, "jobQuery": {"noRetriesLeft": True}}
    assert viewer_api.post("/engine-rest/job/retries", body, format="json").status_code == 403
    assert not Batch.objects.exists()
    batch = start(operator_api)
    assert viewer_api.get(f"{URL}/{batch['id']}").status_code == 200
    response = viewer_api.put(f"{URL}/{batch['id']}/suspended", {"suspended": True}, "json")
    assert response.status_code == 403
    assert viewer_api.delete(f"{URL}/{batch['id']}").status_code == 403
    assert Batch.objects.get(id=batch["id"]).suspended is False
    assert Job.objects.filter(queue_name="batch").exists()


def test_a_retries_async_batch_over_another_tenants_tasks_is_not_the_callers(
    operator_api, admin_api, failed
):
    batch = start(admin_api)  # alice's batch over acme's and globex's jobs
    assert batch["tenantId"] is None
    assert operator_api.get(URL).json() == []
    assert operator_api.get(f"{URL}/{batch['id']}").status_code == 404
    assert [row["id"] for row in admin_api.get(URL).json()] == [batch["id"]]
