"""Property-based fuzzing of every documented endpoint with schemathesis, bounded in examples:
whatever the input, no face answers 5xx, and every answer matches the OpenAPI schema served at
/api/schema/, status codes included. Rows in every state are seeded first so that answers carry
real values and nulls, not only empty lists. (Driven from one test rather than schemathesis'
pytest plugin, which does not support pytest 9 yet.)"""

import base64
import json

import pytest
import schemathesis
from django.utils import timezone
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from external_tasks import services
from external_tasks.models import ExternalTask
from jobs import services as jobs_services
from jobs.models import Job, JobDefinition
from project import batches
from project.models import Batch, Incident
from tests.conftest import make_user

# Bounded so the whole run stays well under a minute; the faces documented here in full get
# more examples than the others (which have their own tests).
EXAMPLES_PER_OPERATION = 15
EXAMPLES_PER_OTHER_OPERATION = 4
# Faces whose every error status is documented: their answers must also use only those.
DOCUMENTED_STATUSES = (
    "/engine-rest/external-task",
    "/engine-rest/history",
    "/engine-rest/job",
    "/engine-rest/incident",
    "/engine-rest/batch",
    "/external-job-api",
    "/api/external-jobs",
)


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    # Every fuzzed call authenticates with HTTP Basic; the default hasher would dominate.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def seed_rows(user):
    """Rows in every state, so list and detail answers carry real values (and nulls) for the
    schema check, not only empty lists."""
    variables = {
        "amount": {"value": 5, "type": "Integer"},
        "note": {"value": None, "type": "Null"},
        "doc": {"value": '{"a": [1, 2]}', "type": "Json"},
        "when": {"value": "2024-01-02T03:04:05.000+0000", "type": "Date"},
    }
    services.create(
        user,
        [
            {"topicName": "string", "variables": variables, "tenantId": "acme"},
            {"topicName": "string", "priority": 7, "businessKey": "order-1"},
            {"topicName": "failing", "retries": 1, "activityId": "act", "processInstanceId": "p"},
            {"topicName": "held", "extensionProperties": {"k": "v"}},
        ],
    )
    for topic in ("failing", "held"):
        services.fetch_and_lock(user, "fuzz-worker", 1, [services.TopicRequest(topic, 60_000)])
    definition = JobDefinition.objects.create(activity_id="act", job_type="async-continuation")
    Job.objects.create(job_definition=definition, due_date=timezone.now(), tenant_id="acme")
    Job.objects.create(retries=0, exception_message="boom", exception_stacktrace="Traceback")
    # Job log entries (created, failed) for the history endpoints to answer.
    jobs_services.create_jobs(user, [{"handler": "jobs.demo_handlers.always_fails"}])
    task = ExternalTask.objects.get(topic_name="failing")
    services.handle_failure(
        user,
        task.id,
        "fuzz-worker",
        error_message="boom",
        error_details="Traceback: boom",
        retries=0,
        retry_timeout_ms=0,
    )
    # The failure opened an incident; one annotated, so answers carry a value there too.
    Incident.objects.update(annotation="vendor down")
    # A running batch (its jobs not run) and an ended one, for the batch resources.
    for ended in (False, True):
        batch = batches.start(
            user, "set-job-retries", Job.objects.filter(retries=0), {"retries": 1, "dueDate": None}
        )
        if ended:
            Batch.objects.filter(id=batch.id).update(end_time=timezone.now(), outcome="completed")


def api_schema():
    from drf_spectacular.generators import SchemaGenerator

    raw = SchemaGenerator().get_schema(request=None, public=True)
    return schemathesis.openapi.from_dict(json.loads(json.dumps(raw, default=str)))


def fuzzer(operation, base_url, headers):
    """A hypothesis test calling one operation with generated input and checking each answer."""
    checks = [not_a_server_error, response_schema_conformance]
    examples = EXAMPLES_PER_OTHER_OPERATION
    if operation.path.startswith(DOCUMENTED_STATUSES):
        checks.append(status_code_conformance)
        examples = EXAMPLES_PER_OPERATION

    @given(case=operation.as_strategy())
    @hypothesis_settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        case.call_and_validate(base_url=base_url, headers=headers, checks=checks)

    return check


@pytest.mark.django_db(transaction=True)
def test_no_input_makes_an_endpoint_fail_or_break_its_schema(live_server):
    seed_rows(make_user("fuzzer", "admin"))
    headers = {"Authorization": "Basic " + base64.b64encode(b"fuzzer:fuzzer-password").decode()}
    failures, operations = [], 0
    for result in api_schema().get_all_operations():
        operation = result.ok()
        operations += 1
        check = fuzzer(operation, live_server.url, headers)
        try:
            check()
        except (Exception, BaseExceptionGroup) as error:  # collect every broken operation
            failures.append(f"{operation.label}: {str(error)[:1500]}")
    assert operations > 20
    assert not failures, f"{len(failures)} operations failed:\n\n" + "\n\n".join(failures)
