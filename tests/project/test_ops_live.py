"""The operations endpoints under the real server the guide deploys: uvicorn, ASGI, JSON logs.

The test client never runs the ASGI middleware chain the way uvicorn does; this checks the
request id, the health probes, /metrics and one JSON log line per request end to end.
"""

import collections
import contextlib
import http.client
import json
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.external_tasks.live import database_url, free_port, running, uvicorn


def json_environment(**env) -> dict:
    """The server's environment: the test database, JSON log lines at DEBUG, and `env`."""
    return {
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "DEBUG",
        **env,
    }


@pytest.fixture
def server(transactional_db, tmp_path):
    port = free_port()
    base, log_path = f"http://127.0.0.1:{port}", tmp_path / "server.log"
    env = json_environment(TASKYARD_METRICS_TOKEN="live-token")

    def ready():
        requests.get(f"{base}/health/live", timeout=30)
        return True

    with running(uvicorn(port), env, ready=ready, log_path=log_path):
        yield base, log_path


def json_lines(path: Path) -> list[dict]:
    lines = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # uvicorn's own lines are not ours
            lines.append(json.loads(line))
    return lines


def test_probes_metrics_and_json_request_logs_under_uvicorn(server):
    base, log_path = server
    ready = requests.get(f"{base}/health/ready", timeout=30)
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    request_id = ready.headers["X-Request-ID"]

    kept = requests.get(f"{base}/health/live", headers={"X-Request-ID": "proxy-42"}, timeout=30)
    assert kept.headers["X-Request-ID"] == "proxy-42"

    assert requests.get(f"{base}/metrics", timeout=30).status_code == 401
    scrape = requests.get(
        f"{base}/metrics", headers={"Authorization": "Bearer live-token"}, timeout=30
    )
    assert scrape.status_code == 200
    assert "taskyard_http_request_duration_seconds_count" in scrape.text

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [e for e in json_lines(log_path) if e.get("logger") == "taskyard.request"]
        if len(lines) >= 4:
            break
        time.sleep(0.05)
    by_id = {entry["request_id"]: entry for entry in lines}
    assert by_id[request_id]["path"] == "/health/ready"
    assert by_id[request_id]["status"] == 200
    assert by_id["proxy-42"]["face"] == "ops"
    assert [e["status"] for e in lines if e["path"] == "/metrics"] == [401, 200]


@pytest.fixture
def two_processes(transactional_db, tmp_path):
    """`manage.py serve --workers 2`, logging JSON lines with the process id of each request."""
    port = free_port()
    base, log_path = f"http://127.0.0.1:{port}", tmp_path / "server.log"
    argv = [sys.executable, "manage.py", "serve", "--port", str(port), "--workers", "2"]
    env = json_environment(TASKYARD_KEEPALIVE_REQUESTS="5")

    def ready():
        # Both processes are up once each has answered a probe on a connection of its own.
        requests.get(f"{base}/health/live", timeout=30)
        answered = [e for e in json_lines(log_path) if e.get("path") == "/health/live"]
        return len({entry["process"] for entry in answered}) == 2

    with running(argv, env, ready=ready, log_path=log_path):
        yield base, log_path


def test_workers_that_connect_at_once_end_up_served_by_both_processes(two_processes):
    """Eight clients connect at the same moment and keep their connections, as Camunda workers
    do: whichever process wakes first accepts them all. Recycling every 5th response lets the
    connections land again, mostly in the other, idle process."""
    base, log_path = two_processes
    before = len(json_lines(log_path))
    clients, rounds = 8, 40
    host, port = base.removeprefix("http://").split(":")
    connections = [http.client.HTTPConnection(host, int(port), timeout=30) for _ in range(clients)]
    for connection_ in connections:
        connection_.connect()
    statuses, closing = [], []

    def client(connection_):
        for _ in range(rounds):
            connection_.request("GET", "/health/live")
            response = connection_.getresponse()
            response.read()
            statuses.append(response.status)
            closing.append(response.getheader("Connection") == "close")
        connection_.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in connections]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * clients * rounds
    assert sum(closing) >= clients * rounds // 5 - 2  # every 5th response of each process

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        served = [e for e in json_lines(log_path)[before:] if e.get("path") == "/health/live"]
        if len(served) >= clients * rounds:
            break
        time.sleep(0.05)
    by_process = collections.Counter(entry["process"] for entry in served[-clients * rounds :])
    assert len(by_process) == 2, by_process
    assert min(by_process.values()) >= clients * rounds // 10, by_process
