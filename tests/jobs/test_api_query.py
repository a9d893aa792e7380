"""GET/POST /engine-rest/job and /job/count: every Camunda parameter against real rows."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from tests.jobs.factories import at, make_definition, make_job

SEED = Path("/work/shared/seeds/job-query-post.txt")
ALL = ["j1", "j2", "j3", "j4", "j5"]
LIST_PARAMS = {"jobIds", "processInstanceIds", "tenantIdIn"}
CONDITION_PARAMS = {"dueDates", "createTimes"}
INT_PARAMS = {"priorityLowerThanOrEquals", "priorityHigherThanOrEquals"}


@pytest.fixture
def jobs(db):
    make_definition("d1", activity_id="task1", job_type="timer-transition")
    far_future = timezone.now() + timedelta(days=3650)
    make_job(
        "j1",
        type="timer",
        job_definition_id="d1",
        due_date=at("2012-07-17 15:05"),
        retries=0,
        exception_message="An exception Message",
        exception_stacktrace="Traceback: j1",
        failed_activity_id="task1",
        priority=10,
        process_instance_id="pi1",
        execution_id="ex1",
        process_definition_id="pd:1",
        process_definition_key="pd",
        activity_id="task1",
        create_time=at("2012-01-01 00:00"),
    )
    make_job(
        "j2",
        type="timer",
        due_date=at("2012-07-17 15:55"),
        retries=0,
        exception_message="Another exception Message",
        suspended=True,
        priority=8,
        process_instance_id="pi1",
        execution_id="ex2",
        process_definition_id="pd:1",
        process_definition_key="pd",
        create_time=at("2012-02-01 00:00"),
    )
    make_job(
        "j3",
        type="message",
        retries=3,
        priority=5,
        tenant_id="acme",
        process_instance_id="pi2",
        execution_id="ex3",
        process_definition_id="pd:2",
        process_definition_key="other",
        activity_id="task2",
        create_time=at("2013-01-01 00:00"),
    )
    make_job(
        "j4",
        type="message",
        due_date=far_future,
        retries=1,
        exception_stacktrace="Traceback: only a trace",
        priority=20,
        tenant_id="globex",
        process_instance_id="pi3",
        create_time=at("2014-01-01 00:00"),
    )
    make_job(
        "j5",
        type="timer",
        due_date=at("2012-07-17 16:30"),
        retries=2,
        priority=-1,
        tenant_id="acme",
        lock_owner="executor-1",
        lock_expiration_time=far_future,
        create_time=at("2015-01-01 00:00"),
    )


def as_body(params: dict) -> dict:
    """The POST body equivalent of GET parameters (typed lists, booleans, conditions)."""
    body = {}
    for name, value in params.items():
        if name in LIST_PARAMS:
            body[name] = value.split(",")
        elif name in CONDITION_PARAMS:
            body[name] = [
                {"operator": part.split("_", 1)[0], "value": part.split("_", 1)[1]}
                for part in value.split(",")
            ]
        elif value in {"true", "false"}:
            body[name] = value == "true"
        elif name in INT_PARAMS:
            body[name] = int(value)
        else:
            body[name] = value
    return body


CASES = [
    ({}, ALL),
    ({"jobId": "j3"}, ["j3"]),
    ({"jobId": "nope"}, []),
    ({"jobIds": "j1,j3"}, ["j1", "j3"]),
    ({"jobDefinitionId": "d1"}, ["j1"]),
    ({"processInstanceId": "pi1"}, ["j1", "j2"]),
    ({"processInstanceIds": "pi2,pi3"}, ["j3", "j4"]),
    ({"executionId": "ex2"}, ["j2"]),
    ({"processDefinitionId": "pd:2"}, ["j3"]),
    ({"processDefinitionKey": "pd"}, ["j1", "j2"]),
    ({"activityId": "task1"}, ["j1"]),
    ({"withRetriesLeft": "true"}, ["j3", "j4", "j5"]),
    ({"withRetriesLeft": "false"}, ALL),
    ({"noRetriesLeft": "true"}, ["j1", "j2"]),
    ({"executable": "true"}, ["j3", "j5"]),
    ({"executable": "false"}, ALL),
    ({"timers": "true"}, ["j1", "j2", "j5"]),
    ({"messages": "true"}, ["j3", "j4"]),
    ({"timers": "false", "messages": "true"}, ["j3", "j4"]),
    (
        {"dueDates": "gt_2012-07-17T17:00:00.000+0200,lt_2012-07-17T18:00:00.000+0200"},
        ["j1", "j2"],
    ),
    ({"dueDates": "gt_2012-07-17T15:55:00.000+0000"}, ["j4", "j5"]),
    ({"dueDates": "lt_2012-07-17T15:55:00Z"}, ["j1"]),
    ({"createTimes": "lt_2012-06-01T00:00:00.000+0000"}, ["j1", "j2"]),
    ({"createTimes": "gt_2012-06-01T00:00:00.000+0000,lt_2014-06-01T00:00:00"}, ["j3", "j4"]),
    ({"withException": "true"}, ["j1", "j2", "j4"]),
    ({"exceptionMessage": "An exception Message"}, ["j1"]),
    ({"failedActivityId": "task1"}, ["j1"]),
    ({"active": "true"}, ["j1", "j3", "j4", "j5"]),
    ({"suspended": "true"}, ["j2"]),
    ({"active": "true", "suspended": "true"}, []),
    ({"acquired": "true"}, ["j5"]),
    ({"priorityLowerThanOrEquals": "8"}, ["j2", "j3", "j5"]),
    ({"priorityHigherThanOrEquals": "10"}, ["j1", "j4"]),
    ({"priorityHigherThanOrEquals": "5", "priorityLowerThanOrEquals": "10"}, ["j1", "j2", "j3"]),
    ({"tenantIdIn": "acme"}, ["j3", "j5"]),
    ({"tenantIdIn": "acme,globex"}, ["j3", "j4", "j5"]),
    ({"withoutTenantId": "true"}, ["j1", "j2"]),
    ({"tenantIdIn": "acme", "includeJobsWithoutTenantId": "true"}, ["j1", "j2", "j3", "j5"]),
    ({"includeJobsWithoutTenantId": "true"}, ALL),
    ({"tenantIdIn": "acme", "withoutTenantId": "true"}, ["j1", "j2"]),
    ({"noRetriesLeft": "true", "timers": "true", "processInstanceId": "pi1"}, ["j1", "j2"]),
    ({"withRetriesLeft": "true", "tenantIdIn": "acme", "timers": "true"}, ["j5"]),
]


def ids(response):
    assert response.status_code == 200, response.content
    return sorted(job["id"] for job in response.json())


@pytest.mark.parametrize(("params", "expected"), CASES)
def test_get_job_filters_by_every_parameter(admin_api, jobs, params, expected):
    assert ids(admin_api.get("/engine-rest/job", params)) == expected
    count = admin_api.get("/engine-rest/job/count", params)
    assert count.json() == {"count": len(expected)}


@pytest.mark.parametrize(("params", "expected"), CASES)
def test_post_job_filters_by_every_parameter(admin_api, jobs, params, expected):
    body = as_body(params)
    assert ids(admin_api.post("/engine-rest/job", body, format="json")) == expected
    count = admin_api.post("/engine-rest/job/count", body, format="json")
    assert count.json() == {"count": len(expected)}


def test_get_job_accepts_repeated_keys_and_unencoded_plus_offsets(admin_api, jobs):
    # A raw "+0200" in a query string decodes to a space; it still means +02:00.
    url = (
        "/engine-rest/job?dueDates=gt_2012-07-17T17:00:00.000+0200"
        "&dueDates=lt_2012-07-17T18:00:00.000+0200&jobIds=j1&jobIds=j2,j5"
    )
    assert ids(admin_api.get(url)) == ["j1", "j2"]


def test_post_job_treats_null_values_as_absent(admin_api, jobs):
    body = {"jobId": None, "tenantIdIn": None, "withException": None, "sorting": None}
    assert ids(admin_api.post("/engine-rest/job", body, format="json")) == ALL


def test_empty_lists_filter_nothing(admin_api, jobs):
    assert ids(admin_api.post("/engine-rest/job", {"jobIds": []}, format="json")) == ALL
    assert ids(admin_api.get("/engine-rest/job", {"tenantIdIn": ""})) == ALL


def test_job_response_carries_every_camunda_key_with_explicit_nulls(admin_api, jobs):
    job = admin_api.get("/engine-rest/job/j3").json()
    assert job == {
        "id": "j3",
        "jobDefinitionId": None,
        "processInstanceId": "pi2",
        "processDefinitionId": "pd:2",
        "processDefinitionKey": "other",
        "executionId": "ex3",
        "exceptionMessage": None,
        "failedActivityId": None,
        "retries": 3,
        "dueDate": None,
        "suspended": False,
        "priority": 5,
        "tenantId": "acme",
        "createTime": "2013-01-01T00:00:00.000+0000",
        "batchId": None,
    }
    first = admin_api.get("/engine-rest/job/j1").json()
    assert first["dueDate"] == "2012-07-17T15:05:00.000+0000"
    assert first["jobDefinitionId"] == "d1"
    assert first["failedActivityId"] == "task1"


def test_seed_example_request_verbatim_returns_window_jobs_by_due_date(admin_api, jobs):
    text = SEED.read_text()
    start = text.index("Request Body:") + len("Request Body:")
    end = text.index("Response", start)
    # The seed numbers its lines ("  1. {"); strip the numbering, keep the stray comma.
    body = "\n".join(
        line.split(". ", 1)[1] if ". " in line else ""
        for line in text[start:end].strip().splitlines()
    )
    assert ",\n," in body.replace(" ", "")
    response = admin_api.generic("POST", "/engine-rest/job", body, content_type="application/json")
    assert [job["id"] for job in response.json()] == ["j1", "j2"]
    first, second = response.json()
    assert (first["retries"], first["exceptionMessage"], first["suspended"]) == (
        0,
        "An exception Message",
        False,
    )
    assert (second["retries"], second["suspended"], second["priority"]) == (0, True, 8)
    corrected = body.replace("],\n  ,", "],").replace("],\n,", "],")
    assert json.loads(corrected)["sorting"][1] == {"sortBy": "jobRetries", "sortOrder": "asc"}
    response = admin_api.generic(
        "POST", "/engine-rest/job", corrected, content_type="application/json"
    )
    assert [job["id"] for job in response.json()] == ["j1", "j2"]
    response = admin_api.generic(
        "POST", "/engine-rest/job/count", corrected, content_type="application/json"
    )
    assert response.json() == {"count": 2}


def test_malformed_json_body_is_a_clear_400(admin_api, jobs):
    response = admin_api.generic(
        "POST", "/engine-rest/job", '{"dueDates": [', content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["type"] == "InvalidRequestException"
    assert "JSON" in response.json()["message"]


SORT_CASES = [
    ("jobId", "asc", ["j1", "j2", "j3", "j4", "j5"]),
    ("jobId", "desc", ["j5", "j4", "j3", "j2", "j1"]),
    # Nulls sort first ascending and last descending; the id breaks ties in the direction of
    # the sort (one index then serves both directions).
    ("executionId", "asc", ["j4", "j5", "j1", "j2", "j3"]),
    ("processInstanceId", "desc", ["j4", "j3", "j2", "j1", "j5"]),
    ("processDefinitionId", "asc", ["j4", "j5", "j1", "j2", "j3"]),
    ("processDefinitionKey", "desc", ["j2", "j1", "j3", "j5", "j4"]),
    ("processDefinitionKey", "asc", ["j4", "j5", "j3", "j1", "j2"]),
    ("jobPriority", "desc", ["j4", "j1", "j2", "j3", "j5"]),
    ("jobRetries", "asc", ["j1", "j2", "j4", "j5", "j3"]),
    ("jobDueDate", "asc", ["j3", "j1", "j2", "j5", "j4"]),
    ("jobDueDate", "desc", ["j4", "j5", "j2", "j1", "j3"]),
    ("tenantId", "asc", ["j1", "j2", "j3", "j5", "j4"]),
]


@pytest.mark.parametrize(("sort_by", "order", "expected"), SORT_CASES)
def test_sorting_by_every_camunda_key(admin_api, jobs, sort_by, order, expected):
    response = admin_api.get("/engine-rest/job", {"sortBy": sort_by, "sortOrder": order})
    assert [job["id"] for job in response.json()] == expected
    body = {"sorting": [{"sortBy": sort_by, "sortOrder": order}]}
    response = admin_api.post("/engine-rest/job", body, format="json")
    assert [job["id"] for job in response.json()] == expected


def test_post_sorting_is_multi_level(admin_api, jobs):
    body = {
        "sorting": [
            {"sortBy": "jobRetries", "sortOrder": "asc"},
            {"sortBy": "jobPriority", "sortOrder": "asc"},
        ]
    }
    response = admin_api.post("/engine-rest/job", body, format="json")
    assert [job["id"] for job in response.json()] == ["j2", "j1", "j4", "j5", "j3"]


def test_paging_with_first_and_max_results_on_get_and_post(admin_api, jobs):
    params = {"sortBy": "jobId", "sortOrder": "asc", "firstResult": 1, "maxResults": 2}
    assert [j["id"] for j in admin_api.get("/engine-rest/job", params).json()] == ["j2", "j3"]
    response = admin_api.post(
        "/engine-rest/job?firstResult=3&maxResults=10",
        {"sorting": [{"sortBy": "jobId", "sortOrder": "asc"}]},
        format="json",
    )
    assert [j["id"] for j in response.json()] == ["j4", "j5"]
    assert admin_api.get("/engine-rest/job", {"maxResults": 0}).json() == []


ERROR_CASES = [
    ({"timers": "true", "messages": "true"}, "cannot be used together"),
    ({"dueDates": "xx_2012-07-17T17:00:00.000+0200"}, "Invalid dueDate comparator specified: xx"),
    ({"createTimes": "eq_2012-07-17T17:00:00"}, "Invalid createTime comparator specified: eq"),
    ({"dueDates": "gt_yesterday"}, "dueDates"),
    ({"dueDates": "2012-07-17"}, "operator_value"),
    ({"sortBy": "jobDueDate"}, "Only a single sorting parameter specified"),
    ({"sortOrder": "asc"}, "Only a single sorting parameter specified"),
    ({"sortBy": "createTime", "sortOrder": "asc"}, "sortBy"),
    ({"sortBy": "jobId", "sortOrder": "up"}, "sortOrder"),
    ({"priorityLowerThanOrEquals": "high"}, "priorityLowerThanOrEquals"),
    ({"priorityHigherThanOrEquals": "99999999999999999999"}, "priorityHigherThanOrEquals"),
    ({"withException": "yes"}, "withException"),
    ({"firstResult": "-1"}, "firstResult"),
    ({"maxResults": "ten"}, "maxResults"),
]


@pytest.mark.parametrize(("params", "message"), ERROR_CASES)
def test_bad_query_parameters_answer_400_naming_the_problem(admin_api, jobs, params, message):
    response = admin_api.get("/engine-rest/job", params)
    assert response.status_code == 400
    assert response.json()["type"] == "InvalidRequestException"
    assert message in response.json()["message"]


POST_ERROR_CASES = [
    ({"timers": True, "messages": True}, "cannot be used together"),
    ({"dueDates": [{"operator": "xx", "value": "2012-07-17T17:00:00"}]}, "comparator"),
    ({"dueDates": [{"operator": "gt"}]}, "needs a date"),
    ({"dueDates": "gt"}, "operator_value"),
    ({"dueDates": [1]}, "dueDate"),
    ({"sorting": [{"sortBy": "jobId"}]}, "sortOrder"),
    ({"sorting": [{"sortBy": "nope", "sortOrder": "asc"}]}, "sortBy"),
    ({"sorting": "jobId"}, "sorting"),
    ({"priorityLowerThanOrEquals": "abc"}, "priorityLowerThanOrEquals"),
    ({"jobIds": [["nested"]]}, "jobIds"),
    ({"jobId": {"a": 1}}, "jobId"),
    ({"tenantIds": ["acme"]}, "tenantIds"),
]


@pytest.mark.parametrize(("body", "message"), POST_ERROR_CASES)
def test_bad_post_bodies_answer_400_naming_the_problem(admin_api, jobs, body, message):
    for url in ("/engine-rest/job", "/engine-rest/job/count"):
        response = admin_api.post(url, body, format="json")
        assert response.status_code == 400, url
        assert response.json()["type"] == "InvalidRequestException"
        assert message in response.json()["message"]


def test_post_body_that_is_not_an_object_is_400(admin_api, jobs):
    response = admin_api.post("/engine-rest/job", ["j1"], format="json")
    assert response.status_code == 400


def test_get_job_tolerates_a_json_body(admin_api, jobs):
    response = admin_api.generic(
        "GET", "/engine-rest/job?jobId=j1", '{"jobId": "j2"}', content_type="application/json"
    )
    assert ids(response) == ["j1"]


def test_tenant_member_sees_only_own_and_shared_jobs(operator_api, viewer_api, jobs):
    for api in (operator_api, viewer_api):
        assert ids(api.get("/engine-rest/job")) == ["j1", "j2", "j3", "j5"]
        assert api.get("/engine-rest/job/count").json() == {"count": 4}
        # Asking for another tenant's rows explicitly still shows nothing of them.
        assert ids(api.get("/engine-rest/job", {"tenantIdIn": "globex"})) == []
        assert ids(api.get("/engine-rest/job", {"jobIds": "j4,j3"})) == ["j3"]
        response = api.get("/engine-rest/job/j4")
        assert response.status_code == 404
        assert response.json() == {
            "type": "InvalidRequestException",
            "message": "Job with id j4 does not exist",
        }


def test_unknown_job_id_answers_camunda_404(admin_api, jobs):
    response = admin_api.get("/engine-rest/job/missing")
    assert response.status_code == 404
    assert response.json()["message"] == "Job with id missing does not exist"


def test_worker_accounts_and_anonymous_users_cannot_query_jobs(worker_api, client, jobs):
    assert worker_api.get("/engine-rest/job").status_code == 403
    assert worker_api.post("/engine-rest/job/count", {}, format="json").status_code == 403
    assert client.get("/engine-rest/job").status_code == 401


def test_stacktrace_is_plain_text_and_204_when_there_is_none(admin_api, jobs):
    response = admin_api.get("/engine-rest/job/j1/stacktrace")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response.content == b"Traceback: j1"
    assert admin_api.get("/engine-rest/job/j3/stacktrace").status_code == 204
    assert admin_api.get("/engine-rest/job/missing/stacktrace").status_code == 404


def test_viewer_cannot_read_another_tenants_stacktrace(viewer_api, jobs):
    assert viewer_api.get("/engine-rest/job/j4/stacktrace").status_code == 404
