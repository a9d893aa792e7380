"""Existence by id: for a user of acme, the id of a globex job, job definition or external task
answers exactly like an id nobody uses (same status, same headers, same body once the id
itself is set aside) on every id-taking path of the three faces and the console. Otherwise
"404 here, 400 there" tells which ids another tenant has."""

import base64
import re
import uuid
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from external_tasks.models import ExternalTask, ExternalTaskLog
from jobs.models import Job, JobDefinition, JobLog
from project import audit
from project.models import Batch
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

ET = "/engine-rest/external-task"
JOB = "/engine-rest/job"
JD = "/engine-rest/job-definition"
FJ = "/external-job-api"
SEED = "/api/external-jobs"
BATCH = "/engine-rest/batch"
HISTORY_BATCH = "/engine-rest/history/batch"
HANDLER = "tests.jobs.handlers.succeed"


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def acme(db):
    """An operator of acme: may view, operate and work, so every path gets past its role check
    to the lookup of the id."""
    return make_user("bob", "operator", ["acme"])


@pytest.fixture
def globex(db):
    """globex's rows, in every state a path might look at: a failed timer job of a job
    definition, a task locked by worker w1, a finished task and a deleted job (log only)."""
    definition = JobDefinition.objects.create(
        tenant_id="globex", activity_id="charge", job_configuration="DURATION: PT5M"
    )
    job = Job.objects.create(
        handler=HANDLER,
        tenant_id="globex",
        job_definition=definition,
        type=Job.Type.TIMER,
        retries=1,
        exception_message="card declined",
        exception_stacktrace="Traceback: card declined",
        due_date=timezone.now() + timedelta(hours=1),
    )
    task = ExternalTask.objects.create(
        topic_name="invoice",
        tenant_id="globex",
        worker_id="w1",
        lock_expiration_time=timezone.now() + timedelta(minutes=5),
        error_message="failed once",
        error_details="details of globex",
    )
    finished = str(uuid.uuid4())
    ExternalTaskLog.objects.create(
        task_id=finished, event="completed", topic_name="invoice", tenant_id="globex"
    )
    gone = str(uuid.uuid4())
    JobLog.objects.create(job_id=gone, event="deleted", handler=HANDLER, tenant_id="globex")
    # A running batch over globex's rows (its audit entry names the tenant) and an ended one.
    batches = {}
    for name, end in (("batch", None), ("ended-batch", timezone.now())):
        entry = audit.record(None, "job", "set_retries", tenants=["globex"], count=1)
        batches[name] = Batch.objects.create(
            id=str(uuid.uuid4()),
            type="set-job-retries",
            target_type="job",
            tenant_id="globex",
            total_rows=1,
            total_jobs=1,
            start_time=timezone.now(),
            end_time=end,
            audit_entry=entry,
        ).pk
    return {
        **batches,
        "job": job.pk,
        "definition": definition.pk,
        "task": task.pk,
        "finished-task": finished,
        "deleted-job": gone,
    }


def basic(user) -> Client:
    token = base64.b64encode(f"{user.username}:{user.username}-password".encode()).decode()
    return Client(headers={"authorization": f"Basic {token}"})


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# Per request, fresh: CSRF tokens are masked anew on every page and exports are stamped.
_VOLATILE = [
    (re.compile(r'(csrfmiddlewaretoken" value=")[^"]+'), r"\1…"),
    (re.compile(r'("X-CSRFToken": ")[^"]+'), r"\1…"),
    (re.compile(r"\d{8}-\d{6}"), "<stamp>"),
    (re.compile(r'(name="as_of" value=")[^"]+'), r"\1…"),
]


def answer(response, the_id: str) -> tuple:
    """What the client can observe, with the id it sent replaced by a placeholder."""
    body = b"".join(response.streaming_content) if response.streaming else response.content
    text = body.decode("utf-8", "replace").replace(the_id, "<ID>")
    headers = {}
    for name, value in response.headers.items():
        if name.lower() in ("content-length", "x-request-id"):
            # The body is compared instead; a request id is new on every request.
            continue
        headers[name.lower()] = value.replace(the_id, "<ID>")
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
        headers = {k: pattern.sub(replacement, v) for k, v in headers.items()}
    context = response.context
    messages = [str(m) for m in context["messages"]] if context and "messages" in context else []
    messages = [m.replace(the_id, "<ID>") for m in messages]
    chain = [
        (url.replace(the_id, "<ID>"), code) for url, code in getattr(response, "redirect_chain", ())
    ]
    return response.status_code, headers, text, messages, chain


def _call(client, method, path, body, follow=False):
    if method == "get":
        return client.get(path, body or {}, follow=follow)
    if body is not None and not isinstance(body, dict | list):
        raise TypeError(body)
    if method == "post_form":
        return client.post(path, body, follow=follow)
    return getattr(client, method)(
        path, body if body is not None else {}, content_type="application/json", follow=follow
    )


def assert_same_answer(new_client, method, path_of, body_of, globex_id, follow=False):
    """The path answers the globex id exactly as it answers a fresh, unused id (each from a
    new client, so no flash message of one shows up on the other's page)."""
    unknown = str(uuid.uuid4())
    assert len(unknown) == len(globex_id)
    seen = {}
    for label, the_id in (("globex", globex_id), ("unknown", unknown)):
        response = _call(new_client(), method, path_of(the_id), body_of(the_id), follow)
        assert response.status_code < 500, (label, response.content[:300])
        seen[label] = answer(response, the_id)
    assert seen["globex"] == seen["unknown"]
    return seen["unknown"]


def _worker(body=None):
    return lambda _id: {"workerId": "w1", **(body or {})}


# (method, path for an id, body for an id, which globex row)
REST_PATHS = [
    # Camunda: jobs
    ("get", lambda i: f"{JOB}/{i}", None, "job"),
    ("get", lambda i: f"{JOB}/{i}", None, "deleted-job"),
    ("delete", lambda i: f"{JOB}/{i}", None, "job"),
    ("get", lambda i: f"{JOB}/{i}/stacktrace", None, "job"),
    ("put", lambda i: f"{JOB}/{i}/retries", lambda _: {"retries": 3}, "job"),
    ("put", lambda i: f"{JOB}/{i}/priority", lambda _: {"priority": 5}, "job"),
    ("put", lambda i: f"{JOB}/{i}/suspended", lambda _: {"suspended": True}, "job"),
    (
        "put",
        lambda i: f"{JOB}/{i}/duedate",
        lambda _: {"duedate": "2031-01-01T00:00:00.000+0000"},
        "job",
    ),
    ("post", lambda i: f"{JOB}/{i}/duedate/recalculate", None, "job"),
    ("post", lambda i: f"{JOB}/{i}/execute", None, "job"),
    ("post", lambda _: f"{JOB}/retries", lambda i: {"retries": 2, "jobIds": [i]}, "job"),
    ("get", lambda i: f"{JOB}?jobIds={i}", None, "job"),
    ("get", lambda i: f"{JOB}/count?jobDefinitionId={i}", None, "definition"),
    ("post", lambda _: f"{JOB}", lambda i: {"jobIds": [i]}, "job"),
    (
        "put",
        lambda _: f"{JOB}/suspended",
        lambda i: {"jobDefinitionId": i, "suspended": True},
        "definition",
    ),
    (
        "post",
        lambda _: f"{JOB}/create",
        lambda i: {"handler": HANDLER, "jobDefinitionId": i},
        "definition",
    ),
    # Camunda: job definitions
    ("get", lambda i: f"{JD}/{i}", None, "definition"),
    ("put", lambda i: f"{JD}/{i}/retries", lambda _: {"retries": 3}, "definition"),
    ("put", lambda i: f"{JD}/{i}/jobPriority", lambda _: {"priority": 5}, "definition"),
    (
        "put",
        lambda i: f"{JD}/{i}/jobPriority",
        lambda _: {"priority": 5, "includeJobs": True},
        "definition",
    ),
    ("put", lambda i: f"{JD}/{i}/suspended", lambda _: {"suspended": True}, "definition"),
    (
        "put",
        lambda i: f"{JD}/{i}/suspended",
        lambda _: {"suspended": True, "includeJobs": True},
        "definition",
    ),
    ("get", lambda i: f"{JD}?jobDefinitionId={i}", None, "definition"),
    # Camunda: external tasks
    ("get", lambda i: f"{ET}/{i}", None, "task"),
    ("get", lambda i: f"{ET}/{i}", None, "finished-task"),
    ("get", lambda i: f"{ET}/{i}/errorDetails", None, "task"),
    ("post", lambda i: f"{ET}/{i}/complete", _worker(), "task"),
    ("post", lambda i: f"{ET}/{i}/failure", _worker({"errorMessage": "x", "retries": 1}), "task"),
    ("post", lambda i: f"{ET}/{i}/bpmnError", _worker({"errorCode": "E"}), "task"),
    ("post", lambda i: f"{ET}/{i}/extendLock", _worker({"newDuration": 1000}), "task"),
    ("post", lambda i: f"{ET}/{i}/lock", _worker({"lockDuration": 1000}), "task"),
    ("post", lambda i: f"{ET}/{i}/unlock", None, "task"),
    ("put", lambda i: f"{ET}/{i}/retries", lambda _: {"retries": 2}, "task"),
    ("put", lambda i: f"{ET}/{i}/priority", lambda _: {"priority": 2}, "task"),
    (
        "put",
        lambda _: f"{ET}/retries",
        lambda i: {"retries": 2, "externalTaskIds": [i]},
        "task",
    ),
    (
        "post",
        lambda _: f"{ET}/retries-async",
        lambda i: {"retries": 2, "externalTaskIds": [i]},
        "task",
    ),
    ("get", lambda i: f"{ET}?externalTaskId={i}", None, "task"),
    ("get", lambda i: f"{ET}/count?externalTaskIdIn={i}", None, "task"),
    ("post", lambda _: f"{ET}/create", lambda i: {"topicName": "t", "id": i}, "task"),
    ("post", lambda _: f"{ET}/create", lambda i: {"topicName": "t", "id": i}, "finished-task"),
    (
        "post",
        lambda _: f"{ET}/create",
        lambda i: [{"topicName": "t"}, {"topicName": "t", "id": i, "tenantId": "acme"}],
        "task",
    ),
    # Batches
    ("get", lambda i: f"{BATCH}/{i}", None, "batch"),
    ("get", lambda i: f"{BATCH}/{i}", None, "ended-batch"),
    ("put", lambda i: f"{BATCH}/{i}/suspended", lambda _: {"suspended": True}, "batch"),
    ("delete", lambda i: f"{BATCH}/{i}", None, "batch"),
    ("get", lambda i: f"{BATCH}?batchId={i}", None, "batch"),
    ("get", lambda i: f"{BATCH}/count?batchId={i}", None, "batch"),
    ("get", lambda i: f"{BATCH}/statistics?batchId={i}", None, "batch"),
    ("get", lambda i: f"{HISTORY_BATCH}/{i}", None, "ended-batch"),
    ("get", lambda i: f"{HISTORY_BATCH}?batchId={i}", None, "ended-batch"),
    ("get", lambda i: f"{HISTORY_BATCH}/count?batchId={i}", None, "ended-batch"),
    # Flowable
    ("get", lambda i: f"{FJ}/jobs/{i}", None, "task"),
    ("post", lambda i: f"{FJ}/acquire/jobs/{i}/complete", _worker(), "task"),
    ("post", lambda i: f"{FJ}/acquire/jobs/{i}/fail", _worker({"errorMessage": "x"}), "task"),
    ("post", lambda i: f"{FJ}/acquire/jobs/{i}/bpmnError", _worker({"errorCode": "E"}), "task"),
    ("post", lambda i: f"{FJ}/acquire/jobs/{i}/cmmnTerminate", _worker(), "task"),
    ("post", lambda i: f"{FJ}/unacquire/jobs/{i}", _worker(), "task"),
    ("get", lambda i: f"{FJ}/jobs?id={i}", None, "task"),
    # seed
    ("post", lambda i: f"{SEED}/{i}/complete", _worker(), "task"),
    ("post", lambda i: f"{SEED}/{i}/fail", _worker({"errorMessage": "x"}), "task"),
    ("post", lambda i: f"{SEED}/{i}/bpmnError", _worker({"errorCode": "E"}), "task"),
    ("get", lambda i: f"{SEED}?id={i}", None, "task"),
]


@pytest.mark.parametrize(
    ("method", "path_of", "body_of", "row"),
    REST_PATHS,
    ids=[f"{m} {p('{id}')} [{row}]" for m, p, _, row in REST_PATHS],
)
def test_rest_paths_answer_another_tenants_id_like_an_unknown_one(
    acme, globex, method, path_of, body_of, row
):
    before = globex_state()
    assert_same_answer(
        lambda: basic(acme), method, path_of, body_of or (lambda _: None), globex[row]
    )
    assert globex_state() == before


def test_an_unknown_id_answers_404_in_each_faces_format(acme, globex):
    """The answers compared above are the faces' own 'not found' answers, not some other error
    that both ids happened to share."""
    client = basic(acme)
    missing = str(uuid.uuid4())
    camunda = client.get(f"{ET}/{missing}")
    assert camunda.status_code == 404
    assert camunda.json() == {
        "type": "InvalidRequestException",
        "message": f"External task with id {missing} does not exist",
    }
    assert client.get(f"{JOB}/{missing}/stacktrace").status_code == 404
    assert client.put(f"{JD}/{missing}/retries", {"retries": 1}, "application/json").status_code
    flowable = client.get(f"{FJ}/jobs/{missing}")
    assert flowable.status_code == 404 and set(flowable.json()) == {"message", "exception"}
    seed = client.post(f"{SEED}/{missing}/complete", {"workerId": "w1"}, "application/json")
    assert seed.status_code == 404


def test_creating_a_task_with_a_chosen_id_is_refused_for_users_of_some_tenants(acme, globex):
    """Whatever the id (unused, acme's own, globex's), the answer is the same refusal: a user
    who cannot see every tenant's rows could otherwise probe them through the collision."""
    client = basic(acme)
    own = ExternalTask.objects.create(topic_name="invoice", tenant_id="acme").pk
    answers = set()
    for the_id in (str(uuid.uuid4()), own, globex["task"]):
        response = client.post(
            f"{ET}/create", {"topicName": "t", "id": the_id}, content_type="application/json"
        )
        assert response.status_code == 400
        answers.add(response.content.replace(the_id.encode(), b"<ID>"))
    assert len(answers) == 1
    assert b"id" in answers.pop()
    assert ExternalTask.objects.filter(topic_name="t").count() == 0


def test_admins_still_choose_ids_and_hear_of_collisions(globex, db):
    admin = basic(make_user("alice", "admin"))
    chosen = admin.post(
        f"{ET}/create", {"topicName": "t", "id": "order-17"}, content_type="application/json"
    )
    assert chosen.status_code == 200 and chosen.json()[0]["id"] == "order-17"
    again = admin.post(
        f"{ET}/create", {"topicName": "t", "id": globex["task"]}, content_type="application/json"
    )
    assert again.status_code == 400
    assert "already exists" in again.json()["message"]


def globex_state():
    return (
        list(Job.objects.filter(tenant_id="globex").values()),
        list(JobDefinition.objects.filter(tenant_id="globex").values()),
        list(ExternalTask.objects.filter(tenant_id="globex").values()),
        ExternalTaskLog.objects.filter(tenant_id="globex").count(),
        JobLog.objects.filter(tenant_id="globex").count(),
        list(Batch.objects.filter(tenant_id="globex").values()),
    )


# ---------------------------------------------------------------------------------------------
# The console


CONSOLE_PATHS = [
    ("get", lambda i: f"/jobs/{i}/", None, "job"),
    ("get", lambda i: f"/jobs/{i}/", None, "deleted-job"),
    ("get", lambda i: f"/external-tasks/{i}/", None, "task"),
    ("get", lambda i: f"/external-tasks/{i}/", None, "finished-task"),
    ("get", lambda i: f"/search/?q={i}", None, "job"),
    ("get", lambda i: f"/search/?q={i}", None, "task"),
    ("get", lambda i: f"/search/?q={i}", None, "definition"),
    ("get", lambda i: f"/jobs/?q={i}", None, "job"),
    ("get", lambda i: f"/jobs/?jobDefinitionId={i}", None, "definition"),
    ("get", lambda i: f"/external-tasks/?q={i}", None, "task"),
    ("get", lambda i: f"/jobs/export/?q={i}", None, "job"),
    ("get", lambda i: f"/external-tasks/export/?q={i}&format=json", None, "task"),
    ("get", lambda i: f"/audit/?target={i}", None, "job"),
    (
        "post_form",
        lambda i: f"/jobs/definitions/{i}/action/",
        lambda _: {"action": "suspend", "next": "/jobs/"},
        "definition",
    ),
    (
        "post_form",
        lambda i: f"/jobs/definitions/{i}/action/",
        lambda _: {"action": "set_priority", "priority": "3", "next": "/jobs/"},
        "definition",
    ),
]
for _kind, _row in (("jobs", "job"), ("external-tasks", "task")):
    for _action, _values in (
        ("suspend", {}),
        ("set_retries", {"retries": "2"}),
        ("set_priority", {"priority": "2"}),
        ("unlock", {}),
    ):
        for _confirmed in ("", "1"):
            CONSOLE_PATHS.append(
                (
                    "post_form",
                    lambda _, k=_kind: f"/{k}/actions/",
                    lambda i, a=_action, v=_values, c=_confirmed: {
                        "action": a,
                        "ids": [i],
                        "scope": "ids",
                        "confirmed": c,
                        "next": "/audit/?user=nobody",
                        **v,
                    },
                    _row,
                )
            )
    CONSOLE_PATHS.append(
        (
            "post_form",
            lambda _, k=_kind: f"/{k}/actions/",
            lambda i: {
                "row_action": f"suspend:{i}",
                "confirmed": "1",
                "next": "/audit/?user=nobody",
            },
            _row,
        )
    )
CONSOLE_PATHS.append(
    (
        "post_form",
        lambda _: "/jobs/actions/",
        lambda i: {"action": "execute", "ids": [i], "scope": "ids", "confirmed": "1"},
        "job",
    )
)


@pytest.mark.parametrize(
    ("method", "path_of", "body_of", "row"),
    CONSOLE_PATHS,
    ids=[
        f"{p('{id}')} {(b('{id}') if b else {}).get('action', '')}"
        f"{(b('{id}') if b else {}).get('confirmed', '')} [{row}]"
        for m, p, b, row in CONSOLE_PATHS
    ],
)
def test_console_answers_another_tenants_id_like_an_unknown_one(
    acme, globex, method, path_of, body_of, row
):
    before = globex_state()
    # The redirect (if any) and the page it leads to, with its flash messages.
    status, *_ = assert_same_answer(
        lambda: browser(acme), method, path_of, body_of or (lambda _: None), globex[row], True
    )
    assert status in (200, 400, 404)
    assert globex_state() == before
