"""A worker whose own lock ran out may still finish its task while nobody else has locked it
since, as in Camunda (which compares the worker id only); once another worker holds the task,
the first one is refused with Camunda's words, and the task is finished once, by its holder."""

import pytest
from django.utils import timezone

from external_tasks.models import ExternalTask, ExternalTaskLog
from tests.external_tasks.conftest import URL, fetch_body, make_task

FLOWABLE = "/external-job-api/acquire/jobs"

BODIES = {
    "complete": {"variables": {"done": {"value": True}}},
    "failure": {"errorMessage": "slow handler", "retries": 2, "retryTimeout": 0},
    "bpmnError": {"errorCode": "LATE", "errorMessage": "too late"},
}
EVENTS = {"complete": "completed", "failure": "failed", "bpmnError": "bpmn-error"}
REFUSALS = {
    "complete": "External Task {id} cannot be completed by worker 'slow'",
    "failure": "Failure of External Task {id} cannot be reported by worker 'slow'",
    "bpmnError": "Bpmn error of External Task {id} cannot be reported by worker 'slow'",
    "extendLock": "The lock of the External Task {id} cannot be extended by worker 'slow'",
}


def fetch(api, worker):
    body = fetch_body(worker=worker, max_tasks=1)
    return [t["id"] for t in api.post(URL + "/fetchAndLock", body, format="json").json()]


def expire(task_id):
    ExternalTask.objects.filter(pk=task_id).update(lock_expiration_time=timezone.now())


def post(api, task_id, action, worker, body):
    return api.post(f"{URL}/{task_id}/{action}", {"workerId": worker, **body}, format="json")


@pytest.mark.parametrize("action", ["complete", "failure", "bpmnError"])
def test_a_worker_finishes_after_its_own_lock_expired_while_nobody_relocked(worker_api, action):
    task = make_task()
    assert fetch(worker_api, "slow") == [task.id]
    expire(task.id)
    response = post(worker_api, task.id, action, "slow", BODIES[action])
    assert response.status_code == 204, response.content
    entry = ExternalTaskLog.objects.get(task_id=task.id, event=EVENTS[action])
    assert entry.worker_id == "slow"
    if action == "failure":
        task.refresh_from_db()
        assert (task.retries, task.error_message) == (2, "slow handler")
    else:
        assert not ExternalTask.objects.filter(pk=task.id).exists()


@pytest.mark.parametrize("action", ["complete", "failure", "bpmnError", "extendLock"])
def test_once_another_worker_relocked_the_first_one_gets_400(worker_api, action):
    task = make_task()
    assert fetch(worker_api, "slow") == [task.id]
    expire(task.id)
    assert fetch(worker_api, "fast") == [task.id]
    body = {**BODIES.get(action, {}), "newDuration": 1000}
    response = post(worker_api, task.id, action, "slow", body)
    assert response.status_code == 400
    assert response.json() == {
        "type": "BadUserRequestException",
        "message": REFUSALS[action].format(id=task.id) + ". It is locked by worker 'fast'.",
    }
    task.refresh_from_db()
    assert task.worker_id == "fast" and task.locked and task.retries is None
    assert not ExternalTaskLog.objects.filter(task_id=task.id, worker_id="slow").exclude(
        event="locked"
    )
    # The new holder finishes it, once.
    assert post(worker_api, task.id, "complete", "fast", {}).status_code == 204
    assert ExternalTaskLog.objects.filter(task_id=task.id, event="completed").count() == 1


def test_the_first_worker_is_refused_even_after_the_second_ones_lock_expired(worker_api):
    task = make_task()
    fetch(worker_api, "slow")
    expire(task.id)
    fetch(worker_api, "fast")
    expire(task.id)
    response = post(worker_api, task.id, "complete", "slow", {})
    assert response.status_code == 400
    assert "It is locked by worker 'fast'." in response.json()["message"]
    assert ExternalTask.objects.filter(pk=task.id).exists()


def test_a_task_locked_by_name_on_the_lock_endpoint_counts_as_relocked(worker_api):
    task = make_task()
    fetch(worker_api, "slow")
    expire(task.id)
    lock = {"workerId": "fast", "lockDuration": 60000}
    assert worker_api.post(f"{URL}/{task.id}/lock", lock, format="json").status_code == 204
    assert post(worker_api, task.id, "failure", "slow", BODIES["failure"]).status_code == 400


def test_flowable_worker_finishes_after_its_lock_expired_and_is_refused_in_flowables_words(
    worker_api,
):
    first, second = make_task(), make_task()
    acquire = {"topic": "aTopic", "workerId": "slow", "lockDuration": "PT1M", "numberOfTasks": 2}
    acquired = worker_api.post(FLOWABLE, acquire, format="json").json()
    assert sorted(job["id"] for job in acquired) == sorted([first.id, second.id])
    expire(first.id)
    expire(second.id)
    done = worker_api.post(f"{FLOWABLE}/{first.id}/complete", {"workerId": "slow"}, format="json")
    assert done.status_code == 204
    assert fetch(worker_api, "fast") == [second.id]
    refused = worker_api.post(
        f"{FLOWABLE}/{second.id}/complete", {"workerId": "slow"}, format="json"
    )
    assert refused.status_code == 400
    assert refused.json() == {
        "message": "Bad request",
        "exception": "slow does not hold a lock on the requested job",
    }
