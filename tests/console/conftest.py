"""Console fixtures: logged-in browsers per role and quick row factories."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from external_tasks.models import ExternalTask
from jobs.models import Job

HTMX = {"HX-Request": "true"}


def make_job(**fields) -> Job:
    fields.setdefault("handler", "billing.tasks.charge")
    fields.setdefault("tenant_id", "acme")
    return Job.objects.create(**fields)


def make_task(**fields) -> ExternalTask:
    fields.setdefault("topic_name", "invoice")
    fields.setdefault("tenant_id", "acme")
    return ExternalTask.objects.create(**fields)


def run_batches() -> str:
    """Run the batch queue until nothing is left to run, as a job executor does."""
    out = StringIO()
    call_command("runjobs", "--once", "--queue", "batch", stdout=out, stderr=out)
    return out.getvalue()


def ago(**delta):
    return timezone.now() - timedelta(**delta)


def later(**delta):
    return timezone.now() + timedelta(**delta)


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin_client(admin_user):
    return _client(admin_user)


@pytest.fixture
def operator_client(operator_user):
    return _client(operator_user)


@pytest.fixture
def viewer_client(viewer_user):
    return _client(viewer_user)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Creating the role users hashes passwords; the production hasher is slow on purpose."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fresh_cache():
    """Overview and topics numbers are cached for seconds; every test starts counting anew."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def console_handlers_allowed(settings):
    """Jobs may only run handlers from configured modules; the console tests' live here."""
    executor = dict(getattr(settings, "TASKYARD_EXECUTOR", {}))
    executor["HANDLER_MODULES"] = [*executor.get("HANDLER_MODULES", []), "tests.console.handlers"]
    settings.TASKYARD_EXECUTOR = executor
