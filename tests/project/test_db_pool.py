"""PostgreSQL connections come from a per-process pool (settings.pool_options)."""

import pytest
from django.db import connection
from psycopg_pool import ConnectionPool

from project.settings import pool_options

PG = {"ENGINE": "django.db.backends.postgresql", "CONN_MAX_AGE": 0}


def test_postgresql_gets_a_pool_with_the_configured_sizes(monkeypatch):
    monkeypatch.setenv("DB_POOL_MIN", "3")
    monkeypatch.setenv("DB_POOL_MAX", "12")
    monkeypatch.setenv("DB_POOL_TIMEOUT", "5")
    assert pool_options(PG) == {
        "pool": {
            "min_size": 3,
            "max_size": 12,
            "timeout": 5.0,
            "check": ConnectionPool.check_connection,
        }
    }


def test_default_pool_sizes(monkeypatch):
    for name in ("DB_POOL_MIN", "DB_POOL_MAX", "DB_POOL_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    assert pool_options(PG) == {
        "pool": {
            "min_size": 1,
            "max_size": 4,
            "timeout": 10.0,
            "check": ConnectionPool.check_connection,
        }
    }


@pytest.mark.parametrize(
    ("database", "max_size"),
    [
        ({**PG, "CONN_MAX_AGE": 60}, "10"),  # persistent connections instead (Django: not both)
        (PG, "0"),  # switched off
        ({"ENGINE": "django.db.backends.sqlite3", "CONN_MAX_AGE": 0}, "10"),
    ],
)
def test_no_pool(monkeypatch, database, max_size):
    monkeypatch.setenv("DB_POOL_MAX", max_size)
    assert pool_options(database) == {}


@pytest.mark.postgres
def test_the_suite_runs_on_pooled_connections(db):
    assert connection.pool is not None
