"""camunda-external-task-client-python3's engine client, unchanged, against a live server."""

import pytest
from camunda.client.engine_client import EngineClient

from jobs.models import Job
from tests.jobs.factories import at, make_job


@pytest.fixture
def engine(live_server, operator_user):
    return EngineClient(
        engine_base_url=f"{live_server.url}/engine-rest",
        config={"auth_basic": {"username": "bob", "password": "bob-password"}},
    )


def test_camunda_client_lists_failed_jobs_and_resets_their_retries(engine, transactional_db):
    failed = {"retries": 0, "exception_message": "boom", "failed_activity_id": "charge"}
    make_job("early", tenant_id="acme", due_date=at("2024-01-01 10:00"), **failed)
    make_job("late", tenant_id="acme", due_date=at("2024-01-02 10:00"), **failed)
    make_job(
        "elsewhere",
        tenant_id="acme",
        due_date=at("2024-01-03 10:00"),
        retries=0,
        exception_message="boom",
        failed_activity_id="ship",
    )
    make_job("healthy", tenant_id="acme", failed_activity_id="charge")
    make_job("foreign", tenant_id="globex", due_date=at("2024-01-04 10:00"), **failed)

    jobs = engine.get_jobs(
        offset=0,
        limit=10,
        tenant_ids=["acme", "globex"],
        with_failure=True,
        task_name="charge",
        sort_by="jobDueDate",
        sort_order="desc",
    )
    assert [job["id"] for job in jobs] == ["late", "early"]
    assert jobs[0]["exceptionMessage"] == "boom"

    assert engine.set_job_retry("late", retries=2) is True
    assert Job.objects.get(id="late").retries == 2
    with pytest.raises(Exception, match="does not exist"):
        engine.set_job_retry("foreign", retries=2)
    assert Job.objects.get(id="foreign").retries == 0
