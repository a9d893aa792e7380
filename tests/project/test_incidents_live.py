"""A real Camunda client reads the incident API unchanged: pycamunda's `incident` module against
a live server, over a job that failed to 0 retries and an external task that did."""

from io import StringIO

import pycamunda
import pycamunda.incident
import pytest
import requests
from django.core.management import call_command

from external_tasks import services as task_services
from jobs import claims
from tests.conftest import make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _call(request):
    request.auth = requests.auth.HTTPBasicAuth("alice", "alice-password")
    return request()


def test_pycamunda_reads_a_failed_jobs_and_tasks_incidents(live_server):
    alice = make_user("alice", "admin")
    job = claims.enqueue_job(
        "jobs.demo_handlers.always_fails", {"args": ["printer on fire"]}, retries=1
    )
    call_command("runjobs", "--once", stdout=StringIO(), stderr=StringIO())
    [task] = task_services.create(alice, [{"topicName": "invoice", "tenantId": "acme"}])
    task_services.fetch_and_lock(alice, "w1", 1, [task_services.TopicRequest("invoice", 60_000)])
    task_services.handle_failure(alice, task.id, "w1", error_message="no stock", retries=0)
    url = f"{live_server.url}/engine-rest"

    listed = _call(pycamunda.incident.GetList(url, sort_by="incident_type", ascending=True))
    assert [i.incident_type for i in listed] == [
        pycamunda.incident.IncidentType.failed_external_task,
        pycamunda.incident.IncidentType.failed_job,
    ]
    by_type = {i.incident_type.value: i for i in listed}
    assert by_type["failedJob"].configuration == job.id
    assert by_type["failedJob"].incident_message == "printer on fire"
    assert by_type["failedExternalTask"].configuration == task.id
    assert by_type["failedExternalTask"].tenant_id == "acme"
    assert by_type["failedJob"].incident_timestamp is not None

    one = _call(pycamunda.incident.Get(url, id_=by_type["failedJob"].id_))
    assert one == by_type["failedJob"]
    only_jobs = _call(pycamunda.incident.GetList(url, configuration=job.id))
    assert [i.id_ for i in only_jobs] == [one.id_]

    # Camunda refuses to resolve these: retries resolve them.
    with pytest.raises(pycamunda.BadRequest, match="Cannot resolve an incident of type failedJob"):
        _call(pycamunda.incident.Resolve(url, id_=one.id_))
    requests.put(
        f"{url}/job/{job.id}/retries",
        json={"retries": 1},
        auth=("alice", "alice-password"),
        timeout=5,
    ).raise_for_status()
    assert [i.configuration for i in _call(pycamunda.incident.GetList(url))] == [task.id]
    with pytest.raises(pycamunda.NotFound):
        _call(pycamunda.incident.Get(url, id_=one.id_))
