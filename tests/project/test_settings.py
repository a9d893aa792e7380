import json
import os
import subprocess
import sys
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def settings_with(env_update):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(env_update)
    code = (
        "import json, django; from django.conf import settings; django.setup();"
        "db = settings.DATABASES['default'];"
        "print(json.dumps({'engine': db['ENGINE'], 'name': str(db['NAME']),"
        " 'options': db.get('OPTIONS', {}), 'debug': settings.DEBUG,"
        " 'hosts': settings.ALLOWED_HOSTS}, default=repr))"
    )
    env["DJANGO_SETTINGS_MODULE"] = "project.settings"
    output = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(output.stdout)


def test_without_database_url_the_embedded_sqlite_file_is_used():
    db = settings_with({})
    assert db["engine"] == "django.db.backends.sqlite3"
    assert db["name"].endswith("db.sqlite3")
    # Claims are serialised by taking the write lock at BEGIN.
    assert db["options"]["transaction_mode"] == "IMMEDIATE"


def test_database_url_switches_to_postgresql():
    db = settings_with({"DATABASE_URL": "postgres://u:p@db.example:5433/taskyard"})
    assert db["engine"] == "django.db.backends.postgresql"
    assert db["name"] == "taskyard"
    assert "transaction_mode" not in db["options"]


def test_debug_and_allowed_hosts_come_from_the_environment():
    db = settings_with({"DEBUG": "true", "ALLOWED_HOSTS": "a.example, b.example"})
    assert db["debug"] is True
    assert db["hosts"] == ["a.example", "b.example"]
    assert settings_with({})["debug"] is False


def test_suite_runs_on_the_database_the_environment_names(db):
    expected = "postgresql" if "postgres" in os.environ.get("DATABASE_URL", "") else "sqlite"
    assert connection.vendor == expected
