"""The history as a client reads it over HTTP: a real Camunda worker (camunda-external-task-client-
python3, unchanged) works tasks on a live server, then plain HTTP reads their external task log
(pycamunda has no history module, and the worker client reads no history)."""

import pytest
import requests
from camunda.external_task.external_task_worker import ExternalTaskWorker

from external_tasks import services
from tests.external_tasks.live import asgi_server  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

ALICE = ("alice", "alice-password")


def handler(task):
    if task.get_variable("action") == "complete":
        return task.complete({})
    return task.failure("Payment service down", "Traceback ...", 0, 0)


def test_history_of_tasks_a_real_worker_completed_and_failed(
    asgi_server,  # noqa: F811
    worker_user,
    admin_user,
):
    created = services.create(
        admin_user,
        [
            {"topicName": "payments", "variables": {"action": {"value": a}}, "tenantId": "acme"}
            for a in ("complete", "fail")
        ],
    )
    by_action = {t.variables["action"]["value"]: t.id for t in created}
    worker = ExternalTaskWorker(
        worker_id="python-worker",
        base_url=f"{asgi_server}/engine-rest",
        config={
            "auth_basic": {"username": "walter", "password": "walter-password"},
            "maxTasks": 1,
            "lockDuration": 10000,
            "asyncResponseTimeout": 2000,
            "sleepSeconds": 0,
        },
    )
    for _ in range(2):
        worker.fetch_and_execute("payments", handler)

    base = f"{asgi_server}/engine-rest/history/external-task-log"
    entries = requests.get(
        base, params={"sortBy": "timestamp", "sortOrder": "asc"}, auth=ALICE, timeout=5
    ).json()
    flags = {
        (e["externalTaskId"], name)
        for e in entries
        for name in ("creationLog", "failureLog", "successLog", "deletionLog")
        if e[name]
    }
    assert flags == {
        (by_action["complete"], "creationLog"),
        (by_action["fail"], "creationLog"),
        (by_action["complete"], "successLog"),
        (by_action["fail"], "failureLog"),
    }
    failure = next(e for e in entries if e["failureLog"])
    assert (failure["workerId"], failure["retries"], failure["errorMessage"]) == (
        "python-worker",
        0,
        "Payment service down",
    )
    details = requests.get(f"{base}/{failure['id']}/error-details", auth=ALICE, timeout=5)
    assert details.headers["Content-Type"].startswith("text/plain")
    assert details.text == "Traceback ..."
    count = requests.post(f"{base}/count", json={"failureLog": True}, auth=ALICE, timeout=5)
    assert count.json() == {"count": 1}
