"""Input the database cannot store is refused cleanly. PostgreSQL text cannot hold a NUL
character: such values answer 400 (404 for an id in the path, which cannot exist) on every
database, in the face's error format, and write nothing."""

import pytest

from external_tasks.models import ExternalTask, ExternalTaskLog

ET = "/engine-rest/external-task"


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        (ET, {"errorMessage": "a\x00b"}),
        (ET, {"externalTaskIdIn": "x,\x00"}),
        (f"{ET}/count", {"processVariables": "name_eq_\x00"}),
        ("/external-job-api/jobs", {"elementId": "\x00"}),
        ("/api/external-jobs", {"topic": "t\x00"}),
    ],
)
def test_a_nul_character_in_a_query_parameter_is_a_400(admin_api, db, path, params):
    response = admin_api.get(path, params)
    assert response.status_code == 400
    assert "NUL" in response.content.decode()


@pytest.mark.parametrize(
    ("path", "body", "error_keys"),
    [
        (f"{ET}/create", {"topicName": "t\x00"}, {"type", "message"}),
        (ET, {"workerId": "\x00"}, {"type", "message"}),
        (f"{ET}/retries", {"retries": 1, "externalTaskIds": ["\x00"]}, {"type", "message"}),
        (
            "/external-job-api/acquire/jobs",
            {"topic": "t", "lockDuration": "PT1M", "workerId": "w\x00"},
            {"message", "exception"},
        ),
    ],
)
def test_a_nul_character_in_a_body_is_a_400_and_writes_nothing(
    admin_api, db, path, body, error_keys
):
    method = admin_api.put if path.endswith("/retries") else admin_api.post
    response = method(path, body, format="json")
    assert response.status_code == 400
    assert set(response.json()) == error_keys
    assert not ExternalTask.objects.exists()
    assert not ExternalTaskLog.objects.exists()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", f"{ET}/a%00b", None),
        ("post", f"{ET}/a%00b/complete", {"workerId": "w"}),
        ("post", f"{ET}/a%00b/unlock", None),
        ("put", f"{ET}/a%00b/retries", {"retries": 1}),
        ("get", "/external-job-api/jobs/a%00b", None),
        ("post", "/api/external-jobs/a%00b/complete", {"workerId": "w"}),
    ],
)
def test_an_id_with_a_nul_character_is_not_found(admin_api, db, method, path, body):
    response = getattr(admin_api, method)(path, body, format="json")
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("path", "params"),
    [
        (ET, {"lockExpirationAfter": "yesterday"}),
        (ET, {"lockExpirationBefore": "2024-13-45T99:00:00"}),
        (ET, {"priorityHigherThanOrEquals": "high"}),
        (ET, {"priorityLowerThanOrEquals": "99999999999999999999"}),
        (ET, {"locked": "maybe"}),
        (ET, {"firstResult": "-1"}),
        (ET, {"maxResults": "ten"}),
        (ET, {"sortBy": "id"}),
        (ET, {"sortBy": "nonsense", "sortOrder": "asc"}),
        (f"{ET}/topic-names", {"withLockedTasks": "sometimes"}),
        ("/external-job-api/jobs", {"start": "x"}),
        ("/external-job-api/jobs", {"locked": "perhaps"}),
        ("/external-job-api/jobs", {"sort": "nonsense"}),
        ("/api/external-jobs", {"offset": "-3"}),
    ],
)
def test_garbage_dates_numbers_and_flags_in_queries_are_400s(admin_api, db, path, params):
    response = admin_api.get(path, params)
    assert response.status_code == 400, response.content


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (f"{ET}/fetchAndLock", {"workerId": "w", "maxTasks": "five"}),
        (f"{ET}/fetchAndLock", {"workerId": "w", "maxTasks": 1, "usePriority": "yes"}),
        (f"{ET}/fetchAndLock", {"workerId": "w", "maxTasks": 1, "asyncResponseTimeout": 1.5}),
        (
            f"{ET}/fetchAndLock",
            {"workerId": "w", "maxTasks": 1, "topics": [{"topicName": "t", "lockDuration": -1}]},
        ),
        (f"{ET}/fetchAndLock", {"workerId": "w", "maxTasks": 2**40}),
        (ET, {"lockExpirationAfter": "soon"}),
        (ET, {"priorityHigherThanOrEquals": [1]}),
        (
            "/external-job-api/acquire/jobs",
            {"topic": "t", "workerId": "w", "lockDuration": "ten minutes"},
        ),
        ("/external-job-api/acquire/jobs", {"topic": "t", "workerId": "w", "lockDuration": 600}),
        (
            "/external-job-api/acquire/jobs",
            {"topic": "t", "workerId": "w", "lockDuration": "PT1M", "numberOfTasks": "2"},
        ),
        ("/api/external-jobs", {"topic": "t", "workerId": "w", "lockDuration": "P1X"}),
    ],
)
def test_garbage_values_in_bodies_are_400s(admin_api, db, path, body):
    response = admin_api.post(path, body, format="json")
    assert response.status_code == 400, response.content
    assert not ExternalTaskLog.objects.exists()


def test_garbage_in_worker_reports_is_a_400_and_the_task_stays_locked(admin_api, db):
    task = ExternalTask.objects.create(topic_name="t")
    admin_api.post(f"{ET}/{task.id}/lock", {"workerId": "w", "lockDuration": 60000}, format="json")
    for path, body in (
        ("failure", {"workerId": "w", "retries": "three"}),
        ("failure", {"workerId": "w", "retryTimeout": "later"}),
        ("complete", {"workerId": "w", "variables": {"v": {"value": 1, "type": "Nonsense"}}}),
        ("complete", {"workerId": "w", "variables": ["not", "a", "map"]}),
        ("extendLock", {"workerId": "w", "newDuration": "long"}),
        ("bpmnError", {"workerId": "w", "errorCode": 42}),
    ):
        response = admin_api.post(f"{ET}/{task.id}/{path}", body, format="json")
        assert response.status_code == 400, (path, body, response.content)
    task.refresh_from_db()
    assert task.worker_id == "w" and task.error_message is None
    events = list(ExternalTaskLog.objects.values_list("event", flat=True))
    assert events == ["locked"]
