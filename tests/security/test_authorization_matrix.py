"""Who may call what, for every URL of the external-task faces (Camunda, Flowable, seed), the
engine endpoints, the schema and the metrics: one table, five callers.

- anonymous: 401 in the face's error format;
- worker accounts: the worker endpoints only (fetch, lock, complete, fail, ...); every query
  endpoint answers 403, so a worker cannot read tasks (and their variables) it did not fetch;
- viewers: read only;
- operators: read, work and operator actions (retries, priority, unlock);
- admins: everything, /metrics included (anyone else presenting a password: 401).
Permitted calls are made with valid bodies against a real row, and must succeed with the exact
status a client expects, so the table also proves that no permitted role is refused.
"""

import base64
from datetime import timedelta

import pytest
from django.urls import get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from external_tasks.models import ExternalTask
from tests.conftest import make_user

ET = "/engine-rest/external-task"
FJ = "/external-job-api"
SEED = "/api/external-jobs"
WORKER = "w1"
VIEW, WORK, OPERATE, ADMIN = "view", "work", "operate", "admin"

ALLOWED = {
    VIEW: {"viewer", "operator", "admin"},
    WORK: {"worker", "operator", "admin"},
    OPERATE: {"operator", "admin"},
    ADMIN: {"admin"},
}
ROLES = ("anonymous", "worker", "viewer", "operator", "admin")

# (method, path, body, status when permitted, who is permitted). {id} is a task of tenant acme
# locked by worker w1 (the callers' worker id); {free} is an unlocked one.
MATRIX = [
    ("get", ET, None, 200, VIEW),
    ("post", ET, {}, 200, VIEW),
    ("get", f"{ET}/count", None, 200, VIEW),
    ("post", f"{ET}/count", {}, 200, VIEW),
    ("get", f"{ET}/topic-names", None, 200, VIEW),
    ("get", f"{ET}/{{id}}", None, 200, VIEW),
    ("get", f"{ET}/{{id}}/errorDetails", None, 204, VIEW),
    (
        "post",
        f"{ET}/fetchAndLock",
        {"workerId": WORKER, "maxTasks": 1, "topics": [{"topicName": "t", "lockDuration": 1000}]},
        200,
        WORK,
    ),
    ("post", f"{ET}/create", {"topicName": "new", "tenantId": "acme"}, 200, WORK),
    ("post", f"{ET}/{{id}}/complete", {"workerId": WORKER}, 204, WORK),
    ("post", f"{ET}/{{id}}/failure", {"workerId": WORKER, "retries": 1}, 204, WORK),
    ("post", f"{ET}/{{id}}/bpmnError", {"workerId": WORKER, "errorCode": "E1"}, 204, WORK),
    ("post", f"{ET}/{{id}}/extendLock", {"workerId": WORKER, "newDuration": 5000}, 204, WORK),
    ("post", f"{ET}/{{free}}/lock", {"workerId": WORKER, "lockDuration": 5000}, 204, WORK),
    ("post", f"{ET}/{{id}}/unlock", None, 204, OPERATE),
    ("put", f"{ET}/{{id}}/retries", {"retries": 3}, 204, OPERATE),
    ("put", f"{ET}/{{id}}/priority", {"priority": 9}, 204, OPERATE),
    ("put", f"{ET}/retries", {"retries": 2, "externalTaskIds": ["{id}"]}, 204, OPERATE),
    ("post", f"{ET}/retries-async", {"retries": 2, "externalTaskIds": ["{id}"]}, 200, OPERATE),
    (
        "post",
        f"{FJ}/acquire/jobs",
        {"topic": "t", "lockDuration": "PT1M", "workerId": WORKER},
        200,
        WORK,
    ),
    ("post", f"{FJ}/acquire/jobs/{{id}}/complete", {"workerId": WORKER}, 204, WORK),
    ("post", f"{FJ}/acquire/jobs/{{id}}/bpmnError", {"workerId": WORKER}, 204, WORK),
    ("post", f"{FJ}/acquire/jobs/{{id}}/fail", {"workerId": WORKER}, 204, WORK),
    # Taskyard's jobs are all BPMN jobs: a permitted caller gets Flowable's 400.
    ("post", f"{FJ}/acquire/jobs/{{id}}/cmmnTerminate", {"workerId": WORKER}, 400, WORK),
    ("post", f"{FJ}/unacquire/jobs", {"workerId": WORKER}, 204, WORK),
    ("post", f"{FJ}/unacquire/jobs/{{id}}", {"workerId": WORKER}, 204, WORK),
    ("get", f"{FJ}/jobs", None, 200, VIEW),
    ("get", f"{FJ}/jobs/{{id}}", None, 200, VIEW),
    ("get", SEED, None, 200, VIEW),
    ("post", SEED, {"topic": "t", "lockDuration": "PT1M", "workerId": WORKER}, 200, WORK),
    ("post", f"{SEED}/{{id}}/complete", {"workerId": WORKER}, 204, WORK),
    ("post", f"{SEED}/{{id}}/fail", {"workerId": WORKER}, 204, WORK),
    ("post", f"{SEED}/{{id}}/bpmnError", {"workerId": WORKER}, 204, WORK),
    # A deployment endpoint: admins (or the token); refused Basic credentials all get the same
    # 401, so a right non-admin password is not told apart from a wrong one.
    ("get", "/metrics", None, 200, ADMIN),
]


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def client_for(role) -> APIClient:
    client = APIClient()
    if role != "anonymous":
        make_user(role, role, [] if role == "admin" else ["acme"])
        token = base64.b64encode(f"{role}:{role}-password".encode()).decode()
        client.credentials(HTTP_AUTHORIZATION=f"Basic {token}")
    return client


def rows() -> dict:
    locked = ExternalTask.objects.create(
        topic_name="t",
        tenant_id="acme",
        worker_id=WORKER,
        lock_expiration_time=timezone.now() + timedelta(minutes=5),
        variables={"secret": {"type": "String", "value": "s3cret"}},
    )
    free = ExternalTask.objects.create(topic_name="t2", tenant_id="acme")
    return {"id": locked.id, "free": free.id}


def fill(value, ids):
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    return value


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("method", "path", "body", "status", "permission"),
    MATRIX,
    ids=[f"{m.upper()} {p}" for m, p, *_ in MATRIX],
)
def test_each_role_gets_exactly_what_it_may(role, method, path, body, status, permission):
    ids = rows()
    client = client_for(role)
    url = fill(path, ids)
    response = getattr(client, method)(url, fill(body, ids), format="json")

    if role == "anonymous":
        expected = 401
    elif role in ALLOWED[permission]:
        expected = status
    elif url == "/metrics":
        expected = 401
    else:
        expected = 403
    assert response.status_code == expected, (role, method, url, response.content[:300])
    if expected in (401, 403):
        error = response.json()
        if url.startswith((FJ, SEED)):
            assert set(error) == {"message", "exception"}
        else:
            assert set(error) == {"type", "message"}
        # A refused caller changed nothing.
        assert ExternalTask.objects.filter(pk=ids["id"], worker_id=WORKER).exists()
        assert ExternalTask.objects.count() == 2


def test_the_matrix_covers_every_external_task_route():
    """A new route of these faces must be added to the table above."""
    routed = set()

    def walk(patterns, prefix=""):
        for entry in patterns:
            if hasattr(entry, "url_patterns"):
                walk(entry.url_patterns, prefix + str(entry.pattern))
            else:
                routed.add(prefix + str(entry.pattern))

    walk(get_resolver().url_patterns)
    faces = {r for r in routed if r.startswith(("engine-rest/external-task", "external-job-api"))}
    faces |= {r for r in routed if r.startswith("api/external-jobs")}
    covered = {path for _, path, *_ in MATRIX}

    def as_matrix_path(route):
        route = route.replace("<str:task_id>", "{id}").replace(
            "^(?:)/(?P<task_id>[^/]+)/", "/{id}/"
        )
        return "/" + route.rstrip("$")

    missing = set()
    for route in faces:
        path = as_matrix_path(route)
        if path not in covered and path.replace("{id}", "{free}") not in covered:
            missing.add(path)
    assert len(faces) >= 30
    assert not missing


@pytest.mark.django_db
@pytest.mark.parametrize("path", [ET, f"{ET}/count", f"{FJ}/jobs", SEED])
def test_a_worker_cannot_read_variables_through_query_endpoints(path):
    rows()
    response = client_for("worker").get(path)
    assert response.status_code == 403
    assert b"s3cret" not in response.content
