"""Health probes: cheap, unauthenticated, and honest about the database."""

import pytest
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

from project import health


class Outage:
    """Points the default connection at a database that is not there, and back."""

    def __init__(self):
        self.saved = dict(connection.settings_dict)

    def begin(self):
        connection.close()
        if connection.vendor == "postgresql":
            connection.settings_dict.update(HOST="127.0.0.1", PORT="1")  # nothing listens there
            pool = connection.settings_dict["OPTIONS"].get("pool")
            if pool:
                # The pool keeps its connections to the real server: replace it by one for the
                # unreachable address that gives up quickly.
                options = {**connection.settings_dict["OPTIONS"], "pool": {**pool, "timeout": 1}}
                connection.settings_dict["OPTIONS"] = options
                connection.close_pool()
        else:
            connection.settings_dict["NAME"] = "/nonexistent-taskyard-dir/db.sqlite3"

    def end(self):
        connection.close()
        if connection.vendor == "postgresql":
            connection.close_pool()
        connection.settings_dict.clear()
        connection.settings_dict.update(self.saved)


@pytest.fixture
def outage(transactional_db):
    outage = Outage()
    yield outage
    outage.end()


def test_live_answers_ok_without_login(client):
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_ready_answers_ok_when_database_is_migrated(client, db):
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": {"ok": True}, "migrations": {"ok": True}},
    }


def test_health_endpoints_accept_head_and_refuse_post(client, db):
    assert client.head("/health/live").status_code == 200
    assert client.head("/health/ready").status_code == 200
    assert client.post("/health/ready").status_code == 405


def test_ready_fails_while_database_is_unreachable_and_recovers(client, outage):
    assert client.get("/health/ready").status_code == 200
    outage.begin()
    response = client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == {"ok": False, "error": "database unreachable"}
    # Nothing about the server leaks: no host, port, file name or driver message.
    assert "nonexistent" not in response.content.decode()
    assert "port" not in response.content.decode().lower()
    # Liveness does not depend on the database: restarting the process would not help.
    assert client.get("/health/live").status_code == 200

    outage.end()
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"


def test_metrics_stay_scrapeable_during_a_database_outage(client, outage, settings):
    from prometheus_client.parser import text_string_to_metric_families

    from project import metrics

    settings.TASKYARD_METRICS_PUBLIC = True
    settings.TASKYARD_METRICS_REFRESH_SECONDS = 0
    settings.TASKYARD_METRICS_FIRST_WAIT_SECONDS = None
    metrics.snapshots.invalidate()
    outage.begin()
    response = client.get("/metrics")
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    assert families["taskyard_backlog_up"].samples[0].value == 0
    assert "taskyard_http_request_duration_seconds" in families
    outage.end()
    response = client.get("/metrics")
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    assert families["taskyard_backlog_up"].samples[0].value == 1
    metrics.snapshots.invalidate()


def test_ready_fails_while_migrations_are_pending(client, db, monkeypatch):
    monkeypatch.setattr(health, "_migrations_applied", False)
    MigrationRecorder(connection).migration_qs.filter(app="jobs").delete()
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"] == {
        "database": {"ok": True},
        "migrations": {"ok": False, "error": "migrations not applied"},
    }
