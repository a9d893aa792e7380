"""A batch's jobs, job definitions and job log are the batch's: seen exactly by those who may
see the batch (tenancy.scope_batches) and admins, on every face. Camunda gives them the batch's
tenant, or none when its rows span tenants; tenant-less, they would show a one-tenant user the
other tenant's batch (its id in every payload and definition) and let them act on it."""

import re

import pytest
from django.test import Client

from jobs.models import Job, JobDefinition, JobLog
from project import batches
from tests.conftest import basic_client, make_user

pytestmark = pytest.mark.django_db

REST = "/engine-rest"


def failed_jobs(count, tenant):
    return Job.objects.bulk_create(
        Job(handler="billing.tasks.charge", retries=0, exception_message="boom", tenant_id=tenant)
        for _ in range(count)
    )


@pytest.fixture
def two_tenant_batch(admin_user):
    """An admin's batch over acme's and globex's rows: its jobs and definitions have no tenant."""
    failed_jobs(2, "acme")
    failed_jobs(2, "globex")
    batch = batches.start(admin_user, "set-job-retries", Job.objects.all(), {"retries": 1})
    assert batch.tenant_id is None
    return batch


def batch_job_ids(batch):
    return set(
        Job.objects.filter(job_definition__job_configuration=batch.id).values_list("id", flat=True)
    )


def batch_definition_ids(batch):
    definitions = JobDefinition.objects.filter(job_configuration=batch.id)
    return set(definitions.values_list("id", flat=True))


def listed_ids(api, path):
    response = api.get(f"{REST}/{path}")
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()}


def test_rest_api_hides_another_tenants_batch_jobs_and_definitions(
    two_tenant_batch, operator_api, operator_user
):
    jobs, definitions = batch_job_ids(two_tenant_batch), batch_definition_ids(two_tenant_batch)
    assert len(jobs) == 1 and len(definitions) == 3  # the seed job; seed, monitor, batch

    assert listed_ids(operator_api, "job") == {j.id for j in Job.objects.filter(tenant_id="acme")}
    assert operator_api.get(f"{REST}/job/count").json() == {"count": 2}
    assert listed_ids(operator_api, "job-definition") == set()
    assert operator_api.get(f"{REST}/job-definition/count").json() == {"count": 0}
    (job_id,) = jobs
    response = operator_api.get(f"{REST}/job/{job_id}")
    assert response.status_code == 404
    assert response.json() == {
        "type": "InvalidRequestException",
        "message": f"Job with id {job_id} does not exist",
    }
    actions = [("get", f"job-definition/{d}", None) for d in definitions] + [
        ("put", f"job/{job_id}/retries", {"retries": 5}),
        ("put", f"job/{job_id}/suspended", {"suspended": True}),
        *[("put", f"job-definition/{d}/suspended", {"suspended": True}) for d in definitions],
    ]
    for method, path, body in actions:
        response = getattr(operator_api, method)(f"{REST}/{path}", body, format="json")
        assert response.status_code == 404, path
        assert response.json()["type"] == "InvalidRequestException"
    # A bulk action by selector finds nothing of the batch either.
    response = operator_api.put(
        f"{REST}/job/suspended",
        {"jobDefinitionId": sorted(definitions)[0], "suspended": True},
        format="json",
    )
    assert response.status_code == 204
    log = operator_api.get(f"{REST}/history/job-log").json()
    assert not {entry["jobId"] for entry in log} & jobs
    assert Job.objects.filter(id__in=jobs, suspended=False, retries=3).count() == len(jobs)
    assert not JobDefinition.objects.filter(id__in=definitions, suspended=True).exists()


def test_admins_and_members_of_every_tenant_see_them(two_tenant_batch, admin_api):
    jobs, definitions = batch_job_ids(two_tenant_batch), batch_definition_ids(two_tenant_batch)
    both = basic_client(make_user("erin", "viewer", ["acme", "globex"]))
    for api in (admin_api, both):
        assert jobs <= listed_ids(api, "job")
        assert api.get(f"{REST}/job/count").json() == {"count": 4 + len(jobs)}
        assert listed_ids(api, "job-definition") == definitions
        for job_id in jobs:
            assert api.get(f"{REST}/job/{job_id}").json()["tenantId"] is None
        log = api.get(f"{REST}/history/job-log").json()
        assert jobs <= {entry["jobId"] for entry in log}


def test_single_tenant_batch_jobs_carry_its_tenant_as_in_camunda(operator_user, operator_api):
    failed_jobs(3, "acme")
    failed_jobs(3, "globex")  # not bob's: not in his batch
    batch = batches.start(operator_user, "set-job-retries", Job.objects.all(), {"retries": 1})
    jobs, definitions = batch_job_ids(batch), batch_definition_ids(batch)
    globex = basic_client(make_user("dave", "operator", ["globex"]))

    assert batch.tenant_id == "acme"
    assert jobs <= listed_ids(operator_api, "job")
    assert listed_ids(operator_api, "job-definition") == definitions
    for job_id in jobs:
        assert operator_api.get(f"{REST}/job/{job_id}").json()["tenantId"] == "acme"
        assert globex.get(f"{REST}/job/{job_id}").status_code == 404
    assert listed_ids(globex, "job-definition") == set()


def test_tenant_less_jobs_outside_batches_stay_everyones(two_tenant_batch, operator_api):
    shared = Job.objects.create(handler="billing.tasks.charge", tenant_id=None)
    definition = JobDefinition.objects.create(job_type="async-continuation")
    with_definition = Job.objects.create(handler="billing.tasks.charge", job_definition=definition)
    assert {shared.id, with_definition.id} <= listed_ids(operator_api, "job")
    assert listed_ids(operator_api, "job-definition") == {definition.id}


def console(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_console_hides_another_tenants_batch_jobs(two_tenant_batch, operator_user, admin_user):
    jobs = batch_job_ids(two_tenant_batch)
    (job_id,) = jobs
    bob, alice = console(operator_user), console(admin_user)

    page = bob.get("/jobs/").content.decode()
    assert job_id not in page and two_tenant_batch.id not in page
    assert re.search(r"<h1>\s*2 jobs\s*</h1>", page)
    assert bob.get(f"/jobs/{job_id}/").status_code == 404
    assert bob.get("/search/", {"q": job_id}).status_code == 200  # no redirect to the job
    assert job_id not in bob.get("/search/", {"q": "batch"}).content.decode()
    export = b"".join(bob.get("/jobs/export/", {"format": "csv"}).streaming_content).decode()
    assert job_id not in export and export.count("\n") == 3  # the header and acme's two

    page = alice.get("/jobs/").content.decode()
    assert job_id in page and re.search(r"<h1>\s*5 jobs\s*</h1>", page)
    assert alice.get(f"/jobs/{job_id}/").status_code == 200
    assert alice.get("/search/", {"q": job_id}).status_code == 302
    export = b"".join(alice.get("/jobs/export/", {"format": "csv"}).streaming_content).decode()
    assert job_id in export


def test_log_entries_of_the_batch_are_hidden_after_it_ends(
    two_tenant_batch, operator_user, admin_user
):
    from io import StringIO

    from django.core.management import call_command

    call_command("runjobs", "--once", "--queue", "batch", stdout=StringIO(), stderr=StringIO())
    two_tenant_batch.refresh_from_db()
    logged = set(
        JobLog.objects.filter(job_definition_configuration=two_tenant_batch.id).values_list(
            "job_id", flat=True
        )
    )
    assert two_tenant_batch.end_time is not None and logged
    # Every entry of every job of the batch: also those of the job that ended it, written after
    # the batch's job definitions were gone.
    assert JobLog.objects.filter(job_id__in=logged, event="succeeded").exists()
    assert not JobLog.objects.visible_to(operator_user).filter(job_id__in=logged).exists()
    assert JobLog.objects.visible_to(admin_user).filter(job_id__in=logged).count() >= len(logged)
