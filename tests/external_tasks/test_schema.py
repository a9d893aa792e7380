def test_openapi_schema_documents_all_three_faces(admin_api):
    response = admin_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json() if response["Content-Type"].endswith("json") else None
    text = response.content.decode()
    for path in (
        "/engine-rest/external-task/fetchAndLock",
        "/engine-rest/external-task/{task_id}/complete",
        "/engine-rest/external-task/retries-async",
        "/external-job-api/acquire/jobs",
        "/external-job-api/jobs",
        "/api/external-jobs",
    ):
        assert path in text, path
    if schema is not None:
        assert schema["paths"]["/engine-rest/external-task/fetchAndLock"]["post"][
            "operationId"
        ] == ("fetchAndLock")
