"""A real ASGI server (uvicorn, in a subprocess) against the test database.

pytest-django's live_server is WSGI and threaded: it cannot show that a long-polling request
holds no thread or connection. The tests using this fixture are transactional, so the rows they
write are committed and visible to the server process.
"""

import contextlib
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


@contextlib.contextmanager
def running(argv: list[str], env: dict, *, ready, log_path: Path | None = None):
    """Run the server `argv` from the repository root, with `env` added to this process's
    environment, for the duration of the block; first wait until `ready()` is true (it may raise
    requests' errors while the server starts). Yields the process. Its stderr goes to
    `log_path` when given (and is quoted if the server exits before it is ready), else to ours."""
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(open(log_path, "w")) if log_path else None
        process = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **env}, stderr=log)
    try:
        # The machine may be busy: allow a slow first answer (Django loads on first request).
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(requests.RequestException):
                if ready():
                    break
            if process.poll() is not None:
                output = log_path.read_text() if log_path else ""
                raise RuntimeError(f"the server exited during startup\n{output}")
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def uvicorn(port: int) -> list[str]:
    """The command line of one uvicorn process serving project.asgi on `port`."""
    return [
        *(sys.executable, "-m", "uvicorn", "project.asgi:application"),
        *("--host", "127.0.0.1", "--port", str(port)),
        *("--log-level", "warning", "--no-access-log"),
    ]


@pytest.fixture(scope="module")
def asgi_server(django_db_setup, django_db_blocker):
    port = free_port()
    env = {
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "tests.external_tasks.live_settings",
        "PYTHONPATH": str(ROOT),
        "LOG_LEVEL": "WARNING",
    }
    base = Server(f"http://127.0.0.1:{port}")

    def ready():
        requests.get(f"{base}/engine-rest/version", timeout=30)
        return True

    with running(uvicorn(port), env, ready=ready) as process:
        base.pid = process.pid
        yield base
