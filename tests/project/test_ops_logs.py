"""Request ids and structured logs: the id in the header, in the request line, on errors."""

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.decorators import login_not_required
from django.test import AsyncClient, Client
from django.urls import include, path

from project.logs import JsonFormatter, RequestIdFilter


@login_not_required
def boom(request):
    raise RuntimeError("handler exploded")


# This module doubles as a URLconf for the error test: the real routes plus a view that fails.
urlpatterns = [
    path("boom/", boom),
    path("engine-rest/boom", boom),
    path("", include("project.urls")),
]
handler500 = "project.errors.server_error"


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def request_lines(caplog):
    return [r for r in caplog.records if r.name == "taskyard.request"]


def test_response_carries_a_request_id_that_the_log_line_repeats(client, db, caplog):
    with caplog.at_level(logging.DEBUG, logger="taskyard.request"):
        response = client.get("/health/ready")
    request_id = response["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    [line] = request_lines(caplog)
    assert line.request_id == request_id
    assert (line.method, line.path, line.status, line.face) == ("GET", "/health/ready", 200, "ops")
    assert line.duration_ms >= 0


def test_each_request_gets_its_own_id(client, db):
    assert client.get("/health/live")["X-Request-ID"] != client.get("/health/live")["X-Request-ID"]


def test_request_id_from_the_load_balancer_is_kept(client, db, caplog):
    with caplog.at_level(logging.DEBUG, logger="taskyard.request"):
        response = client.get("/health/live", HTTP_X_REQUEST_ID="lb-1234.abc")
    assert response["X-Request-ID"] == "lb-1234.abc"
    assert request_lines(caplog)[0].request_id == "lb-1234.abc"


def test_a_request_id_that_could_forge_log_lines_is_replaced(client, db):
    response = client.get("/health/live", HTTP_X_REQUEST_ID="evil\nFAKE LINE")
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


def test_api_request_line_names_face_status_and_user(viewer_api, caplog):
    with caplog.at_level(logging.INFO, logger="taskyard.request"):
        viewer_api.get("/engine-rest/version")
    [line] = request_lines(caplog)
    assert (line.face, line.status, line.user, line.levelname) == ("camunda", 200, "carol", "INFO")


def test_client_errors_are_logged_once_as_warnings(client, db, caplog):
    with caplog.at_level(logging.INFO):
        response = client.get("/engine-rest/version")
    assert response.status_code == 401
    [line] = request_lines(caplog)
    assert line.levelname == "WARNING" and line.status == 401
    # Django's own "Unauthorized" line would repeat it without the id.
    assert not [r for r in caplog.records if r.name == "django.request"]


@pytest.mark.urls(__name__)
def test_server_error_log_carries_the_request_id(db, caplog):
    client = Client(raise_request_exception=False)
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.INFO):
        response = client.get("/boom/")
    assert response.status_code == 500
    request_id = response["X-Request-ID"]
    [error] = [r for r in caplog.records if r.name == "django.request"]
    assert error.request_id == request_id
    assert error.exc_info and "handler exploded" in str(error.exc_info[1])
    [line] = request_lines(caplog)
    assert line.levelname == "ERROR" and line.request_id == request_id


@pytest.mark.urls(__name__)
def test_server_error_answers_quote_the_request_id(db):
    client = Client(raise_request_exception=False)
    api = client.get("/engine-rest/boom")
    assert api.status_code == 500
    assert api.json() == {
        "type": "RestException",
        "message": "Internal server error; the incident has been logged. "
        f"Request id: {api['X-Request-ID']}.",
    }
    page = client.get("/boom/")
    assert page.status_code == 500
    assert f"Request id: {page['X-Request-ID']}." in page.content.decode()


def test_async_requests_get_an_id_too(db):
    response = async_to_sync(AsyncClient().get)("/health/live")
    assert response.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


def test_json_formatter_writes_one_object_with_the_extras(client, db, caplog):
    with caplog.at_level(logging.INFO, logger="taskyard.request"):
        client.get("/", HTTP_X_REQUEST_ID="abc-1")
    [line] = request_lines(caplog)
    entry = json.loads(JsonFormatter().format(line))
    assert entry["request_id"] == "abc-1"
    assert entry["logger"] == "taskyard.request"
    assert entry["status"] == 302 and entry["face"] == "console" and entry["path"] == "/"
    assert entry["time"].endswith("+00:00")
    assert "\n" not in JsonFormatter().format(line)


def test_json_formatter_includes_the_traceback(caplog):
    logger = logging.getLogger("taskyard.test")
    with caplog.at_level(logging.ERROR, logger="taskyard.test"):
        try:
            raise ValueError("bad value")
        except ValueError:
            logger.exception("it failed", extra={"job_id": "j1"})
    entry = json.loads(JsonFormatter().format(caplog.records[-1]))
    assert entry["job_id"] == "j1"
    assert "ValueError: bad value" in entry["exception"]
    assert entry["request_id"] is None


def test_log_format_json_setting_switches_the_console_handler():
    root = Path(__file__).resolve().parents[2]
    env = os.environ | {"LOG_FORMAT": "json", "DJANGO_SETTINGS_MODULE": "project.settings"}
    code = (
        "import django, logging; django.setup(); "
        "logging.getLogger('taskyard.worker').warning('hello', extra={'task_id': 't1'})"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, check=True
    )
    entry = json.loads(result.stderr.strip().splitlines()[-1])
    assert entry["message"] == "hello"
    assert entry["task_id"] == "t1"
    assert entry["level"] == "WARNING"
    assert entry["request_id"] is None
