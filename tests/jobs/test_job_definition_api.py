"""/engine-rest/job-definition: query, count, detail, suspension, priority and retries."""

import pytest

from jobs.models import Job, JobDefinition, JobLog
from project.models import AuditEntry
from tests.jobs.factories import make_definition, make_job

ALL = ["d1", "d2", "d3", "d4"]


@pytest.fixture
def definitions(db):
    make_definition(
        "d1",
        activity_id="send",
        process_definition_id="mail:1",
        process_definition_key="mail",
        job_type="async-continuation",
        job_configuration="ASYNC-BEFORE",
    )
    make_definition(
        "d2",
        activity_id="wait",
        process_definition_id="mail:2",
        process_definition_key="mail",
        job_type="timer-intermediate-transition",
        job_configuration="DURATION: PT5M",
        tenant_id="acme",
        overriding_priority=7,
    )
    make_definition(
        "d3",
        activity_id="bill",
        process_definition_id="bill:1",
        process_definition_key="bill",
        job_type="async-continuation",
        tenant_id="globex",
        suspended=True,
    )
    make_definition("d4", tenant_id="acme", suspended=True, overriding_priority=0)
    make_job("j1", job_definition_id="d1", retries=0)
    make_job("j2", job_definition_id="d1", retries=2)
    make_job("j3", job_definition_id="d2", tenant_id="acme", retries=0)
    make_job("j4", job_definition_id="d3", tenant_id="globex", retries=0)


CASES = [
    ({}, ALL),
    ({"jobDefinitionId": "d2"}, ["d2"]),
    ({"activityIdIn": "send,bill"}, ["d1", "d3"]),
    ({"processDefinitionId": "mail:2"}, ["d2"]),
    ({"processDefinitionKey": "mail"}, ["d1", "d2"]),
    ({"jobType": "async-continuation"}, ["d1", "d3"]),
    ({"jobConfiguration": "DURATION: PT5M"}, ["d2"]),
    ({"active": "true"}, ["d1", "d2"]),
    ({"suspended": "true"}, ["d3", "d4"]),
    ({"suspended": "false"}, ALL),
    ({"withOverridingJobPriority": "true"}, ["d2", "d4"]),
    ({"tenantIdIn": "acme"}, ["d2", "d4"]),
    ({"tenantIdIn": "acme,globex"}, ["d2", "d3", "d4"]),
    ({"withoutTenantId": "true"}, ["d1"]),
    ({"tenantIdIn": "globex", "includeJobDefinitionsWithoutTenantId": "true"}, ["d1", "d3"]),
    ({"processDefinitionKey": "mail", "active": "true", "tenantIdIn": "acme"}, ["d2"]),
]


def as_body(params):
    body = {}
    for name, value in params.items():
        if name in {"activityIdIn", "tenantIdIn"}:
            body[name] = value.split(",")
        elif value in {"true", "false"}:
            body[name] = value == "true"
        else:
            body[name] = value
    return body


def ids(response):
    assert response.status_code == 200, response.content
    return sorted(item["id"] for item in response.json())


@pytest.mark.parametrize(("params", "expected"), CASES)
def test_job_definition_query_by_every_parameter(admin_api, definitions, params, expected):
    assert ids(admin_api.get("/engine-rest/job-definition", params)) == expected
    assert admin_api.get("/engine-rest/job-definition/count", params).json() == {
        "count": len(expected)
    }
    body = as_body(params)
    assert ids(admin_api.post("/engine-rest/job-definition", body, format="json")) == expected
    response = admin_api.post("/engine-rest/job-definition/count", body, format="json")
    assert response.json() == {"count": len(expected)}


# Ties are broken by id in the sort's direction: descending, the larger id first.
@pytest.mark.parametrize(
    ("sort_by", "expected"),
    [
        ("jobDefinitionId", ["d4", "d3", "d2", "d1"]),
        ("activityId", ["d2", "d1", "d3", "d4"]),
        ("processDefinitionId", ["d2", "d1", "d3", "d4"]),
        ("processDefinitionKey", ["d2", "d1", "d3", "d4"]),
        ("jobType", ["d2", "d3", "d1", "d4"]),
        ("jobConfiguration", ["d2", "d1", "d4", "d3"]),
        ("tenantId", ["d3", "d4", "d2", "d1"]),
    ],
)
def test_job_definition_sorting_descending_by_every_key(admin_api, definitions, sort_by, expected):
    response = admin_api.get(
        "/engine-rest/job-definition", {"sortBy": sort_by, "sortOrder": "desc"}
    )
    assert [item["id"] for item in response.json()] == expected
    body = {"sorting": [{"sortBy": sort_by, "sortOrder": "desc"}]}
    response = admin_api.post("/engine-rest/job-definition", body, format="json")
    assert [item["id"] for item in response.json()] == expected


@pytest.mark.parametrize(
    "params",
    [
        {"sortBy": "jobPriority", "sortOrder": "asc"},
        {"sortBy": "jobType"},
        {"active": "perhaps"},
    ],
)
def test_job_definition_query_rejects_bad_parameters(admin_api, definitions, params):
    response = admin_api.get("/engine-rest/job-definition", params)
    assert response.status_code == 400
    assert response.json()["type"] == "InvalidRequestException"


def test_job_definition_detail_has_every_camunda_key(admin_api, definitions):
    assert admin_api.get("/engine-rest/job-definition/d2").json() == {
        "id": "d2",
        "processDefinitionId": "mail:2",
        "processDefinitionKey": "mail",
        "activityId": "wait",
        "jobType": "timer-intermediate-transition",
        "jobConfiguration": "DURATION: PT5M",
        "overridingJobPriority": 7,
        "suspended": False,
        "tenantId": "acme",
        "deploymentId": None,
    }


def test_job_definitions_are_scoped_to_tenants(viewer_api, operator_api, definitions):
    assert ids(viewer_api.get("/engine-rest/job-definition")) == ["d1", "d2", "d4"]
    response = viewer_api.get("/engine-rest/job-definition/d3")
    assert response.status_code == 404
    assert response.json()["message"] == "Job definition with id d3 does not exist"
    for response in (
        operator_api.put(
            "/engine-rest/job-definition/d3/suspended", {"suspended": False}, format="json"
        ),
        operator_api.put(
            "/engine-rest/job-definition/d3/jobPriority", {"priority": 1}, format="json"
        ),
        operator_api.put("/engine-rest/job-definition/d3/retries", {"retries": 1}, format="json"),
    ):
        assert response.status_code == 404
    d3 = JobDefinition.objects.get(id="d3")
    assert (d3.suspended, d3.overriding_priority) == (True, None)


def test_viewer_cannot_change_job_definitions(viewer_api, definitions):
    response = viewer_api.put(
        "/engine-rest/job-definition/d1/suspended", {"suspended": True}, format="json"
    )
    assert response.status_code == 403


def test_suspend_definition_with_and_without_its_jobs(operator_api, definitions):
    url = "/engine-rest/job-definition/d1/suspended"
    assert operator_api.put(url, {"suspended": True}, format="json").status_code == 204
    assert JobDefinition.objects.get(id="d1").suspended is True
    assert not Job.objects.filter(job_definition_id="d1", suspended=True).exists()
    body = {"suspended": True, "includeJobs": True}
    assert operator_api.put(url, body, format="json").status_code == 204
    assert Job.objects.filter(job_definition_id="d1", suspended=True).count() == 2
    assert JobLog.objects.filter(event="suspended").count() == 2
    body = {"suspended": False, "includeJobs": True}
    assert operator_api.put(url, body, format="json").status_code == 204
    assert not Job.objects.filter(suspended=True).exists()
    entry = AuditEntry.objects.filter(target_type="job_definition").order_by("-id").first()
    assert (entry.action, entry.count, entry.after["jobsChanged"]) == (
        "job_definition.activate",
        1,
        2,
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "suspended"),
        ({"suspended": True, "includeJobs": "all"}, "includeJobs"),
        ({"suspended": True, "executionDate": "later"}, "executionDate"),
    ],
)
def test_suspend_definition_rejects_bad_bodies(operator_api, definitions, body, message):
    response = operator_api.put("/engine-rest/job-definition/d1/suspended", body, format="json")
    assert response.status_code == 400
    assert message in response.json()["message"]
    assert JobDefinition.objects.get(id="d1").suspended is False


def test_suspend_definitions_by_process_definition(admin_api, definitions):
    url = "/engine-rest/job-definition/suspended"
    body = {"processDefinitionKey": "mail", "suspended": True, "includeJobs": True}
    assert admin_api.put(url, body, format="json").status_code == 204
    assert sorted(JobDefinition.objects.filter(suspended=True).values_list("id", flat=True)) == [
        "d1",
        "d2",
        "d3",
        "d4",
    ]
    assert sorted(Job.objects.filter(suspended=True).values_list("id", flat=True)) == [
        "j1",
        "j2",
        "j3",
    ]
    body = {"processDefinitionId": "mail:2", "suspended": False}
    assert admin_api.put(url, body, format="json").status_code == 204
    assert JobDefinition.objects.get(id="d2").suspended is False
    assert Job.objects.get(id="j3").suspended is True
    body = {"processDefinitionKey": "mail", "processDefinitionTenantId": "acme", "suspended": False}
    admin_api.put(url, body, format="json")
    body = {
        "processDefinitionKey": "mail",
        "processDefinitionWithoutTenantId": True,
        "suspended": False,
    }
    admin_api.put(url, body, format="json")
    assert JobDefinition.objects.get(id="d1").suspended is False


@pytest.mark.parametrize(
    "body",
    [
        {"suspended": True},
        {"processDefinitionId": "mail:1", "processDefinitionKey": "mail", "suspended": True},
        {"processDefinitionId": "mail:1", "processDefinitionTenantId": "acme", "suspended": True},
        {"jobDefinitionId": "d1", "suspended": True},
    ],
)
def test_suspend_definitions_by_selector_rejects_bad_selections(admin_api, definitions, body):
    response = admin_api.put("/engine-rest/job-definition/suspended", body, format="json")
    assert response.status_code == 400
    assert JobDefinition.objects.filter(suspended=True).count() == 2


def test_override_definition_priority_and_reset_it(operator_api, definitions):
    url = "/engine-rest/job-definition/d1/jobPriority"
    assert operator_api.put(url, {"priority": 42}, format="json").status_code == 204
    assert JobDefinition.objects.get(id="d1").overriding_priority == 42
    assert set(Job.objects.filter(job_definition_id="d1").values_list("priority", flat=True)) == {0}
    body = {"priority": 43, "includeJobs": True}
    assert operator_api.put(url, body, format="json").status_code == 204
    assert set(Job.objects.filter(job_definition_id="d1").values_list("priority", flat=True)) == {
        43
    }
    assert operator_api.put(url, {"priority": None}, format="json").status_code == 204
    assert JobDefinition.objects.get(id="d1").overriding_priority is None
    response = operator_api.put(url, {"priority": None, "includeJobs": True}, format="json")
    assert response.status_code == 400
    assert "includeJobs" in response.json()["message"]
    response = operator_api.put(url, {"priority": "urgent"}, format="json")
    assert response.status_code == 400


def test_definition_retries_reset_only_its_failed_jobs(operator_api, definitions):
    url = "/engine-rest/job-definition/d1/retries"
    assert operator_api.put(url, {"retries": 5}, format="json").status_code == 204
    assert dict(Job.objects.values_list("id", "retries")) == {"j1": 5, "j2": 2, "j3": 0, "j4": 0}
    assert operator_api.put(url, {"retries": -1}, format="json").status_code == 400
    assert operator_api.put(url, {}, format="json").status_code == 400
    assert (
        operator_api.put(
            "/engine-rest/job-definition/nope/retries", {"retries": 1}, format="json"
        ).status_code
        == 404
    )


def test_suspension_with_a_future_execution_date_is_scheduled_as_a_timer_job(
    operator_api, definitions
):
    body = {"suspended": True, "includeJobs": True, "executionDate": "2099-01-01T00:00:00.000+0000"}
    url = "/engine-rest/job-definition/d2/suspended"
    assert operator_api.put(url, body, format="json").status_code == 204
    assert JobDefinition.objects.get(id="d2").suspended is False
    timer = Job.objects.get(handler="jobs.scheduled.apply_job_definition_suspension")
    assert (timer.type, timer.tenant_id, timer.due_date.year) == ("timer", "acme", 2099)
    entry = AuditEntry.objects.filter(action="job_definition.schedule_suspend").get()
    assert entry.after["jobId"] == timer.id
    # When the timer runs (here: executed now through the API), the change is applied.
    assert operator_api.post(f"/engine-rest/job/{timer.id}/execute").status_code == 204
    assert JobDefinition.objects.get(id="d2").suspended is True
    assert Job.objects.get(id="j3").suspended is True
    assert not Job.objects.filter(id=timer.id).exists()


def test_scheduled_activation_by_process_definition_key(admin_api, definitions):
    body = {
        "processDefinitionKey": "bill",
        "suspended": False,
        "executionDate": "2099-01-01T00:00:00Z",
    }
    assert (
        admin_api.put("/engine-rest/job-definition/suspended", body, format="json").status_code
        == 204
    )
    timer = Job.objects.get(handler="jobs.scheduled.apply_job_definition_suspension")
    assert timer.payload["kwargs"]["job_definition_ids"] == ["d3"]
    assert JobDefinition.objects.get(id="d3").suspended is True
    admin_api.post(f"/engine-rest/job/{timer.id}/execute")
    assert JobDefinition.objects.get(id="d3").suspended is False


def test_a_past_execution_date_applies_at_once(operator_api, definitions):
    body = {"suspended": True, "executionDate": "2001-01-01T00:00:00.000+0000"}
    url = "/engine-rest/job-definition/d1/suspended"
    assert operator_api.put(url, body, format="json").status_code == 204
    assert JobDefinition.objects.get(id="d1").suspended is True
    assert not Job.objects.filter(handler__startswith="jobs.scheduled").exists()
