"""A real Camunda client drives the batch API unchanged: pycamunda starts a retries batch
(`externaltask.SetRetriesAsync`) and its `batch` module lists, counts, reads, suspends,
activates and deletes batches against a live server; the history, which pycamunda has no
module for, is read with plain HTTP as a Camunda client would."""

import pycamunda
import pycamunda.batch
import pycamunda.externaltask
import pytest
import requests

from external_tasks import services as task_services
from external_tasks.models import ExternalTask
from tests.batches import run_batches
from tests.conftest import make_user

pytestmark = pytest.mark.django_db(transaction=True)

AUTH = requests.auth.HTTPBasicAuth("alice", "alice-password")


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _call(request):
    request.auth = AUTH
    return request()


def test_pycamunda_drives_a_retries_batch_from_start_to_history(live_server):
    alice = make_user("alice", "admin")
    tasks = task_services.create(
        alice,
        [{"topicName": "invoice", "tenantId": "acme", "retries": 0} for _ in range(3)]
        + [{"topicName": "invoice", "tenantId": "globex", "retries": 0}],
    )
    url = f"{live_server.url}/engine-rest"
    acme = [task.id for task in tasks if task.tenant_id == "acme"]

    started = _call(pycamunda.externaltask.SetRetriesAsync(url, 5, acme))
    assert started.type_ == "set-external-task-retries"
    assert (started.total_jobs, started.tenant_id, started.create_user_id) == (1, "acme", "alice")
    assert started.seed_job_definition_id and started.batch_job_definition_id
    other = _call(pycamunda.externaltask.SetRetriesAsync(url, 2, [tasks[-1].id]))

    listed = _call(pycamunda.batch.GetList(url, sort_by="tenant_id", ascending=True))
    assert [batch.id_ for batch in listed] == [started.id_, other.id_]
    assert listed[0] == started
    assert _call(pycamunda.batch.Get(url, id_=started.id_)) == started
    assert _call(pycamunda.batch.Count(url, tenant_id_in=["globex"])) == 1
    only = _call(pycamunda.batch.GetList(url, type_="set-external-task-retries", max_results=1))
    assert len(only) == 1

    [stats] = _call(pycamunda.batch.GetStats(url, batch_id=started.id_))
    assert (stats.remaining_jobs, stats.completed_jobs, stats.failed_jobs) == (1, 0, 0)
    assert _call(pycamunda.batch.CountStats(url)) == 2

    _call(pycamunda.batch.Suspend(url, id_=started.id_))
    assert [b.id_ for b in _call(pycamunda.batch.GetList(url, suspended=True))] == [started.id_]
    _call(pycamunda.batch.Activate(url, id_=started.id_))
    assert _call(pycamunda.batch.Count(url, suspended=True)) == 0
    with pytest.raises(pycamunda.BadRequest, match="Unable to suspend batch with id 'nope'"):
        _call(pycamunda.batch.Suspend(url, id_="nope"))

    # Cancelled with its history: gone from /batch, its jobs deleted, the rows untouched.
    _call(pycamunda.batch.Delete(url, id_=other.id_, cascade=True))
    assert requests.get(f"{url}/history/batch/{other.id_}", auth=AUTH).status_code == 404

    run_batches()
    assert _call(pycamunda.batch.GetList(url)) == ()
    assert set(ExternalTask.objects.filter(id__in=acme).values_list("retries", flat=True)) == {5}
    assert ExternalTask.objects.get(id=tasks[-1].id).retries == 0
    history = requests.get(f"{url}/history/batch", {"completed": "true"}, auth=AUTH).json()
    assert [batch["id"] for batch in history] == [started.id_]
    assert history[0]["endTime"] is not None and history[0]["totalJobs"] == 1
    count = requests.get(f"{url}/history/batch/count", auth=AUTH).json()
    assert count == {"count": 1}
