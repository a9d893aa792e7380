"""The seed's /api/external-jobs and Flowable's /external-job-api over the same tasks."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from external_tasks.models import ExternalTask, ExternalTaskLog
from tests.external_tasks.conftest import URL, make_task

SEED = "/api/external-jobs"
FLOWABLE = "/external-job-api"
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")

SEED_KEYS = [
    "id",
    "variables",
    "subscriptionId",
    "tenantId",
    "executionId",
    "dueDate",
    "elementName",
    "retries",
    "topic",
    "exceptionMessage",
    "correlationId",
    "lockOwner",
    "elementId",
    "lockExpirationTime",
    "createTime",
    "processInstanceId",
    "processDefinitionId",
    "links",
]


def seed_task(**fields):
    defaults = dict(
        topic_name="Upload Invoice",
        tenant_id="acme",
        execution_id="56adec43-d43a-4112-9f49-cd7c64d1d75b",
        activity_id="d91e60a2-1fed-4c84-96a2-1ff117fbe2dd",
        activity_name="Order Execution",
        process_instance_id="1e09e53c-cf6a-11eb-ab94-50e08558ee22",
        process_definition_id="SampleDeployment:1:976626f9-3391-11ea-b509-eeee0affefe7",
        retries=3,
        error_message="dolore",
        variables={"SampleVariableName": {"type": "String", "value": "x", "valueInfo": {}}},
    )
    return make_task(**(defaults | fields))


def acquire_seed(api, **overrides):
    body = {
        "topic": "Upload Invoice",
        "workerId": "orderWorker-1",
        "lockDuration": "PT10M",
        "numberOfTasks": 1,
        "numberOfRetries": 10,
    } | overrides
    return api.post(SEED, body, format="json")


# ---------------------------------------------------------------------------------------------
# Seed face


def test_seed_example_request_answers_the_seed_page_field_for_field(worker_api):
    task = seed_task()
    before = timezone.now()
    response = acquire_seed(worker_api)
    assert response.status_code == 200, response.content
    page = response.json()
    assert list(page) == ["links", "content"]
    assert page["links"] == {"empty": False}
    [job] = page["content"]
    assert list(job) == SEED_KEYS
    assert job["id"] == task.id
    assert job["variables"] == [{"name": "SampleVariableName", "value": "x", "type": "string"}]
    assert job["subscriptionId"] == job["tenantId"] == "acme"
    assert job["executionId"] == "56adec43-d43a-4112-9f49-cd7c64d1d75b"
    assert job["elementName"] == "Order Execution"
    assert job["elementId"] == "d91e60a2-1fed-4c84-96a2-1ff117fbe2dd"
    assert job["retries"] == 3
    assert job["topic"] == "Upload Invoice"
    assert job["exceptionMessage"] == "dolore"
    assert job["correlationId"] == task.id
    assert job["lockOwner"] == "orderWorker-1"
    assert job["dueDate"] is None
    assert job["processInstanceId"] == "1e09e53c-cf6a-11eb-ab94-50e08558ee22"
    assert job["processDefinitionId"] == ("SampleDeployment:1:976626f9-3391-11ea-b509-eeee0affefe7")
    assert job["links"] == {"empty": True}
    assert ISO_Z.match(job["lockExpirationTime"]) and ISO_Z.match(job["createTime"])
    expires = datetime.strptime(job["lockExpirationTime"], "%Y-%m-%dT%H:%M:%S.%f%z")
    assert before + timedelta(minutes=9) < expires < timezone.now() + timedelta(minutes=11)


def test_seed_acquire_without_work_answers_an_empty_page(worker_api):
    response = acquire_seed(worker_api, topic="nothing")
    assert response.json() == {"links": {"empty": True}, "content": []}


def test_seed_number_of_tasks_defaults_to_one(worker_api):
    seed_task()
    seed_task()
    body = {"topic": "Upload Invoice", "workerId": "w", "lockDuration": "PT1M"}
    assert len(worker_api.post(SEED, body, format="json").json()["content"]) == 1
    body["numberOfTasks"] = 5
    assert len(worker_api.post(SEED, body, format="json").json()["content"]) == 1


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"topic": None}, "topic is required"),
        ({"workerId": ""}, "workerId is required"),
        ({"workerId": "w" * 256}, "workerId is longer than 255"),
        ({"lockDuration": None}, "lockDuration is required"),
        ({"lockDuration": "10 minutes"}, "lockDuration"),
        ({"lockDuration": 600000}, "lockDuration"),
        ({"lockDuration": "-PT1M"}, "lockDuration"),
        ({"numberOfTasks": 0}, "numberOfTasks"),
        ({"numberOfTasks": "2"}, "numberOfTasks"),
        ({"numberOfRetries": -1}, "numberOfRetries"),
    ],
)
def test_seed_bad_acquire_requests_are_400_in_flowable_format(worker_api, overrides, fragment):
    seed_task()
    response = acquire_seed(worker_api, **overrides)
    assert response.status_code == 400, response.content
    assert response.json()["message"] == "Bad request"
    assert fragment in response.json()["exception"]
    assert not ExternalTask.objects.filter(worker_id__isnull=False).exists()


def test_seed_list_filters_pages_and_omits_variables(viewer_api):
    a = seed_task(id="a", create_time=timezone.now() - timedelta(minutes=3))
    b = seed_task(
        id="b",
        topic_name="Other",
        error_message=None,
        create_time=timezone.now() - timedelta(minutes=2),
        locked_for=60,
    )
    c = seed_task(
        id="c",
        activity_id="el-c",
        activity_name="Ship",
        execution_id="ex-c",
        process_instance_id="pi-c",
        process_definition_id="pd-c",
        error_message="boom",
        tenant_id=None,
        create_time=timezone.now() - timedelta(minutes=1),
    )
    seed_task(id="foreign", tenant_id="globex")

    def ids(**params):
        response = viewer_api.get(SEED, params)
        assert response.status_code == 200, response.content
        page = response.json()
        for job in page["content"]:
            assert "variables" not in job
            assert list(job) == [k for k in SEED_KEYS if k != "variables"]
        return [job["id"] for job in page["content"]]

    assert ids() == [a.id, b.id, c.id]
    assert ids(id="b") == [b.id]
    assert ids(executionId="ex-c") == [c.id]
    assert ids(processInstanceId="pi-c") == [c.id]
    assert ids(processDefinitionId="pd-c") == [c.id]
    assert ids(elementId="el-c") == [c.id]
    assert ids(elementName="Ship") == [c.id]
    assert ids(topic="Other") == [b.id]
    assert ids(withException="true") == [a.id, c.id]
    assert ids(exceptionMessage="boom") == [c.id]
    assert ids(locked="true") == [b.id]
    assert ids(unlocked="true") == [a.id, c.id]
    assert ids(filterByCurrentSubscription="true") == [a.id, b.id]
    assert ids(offset=1, count=1) == [b.id]
    assert ids(count=0) == []
    assert viewer_api.get(SEED, {"count": "x"}).status_code == 400
    assert viewer_api.get(SEED, {"locked": "perhaps"}).status_code == 400
    empty = viewer_api.get(SEED, {"topic": "none"}).json()
    assert empty == {"links": {"empty": True}, "content": []}


def test_seed_list_default_count_is_ten(viewer_api):
    for _ in range(12):
        seed_task()
    assert len(viewer_api.get(SEED).json()["content"]) == 10


def test_seed_complete_fail_and_bpmn_error(worker_api):
    for _ in range(3):
        seed_task()
    jobs = acquire_seed(worker_api, numberOfTasks=3).json()["content"]
    done, failed, errored = (job["id"] for job in jobs)
    body = {
        "workerId": "orderWorker-1",
        "variables": [{"name": "invoiceNo", "type": "integer", "value": 7}],
    }
    assert worker_api.post(f"{SEED}/{done}/complete", body, format="json").status_code == 204
    log = ExternalTaskLog.objects.get(task_id=done, event="completed")
    assert log.variables == {"invoiceNo": {"type": "Integer", "value": 7, "valueInfo": {}}}
    fail = {
        "workerId": "orderWorker-1",
        "errorMessage": "scanner jam",
        "errorDetails": "details",
        "retries": 4,
        "retryTimeout": "PT5M",
    }
    assert worker_api.post(f"{SEED}/{failed}/fail", fail, format="json").status_code == 204
    listed = worker_api.get(SEED, {"id": failed})
    assert listed.status_code == 403  # workers may not query
    bpmn = {"workerId": "orderWorker-1", "errorCode": "NO_CUSTOMER"}
    assert worker_api.post(f"{SEED}/{errored}/bpmnError", bpmn, format="json").status_code == 204
    assert list(ExternalTask.objects.values_list("id", flat=True)) == [failed]
    task = ExternalTask.objects.get()
    assert (task.retries, task.error_message) == (4, "scanner jam")
    bpmn_log = ExternalTaskLog.objects.get(task_id=errored, event="bpmn-error")
    assert bpmn_log.error_code == "NO_CUSTOMER"


def test_seed_due_date_shows_when_a_failed_job_comes_back(worker_api, viewer_api):
    seed_task(retries=None)
    job = acquire_seed(worker_api).json()["content"][0]
    fail = {"workerId": "orderWorker-1", "errorMessage": "later", "retryTimeout": "PT5M"}
    assert worker_api.post(f"{SEED}/{job['id']}/fail", fail, format="json").status_code == 204
    [listed] = viewer_api.get(SEED).json()["content"]
    assert listed["dueDate"] is not None and ISO_Z.match(listed["dueDate"])
    due = datetime.strptime(listed["dueDate"], "%Y-%m-%dT%H:%M:%S.%f%z")
    assert timezone.now() + timedelta(minutes=4) < due
    # Retries absent: one less than Flowable's default of 3.
    assert listed["retries"] == 2
    assert listed["exceptionMessage"] == "later"


def test_seed_actions_by_other_workers_or_on_unknown_ids(worker_api):
    seed_task()
    job = acquire_seed(worker_api).json()["content"][0]
    response = worker_api.post(f"{SEED}/{job['id']}/complete", {"workerId": "x"}, format="json")
    assert response.status_code == 400
    assert "orderWorker-1" in response.json()["exception"]
    missing = worker_api.post(f"{SEED}/nope/complete", {"workerId": "x"}, format="json")
    assert missing.status_code == 404
    assert missing.json()["message"] == "Not found"
    bad = worker_api.post(
        f"{SEED}/{job['id']}/fail", {"workerId": "orderWorker-1", "retries": -2}, format="json"
    )
    assert bad.status_code == 400


def test_seed_faces_hide_other_tenants(worker_api, viewer_api):
    seed_task(tenant_id="globex")
    assert acquire_seed(worker_api).json()["content"] == []
    assert viewer_api.get(SEED).json()["content"] == []


# ---------------------------------------------------------------------------------------------
# Flowable face


def acquire_flowable(api, **overrides):
    body = {
        "topic": "Upload Invoice",
        "lockDuration": "PT1M",
        "numberOfTasks": 5,
        "numberOfRetries": 5,
        "workerId": "fw",
        "scopeType": None,
    } | overrides
    return api.post(f"{FLOWABLE}/acquire/jobs", body, format="json")


def test_flowable_acquire_answers_a_plain_array_with_variables(worker_api):
    task = seed_task(
        variables={
            "s": {"type": "String", "value": "x"},
            "i": {"type": "Integer", "value": 1},
            "l": {"type": "Long", "value": 2**40},
            "d": {"type": "Double", "value": 1.5},
            "b": {"type": "Boolean", "value": True},
            "j": {"type": "Json", "value": {"k": [1, 2]}},
            "js": {"type": "Json", "value": '{"k": true}'},
            "t": {"type": "Date", "value": "2024-01-02T03:04:05.678+0000"},
            "n": {"type": "Null", "value": None},
        }
    )
    response = acquire_flowable(worker_api)
    assert response.status_code == 200
    [job] = response.json()
    assert job["id"] == task.id
    assert job["lockOwner"] == "fw"
    assert job["url"].endswith(f"/external-job-api/jobs/{task.id}")
    assert {v["name"]: (v["type"], v["value"]) for v in job["variables"]} == {
        "s": ("string", "x"),
        "i": ("integer", 1),
        "l": ("long", 2**40),
        "d": ("double", 1.5),
        "b": ("boolean", True),
        "j": ("json", {"k": [1, 2]}),
        "js": ("json", {"k": True}),
        "t": ("date", "2024-01-02T03:04:05.678Z"),
        "n": ("null", None),
    }


def test_flowable_variables_round_trip_without_loss(worker_api, admin_api):
    seed_task()
    [job] = acquire_flowable(worker_api).json()
    sent = [
        {"name": "s", "type": "string", "value": "x"},
        {"name": "i", "type": "integer", "value": 1},
        {"name": "sh", "type": "short", "value": 2},
        {"name": "l", "type": "long", "value": 2**40},
        {"name": "d", "type": "double", "value": 1.25},
        {"name": "b", "type": "boolean", "value": False},
        {"name": "j", "type": "json", "value": {"a": 1}},
        {"name": "t", "type": "date", "value": "2024-01-02T03:04:05.678Z"},
    ]
    body = {"workerId": "fw", "variables": sent}
    response = worker_api.post(f"{FLOWABLE}/acquire/jobs/{job['id']}/complete", body, format="json")
    assert response.status_code == 204
    log = ExternalTaskLog.objects.get(task_id=job["id"], event="completed")
    from external_tasks.flowable import variables_out

    assert sorted(variables_out(log.variables), key=lambda v: v["name"]) == sorted(
        sent, key=lambda v: v["name"]
    )
    assert log.variables["t"]["type"] == "Date"
    assert log.variables["sh"]["type"] == "Short"


@pytest.mark.parametrize(
    "variables",
    [
        [{"name": "x", "type": "unknown", "value": 1}],
        [{"type": "string", "value": "x"}],
        [{"name": "x", "type": "integer", "value": "one"}],
        [{"name": "x", "type": "date", "value": "tomorrow"}],
        {"x": 1},
    ],
)
def test_flowable_bad_variables_are_400_and_keep_the_task(worker_api, variables):
    seed_task()
    [job] = acquire_flowable(worker_api).json()
    body = {"workerId": "fw", "variables": variables}
    response = worker_api.post(f"{FLOWABLE}/acquire/jobs/{job['id']}/complete", body, format="json")
    assert response.status_code == 400
    assert response.json()["message"] == "Bad request"
    assert ExternalTask.objects.filter(pk=job["id"]).exists()


def test_flowable_fail_decrements_retries_when_absent_and_sets_retry_timeout(worker_api):
    task = seed_task(retries=3)
    [job] = acquire_flowable(worker_api).json()
    body = {"workerId": "fw", "errorMessage": "oops", "retryTimeout": "PT10M"}
    assert (
        worker_api.post(
            f"{FLOWABLE}/acquire/jobs/{job['id']}/fail", body, format="json"
        ).status_code
        == 204
    )
    task.refresh_from_db()
    assert task.retries == 2
    assert task.lock_expiration_time > timezone.now() + timedelta(minutes=9)
    assert acquire_flowable(worker_api, workerId="other").json() == []
    bad = {"workerId": "fw", "retryTimeout": "soon"}
    response = worker_api.post(f"{FLOWABLE}/acquire/jobs/{job['id']}/fail", bad, format="json")
    assert response.status_code == 400


def test_flowable_bpmn_error_and_cmmn_terminate(worker_api):
    seed_task()
    seed_task()
    first, second = acquire_flowable(worker_api).json()
    body = {"workerId": "fw", "errorCode": "E1", "variables": []}
    response = worker_api.post(
        f"{FLOWABLE}/acquire/jobs/{first['id']}/bpmnError", body, format="json"
    )
    assert response.status_code == 204
    assert ExternalTaskLog.objects.get(task_id=first["id"], event="bpmn-error").error_code == "E1"
    response = worker_api.post(
        f"{FLOWABLE}/acquire/jobs/{second['id']}/cmmnTerminate", {"workerId": "fw"}, format="json"
    )
    assert response.status_code == 400
    assert "CMMN" in response.json()["exception"]
    assert ExternalTask.objects.filter(pk=second["id"]).exists()


def test_flowable_unacquire_one_or_all_of_a_workers_jobs(worker_api):
    for _ in range(3):
        seed_task()
    jobs = acquire_flowable(worker_api).json()
    one = jobs[0]["id"]
    foreign = worker_api.post(f"{FLOWABLE}/unacquire/jobs/{one}", {"workerId": "x"}, format="json")
    assert foreign.status_code == 400
    mine = worker_api.post(f"{FLOWABLE}/unacquire/jobs/{one}", {"workerId": "fw"}, format="json")
    assert mine.status_code == 204
    assert ExternalTask.objects.get(pk=one).worker_id is None
    assert (
        worker_api.post(f"{FLOWABLE}/unacquire/jobs", {"workerId": "fw"}, format="json").status_code
        == 204
    )
    assert not ExternalTask.objects.filter(worker_id__isnull=False).exists()
    assert worker_api.post(f"{FLOWABLE}/unacquire/jobs", {}, format="json").status_code == 400


def test_flowable_scope_type(worker_api):
    seed_task()
    assert acquire_flowable(worker_api, scopeType="cmmn").json() == []
    assert len(acquire_flowable(worker_api, scopeType="bpmn").json()) == 1


def test_flowable_job_list_filters_sorts_and_pages(viewer_api):
    now = timezone.now()
    a = seed_task(id="a", retries=1, create_time=now - timedelta(minutes=3), tenant_id="acme")
    b = seed_task(
        id="b",
        retries=5,
        error_message=None,
        create_time=now - timedelta(minutes=2),
        tenant_id=None,
        process_instance_id=None,
        locked_for=60,
    )
    c = seed_task(
        id="c",
        retries=3,
        activity_id="el-c",
        activity_name="Ship",
        execution_id="ex-c",
        process_definition_id="pd-c",
        create_time=now - timedelta(minutes=1),
    )

    def page(**params):
        response = viewer_api.get(f"{FLOWABLE}/jobs", params)
        assert response.status_code == 200, response.content
        return response.json()

    body = page()
    assert set(body) == {"data", "total", "start", "sort", "order", "size"}
    assert (body["total"], body["start"], body["sort"], body["order"], body["size"]) == (
        3,
        0,
        "id",
        "asc",
        3,
    )
    assert set(body["data"][0]) == {
        "id",
        "url",
        "correlationId",
        "processInstanceId",
        "processDefinitionId",
        "executionId",
        "scopeId",
        "subScopeId",
        "scopeDefinitionId",
        "scopeType",
        "elementId",
        "elementName",
        "retries",
        "exceptionMessage",
        "dueDate",
        "createTime",
        "tenantId",
        "lockOwner",
        "lockExpirationTime",
    }

    def ids(**params):
        return [job["id"] for job in page(**params)["data"]]

    assert ids(id="a") == [a.id]
    assert ids(processInstanceId=a.process_instance_id) == [a.id, c.id]
    assert ids(withoutProcessInstanceId="true") == [b.id]
    assert ids(executionId="ex-c") == [c.id]
    assert ids(processDefinitionId="pd-c") == [c.id]
    assert ids(elementId="el-c") == [c.id]
    assert ids(elementName="Ship") == [c.id]
    assert ids(withException="true") == [a.id, c.id]
    assert ids(exceptionMessage="dolore") == [a.id, c.id]
    assert ids(tenantId="acme") == [a.id, c.id]
    assert ids(tenantIdLike="ac%") == [a.id, c.id]
    assert ids(withoutTenantId="true") == [b.id]
    assert ids(locked="true") == [b.id]
    assert ids(unlocked="true") == [a.id, c.id]
    assert ids(scopeId="s") == []
    assert ids(scopeType="cmmn") == []
    assert ids(withoutScopeId="true", withoutScopeType="true") == [a.id, b.id, c.id]
    assert ids(sort="retries", order="desc") == [b.id, c.id, a.id]
    assert ids(sort="createTime", order="desc") == [c.id, b.id, a.id]
    assert ids(sort="tenantId") == [b.id, a.id, c.id]
    paged = page(start=1, size=1)
    assert ([j["id"] for j in paged["data"]], paged["total"], paged["size"]) == ([b.id], 3, 1)
    for params in (
        {"sort": "nope"},
        {"order": "sideways"},
        {"start": "-1"},
        {"size": "x"},
        {"locked": "maybe"},
    ):
        response = viewer_api.get(f"{FLOWABLE}/jobs", params)
        assert response.status_code == 400, params
        assert response.json()["message"] == "Bad request"


def test_flowable_job_detail_and_404(viewer_api):
    task = seed_task(tenant_id="acme")
    foreign = seed_task(tenant_id="globex")
    response = viewer_api.get(f"{FLOWABLE}/jobs/{task.id}")
    assert response.status_code == 200
    assert response.json()["id"] == task.id
    for missing in ("nope", foreign.id):
        response = viewer_api.get(f"{FLOWABLE}/jobs/{missing}")
        assert response.status_code == 404
        assert response.json() == {
            "message": "Not found",
            "exception": f"Could not find external worker job with id '{missing}'.",
        }


def test_flowable_errors_for_auth_and_roles(client, db, viewer_api):
    anonymous = client.get(f"{FLOWABLE}/jobs")
    assert anonymous.status_code == 401
    assert anonymous.json()["message"] == "Unauthorized"
    forbidden = viewer_api.post(f"{FLOWABLE}/acquire/jobs", {}, format="json")
    assert forbidden.status_code == 403
    assert forbidden.json()["message"] == "Forbidden"


def test_flowable_malformed_json_is_400(worker_api):
    response = worker_api.post(f"{FLOWABLE}/acquire/jobs", "{bad", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["message"] == "Bad request"


# ---------------------------------------------------------------------------------------------
# Cross-face


def test_acquired_on_seed_locked_on_camunda_completed_on_flowable(worker_api, viewer_api):
    task = seed_task()
    [job] = acquire_seed(worker_api, workerId="shared-worker").json()["content"]
    camunda = viewer_api.get(f"{URL}/{task.id}").json()
    assert camunda["workerId"] == "shared-worker"
    assert viewer_api.get(URL, {"locked": "true"}).json()[0]["id"] == task.id
    # Another worker cannot take it on any face.
    assert acquire_flowable(worker_api, workerId="intruder").json() == []
    fetch = {
        "workerId": "intruder",
        "maxTasks": 1,
        "topics": [{"topicName": "Upload Invoice", "lockDuration": 1000}],
    }
    assert worker_api.post(URL + "/fetchAndLock", fetch, format="json").json() == []
    body = {
        "workerId": "shared-worker",
        "variables": [{"name": "ok", "type": "boolean", "value": True}],
    }
    response = worker_api.post(f"{FLOWABLE}/acquire/jobs/{job['id']}/complete", body, format="json")
    assert response.status_code == 204
    assert viewer_api.get(f"{URL}/{task.id}").status_code == 404


def test_fetched_on_camunda_failed_on_seed_visible_on_flowable(worker_api, viewer_api):
    task = seed_task(retries=None)
    fetch = {
        "workerId": "cw",
        "maxTasks": 1,
        "topics": [{"topicName": "Upload Invoice", "lockDuration": 60000}],
    }
    assert worker_api.post(URL + "/fetchAndLock", fetch, format="json").json()[0]["id"] == task.id
    fail = {"workerId": "cw", "errorMessage": "down", "retries": 0}
    assert worker_api.post(f"{SEED}/{task.id}/fail", fail, format="json").status_code == 204
    job = viewer_api.get(f"{FLOWABLE}/jobs/{task.id}").json()
    assert (job["retries"], job["exceptionMessage"]) == (0, "down")
    camunda = viewer_api.get(f"{URL}/{task.id}").json()
    assert camunda["retries"] == 0


def test_dates_are_utc_with_milliseconds(viewer_api):
    seed_task(create_time=datetime(2020, 5, 4, 16, 35, 10, 474000, tzinfo=UTC))
    [job] = viewer_api.get(SEED).json()["content"]
    assert job["createTime"] == "2020-05-04T16:35:10.474Z"
