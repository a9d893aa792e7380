"""Issue 20, "Bad input: never a 500, never a broken stream": each breakage the outside tester
found, on real rows, on SQLite and PostgreSQL alike.

- NUL characters: one rule at one layer (project.middleware.BadInputMiddleware) for every face
  and the console: in the path 404 (no such row can exist), in a query or form 400.
- Lone surrogates in JSON: 400 from the JSON parser on every face.
- Durations past what a date holds: clamped to the latest storable time (Camunda takes them as
  Java longs and accepts them); numbers past their Java type: 400.
- LIKE patterns: `%` and `_` wildcards, `\\` escapes them; a trailing backslash is literal.
- Unknown paths under a face's prefix: 404 in that face's error format.
"""

import json

import pytest
from django.test import Client

from external_tasks import services
from external_tasks.models import ExternalTask
from jobs.models import Job, JobDefinition, JobLog
from project import clock
from project.audit import AuditEntry

ET = "/engine-rest/external-task"
CAMUNDA_ERROR = {"type", "message"}
FLOWABLE_ERROR = {"message", "exception"}


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def console(admin_user):
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture
def job(db):
    definition = JobDefinition.objects.create(activity_id="act", job_type="async-continuation")
    return Job.objects.create(
        job_definition=definition, tenant_id="acme", retries=0, exception_message="boom"
    )


def task(topic="invoice", **fields):
    return ExternalTask.objects.create(topic_name=topic, **fields)


# ---------------------------------------------------------------------------------------------
# NUL characters


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/engine-rest/job/a%00b", None),
        ("get", "/engine-rest/job/a%00b/stacktrace", None),
        ("put", "/engine-rest/job/a%00b/retries", {"retries": 3}),
        ("post", "/engine-rest/job/a%00b/execute", None),
        ("post", "/engine-rest/job/a%00b/duedate/recalculate", None),
        ("put", "/engine-rest/job/a%00b/priority", {"priority": 3}),
        ("delete", "/engine-rest/job/a%00b", None),
        ("get", "/engine-rest/job-definition/a%00b", None),
        ("put", "/engine-rest/job-definition/a%00b/retries", {"retries": 3}),
        ("put", "/engine-rest/job-definition/a%00b/jobPriority", {"priority": 3}),
        ("put", "/engine-rest/job-definition/a%00b/suspended", {"suspended": True}),
    ],
)
def test_a_nul_in_a_job_path_id_is_a_camunda_404_and_changes_nothing(
    admin_api, job, method, path, body
):
    response = getattr(admin_api, method)(path, body, format="json")
    assert response.status_code == 404
    assert set(response.json()) == CAMUNDA_ERROR
    assert "NUL" in response.json()["message"]
    job.refresh_from_db()
    assert job.retries == 0
    assert not JobLog.objects.exists()


@pytest.mark.parametrize(
    ("path", "params", "error_keys"),
    [
        ("/engine-rest/job", {"processDefinitionKey": "a\x00b"}, CAMUNDA_ERROR),
        ("/engine-rest/job/count", {"a\x00": "1"}, CAMUNDA_ERROR),
        ("/engine-rest/job-definition", {"activityIdIn": "x,\x00"}, CAMUNDA_ERROR),
        (f"{ET}/topic-names", {"withLockedTasks": "\x00"}, CAMUNDA_ERROR),
        ("/external-job-api/jobs", {"tenantIdLike": "\x00"}, FLOWABLE_ERROR),
        ("/api/external-jobs", {"topic": "\x00"}, FLOWABLE_ERROR),
    ],
)
def test_a_nul_in_any_query_parameter_is_a_400_in_the_faces_format(
    admin_api, db, path, params, error_keys
):
    response = admin_api.get(path, params)
    assert response.status_code == 400
    assert set(response.json()) == error_keys


@pytest.mark.parametrize(
    "url",
    [
        "/jobs/a%00b/",
        "/external-tasks/a%00b/",
        "/jobs/definitions/a%00b/action/",
    ],
)
def test_a_nul_in_a_console_id_is_the_not_found_page(console, db, url):
    response = console.get(url)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert "Not found" in response.content.decode()


@pytest.mark.parametrize(
    "url",
    [
        "/search/?q=a%00b",
        "/jobs/?q=a%00b",
        "/external-tasks/?q=%00",
        "/audit/?target=%00",
        "/audit/?user=a%00",
        "/jobs/export/?q=a%00b&format=csv",
        "/external-tasks/export/?q=%00&format=json",
    ],
)
def test_a_nul_in_a_console_query_is_the_bad_request_page(console, job, url):
    response = console.get(url)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    assert "NUL characters" in response.content.decode()


def test_a_nul_in_console_action_ids_is_a_400_and_changes_nothing(console, job):
    response = console.post(
        "/jobs/actions/",
        {"action": "set_retries", "ids": [job.pk, "x\x00"], "retries": "5", "confirmed": "1"},
    )
    assert response.status_code == 400
    assert "NUL characters" in response.content.decode()
    job.refresh_from_db()
    assert job.retries == 0
    assert not AuditEntry.objects.exists()


# ---------------------------------------------------------------------------------------------
# Lone surrogates in JSON


@pytest.mark.parametrize(
    ("path", "raw", "error_keys"),
    [
        (
            f"{ET}/fetchAndLock",
            '{"workerId": "\\ud800", "maxTasks": 1,'
            ' "topics": [{"topicName": "invoice", "lockDuration": 1000}]}',
            CAMUNDA_ERROR,
        ),
        (f"{ET}/create", '{"topicName": "\\udfff"}', CAMUNDA_ERROR),
        (ET, '{"topicName": "a\\ud800b"}', CAMUNDA_ERROR),
        ("/engine-rest/job", '{"processInstanceId": "\\ud800"}', CAMUNDA_ERROR),
        (f"{ET}/count", '{"\\ud800": 1}', CAMUNDA_ERROR),
        (
            "/external-job-api/acquire/jobs",
            '{"topic": "invoice", "lockDuration": "PT1M", "workerId": "\\ud800"}',
            FLOWABLE_ERROR,
        ),
        (
            "/api/external-jobs",
            '{"topic": "\\ud800", "lockDuration": "PT1M", "workerId": "w"}',
            FLOWABLE_ERROR,
        ),
    ],
)
def test_a_lone_surrogate_in_a_json_body_is_a_400_and_locks_nothing(
    admin_api, db, path, raw, error_keys
):
    waiting = task()
    response = admin_api.generic("POST", path, raw, content_type="application/json")
    assert response.status_code == 400
    assert set(response.json()) == error_keys
    waiting.refresh_from_db()
    assert waiting.worker_id is None
    assert ExternalTask.objects.count() == 1


def test_a_paired_surrogate_is_an_ordinary_character(admin_api, db):
    # "\ud83d\ude00" is JSON's spelling of one emoji: valid, stored and served back.
    raw = '{"topicName": "smile-\\ud83d\\ude00"}'
    response = admin_api.generic("POST", f"{ET}/create", raw, content_type="application/json")
    assert response.status_code == 200, response.content
    assert ExternalTask.objects.get().topic_name == "smile-\U0001f600"


# ---------------------------------------------------------------------------------------------
# Overflows


HUGE_MS = 300_000_000_000_000  # a valid Java long: a lock of about 9,500 years


def fetch(api, lock_duration, worker="w"):
    body = {
        "workerId": worker,
        "maxTasks": 5,
        "topics": [{"topicName": "invoice", "lockDuration": lock_duration}],
    }
    return api.post(f"{ET}/fetchAndLock", body, format="json")


def test_fetch_and_lock_with_a_huge_lock_duration_locks_for_good(admin_api, db):
    locked = task()
    response = fetch(admin_api, HUGE_MS)
    assert response.status_code == 200, response.content
    assert [item["id"] for item in response.json()] == [locked.pk]
    assert response.json()[0]["lockExpirationTime"].startswith("9999-12-30")
    locked.refresh_from_db()
    assert locked.lock_expiration_time == clock.LATEST
    # Nobody else gets it: the lock is as good as forever.
    assert fetch(admin_api, 1000, worker="other").json() == []


def test_a_lock_duration_beyond_a_java_long_is_a_400(admin_api, db):
    task()
    response = fetch(admin_api, 2**63)
    assert response.status_code == 400
    assert set(response.json()) == CAMUNDA_ERROR
    assert not ExternalTask.objects.filter(worker_id__isnull=False).exists()


def test_lock_and_extend_lock_with_huge_durations_lock_for_good(admin_api, db):
    held = task()
    response = admin_api.post(
        f"{ET}/{held.pk}/lock", {"workerId": "w", "lockDuration": HUGE_MS}, format="json"
    )
    assert response.status_code == 204, response.content
    held.refresh_from_db()
    assert held.lock_expiration_time == clock.LATEST

    admin_api.post(f"{ET}/{held.pk}/lock", {"workerId": "w", "lockDuration": 1000}, format="json")
    response = admin_api.post(
        f"{ET}/{held.pk}/extendLock", {"workerId": "w", "newDuration": HUGE_MS}, format="json"
    )
    assert response.status_code == 204, response.content
    held.refresh_from_db()
    assert held.lock_expiration_time == clock.LATEST


def test_failure_with_a_huge_retry_timeout_keeps_the_task_back_for_good(admin_api, db):
    failing = task()
    fetch(admin_api, 60_000)
    response = admin_api.post(
        f"{ET}/{failing.pk}/failure",
        {"workerId": "w", "errorMessage": "boom", "retries": 2, "retryTimeout": HUGE_MS},
        format="json",
    )
    assert response.status_code == 204, response.content
    failing.refresh_from_db()
    assert failing.retries == 2
    assert failing.lock_expiration_time == clock.LATEST
    assert fetch(admin_api, 1000, worker="other").json() == []


def test_flowable_acquire_with_a_lock_of_three_million_days_locks_for_good(admin_api, db):
    locked = task()
    response = admin_api.post(
        "/external-job-api/acquire/jobs",
        {"topic": "invoice", "lockDuration": "P3000000D", "workerId": "w", "numberOfTasks": 1},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert [item["id"] for item in response.json()] == [locked.pk]
    locked.refresh_from_db()
    assert locked.lock_expiration_time == clock.LATEST


@pytest.mark.parametrize("duration", ["P3000000000D", "PT99999999999999999999S"])
def test_a_flowable_duration_no_java_long_holds_is_a_400(admin_api, db, duration):
    task()
    response = admin_api.post(
        "/external-job-api/acquire/jobs",
        {"topic": "invoice", "lockDuration": duration, "workerId": "w"},
        format="json",
    )
    assert response.status_code == 400
    assert set(response.json()) == FLOWABLE_ERROR
    assert "out of range" in response.json()["exception"]


@pytest.mark.parametrize("path", ["/external-job-api/acquire/jobs", "/api/external-jobs"])
def test_number_of_tasks_past_a_java_int_is_a_400(admin_api, db, path):
    task()
    response = admin_api.post(
        path,
        {"topic": "invoice", "lockDuration": "PT1M", "workerId": "w", "numberOfTasks": 10**19},
        format="json",
    )
    assert response.status_code == 400
    assert set(response.json()) == FLOWABLE_ERROR
    assert not ExternalTask.objects.filter(worker_id__isnull=False).exists()


# ---------------------------------------------------------------------------------------------
# LIKE patterns


@pytest.fixture
def tenants(db):
    for tenant in ["acme", "ac_me", "ac%me", "back\\", "back\\slash", "other"]:
        task(tenant_id=tenant)


def like(api, value, name="tenantIdLike"):
    response = api.get(ET, {name: value})
    assert response.status_code == 200, response.content
    return sorted(item["tenantId"] for item in response.json())


def test_a_like_pattern_ending_in_a_backslash_matches_a_literal_backslash(admin_api, tenants):
    assert like(admin_api, "back\\") == ["back\\"]
    assert like(admin_api, "%\\") == ["back\\"]
    assert like(admin_api, "back\\%") == []  # \% is a literal percent sign, as in Camunda


def test_like_wildcards_are_camundas(admin_api, tenants):
    assert like(admin_api, "ac%") == ["ac%me", "ac_me", "acme"]
    assert like(admin_api, "ac_me") == ["ac%me", "ac_me"]
    assert like(admin_api, "ac\\_me") == ["ac_me"]
    assert like(admin_api, "ac\\%me") == ["ac%me"]
    assert like(admin_api, "back\\\\slash") == ["back\\slash"]  # \\ is one backslash
    assert like(admin_api, "back\\\\%") == ["back\\", "back\\slash"]


def test_process_definition_name_like_with_a_trailing_backslash_is_answered(admin_api, db):
    wanted = task(process_definition_name="Refund \\")
    task(process_definition_name="Refund")
    response = admin_api.get(ET, {"processDefinitionNameLike": "%\\"})
    assert response.status_code == 200
    assert [item["id"] for item in response.json()] == [wanted.pk]


def test_flowable_tenant_id_like_with_a_trailing_backslash_is_answered(admin_api, tenants):
    response = admin_api.get("/external-job-api/jobs", {"tenantIdLike": "%\\"})
    assert response.status_code == 200, response.content
    assert [job["tenantId"] for job in response.json()["data"]] == ["back\\"]


def test_a_variable_like_condition_with_a_trailing_backslash_is_answered(admin_api, db):
    variables = {"path": {"type": "String", "value": "C:\\"}}
    services.create(None, [{"topicName": "t", "variables": variables}])
    services.create(None, [{"topicName": "t", "variables": {"path": {"value": "C:x"}}}])
    body = {"processVariables": [{"name": "path", "operator": "like", "value": "C:\\"}]}
    response = admin_api.post(f"{ET}/count", body, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"count": 1}


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_an_export_filtered_by_a_trailing_backslash_streams_to_the_end(console, tenants, fmt):
    response = console.get(
        "/external-tasks/export/", {"tenantIdLike": "%\\", "format": fmt, "sort": "id"}
    )
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    if fmt == "json":
        assert [row["tenant_id"] for row in json.loads(body)] == ["back\\"]
    else:
        assert body.count("\n") == 2  # the header and the one matching row
        assert "back\\" in body


def test_an_export_with_an_invalid_filter_is_refused_before_any_byte(console, tenants):
    response = console.get("/external-tasks/export/", {"lockExpirationBefore": "yesterday"})
    assert response.status_code == 400
    assert not response.streaming


# ---------------------------------------------------------------------------------------------
# Unknown paths


@pytest.mark.parametrize(
    ("method", "path", "error_keys"),
    [
        ("get", "/engine-rest/nope", CAMUNDA_ERROR),
        ("post", "/engine-rest/external-task/x/nope", CAMUNDA_ERROR),
        ("get", "/engine-rest/job/x/stacktrace/more", CAMUNDA_ERROR),
        ("get", "/external-job-api/nope", FLOWABLE_ERROR),
        ("post", "/external-job-api/acquire/jobs/x/y/z", FLOWABLE_ERROR),
        ("get", "/api/external-jobs/x/y/z", FLOWABLE_ERROR),
    ],
)
def test_an_unknown_path_under_a_face_is_a_404_in_its_format(
    admin_api, db, method, path, error_keys
):
    response = getattr(admin_api, method)(path, {}, format="json")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert set(response.json()) == error_keys


def test_camundas_unknown_path_answer_is_its_not_found_exception(admin_api, db):
    response = admin_api.get("/engine-rest/no-such-resource")
    assert response.json() == {"type": "NotFoundException", "message": "HTTP 404 Not Found"}


def test_an_unknown_console_page_is_the_consoles_not_found_page(console, db):
    response = console.get("/no-such-page/")
    assert response.status_code == 404
    assert "Not found" in response.content.decode()
