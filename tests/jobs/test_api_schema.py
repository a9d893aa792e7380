"""The OpenAPI schema documents the job resources under Camunda's operation ids."""

import json

import yaml


def test_openapi_schema_documents_the_job_resources_with_camunda_operation_ids(admin_api):
    response = admin_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    text = response.content.decode()
    schema = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    operations = {
        (path, method): operation.get("operationId")
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
        if path.startswith("/engine-rest/job")
    }
    expected = {
        ("/engine-rest/job", "get"): "getJobs",
        ("/engine-rest/job", "post"): "queryJobs",
        ("/engine-rest/job/count", "post"): "queryJobsCount",
        ("/engine-rest/job/{job_id}/retries", "put"): "setJobRetries",
        ("/engine-rest/job/retries", "post"): "setJobRetriesAsyncOperation",
        ("/engine-rest/job/suspended", "put"): "updateSuspensionStateBy",
        ("/engine-rest/job/{job_id}/execute", "post"): "executeJob",
        ("/engine-rest/job/create", "post"): "createJobs",
        ("/engine-rest/job-definition/suspended", "put"): "updateSuspensionStateJobDefinitions",
        (
            "/engine-rest/job-definition/{job_definition_id}/jobPriority",
            "put",
        ): "setJobPriorityJobDefinition",
    }
    for key, operation_id in expected.items():
        assert operations.get(key) == operation_id, key


def test_every_job_operation_documents_its_error_answers_in_camunda_format(admin_api):
    """Clients generated from the schema see the 4xx answers the job API gives (the fuzz test
    holds the answers to this list); Camunda's 7.16 description lists 400/404 the same way."""
    response = admin_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    text = response.content.decode()
    schema = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    undocumented = []
    for path, methods in schema["paths"].items():
        if not path.startswith("/engine-rest/job"):
            continue
        for method, operation in methods.items():
            codes = set(operation["responses"])
            needed = {"401", "403"} | ({"404"} if "{" in path else {"400"})
            if not needed <= codes:
                undocumented.append((method, path, sorted(needed - codes)))
            error = operation["responses"].get("401", {}).get("content", {})
            if "application/json" not in error:
                undocumented.append((method, path, "401 body"))
    assert not undocumented
    execute = schema["paths"]["/engine-rest/job/{job_id}/execute"]["post"]["responses"]
    assert {"400", "404", "500"} <= set(execute)
