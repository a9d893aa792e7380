"""Retrying a job with an edited payload: the operator's fix for a job that failed on its
arguments, from the job's page, logged and audited with the payload before and after."""

import json

import pytest

from jobs import services
from jobs.models import Job, JobLog
from project import incidents
from project.errors import InvalidRequest, NotFound
from project.models import AuditEntry, Incident
from tests.console.conftest import later, make_job

pytestmark = pytest.mark.django_db

URL = "/jobs/actions/"


def failed_job(**fields):
    job = make_job(
        payload={"args": [], "kwargs": {"order": "5O"}},
        retries=0,
        exception_message="invalid literal for int(): '5O'",
        **fields,
    )
    incidents.open_for(incidents.FAILED_JOB, Job.objects.filter(pk=job.pk))
    return job


def retry(client, job, payload, retries="1", follow=True):
    data = {
        "action": "retry_with_payload",
        "scope": "ids",
        "ids": job.pk,
        "confirmed": "1",
        "payload": payload if isinstance(payload, str) else json.dumps(payload),
        "retries": retries,
        "next": f"/jobs/{job.pk}/",
    }
    return client.post(URL, data, follow=follow)


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


def test_the_job_page_offers_the_payload_to_edit(operator_client):
    job = failed_job()
    html = operator_client.get(f"/jobs/{job.pk}/").content.decode()
    assert 'value="retry_with_payload"' in html and "&quot;5O&quot;" in html


def test_a_viewer_is_not_offered_the_edit(viewer_client):
    job = failed_job()
    assert (
        'value="retry_with_payload"' not in viewer_client.get(f"/jobs/{job.pk}/").content.decode()
    )


def test_retrying_with_a_corrected_payload_makes_the_job_due_with_it(operator_client):
    job = failed_job()
    response = retry(operator_client, job, {"args": [], "kwargs": {"order": 50}}, retries="2")
    assert any("Payload replaced and retried" in m for m in messages_of(response))
    job.refresh_from_db()
    assert job.payload == {"args": [], "kwargs": {"order": 50}}
    assert job.retries == 2 and job.due_date is not None
    assert Job.objects.acquirable().filter(pk=job.pk).exists()
    entry = AuditEntry.objects.get(action="job.retry_with_payload")
    assert entry.before == {"payload": {"args": [], "kwargs": {"order": "5O"}}, "retries": 0}
    assert entry.after["payload"] == {"args": [], "kwargs": {"order": 50}}
    assert entry.username == "bob" and entry.count == 1
    log = JobLog.objects.filter(job_id=job.pk, event=JobLog.Event.RETRIES_SET).get()
    assert log.payload == {"args": [], "kwargs": {"order": 50}} and log.retries == 2
    assert not Incident.objects.filter(configuration=job.pk, state="open").exists()


@pytest.mark.parametrize(
    "payload, retries, words",
    [
        ('{"args": [', "1", "not valid JSON"),
        ('{"kwargs": {}}', "0", "1 or more"),
        ('{"kwargs": {}}', "x", "whole number"),
    ],
)
def test_bad_input_is_refused_in_words_and_changes_nothing(
    operator_client, payload, retries, words
):
    job = failed_job()
    response = retry(operator_client, job, payload, retries=retries, follow=False)
    assert response.status_code == 400 and words in response.content.decode()
    job.refresh_from_db()
    assert job.payload == {"args": [], "kwargs": {"order": "5O"}} and job.retries == 0
    assert not AuditEntry.objects.exists()


def test_a_running_job_keeps_its_payload(operator_client):
    job = failed_job(lock_owner="executor-1", lock_expiration_time=later(minutes=5))
    response = retry(operator_client, job, {"kwargs": {"order": 50}})
    assert any("is running" in m for m in messages_of(response))
    job.refresh_from_db()
    assert job.payload == {"args": [], "kwargs": {"order": "5O"}}


def test_another_tenants_job_is_not_found(operator_user):
    job = failed_job(tenant_id="globex")
    with pytest.raises(NotFound):
        services.retry_with_payload(operator_user, job.pk, {"kwargs": {}})
    job.refresh_from_db()
    assert job.retries == 0


def test_the_service_refuses_what_json_cannot_hold(operator_user):
    job = failed_job()
    with pytest.raises(InvalidRequest):
        services.retry_with_payload(operator_user, job.pk, {"x": float("nan")})
    with pytest.raises(InvalidRequest):
        services.retry_with_payload(operator_user, job.pk, {"kwargs": {}}, retries=0)
