from datetime import timedelta

import pytest
from django.utils import timezone

from external_tasks.models import ExternalTask, ExternalTaskLog
from project.models import AuditEntry, Batch
from tests.batches import ended, run_batches
from tests.external_tasks.conftest import URL, fetch_body, make_task


def post(api, task_id, action, body):
    return api.post(f"{URL}/{task_id}/{action}", body, format="json")


def fetch_one(api, **fields):
    task = make_task(**fields)
    response = api.post(URL + "/fetchAndLock", fetch_body(max_tasks=1), format="json")
    assert [t["id"] for t in response.json()] == [task.id]
    return task


# ---------------------------------------------------------------------------------------------
# complete


def test_complete_removes_the_task_and_logs_outcome(worker_api):
    task = fetch_one(worker_api, variables={"in": {"type": "String", "value": "x"}})
    body = {
        "workerId": "aWorkerId",
        "variables": {
            "aVariable": {"value": "aStringValue"},
            "anotherVariable": {"value": 42},
            "aThirdVariable": {"value": True},
        },
        "localVariables": {"aLocalVariable": {"value": "aStringValue"}},
    }
    response = post(worker_api, task.id, "complete", body)
    assert response.status_code == 204
    assert response.content == b""
    assert not ExternalTask.objects.filter(pk=task.id).exists()
    log = ExternalTaskLog.objects.get(task_id=task.id, event="completed")
    assert log.worker_id == "aWorkerId"
    assert log.variables == {
        "aVariable": {"type": "String", "value": "aStringValue", "valueInfo": {}},
        "anotherVariable": {"type": "Integer", "value": 42, "valueInfo": {}},
        "aThirdVariable": {"type": "Boolean", "value": True, "valueInfo": {}},
        "aLocalVariable": {"type": "String", "value": "aStringValue", "valueInfo": {}},
    }
    assert log.duration_ms is not None and log.duration_ms >= 0
    assert log.topic_name == "aTopic"


def test_only_the_lock_holder_may_complete(worker_api):
    task = fetch_one(worker_api)
    response = post(worker_api, task.id, "complete", {"workerId": "intruder"})
    assert response.status_code == 400
    assert response.json()["type"] == "BadUserRequestException"
    assert "aWorkerId" in response.json()["message"]
    assert "intruder" in response.json()["message"]
    assert ExternalTask.objects.filter(pk=task.id).exists()


def test_unlocked_task_cannot_complete(worker_api):
    task = make_task()
    response = post(worker_api, task.id, "complete", {"workerId": "aWorkerId"})
    assert response.status_code == 400
    assert response.json()["message"] == (
        f"External Task {task.id} cannot be completed by worker 'aWorkerId'. "
        "It is not locked by any worker."
    )


@pytest.mark.parametrize("action", ["complete", "failure", "bpmnError", "extendLock", "lock"])
def test_unknown_and_foreign_ids_are_404(worker_api, action):
    foreign = make_task(tenant_id="globex", locked_for=60)
    body = {
        "workerId": "aWorkerId",
        "errorCode": "x",
        "newDuration": 1000,
        "lockDuration": 1000,
        "retries": 1,
    }
    for task_id in ("missing", foreign.id):
        response = post(worker_api, task_id, action, body)
        assert response.status_code == 404, (action, response.content)
        assert response.json()["type"] == "InvalidRequestException"


@pytest.mark.parametrize(
    "action, body",
    [
        ("complete", {}),
        ("complete", {"workerId": 3}),
        ("complete", {"workerId": "aWorkerId", "variables": {"a": {"value": 1, "type": "Nope"}}}),
        ("complete", {"workerId": "aWorkerId", "variables": ["a"]}),
        (
            "complete",
            {"workerId": "aWorkerId", "variables": {"a": {"value": "x", "type": "Integer"}}},
        ),
        ("failure", {"workerId": "aWorkerId", "retries": -1}),
        ("failure", {"workerId": "aWorkerId", "retries": "3"}),
        ("failure", {"workerId": "aWorkerId", "retries": 1, "retryTimeout": -5}),
        ("failure", {"workerId": "aWorkerId", "errorMessage": ["x"]}),
        ("bpmnError", {"workerId": "aWorkerId"}),
        ("bpmnError", {"workerId": "aWorkerId", "errorCode": 7}),
        ("bpmnError", {"workerId": "aWorkerId", "errorCode": "e" * 256}),
        ("lock", {"workerId": "w" * 256, "lockDuration": 1000}),
        ("extendLock", {"workerId": "aWorkerId"}),
        ("extendLock", {"workerId": "aWorkerId", "newDuration": -1}),
        ("extendLock", {"workerId": "aWorkerId", "newDuration": "soon"}),
        ("lock", {"workerId": "aWorkerId", "lockDuration": 0}),
        ("lock", {"lockDuration": 1000}),
    ],
)
def test_bad_action_bodies_are_400_and_change_nothing(worker_api, action, body):
    task = fetch_one(worker_api)
    before = ExternalTask.objects.values().get(pk=task.id)
    response = post(worker_api, task.id, action, body)
    assert response.status_code == 400, response.content
    assert response.json()["type"] == "InvalidRequestException"
    assert ExternalTask.objects.values().get(pk=task.id) == before


def test_malformed_json_on_complete_is_400(worker_api):
    task = fetch_one(worker_api)
    response = worker_api.post(
        f"{URL}/{task.id}/complete", "{oops", content_type="application/json"
    )
    assert response.status_code == 400


# ---------------------------------------------------------------------------------------------
# failure


def test_failure_with_retries_and_timeout_hides_the_task_until_the_timeout(worker_api):
    task = fetch_one(worker_api)
    body = {
        "workerId": "aWorkerId",
        "errorMessage": "Does not compute",
        "errorDetails": "stack trace",
        "retries": 3,
        "retryTimeout": 60000,
        "variables": {"attempt": {"value": 1}},
    }
    assert post(worker_api, task.id, "failure", body).status_code == 204
    task.refresh_from_db()
    assert task.retries == 3
    assert task.error_message == "Does not compute"
    assert task.error_details == "stack trace"
    assert task.variables["attempt"]["value"] == 1
    assert task.lock_expiration_time > timezone.now() + timedelta(seconds=50)
    fetch = fetch_body(worker="other")
    assert worker_api.post(URL + "/fetchAndLock", fetch, format="json").json() == []
    # Once the retry timeout has passed the task is fetchable again.
    ExternalTask.objects.filter(pk=task.id).update(
        lock_expiration_time=timezone.now() - timedelta(seconds=1)
    )
    again = worker_api.post(URL + "/fetchAndLock", fetch, format="json").json()
    assert [t["id"] for t in again] == [task.id]
    assert again[0]["errorMessage"] == "Does not compute"
    assert again[0]["variables"]["attempt"]["value"] == 1
    log = ExternalTaskLog.objects.get(task_id=task.id, event="failed")
    assert (log.error_message, log.error_details, log.retries) == (
        "Does not compute",
        "stack trace",
        3,
    )


def test_failure_without_timeout_is_fetchable_at_once(worker_api):
    task = fetch_one(worker_api)
    body = {"workerId": "aWorkerId", "errorMessage": "x", "retries": 1, "retryTimeout": 0}
    assert post(worker_api, task.id, "failure", body).status_code == 204
    again = worker_api.post(URL + "/fetchAndLock", fetch_body(worker="b"), format="json").json()
    assert [t["id"] for t in again] == [task.id]


def test_failure_with_zero_retries_makes_an_incident_that_is_never_fetched(worker_api, viewer_api):
    task = fetch_one(worker_api)
    body = {"workerId": "aWorkerId", "errorMessage": "fatal", "retries": 0, "retryTimeout": 0}
    assert post(worker_api, task.id, "failure", body).status_code == 204
    assert worker_api.post(URL + "/fetchAndLock", fetch_body(), format="json").json() == []
    failed = viewer_api.get(URL, {"noRetriesLeft": "true"}).json()
    assert [t["id"] for t in failed] == [task.id]


@pytest.mark.parametrize("retries", ["absent", None])
def test_failure_without_retries_sets_them_to_zero(worker_api, viewer_api, retries):
    # Camunda's retries field is a Java int: null or absent is 0 (camunda-client sends null
    # when a handler raises), so the task becomes an incident instead of counting down.
    task = fetch_one(worker_api, retries=2)
    body = {"workerId": "aWorkerId", "errorMessage": "boom"}
    if retries != "absent":
        body["retries"] = retries
    assert post(worker_api, task.id, "failure", body).status_code == 204
    task.refresh_from_db()
    assert task.retries == 0
    assert worker_api.post(URL + "/fetchAndLock", fetch_body(), format="json").json() == []
    failed = viewer_api.get(URL, {"noRetriesLeft": "true"}).json()
    assert [t["id"] for t in failed] == [task.id]


def test_only_the_lock_holder_may_fail(worker_api):
    task = fetch_one(worker_api)
    response = post(worker_api, task.id, "failure", {"workerId": "x", "retries": 0})
    assert response.status_code == 400
    task.refresh_from_db()
    assert task.retries is None


# ---------------------------------------------------------------------------------------------
# bpmnError, extendLock, lock


def test_bpmn_error_removes_the_task_and_logs_code_and_message(worker_api):
    task = fetch_one(worker_api)
    body = {
        "workerId": "aWorkerId",
        "errorCode": "bpmn-error",
        "errorMessage": "anErrorMessage",
        "variables": {
            "aVariable": {"value": "aStringValue", "type": "String"},
            "anotherVariable": {"value": True, "type": "Boolean"},
        },
    }
    assert post(worker_api, task.id, "bpmnError", body).status_code == 204
    assert not ExternalTask.objects.filter(pk=task.id).exists()
    log = ExternalTaskLog.objects.get(task_id=task.id, event="bpmn-error")
    assert (log.error_code, log.error_message) == ("bpmn-error", "anErrorMessage")
    assert log.variables["anotherVariable"]["value"] is True


def test_only_the_lock_holder_may_report_bpmn_error(worker_api):
    task = fetch_one(worker_api)
    body = {"workerId": "x", "errorCode": "c"}
    assert post(worker_api, task.id, "bpmnError", body).status_code == 400
    assert ExternalTask.objects.filter(pk=task.id).exists()


def test_extend_lock_moves_expiry_for_the_holder_only(worker_api):
    task = fetch_one(worker_api)
    response = post(worker_api, task.id, "extendLock", {"workerId": "anId", "newDuration": 100000})
    assert response.status_code == 400
    response = post(
        worker_api, task.id, "extendLock", {"workerId": "aWorkerId", "newDuration": 100000}
    )
    assert response.status_code == 204
    task.refresh_from_db()
    assert task.lock_expiration_time > timezone.now() + timedelta(seconds=90)
    assert ExternalTaskLog.objects.filter(task_id=task.id, event="lock-extended").count() == 1


def test_extend_lock_on_expired_lock_is_400(worker_api):
    # Unlike finishing, extending needs a live lock, as in Camunda.
    task = make_task(locked_for=-1)
    body = {"workerId": "aWorkerId", "newDuration": 1000}
    response = post(worker_api, task.id, "extendLock", body)
    assert response.status_code == 400
    assert response.json()["type"] == "BadUserRequestException"
    assert response.json()["message"].startswith("Cannot extend a lock that expired")
    task.refresh_from_db()
    assert not task.locked


def test_lock_endpoint_locks_free_tasks_and_refuses_foreign_locks(worker_api):
    free = make_task()
    held = make_task(locked_for=60, worker_id="someoneElse")
    body = {"workerId": "anId", "lockDuration": 100000}
    assert post(worker_api, free.id, "lock", body).status_code == 204
    free.refresh_from_db()
    assert free.worker_id == "anId" and free.locked
    response = post(worker_api, held.id, "lock", body)
    assert response.status_code == 400
    assert "someoneElse" in response.json()["message"]


# ---------------------------------------------------------------------------------------------
# Operator actions: unlock, retries, priority, bulk retries


def test_unlock_clears_lock_and_worker_and_is_audited(operator_api):
    task = make_task(locked_for=60, tenant_id="acme")
    response = operator_api.post(f"{URL}/{task.id}/unlock")
    assert response.status_code == 204
    task.refresh_from_db()
    assert task.worker_id is None and task.lock_expiration_time is None
    assert ExternalTaskLog.objects.filter(task_id=task.id, event="unlocked").exists()
    entry = AuditEntry.objects.get(action="external_task.unlock")
    assert (entry.username, entry.count, entry.source, entry.target_ids) == (
        "bob",
        1,
        "api",
        [task.id],
    )


def test_workers_and_viewers_may_not_use_operator_actions(worker_api, viewer_api):
    task = make_task(locked_for=60)
    for api in (worker_api, viewer_api):
        assert api.post(f"{URL}/{task.id}/unlock").status_code == 403
        assert api.put(f"{URL}/{task.id}/retries", {"retries": 1}, format="json").status_code == 403
        assert (
            api.put(f"{URL}/{task.id}/priority", {"priority": 1}, format="json").status_code == 403
        )
        body = {"retries": 1, "externalTaskIds": [task.id]}
        assert api.put(URL + "/retries", body, format="json").status_code == 403
    task.refresh_from_db()
    assert task.locked


def test_operator_actions_on_foreign_or_unknown_ids_are_404(operator_api):
    foreign = make_task(tenant_id="globex", locked_for=60)
    for task_id in ("missing", foreign.id):
        assert operator_api.post(f"{URL}/{task_id}/unlock").status_code == 404
        put = operator_api.put
        assert put(f"{URL}/{task_id}/retries", {"retries": 1}, format="json").status_code == 404
        assert put(f"{URL}/{task_id}/priority", {"priority": 1}, format="json").status_code == 404
    foreign.refresh_from_db()
    assert foreign.locked and foreign.retries is None


def test_set_retries_revives_a_failed_task(operator_api, worker_api):
    task = make_task(retries=0)
    response = operator_api.put(f"{URL}/{task.id}/retries", {"retries": 123}, format="json")
    assert response.status_code == 204
    task.refresh_from_db()
    assert task.retries == 123
    fetched = worker_api.post(URL + "/fetchAndLock", fetch_body(), format="json").json()
    assert [t["id"] for t in fetched] == [task.id]
    entry = AuditEntry.objects.get(action="external_task.set_retries")
    assert entry.before == {"retries": 0} and entry.after == {"retries": 123}


@pytest.mark.parametrize("body", [{}, {"retries": None}, {"retries": -1}, {"retries": "a"}])
def test_set_retries_rejects_null_negative_and_text(operator_api, body):
    task = make_task(retries=2)
    response = operator_api.put(f"{URL}/{task.id}/retries", body, format="json")
    assert response.status_code == 400
    task.refresh_from_db()
    assert task.retries == 2


def test_set_priority(operator_api, worker_api):
    low = make_task()
    high = make_task()
    response = operator_api.put(f"{URL}/{high.id}/priority", {"priority": 5}, format="json")
    assert response.status_code == 204
    body = fetch_body(max_tasks=1) | {"usePriority": True}
    fetched = worker_api.post(URL + "/fetchAndLock", body, format="json").json()
    assert [t["id"] for t in fetched] == [high.id]
    assert low.id != high.id
    bad = operator_api.put(f"{URL}/{low.id}/priority", {"priority": "top"}, format="json")
    assert bad.status_code == 400


def test_bulk_retries_by_ids_process_instances_and_query(operator_api):
    a = make_task(id="a", retries=0)
    b = make_task(id="b", retries=0, process_instance_id="pi-1")
    c = make_task(id="c", retries=0, topic_name="by-query")
    d = make_task(id="d", retries=0)
    foreign = make_task(id="f", retries=0, tenant_id="globex", topic_name="by-query")
    body = {
        "retries": 5,
        "externalTaskIds": ["a"],
        "processInstanceIds": ["pi-1"],
        "externalTaskQuery": {"topicName": "by-query"},
    }
    assert operator_api.put(URL + "/retries", body, format="json").status_code == 204
    retries = dict(ExternalTask.objects.values_list("id", "retries"))
    assert retries == {a.id: 5, b.id: 5, c.id: 5, d.id: 0, foreign.id: 0}
    entry = AuditEntry.objects.get(action="external_task.set_retries")
    assert entry.count == 3


def test_bulk_retries_documented_example_and_errors(operator_api):
    make_task(id="anExternalTask", retries=0, tenant_id="acme")
    make_task(id="anotherExternalTask", retries=0)
    example = {"retries": 123, "externalTaskIds": ["anExternalTask", "anotherExternalTask"]}
    assert operator_api.put(URL + "/retries", example, format="json").status_code == 204
    assert set(ExternalTask.objects.values_list("retries", flat=True)) == {123}
    for body, status in [
        ({"retries": 1}, 400),
        ({"retries": -1, "externalTaskIds": ["anExternalTask"]}, 400),
        ({"externalTaskIds": ["anExternalTask"]}, 400),
        ({"retries": 1, "externalTaskIds": ["anExternalTask", None]}, 400),
        ({"retries": 1, "externalTaskIds": ["anExternalTask", "missing"]}, 404),
        ({"retries": 1, "externalTaskQuery": {"locked": "x"}}, 400),
        ({"retries": 1, "processInstanceQuery": {}}, 400),
    ]:
        response = operator_api.put(URL + "/retries", body, format="json")
        assert response.status_code == status, (body, response.content)
    # The 404 left the existing task untouched: nothing half-written.
    assert set(ExternalTask.objects.values_list("retries", flat=True)) == {123}


def test_bulk_retries_async_answers_a_batch(operator_api):
    make_task(id="anExternalTask", retries=0)
    make_task(id="anotherExternalTask", retries=0)
    example = {"retries": 123, "externalTaskIds": ["anExternalTask", "anotherExternalTask"]}
    response = operator_api.post(URL + "/retries-async", example, format="json")
    assert response.status_code == 200
    batch = response.json()
    assert set(batch) == {
        "id",
        "type",
        "totalJobs",
        "jobsCreated",
        "batchJobsPerSeed",
        "invocationsPerBatchJob",
        "seedJobDefinitionId",
        "monitorJobDefinitionId",
        "batchJobDefinitionId",
        "suspended",
        "tenantId",
        "createUserId",
        "startTime",
        "executionStartTime",
    }
    assert batch["type"] == "set-external-task-retries"
    assert batch["totalJobs"] == 1 and batch["createUserId"] == "bob"
    # Answered at once; the job executor changes the rows.
    assert set(ExternalTask.objects.values_list("retries", flat=True)) == {0}
    run_batches()
    assert set(ExternalTask.objects.values_list("retries", flat=True)) == {123}
    assert ended(batch["id"]).total_rows == 2
    bad = operator_api.post(URL + "/retries-async", {"retries": 1}, format="json")
    assert bad.status_code == 400


def test_bulk_retries_async_over_nothing_is_refused_as_camunda_does(operator_api):
    make_task(id="anExternalTask", retries=0)
    body = {"retries": 1, "externalTaskQuery": {"topicName": "nothing-here"}}
    response = operator_api.post(URL + "/retries-async", body, format="json")
    assert response.status_code == 400
    assert response.json()["message"] == "externalTaskIds is empty"
    assert not Batch.objects.exists()


# ---------------------------------------------------------------------------------------------
# create (Taskyard extension)


def test_create_one_or_many_tasks_with_camunda_names(worker_api, admin_api):
    one = worker_api.post(
        URL + "/create",
        {
            "topicName": "invoice",
            "priority": 3,
            "tenantId": "acme",
            "businessKey": "order-7",
            "processInstanceId": "pi",
            "processDefinitionKey": "billing",
            "activityId": "sendInvoice",
            "retries": 2,
            "variables": {"amount": {"value": 12.5}},
            "extensionProperties": {"queue": "fast"},
        },
        format="json",
    )
    assert one.status_code == 200, one.content
    [created] = one.json()
    assert created["topicName"] == "invoice"
    assert created["variables"]["amount"] == {"type": "Double", "value": 12.5, "valueInfo": {}}
    assert created["extensionProperties"] == {"queue": "fast"}
    task = ExternalTask.objects.get(pk=created["id"])
    assert (task.priority, task.tenant_id, task.business_key, task.retries) == (
        3,
        "acme",
        "order-7",
        2,
    )
    assert ExternalTaskLog.objects.filter(task_id=task.id, event="created").exists()
    many = admin_api.post(URL + "/create", [{"topicName": "a"}, {"topicName": "b"}], format="json")
    assert [t["topicName"] for t in many.json()] == ["a", "b"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        [],
        {"priority": 1},
        {"topicName": 5},
        {"topicName": "a", "priority": "high"},
        {"topicName": "a", "retries": -1},
        {"topicName": "a", "tenantId": "globex"},
        {"topicName": "a", "variables": {"x": {"value": "y", "type": "Long"}}},
        {"topicName": "a", "colour": "blue"},
        [{"topicName": "ok"}, {"topicName": None}],
        [{"topicName": "ok"}, {"topicName": "t" * 256}],
        {"topicName": "a", "businessKey": "k" * 256},
        {"topicName": "a", "id": "i" * 65},
    ],
)
def test_create_rejects_bad_tasks_without_creating_any(worker_api, body):
    response = worker_api.post(URL + "/create", body, format="json")
    assert response.status_code == 400, response.content
    assert ExternalTask.objects.count() == 0


def test_bulk_retries_async_counts_tasks_that_already_had_those_retries(operator_api):
    make_task(id="failed", retries=0)
    make_task(id="set-before", retries=4)
    body = {"retries": 4, "externalTaskIds": ["failed", "set-before"]}
    batch = operator_api.post(URL + "/retries-async", body, format="json").json()
    assert batch["totalJobs"] == 1
    run_batches()
    assert ended(batch["id"]).total_rows == 2
    assert set(ExternalTask.objects.values_list("retries", flat=True)) == {4}
