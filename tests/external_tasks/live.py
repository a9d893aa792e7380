"""A real ASGI server (uvicorn, in a subprocess) against the test database.

pytest-django's live_server is WSGI and threaded: it cannot show that a long-polling request
holds no thread or connection. The tests using this fixture are transactional, so the rows they
write are committed and visible to the server process.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    settings = connection.settings_dict
    if connection.vendor == "postgresql":
        user = settings.get("USER") or "postgres"
        password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
        host = settings.get("HOST") or "127.0.0.1"
        port = settings.get("PORT") or 5432
        return f"postgres://{user}{password}@{host}:{port}/{settings['NAME']}"
    return f"sqlite:///{settings['NAME']}"


class Server(str):
    """The server's base URL, carrying the uvicorn process id for resource checks."""

    pid: int

    def threads(self) -> int:
        status = Path(f"/proc/{self.pid}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("Threads:"))[8:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def asgi_server(django_db_setup, django_db_blocker):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "tests.external_tasks.live_settings",
        "PYTHONPATH": str(ROOT),
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "project.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
    )
    base = Server(f"http://127.0.0.1:{port}")
    base.pid = process.pid
    try:
        # The machine may be busy: allow a slow first answer (Django loads on first request).
        for _ in range(600):
            try:
                requests.get(f"{base}/engine-rest/version", timeout=30)
                break
            except requests.RequestException:
                if process.poll() is not None:
                    raise RuntimeError("uvicorn exited during startup") from None
                time.sleep(0.05)
        else:
            raise RuntimeError("uvicorn did not start")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
