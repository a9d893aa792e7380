"""Access and tenant isolation for the job API and the console, table-driven like the external
task matrix: anonymous callers get 401 (API) or the login page (console), worker accounts get
403 on everything here (they only use the worker endpoints), viewers read, operators act,
admins delete. Tenant acme's users never see or change tenant globex's jobs and tasks."""

import base64
import csv
import io

import pytest
from django.test import Client
from rest_framework.test import APIClient

from external_tasks.models import ExternalTask
from jobs.models import Job, JobDefinition
from project.models import AuditEntry
from tests.conftest import make_user
from tests.console.conftest import run_batches

JOB = "/engine-rest/job"
DEF = "/engine-rest/job-definition"
VIEW, OPERATE, DELETE = "view", "operate", "delete"
ALLOWED = {
    VIEW: {"viewer", "operator", "admin"},
    OPERATE: {"operator", "admin"},
    DELETE: {"admin"},
}
ROLES = ("anonymous", "worker", "viewer", "operator", "admin")

JOB_MATRIX = [
    ("get", JOB, None, VIEW),
    ("post", JOB, {}, VIEW),
    ("get", f"{JOB}/count", None, VIEW),
    ("post", f"{JOB}/count", {}, VIEW),
    ("get", f"{JOB}/{{job}}", None, VIEW),
    ("get", f"{JOB}/{{job}}/stacktrace", None, VIEW),
    ("put", f"{JOB}/{{job}}/retries", {"retries": 2}, OPERATE),
    ("put", f"{JOB}/{{job}}/suspended", {"suspended": True}, OPERATE),
    ("put", f"{JOB}/{{job}}/duedate", {"duedate": None}, OPERATE),
    ("post", f"{JOB}/{{job}}/duedate/recalculate", None, OPERATE),
    ("put", f"{JOB}/{{job}}/priority", {"priority": 3}, OPERATE),
    ("post", f"{JOB}/retries", {"retries": 1, "jobIds": ["{job}"]}, OPERATE),
    ("put", f"{JOB}/suspended", {"suspended": True, "jobDefinitionId": "{definition}"}, OPERATE),
    ("post", f"{JOB}/create", {"handler": "h", "tenantId": "acme"}, OPERATE),
    ("delete", f"{JOB}/{{job}}", None, DELETE),
    ("get", DEF, None, VIEW),
    ("post", DEF, {}, VIEW),
    ("get", f"{DEF}/count", None, VIEW),
    ("get", f"{DEF}/{{definition}}", None, VIEW),
    ("put", f"{DEF}/{{definition}}/suspended", {"suspended": True}, OPERATE),
    ("put", f"{DEF}/suspended", {"suspended": True, "jobDefinitionId": "{definition}"}, OPERATE),
    ("put", f"{DEF}/{{definition}}/jobPriority", {"priority": 4}, OPERATE),
    ("put", f"{DEF}/{{definition}}/retries", {"retries": 2}, OPERATE),
]


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def api_client(role) -> APIClient:
    client = APIClient()
    if role != "anonymous":
        make_user(role, role, [] if role == "admin" else ["acme"])
        token = base64.b64encode(f"{role}:{role}-password".encode()).decode()
        client.credentials(HTTP_AUTHORIZATION=f"Basic {token}")
    return client


def console_client(role) -> Client:
    client = Client()
    if role != "anonymous":
        client.force_login(make_user(role, role, [] if role == "admin" else ["acme"]))
    return client


def job_rows() -> dict:
    definition = JobDefinition.objects.create(activity_id="act", tenant_id="acme")
    job = Job.objects.create(
        job_definition=definition, tenant_id="acme", handler="h", exception_stacktrace="trace"
    )
    return {"job": job.id, "definition": definition.id}


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
    ("method", "path", "body", "permission"),
    JOB_MATRIX,
    ids=[f"{m.upper()} {p}" for m, p, *_ in JOB_MATRIX],
)
def test_job_api_roles(role, method, path, body, permission):
    ids = job_rows()
    url = fill(path, ids)
    response = getattr(api_client(role), method)(url, fill(body, ids), format="json")
    if role == "anonymous":
        assert response.status_code == 401
    elif role in ALLOWED[permission]:
        # Permitted: past the permission check (the job API's own tests cover each status).
        assert response.status_code not in (401, 403), (role, url)
        assert response.status_code < 500, (role, url, response.content[:300])
    else:
        assert response.status_code == 403, (role, url)
        assert set(response.json()) == {"type", "message"}
        assert Job.objects.filter(pk=ids["job"], retries=3, suspended=False).exists()


# ---------------------------------------------------------------------------------------------
# Console

CONSOLE_PAGES = [
    "/",
    "/topics/",
    "/failures/",
    "/audit/",
    "/search/?q=x",
    "/jobs/",
    "/jobs/export/",
    "/external-tasks/",
    "/external-tasks/export/",
    "/external-tasks/export/?format=json",
]


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("page", CONSOLE_PAGES)
def test_console_pages_by_role(role, page):
    response = console_client(role).get(page)
    if role == "anonymous":
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")
    elif role == "worker":
        assert response.status_code == 403
    else:
        assert response.status_code == 200


CONSOLE_ACTIONS = [
    ("/external-tasks/actions/", {"action": "set_retries", "retries": "2"}, OPERATE),
    ("/external-tasks/actions/", {"action": "delete"}, DELETE),
    ("/jobs/actions/", {"action": "set_retries", "retries": "2"}, OPERATE),
    ("/jobs/actions/", {"action": "delete"}, DELETE),
]


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("url", "data", "permission"), CONSOLE_ACTIONS)
def test_console_actions_by_role(role, url, data, permission):
    task = ExternalTask.objects.create(topic_name="t", tenant_id="acme", retries=0)
    job = Job.objects.create(tenant_id="acme", handler="h", retries=0)
    target = task.id if url.startswith("/external") else job.id
    post = {**data, "scope": "ids", "ids": [target], "confirmed": "1"}
    response = console_client(role).post(url, post)
    if role == "anonymous":
        assert response.status_code == 302 and response["Location"].startswith("/login/")
    elif role in ALLOWED[permission]:
        assert response.status_code in (200, 302)
        assert AuditEntry.objects.count() == 1
        return
    else:
        assert response.status_code == 403
    assert not AuditEntry.objects.exists()
    assert ExternalTask.objects.filter(pk=task.id, retries=0).exists()
    assert Job.objects.filter(pk=job.id, retries=0).exists()


# ---------------------------------------------------------------------------------------------
# Tenant isolation of the job API and the console


@pytest.fixture
def two_tenants(db):
    rows = {}
    for tenant in ("acme", "globex"):
        rows[f"job-{tenant}"] = Job.objects.create(
            tenant_id=tenant, handler=f"handler.{tenant}", retries=0, exception_message="boom"
        )
        rows[f"task-{tenant}"] = ExternalTask.objects.create(
            topic_name=f"topic-{tenant}", tenant_id=tenant, retries=0, error_message="boom"
        )
    return rows


@pytest.mark.parametrize(
    "path", [f"{JOB}/{{id}}", f"{JOB}/{{id}}/stacktrace", f"{JOB}/{{id}}/retries"]
)
def test_another_tenants_job_is_not_found(operator_api, two_tenants, path):
    url = path.format(id=two_tenants["job-globex"].id)
    method = operator_api.put if path.endswith("retries") else operator_api.get
    response = method(url, {"retries": 5}, format="json")
    assert response.status_code == 404
    assert Job.objects.get(pk=two_tenants["job-globex"].id).retries == 0


def test_job_queries_and_counts_hide_other_tenants(viewer_api, two_tenants):
    assert {j["id"] for j in viewer_api.get(JOB).json()} == {two_tenants["job-acme"].id}
    assert viewer_api.get(f"{JOB}/count").json() == {"count": 1}
    assert viewer_api.get(JOB, {"tenantIdIn": "globex"}).json() == []


def test_job_bulk_retries_by_query_touches_only_own_tenant(operator_api, two_tenants):
    response = operator_api.post(
        f"{JOB}/retries", {"retries": 4, "jobQuery": {"withException": True}}, format="json"
    )
    assert response.status_code == 200
    run_batches()  # POST /job/retries answers a batch; the batch queue changes the rows
    assert Job.objects.get(pk=two_tenants["job-acme"].id).retries == 4
    assert Job.objects.get(pk=two_tenants["job-globex"].id).retries == 0


@pytest.fixture
def carol(viewer_user):
    client = Client()
    client.force_login(viewer_user)
    return client


@pytest.fixture
def bob(operator_user):
    client = Client()
    client.force_login(operator_user)
    return client


@pytest.mark.parametrize(
    "page", ["/jobs/", "/external-tasks/", "/failures/", "/topics/", "/", "/search/?q=boom"]
)
def test_console_pages_never_show_another_tenants_rows(carol, two_tenants, page):
    text = carol.get(page).content.decode()
    for key in ("job-globex", "task-globex"):
        assert two_tenants[key].id not in text
    assert "topic-globex" not in text
    assert "handler.globex" not in text


@pytest.mark.parametrize("kind", ["jobs", "external-tasks"])
def test_another_tenants_detail_page_is_not_found(carol, two_tenants, kind):
    key = "job-globex" if kind == "jobs" else "task-globex"
    assert carol.get(f"/{kind}/{two_tenants[key].id}/").status_code == 404


@pytest.mark.parametrize("kind", ["jobs", "external-tasks"])
def test_exports_contain_only_own_tenants_rows(carol, two_tenants, kind):
    response = carol.get(f"/{kind}/export/")
    assert response.status_code == 200
    content = b"".join(response.streaming_content).decode()
    rows = list(csv.reader(io.StringIO(content)))[1:]
    prefix = "job" if kind == "jobs" else "task"
    assert {r[0] for r in rows} == {two_tenants[f"{prefix}-acme"].id}


@pytest.mark.parametrize("url", ["/external-tasks/actions/", "/jobs/actions/"])
def test_console_bulk_action_by_query_touches_only_own_tenant(bob, two_tenants, url):
    response = bob.post(
        url,
        {
            "action": "set_retries",
            "retries": "6",
            "scope": "matching",
            "query": "",
            "confirmed": "1",
        },
    )
    assert response.status_code in (200, 302)
    run_batches()
    model, prefix = (Job, "job") if url.startswith("/jobs") else (ExternalTask, "task")
    assert model.objects.get(pk=two_tenants[f"{prefix}-acme"].id).retries == 6
    assert model.objects.get(pk=two_tenants[f"{prefix}-globex"].id).retries == 0
    entry = AuditEntry.objects.get()
    assert entry.count == 1
    assert entry.target_ids == [two_tenants[f"{prefix}-acme"].id]
