"""Log forging: no field of any logger can start a line of its own, in either log format.

The server tests send hostile text the way an outside tester did (a URL with %0d%0a, a worker's
error message) to `manage.py serve` and read the log file it wrote.
"""

import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from external_tasks import services
from project.logs import JsonFormatter, PlainFormatter, escape
from tests.external_tasks.live import ROOT, database_url, free_port, running

FORGED = "2026-01-01 00:00:00,000 CRITICAL taskyard.request [forged] admin wiped the database"
# CR LF and the forged line, then NUL, an ANSI "clear screen", NEL (C1), DEL, the Unicode line
# separator and a right-to-left override.
HOSTILE = "\r\n" + FORGED + "\x00\x1b[2J\x85\x7f\u2028\u202e"
ESCAPED = "\\r\\n" + FORGED + "\\x00\\x1b[2J\\x85\\x7f\\u2028\\u202e"
# Characters no line of the log may contain raw (the line feed ends lines, so only it is left).
# A JSON body may not carry NUL (refused with a 400, like Postgres would): the rest of it.
HOSTILE_FIELD = HOSTILE.replace("\x00", "")
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e]")
PLAIN_LINE = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+ \[[^\]\s]+\] "
)


def record(message="%s", *args, exc_info=None, **extra) -> logging.LogRecord:
    logger = logging.getLogger("taskyard.test")
    made = logger.makeRecord(
        logger.name, logging.WARNING, __file__, 1, message, args, exc_info, extra=extra
    )
    made.request_id = "-"
    return made


def raised(message: str):
    try:
        raise ValueError(message)
    except ValueError:
        return sys.exc_info()


# -- the formatters ----------------------------------------------------------------------------


def test_escape_writes_every_control_character_as_text():
    assert escape("a\r\nb\tc\x00d\x1b[0m\x7f\x85\x9b\u2028\u2029\u202e\u2066\ud800") == (
        "a\\r\\nb\\tc\\x00d\\x1b[0m\\x7f\\x85\\x9b\\u2028\\u2029\\u202e\\u2066\\ud800"
    )
    assert escape("ünïcödé, emoji 🚀 and \\n stay as they are") == (
        "ünïcödé, emoji 🚀 and \\n stay as they are"
    )


def test_plain_format_escapes_the_message_its_arguments_and_every_field():
    formatter = PlainFormatter("%(levelname)s [%(request_id)s] %(message)s path=%(path)s")
    line = formatter.format(record("GET %s 404", "/a" + HOSTILE, path=f"/p{HOSTILE}"))
    assert "\n" not in line and not RAW_CONTROL.search(line)
    assert line == f"WARNING [-] GET /a{ESCAPED} 404 path=/p{ESCAPED}"


def test_plain_format_puts_a_traceback_on_marked_continuation_lines():
    formatter = PlainFormatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
    made = record("job failed", exc_info=raised(f"bad input\n{FORGED}\r"))
    first, *rest = formatter.format(made).split("\n")
    assert PLAIN_LINE.match(first) and first.endswith("job failed")
    assert rest[0] == "  | Traceback (most recent call last):"
    assert all(line.startswith("  | ") for line in rest)
    assert rest[-2:] == ["  | ValueError: bad input", f"  | {FORGED}\\r"]
    # Another handler's formatter still gets the traceback as Python wrote it.
    assert made.exc_text is None
    exception = json.loads(JsonFormatter().format(made))["exception"]
    assert exception.endswith(f"ValueError: bad input\n{FORGED}\r")


def test_json_format_escapes_what_json_leaves_raw_and_keeps_the_text():
    line = JsonFormatter().format(record("GET %s", "/a" + HOSTILE, path="/p" + HOSTILE + "\ud800"))
    assert "\n" not in line and not RAW_CONTROL.search(line)
    line.encode("utf-8")  # a lone surrogate would make the stream drop the whole record
    entry = json.loads(line)
    assert entry["message"] == "GET /a" + HOSTILE
    assert entry["path"] == "/p" + HOSTILE + "\ud800"


@pytest.mark.parametrize("logger", ["django.server", "django.request"])
def test_django_loggers_go_through_the_escaping_handler(logger):
    """Django's default config gave django.server (and django, under DEBUG) handlers of their
    own that wrote messages raw."""
    env = os.environ | {"DJANGO_SETTINGS_MODULE": "project.settings", "DEBUG": "true"}
    code = (
        "import django, logging, sys; django.setup(); "
        f"logging.getLogger({logger!r}).warning('GET %s', sys.stdin.read())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        input="/x" + HOSTILE,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = result.stderr.rstrip("\n").split("\n")
    assert len(lines) == 1, lines  # once: not also through a handler of Django's
    assert PLAIN_LINE.match(lines[0]) and lines[0].endswith(f"GET /x{ESCAPED}")


# -- the server --------------------------------------------------------------------------------


@pytest.fixture(params=["plain", "json"])
def server(request, transactional_db, tmp_path):
    """`manage.py serve` (uvicorn's access log on) writing its log, in either format, to a file."""
    port = free_port()
    base, log_path = f"http://127.0.0.1:{port}", tmp_path / "server.log"
    argv = [sys.executable, "manage.py", "serve", "--port", str(port), "--access-log"]
    argv += ["--log-level", "info"]
    env = {
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "tests.external_tasks.live_settings",
        "PYTHONPATH": str(ROOT),
        "LOG_FORMAT": request.param,
        "LOG_LEVEL": "INFO",
    }

    def ready():
        requests.get(f"{base}/health/live", timeout=30)
        return True

    with running(argv, env, ready=ready, log_path=log_path):
        yield request.param, base, log_path


def written(log_path: Path, *fragments: str) -> str:
    """The log once every fragment is in it (the server writes as it answers)."""
    deadline = time.monotonic() + 20
    while True:
        text = log_path.read_bytes().decode("utf-8")
        if all(fragment in text for fragment in fragments) or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_hostile_url_and_worker_error_cannot_forge_a_server_log_line(server, worker_user):
    fmt, base, log_path = server
    path = "/engine-rest/job/a" + quote(HOSTILE, safe="")
    # A path with a NUL is refused (404) before authentication; its log line is what matters.
    assert requests.get(base + path, timeout=30).status_code == 404

    # A body field a worker sends, logged with the task's outcome.
    auth = ("walter", "walter-password")
    services.create(worker_user, {"topicName": "forge"})
    fetch = {
        "workerId": "w1",
        "maxTasks": 1,
        "topics": [{"topicName": "forge", "lockDuration": 60000}],
    }
    [task] = requests.post(
        f"{base}/engine-rest/external-task/fetchAndLock", json=fetch, auth=auth, timeout=30
    ).json()
    failure = {
        "workerId": "w1",
        "errorMessage": "down" + HOSTILE_FIELD,
        "retries": 1,
        "retryTimeout": 0,
    }
    answer = requests.post(
        f"{base}/engine-rest/external-task/{task['id']}/failure",
        json=failure,
        auth=auth,
        timeout=30,
    )
    assert answer.status_code == 204

    marker = f"task {task['id']} failed"
    text = written(log_path, "/engine-rest/job/a", marker)
    assert "\r" not in text and not RAW_CONTROL.search(text)
    lines = text.rstrip("\n").split("\n")
    assert not [line for line in lines if line.startswith(FORGED)]
    if fmt == "plain":
        # Every line is one of ours: a record's first line, or a continuation of its traceback.
        assert [line for line in lines if not (PLAIN_LINE.match(line) or line[:4] == "  | ")] == []
        [request_line] = [
            line for line in lines if " taskyard.request [" in line and "/engine-rest/job/a" in line
        ]
        assert f"GET /engine-rest/job/a{ESCAPED} 404 " in request_line
        assert [line for line in lines if line.endswith(marker)]
    else:
        # Every line is a JSON object (uvicorn's own lines included), and the text survives.
        entries = [json.loads(line) for line in lines]
        [request_entry] = [e for e in entries if e.get("path", "").startswith("/engine-rest/job/a")]
        assert request_entry["path"] == "/engine-rest/job/a" + HOSTILE
        assert request_entry["status"] == 404
        [outcome] = [e for e in entries if e.get("message") == marker]
        assert outcome["error"] == "down" + HOSTILE_FIELD
        assert [e for e in entries if e["logger"] == "uvicorn.access"]
