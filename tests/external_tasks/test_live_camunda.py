"""Real clients and long polling against a live ASGI server (see tests/external_tasks/live.py)."""

import threading
import time

import pytest
import requests
from camunda.external_task.external_task_worker import ExternalTaskWorker
from django.conf import settings
from django.db import connection

from external_tasks import services
from external_tasks.models import ExternalTask, ExternalTaskLog
from tests.external_tasks.live import asgi_server  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

WALTER = ("walter", "walter-password")
ALICE = ("alice", "alice-password")


def handler(task):
    action = task.get_variable("action")
    if action == "complete":
        return task.complete({"result": "done", "amount": 42}, {"local": True})
    if action == "fail":
        return task.failure("Payment service down", "Traceback ...", 3, 60000)
    return task.bpmn_error("CARD_DECLINED", "card declined", {"reason": "expired"})


def test_camunda_python_client_completes_fails_and_raises_bpmn_errors(
    asgi_server,  # noqa: F811
    worker_user,
    admin_user,
):
    user = admin_user
    created = services.create(
        user,
        [
            {"topicName": "payments", "variables": {"action": {"value": a}}, "tenantId": "acme"}
            for a in ("complete", "fail", "bpmn")
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
    for _ in range(3):
        worker.fetch_and_execute("payments", handler)

    query = requests.get(f"{asgi_server}/engine-rest/external-task", auth=ALICE, timeout=5).json()
    # Completed and BPMN-errored tasks left the runtime table; the failed one waits for retry.
    assert [t["id"] for t in query] == [by_action["fail"]]
    failed = query[0]
    assert failed["retries"] == 3
    assert failed["errorMessage"] == "Payment service down"
    assert failed["workerId"] == "python-worker"
    details = requests.get(
        f"{asgi_server}/engine-rest/external-task/{by_action['fail']}/errorDetails",
        auth=ALICE,
        timeout=5,
    )
    assert details.text == "Traceback ..."
    # The retry timeout keeps it away from workers for now.
    fetch = {
        "workerId": "other",
        "maxTasks": 5,
        "topics": [{"topicName": "payments", "lockDuration": 1000}],
    }
    again = requests.post(
        f"{asgi_server}/engine-rest/external-task/fetchAndLock", json=fetch, auth=WALTER, timeout=5
    )
    assert again.json() == []

    completed = ExternalTaskLog.objects.get(task_id=by_action["complete"], event="completed")
    assert completed.worker_id == "python-worker"
    assert completed.variables["result"]["value"] == "done"
    assert completed.variables["amount"] == {"type": "Integer", "value": 42, "valueInfo": {}}
    bpmn = ExternalTaskLog.objects.get(task_id=by_action["bpmn"], event="bpmn-error")
    assert (bpmn.error_code, bpmn.error_message) == ("CARD_DECLINED", "card declined")
    assert bpmn.variables["reason"]["value"] == "expired"


def _fetch_in_thread(base, body, results):
    def run():
        started = time.monotonic()
        response = requests.post(
            f"{base}/engine-rest/external-task/fetchAndLock", json=body, auth=WALTER, timeout=60
        )
        results.append((response.status_code, response.json(), time.monotonic() - started))

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_long_poll_wakes_when_a_matching_task_is_created(asgi_server, worker_user):  # noqa: F811
    body = {
        "workerId": "waiter",
        "maxTasks": 1,
        "asyncResponseTimeout": 30000,
        "topics": [{"topicName": "wake-me", "lockDuration": 10000}],
    }
    results = []
    thread = _fetch_in_thread(asgi_server, body, results)
    time.sleep(0.5)  # let the request reach the server and start waiting
    assert results == []
    # Created in this process: the server learns of it only through the database (NOTIFY on
    # PostgreSQL, polling on SQLite), as with a producer on another host.
    [task] = services.create(worker_user, {"topicName": "wake-me"})
    thread.join(timeout=40)
    [(status, tasks, elapsed)] = results
    assert status == 200
    assert [t["id"] for t in tasks] == [task.id]
    # Far sooner than the 30 s timeout and the 60 s re-check interval of the live settings.
    assert elapsed < 10


def test_long_poll_times_out_with_an_empty_list(asgi_server, worker_user):  # noqa: F811
    body = {
        "workerId": "waiter",
        "maxTasks": 1,
        "asyncResponseTimeout": 500,
        "topics": [{"topicName": "nothing-here", "lockDuration": 10000}],
    }
    results = []
    _fetch_in_thread(asgi_server, body, results).join(timeout=20)
    assert [(status, tasks) for status, tasks, _ in results] == [(200, [])]


def _connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


@pytest.mark.postgres
def test_fifty_waiting_fetches_do_not_hold_fifty_connections(
    asgi_server,  # noqa: F811
    worker_user,
):
    body = {
        "workerId": "waiter",
        "maxTasks": 1,
        "asyncResponseTimeout": 15000,
        "topics": [{"topicName": "crowd", "lockDuration": 10000}],
    }
    results = []
    # Connections already open (this test's, and those earlier tests of this process left in
    # the pool): the fifty waiters are measured against them.
    before = _connections()
    threads = [_fetch_in_thread(asgi_server, body, results) for _ in range(50)]
    # All fifty are parked within a few seconds (the first attempts are over), however busy the
    # machine: wait for the connections to settle, no longer than 10 s.
    time.sleep(2)
    pool = settings.DATABASES["default"].get("OPTIONS", {}).get("pool") or {}
    limit = before + 2 + pool.get("max_size", 0)
    for _ in range(50):
        connections_in_use = _connections()
        if connections_in_use <= limit:
            break
        time.sleep(0.2)
    threads_in_use = asgi_server.threads()
    still_waiting = 50 - len(results)
    [task] = services.create(worker_user, {"topicName": "crowd"})
    for thread in threads:
        thread.join(timeout=30)
    assert still_waiting == 50
    # No connection per waiter: at most the server's one LISTEN connection, the dispatcher's, and
    # the connection pool growing to its max_size (the first attempts borrowed from it; it keeps
    # them open for later requests), whatever the number of waiters.
    assert connections_in_use <= limit
    # Parked requests hold no thread either: the event loop, the LISTEN thread and a small pool.
    assert threads_in_use < 20
    assert len(results) == 50 and {status for status, _, _ in results} == {200}
    winners = [tasks for _, tasks, _ in results if tasks]
    assert [[t["id"] for t in tasks] for tasks in winners] == [[task.id]]
    assert ExternalTask.objects.get(pk=task.id).worker_id == "waiter"
