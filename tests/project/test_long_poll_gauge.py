"""The long-poll waiter gauge counts the fetchAndLock requests that wait, per process, and what
a dead process counted goes away with it (multiprocess mode)."""

import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from external_tasks import services
from tests.external_tasks.live import ROOT, database_url, free_port, running, uvicorn

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

TOKEN = "gauge-token"
WALTER = ("walter", "walter-password")
WAITERS = re.compile(r'^taskyard_long_poll_waiters\{face="camunda"\} (\S+)$', re.MULTILINE)


@pytest.fixture(params=["single", "multiprocess"])
def server(request, transactional_db, tmp_path):
    """uvicorn against the test database; in multiprocess mode with PROMETHEUS_MULTIPROC_DIR,
    as several server processes on one host run it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "tests.external_tasks.live_settings",
        "PYTHONPATH": str(ROOT),
        "LOG_LEVEL": "WARNING",
        "TASKYARD_METRICS_TOKEN": TOKEN,
    }
    if request.param == "multiprocess":
        (tmp_path / "metrics").mkdir()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "metrics")

    def ready():
        requests.get(f"{base}/health/live", timeout=30)
        return True

    with running(uvicorn(port), env, ready=ready):
        yield base, env


def waiting(base) -> float:
    scrape = requests.get(
        f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    )
    assert scrape.status_code == 200
    found = WAITERS.findall(scrape.text)
    return float(found[0]) if found else 0.0


def eventually(base, expected: float) -> float:
    """The gauge once it shows `expected` (requests take a moment to reach their wait), or what
    it shows after 20 s."""
    deadline = time.monotonic() + 20
    while (value := waiting(base)) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def long_poll(base, results):
    body = {
        "workerId": "gauge-worker",
        "maxTasks": 1,
        "asyncResponseTimeout": 60000,
        "topics": [{"topicName": "gauge", "lockDuration": 10000}],
    }

    def run():
        response = requests.post(
            f"{base}/engine-rest/external-task/fetchAndLock", json=body, auth=WALTER, timeout=90
        )
        results.append((response.status_code, response.json()))

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_the_gauge_counts_waiting_long_polls_and_forgets_dead_processes(server, worker_user):
    base, env = server
    assert waiting(base) == 0
    results = []
    thread = long_poll(base, results)
    assert eventually(base, 1) == 1
    assert results == []  # still waiting

    if "PROMETHEUS_MULTIPROC_DIR" in env:
        # Another process on the host has a waiter of its own: the scrape adds it up. Then it
        # is killed (no chance to count down): its waiter must not be counted any longer.
        code = (
            "import sys, django; django.setup(); from project import metrics\n"
            "with metrics.long_poll_waiting(face='camunda'):\n"
            "    print('waiting', flush=True); sys.stdin.read()\n"
        )
        other = subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env={**os.environ, **env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert other.stdout.readline() == "waiting\n"
            assert waiting(base) == 2
        finally:
            other.send_signal(signal.SIGKILL)
            other.wait()
        assert waiting(base) == 1

    [task] = services.create(worker_user, {"topicName": "gauge"})
    thread.join(timeout=60)
    assert results == [(200, [{**results[0][1][0], "id": task.id}])]
    assert eventually(base, 0) == 0
