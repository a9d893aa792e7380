"""A database connection blip (pg_terminate_backend of the server's connections) fails nothing:
the pool replaces a dead connection before a request uses it, and a waiting long poll keeps
waiting (its LISTEN connection reconnects) and answers correctly."""

import threading
import time

import pytest
import requests
from django.db import connection

from external_tasks import services
from tests.external_tasks.live import ROOT, database_url, free_port, running, uvicorn

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

WALTER = ("walter", "walter-password")
ALICE = ("alice", "alice-password")
LISTEN_QUERY = "LISTEN taskyard_external_tasks"
# The server's connections carry this name: the blip terminates them and nothing of this test's.
SERVER_NAME = "taskyard-blip-server"


@pytest.fixture
def server(transactional_db):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "tests.external_tasks.live_settings",
        "PYTHONPATH": str(ROOT),
        "LOG_LEVEL": "WARNING",
        "PG_OPTIONS": f"-c jit=off -c application_name={SERVER_NAME}",
    }

    def ready():
        requests.get(f"{base}/health/live", timeout=30)
        return True

    with running(uvicorn(port), env, ready=ready):
        yield base


def server_backends(where: str = "TRUE") -> list[int]:
    """The server's backends on the test database."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            f"AND application_name = %s AND {where}",
            [SERVER_NAME],
        )
        return [pid for (pid,) in cursor.fetchall()]


def terminate(pids) -> None:
    with connection.cursor() as cursor:
        for pid in pids:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])


def eventually(function, deadline_seconds: float = 20):
    deadline = time.monotonic() + deadline_seconds
    while not (value := function()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def listening() -> list[int]:
    return server_backends(f"query = '{LISTEN_QUERY}'")


def test_a_request_after_its_pooled_connection_died_answers_normally(server, admin_user):
    url = f"{server}/engine-rest/external-task/count"
    assert requests.get(url, auth=ALICE, timeout=30).json() == {"count": 0}
    pooled = eventually(server_backends)
    assert pooled
    terminate(pooled)
    for _ in range(3):  # every connection the pool held is dead: each request draws one
        response = requests.get(url, auth=ALICE, timeout=30)
        assert response.status_code == 200, response.text
        assert response.json() == {"count": 0}


def long_poll(base, topic: str, timeout_ms: int, results):
    body = {
        "workerId": "blip-worker",
        "maxTasks": 1,
        "asyncResponseTimeout": timeout_ms,
        "topics": [{"topicName": topic, "lockDuration": 10000}],
    }

    def run():
        response = requests.post(
            f"{base}/engine-rest/external-task/fetchAndLock", json=body, auth=WALTER, timeout=90
        )
        results.append((response.status_code, response.json()))

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_waiting_long_poll_survives_the_blip_and_gets_the_next_task(server, worker_user):
    results = []
    thread = long_poll(server, "blip", 60000, results)
    [listener] = eventually(listening)
    time.sleep(0.3)  # let the request park in the dispatcher (it holds its claim connection)
    terminate(server_backends())  # LISTEN, the dispatcher's connection, the pool's
    # The server listens again on a new connection, and the request is still waiting.
    assert eventually(lambda: [pid for pid in listening() if pid != listener])
    assert results == []
    [task] = services.create(worker_user, {"topicName": "blip"})
    thread.join(timeout=60)
    assert [(status, [t["id"] for t in tasks]) for status, tasks in results] == [(200, [task.id])]


def test_an_idle_long_poll_through_a_blip_answers_an_empty_list_not_a_503(server, worker_user):
    results = []
    thread = long_poll(server, "idle", 4000, results)
    [listener] = eventually(listening)
    time.sleep(0.3)
    terminate(server_backends())
    thread.join(timeout=60)
    assert results == [(200, [])]
