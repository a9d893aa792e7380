from datetime import timedelta

import pytest
from django.utils import timezone

from external_tasks.models import ExternalTask

URL = "/engine-rest/external-task"


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    # Every API call authenticates with HTTP Basic; the default hasher would dominate run time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def make_task(**fields) -> ExternalTask:
    """A task row; `locked_for` (seconds, negative = expired) sets worker and lock expiry."""
    locked_for = fields.pop("locked_for", None)
    if locked_for is not None:
        fields.setdefault("worker_id", "aWorkerId")
        fields["lock_expiration_time"] = timezone.now() + timedelta(seconds=locked_for)
    fields.setdefault("topic_name", "aTopic")
    return ExternalTask.objects.create(**fields)


def fetch_body(topic="aTopic", worker="aWorkerId", max_tasks=10, **topic_fields):
    return {
        "workerId": worker,
        "maxTasks": max_tasks,
        "topics": [{"topicName": topic, "lockDuration": 10000, **topic_fields}],
    }
