"""The served OpenAPI schema says what the faces really answer: Camunda's field names, error
bodies on every 4xx, and paths that actually route."""

import json
from pathlib import Path

import pytest

REFERENCE = Path("/work/shared/reference/camunda-7.16-openapi-jobs-external-tasks.json")


@pytest.fixture
def schema(admin_api):
    response = admin_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return json.loads(response.content)


@pytest.mark.skipif(not REFERENCE.exists(), reason="Camunda reference not available")
@pytest.mark.parametrize(
    ("reference", "ours"),
    [("ExternalTaskDto", "ExternalTaskDto"), ("LockedExternalTaskDto", "LockedExternalTaskDto")],
)
def test_task_bodies_have_every_camunda_field(schema, reference, ours):
    camunda = json.loads(REFERENCE.read_text())["components"]["schemas"][reference]
    documented = schema["components"]["schemas"][ours]
    assert set(camunda["properties"]) <= set(documented["properties"])
    # Everything we answer is always present; values that can be null say so.
    assert set(documented["required"]) == set(documented["properties"])
    assert documented["properties"]["workerId"]["nullable"] is True
    assert documented["properties"]["lockExpirationTime"]["pattern"].endswith(r"[+-]\d{4}$")


def test_list_endpoints_are_documented_as_arrays(schema):
    paths = schema["paths"]
    for path, method in (
        ("/engine-rest/external-task", "get"),
        ("/engine-rest/external-task", "post"),
        ("/engine-rest/external-task/fetchAndLock", "post"),
        ("/engine-rest/external-task/topic-names", "get"),
        ("/external-job-api/acquire/jobs", "post"),
    ):
        body = paths[path][method]["responses"]["200"]["content"]["application/json"]["schema"]
        assert body["type"] == "array", (path, method)


def test_every_operation_documents_its_error_body(schema):
    for path, operations in schema["paths"].items():
        if not path.startswith(("/engine-rest/external-task", "/external-job-api", "/api/ext")):
            continue
        for method, operation in operations.items():
            for status in ("401", "403"):
                assert status in operation["responses"], (method, path, status)
            error = operation["responses"]["401"]["content"]["application/json"]["schema"]
            expected = "ExceptionDto" if path.startswith("/engine-rest") else "FlowableError"
            assert expected in error["$ref"], (method, path)


def test_seed_job_paths_are_documented_as_they_route(schema, worker_api):
    assert "/api/external-jobs/{task_id}/complete" in schema["paths"]
    assert not any("[" in path for path in schema["paths"])
    response = worker_api.post(
        "/api/external-jobs/no-such-job/complete", {"workerId": "w"}, format="json"
    )
    assert response.status_code == 404


def test_list_query_parameters_are_typed(schema):
    parameters = {
        p["name"]: p["schema"]
        for p in schema["paths"]["/engine-rest/external-task"]["get"]["parameters"]
    }
    assert parameters["locked"]["type"] == "boolean"
    assert parameters["priorityHigherThanOrEquals"]["type"] == "integer"
    assert parameters["lockExpirationAfter"]["format"] == "date-time"
    assert {"id", "taskPriority", "createTime"} <= set(parameters["sortBy"]["enum"])


@pytest.mark.parametrize("task_id", ["count", "retries", "with/slash"])
def test_creating_a_task_whose_id_could_never_be_addressed_is_refused(admin_api, task_id):
    response = admin_api.post(
        "/engine-rest/external-task/create", {"topicName": "t", "id": task_id}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["type"] == "InvalidRequestException"
