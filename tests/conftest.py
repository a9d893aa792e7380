"""Shared fixtures: real users in each role, API clients speaking HTTP Basic like Camunda's."""

import base64
import os

import pytest
from django.core.management import call_command
from django.db import connection
from rest_framework.test import APIClient


def _serialized_rollback(item) -> bool:
    marker = item.get_closest_marker("django_db")
    return bool(marker and marker.kwargs.get("serialized_rollback"))


def _transactional(item) -> bool:
    marker = item.get_closest_marker("django_db")
    fixtures = getattr(item, "fixturenames", ())
    return (
        bool(marker and (marker.kwargs.get("transaction") or marker.kwargs.get("reset_sequences")))
        or "live_server" in fixtures
        or "transactional_db" in fixtures
    )


@pytest.hookimpl(trylast=True)  # after pytest-django has put transactional tests last
def pytest_collection_modifyitems(config, items):
    from django.conf import settings

    # serialized_rollback restores the migrations' rows (content types, role groups) by primary
    # key. A transactional test without it flushes and lets post_migrate recreate content types
    # under new keys, so a serialized test after it fails on a unique constraint: run the
    # serialized tests first among the transactional ones.
    first = next((i for i, item in enumerate(items) if _transactional(item)), len(items))
    serialized = [item for item in items[first:] if _serialized_rollback(item)]
    others = [item for item in items[first:] if not _serialized_rollback(item)]
    items[first:] = serialized + others

    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" in engine:
        return
    skip = pytest.mark.skip(reason="requires PostgreSQL (DATABASE_URL=postgres://...)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def fresh_login_throttle():
    """The login throttle's counters live in a cache and verified passwords in a per-process
    dict; neither may carry one test's failures into the next."""
    from django.conf import settings
    from django.core.cache import caches

    from project import backends

    caches[settings.LOGIN_THROTTLE_CACHE].clear()
    backends._VERIFIED.clear()
    yield
    caches[settings.LOGIN_THROTTLE_CACHE].clear()
    backends._VERIFIED.clear()


def make_user(username, role, tenants=()):
    from django.contrib.auth.models import Group

    from project.tenancy import ROLES

    # Transactional tests (live servers, concurrency) flush every table afterwards, the role
    # groups the data migration created included; put them back for whoever runs next.
    for name in ROLES:
        Group.objects.get_or_create(name=name)
    args = [username, "--role", role, "--password", f"{username}-password"]
    for tenant in tenants:
        args += ["--tenant", tenant]
    with open(os.devnull, "w") as quiet:
        call_command("create_user", *args, stdout=quiet, stderr=quiet)
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username=username)


@pytest.fixture
def admin_user(db):
    return make_user("alice", "admin")


@pytest.fixture
def operator_user(db):
    return make_user("bob", "operator", ["acme"])


@pytest.fixture
def viewer_user(db):
    return make_user("carol", "viewer", ["acme"])


@pytest.fixture
def worker_user(db):
    return make_user("walter", "worker", ["acme"])


def basic_client(user) -> APIClient:
    client = APIClient()
    token = base64.b64encode(f"{user.username}:{user.username}-password".encode()).decode()
    client.credentials(HTTP_AUTHORIZATION=f"Basic {token}")
    return client


@pytest.fixture
def admin_api(admin_user):
    return basic_client(admin_user)


@pytest.fixture
def operator_api(operator_user):
    return basic_client(operator_user)


@pytest.fixture
def viewer_api(viewer_user):
    return basic_client(viewer_user)


@pytest.fixture
def worker_api(worker_user):
    return basic_client(worker_user)


@pytest.fixture
def is_postgres():
    return connection.vendor == "postgresql"
