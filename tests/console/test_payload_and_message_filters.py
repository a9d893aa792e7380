"""Finding work by what it was called with and by what its failure said: a job's payload
keyword arguments and "message contains" on exceptions and error messages, in the console and
over the API (the same FilterSet)."""

import pytest

from tests.console.conftest import make_job, make_task
from tests.console.test_tables import row_ids


def job_ids(api, query: str) -> set[str]:
    response = api.get(f"/engine-rest/job?{query}")
    assert response.status_code == 200, response.content
    return {job["id"] for job in response.json()}


@pytest.fixture
def orders(db):
    return {
        "five": make_job(payload={"args": [], "kwargs": {"order": 5, "customer": "ACME-1"}}),
        "seven": make_job(payload={"args": [], "kwargs": {"order": 7, "customer": "ACME-2"}}),
        "text": make_job(payload={"args": [], "kwargs": {"order": "5"}}),
        "none": make_job(payload={"args": [], "kwargs": {"order": None}}),
        "other": make_job(payload={"args": [5], "kwargs": {}}),
    }


@pytest.mark.parametrize(
    "query, expected",
    [
        ("payloadKwargs=order_eq_5", {"five"}),
        ("payloadKwargs=order_gt_5", {"seven"}),
        ("payloadKwargs=order_gteq_5", {"five", "seven"}),
        ("payloadKwargs=order_lt_7", {"five"}),
        ("payloadKwargs=order_neq_5", {"seven", "text", "none"}),
        ("payloadKwargs=customer_like_ACME-%25", {"five", "seven"}),
        ("payloadKwargs=customer_notLike_%25-1", {"seven"}),
        ("payloadKwargs=order_gteq_5,customer_like_%25-2", {"seven"}),
        ("payloadKwargs=missing_eq_5", set()),
    ],
)
def test_jobs_filter_by_their_payloads_keyword_arguments(admin_api, orders, query, expected):
    assert job_ids(admin_api, query) == {orders[name].pk for name in expected}


def test_the_console_filters_jobs_by_a_keyword_argument(operator_client, orders):
    response = operator_client.get("/jobs/?payloadKwargs=order_eq_7")
    assert row_ids(response) == [orders["seven"].pk]


@pytest.mark.parametrize(
    "query", ["payloadKwargs=a__b_eq_1", "payloadKwargs=1x_eq_1", "payloadKwargs=order_is_5"]
)
def test_a_bad_keyword_condition_is_a_camunda_400(admin_api, orders, query):
    response = admin_api.get(f"/engine-rest/job?{query}")
    assert response.status_code == 400
    assert response.json()["type"] == "InvalidRequestException"


def test_a_bad_keyword_condition_is_an_error_on_the_console_page(operator_client, orders):
    response = operator_client.get("/jobs/?payloadKwargs=order_is_5")
    assert response.status_code in (200, 400)
    assert "name_operator_value" in response.content.decode()
    assert row_ids(response) == []


def test_exception_message_contains_ignores_case_and_wildcards(admin_api, db):
    timeout = make_job(exception_message="Upstream TIMEOUT after 30 s", retries=0)
    percent = make_job(exception_message="disk 100% full", retries=0)
    make_job(exception_message="refused", retries=0)
    assert job_ids(admin_api, "exceptionMessageContains=timeout") == {timeout.pk}
    assert job_ids(admin_api, "exceptionMessageContains=0%25") == {percent.pk}
    assert job_ids(admin_api, "exceptionMessageContains=_") == set()


def test_error_message_contains_on_external_tasks(admin_api, operator_client, db):
    task = make_task(error_message="Payment gateway said NO", retries=0)
    make_task(error_message="other", retries=0)
    response = admin_api.get("/engine-rest/external-task?errorMessageContains=gateway")
    assert [row["id"] for row in response.json()] == [task.pk]
    console = operator_client.get("/external-tasks/?errorMessageContains=GATEWAY")
    assert row_ids(console) == [task.pk]


def test_another_tenants_jobs_stay_invisible_to_a_payload_filter(operator_client, db):
    make_job(payload={"args": [], "kwargs": {"order": 9}}, tenant_id="globex")
    assert row_ids(operator_client.get("/jobs/?payloadKwargs=order_eq_9")) == []
