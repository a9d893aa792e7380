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
