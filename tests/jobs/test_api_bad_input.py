"""Odd values in every job query parameter and action body: a 4xx or a result, never a 500."""

import pytest

from jobs.filters import JobDefinitionFilter, JobFilter
from tests.jobs.factories import make_definition, make_job

ODD_VALUES = [None, True, 1.5, -1, "", "x", [], [None], [1, "a"], {}, {"a": 1}, [{"operator": []}]]


@pytest.fixture
def rows(db):
    make_definition("d1")
    make_job("j1", job_definition_id="d1")


@pytest.mark.parametrize("name", sorted(JobFilter.base_filters) + ["sorting"])
def test_job_query_body_never_answers_500(admin_api, rows, name):
    for value in ODD_VALUES:
        for url in ("/engine-rest/job", "/engine-rest/job/count"):
            response = admin_api.post(url, {name: value}, format="json")
            assert response.status_code in (200, 400), (name, value, response.content)


@pytest.mark.parametrize("name", sorted(JobDefinitionFilter.base_filters) + ["sorting"])
def test_job_definition_query_body_never_answers_500(admin_api, rows, name):
    for value in ODD_VALUES:
        response = admin_api.post("/engine-rest/job-definition", {name: value}, format="json")
        assert response.status_code in (200, 400), (name, value, response.content)


def test_odd_sorting_values_are_400(admin_api, rows):
    for sorting in (
        [{"sortBy": ["jobId"], "sortOrder": "asc"}],
        [{"sortBy": "jobId", "sortOrder": {}}],
    ):
        response = admin_api.post("/engine-rest/job", {"sorting": sorting}, format="json")
        assert response.status_code == 400


ACTIONS = [
    ("put", "/engine-rest/job/j1/retries", ["retries", "dueDate"]),
    ("put", "/engine-rest/job/j1/suspended", ["suspended"]),
    ("put", "/engine-rest/job/j1/duedate", ["duedate", "cascade"]),
    ("put", "/engine-rest/job/j1/priority", ["priority"]),
    ("post", "/engine-rest/job/retries", ["retries", "jobIds", "jobQuery", "dueDate"]),
    ("put", "/engine-rest/job/suspended", ["jobDefinitionId", "processDefinitionKey", "suspended"]),
    ("post", "/engine-rest/job/create", ["handler", "payload", "dueDate", "priority", "tenantId"]),
    (
        "put",
        "/engine-rest/job-definition/d1/suspended",
        ["suspended", "includeJobs", "executionDate"],
    ),
    ("put", "/engine-rest/job-definition/suspended", ["processDefinitionId", "suspended"]),
    ("put", "/engine-rest/job-definition/d1/jobPriority", ["priority", "includeJobs"]),
    ("put", "/engine-rest/job-definition/d1/retries", ["retries"]),
]


@pytest.mark.parametrize(("method", "url", "names"), ACTIONS)
def test_action_bodies_never_answer_500(admin_api, rows, method, url, names):
    send = getattr(admin_api, method)
    for body in ["text", [1], 7]:
        assert send(url, body, format="json").status_code == 400
    for name in names:
        for value in ODD_VALUES:
            response = send(url, {name: value}, format="json")
            assert response.status_code < 500, (name, value, response.content)
