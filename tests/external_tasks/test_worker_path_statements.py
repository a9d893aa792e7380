"""The HTTP worker path stays cheap: statements per authenticated request, per fetchAndLock and
per complete. On PostgreSQL a claim and a complete are one statement each, outside any
transaction block (no SAVEPOINT inside a test's transaction, no BEGIN/COMMIT in production)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from external_tasks.models import ExternalTask, ExternalTaskLog
from tests.external_tasks.conftest import URL, fetch_body, make_task


def statements(call):
    with CaptureQueriesContext(connection) as captured:
        response = call()
    return response, [q["sql"] for q in captured]


def fetch(api, max_tasks=10):
    return api.post(URL + "/fetchAndLock", fetch_body(max_tasks=max_tasks), format="json")


def complete(api, task_id, worker="aWorkerId", **body):
    return api.post(f"{URL}/{task_id}/complete", {"workerId": worker, **body}, format="json")


@pytest.mark.postgres
def test_fetch_and_lock_claims_and_logs_in_one_statement(worker_api):
    tasks = [make_task(tenant_id="acme") for _ in range(3)]
    fetch(worker_api, max_tasks=1)  # verifies the password
    response, sql = statements(lambda: fetch(worker_api))
    assert len(response.json()) == 2
    assert len(sql) == 2, sql  # the account, then the claim with its log entries
    locked = ExternalTaskLog.objects.filter(event="locked", worker_id="aWorkerId")
    assert sorted(locked.values_list("task_id", flat=True)) == sorted(t.id for t in tasks)


@pytest.mark.postgres
def test_complete_deletes_and_logs_in_one_statement(worker_api):
    task = make_task(
        tenant_id="acme",
        retries=2,
        business_key="order-7",
        process_instance_id="pi-7",
        process_definition_key="invoice",
        activity_id="send",
    )
    fetch(worker_api)
    ExternalTaskLog.objects.filter(task_id=task.id, event="locked").update(
        timestamp=timezone.now() - timedelta(seconds=2)
    )
    variables = {"result": {"value": "ok"}}
    response, sql = statements(lambda: complete(worker_api, task.id, variables=variables))
    assert response.status_code == 204
    assert len(sql) == 2, sql  # the account, then delete + log
    assert not ExternalTask.objects.filter(pk=task.id).exists()
    log = ExternalTaskLog.objects.get(task_id=task.id, event="completed")
    assert (log.worker_id, log.retries, log.tenant_id, log.topic_name) == (
        "aWorkerId",
        2,
        "acme",
        "aTopic",
    )
    assert (log.business_key, log.process_instance_id) == ("order-7", "pi-7")
    assert (log.process_definition_key, log.activity_id) == ("invoice", "send")
    assert log.variables == {"result": {"type": "String", "value": "ok", "valueInfo": {}}}
    assert 2000 <= log.duration_ms < 60_000
    assert log.error_code is log.error_message is None


@pytest.mark.postgres
def test_bpmn_error_deletes_and_logs_in_one_statement(worker_api):
    task = make_task(tenant_id="acme")
    fetch(worker_api)
    body = {"workerId": "aWorkerId", "errorCode": "no-stock", "errorMessage": "none left"}
    response, sql = statements(
        lambda: worker_api.post(f"{URL}/{task.id}/bpmnError", body, format="json")
    )
    assert response.status_code == 204
    assert len(sql) == 2, sql
    log = ExternalTaskLog.objects.get(task_id=task.id, event="bpmn-error")
    assert (log.error_code, log.error_message, log.variables) == ("no-stock", "none left", None)
    assert log.duration_ms is not None


def test_complete_statements_are_bounded(worker_api):
    task = make_task(tenant_id="acme")
    fetch(worker_api)
    response, sql = statements(lambda: complete(worker_api, task.id))
    assert response.status_code == 204
    # SQLite: the account, then a locked read, the lock's log time, insert, delete.
    assert len([s for s in sql if "SAVEPOINT" not in s]) <= 5, sql


@pytest.mark.parametrize(
    ("worker", "locked_for", "tenant", "status"),
    [
        ("intruder", 60, "acme", 400),  # another worker's lock
        ("intruder", -1, "acme", 400),  # another worker's expired lock
        ("aWorkerId", None, "acme", 400),  # not locked at all
        ("aWorkerId", 60, "globex", 404),  # another tenant's task looks absent
    ],
)
def test_complete_refusals_change_nothing(worker_api, worker, locked_for, tenant, status):
    task = make_task(tenant_id=tenant, locked_for=locked_for)
    response = complete(worker_api, task.id, worker=worker)
    assert response.status_code == status
    assert ExternalTask.objects.filter(pk=task.id).exists()
    assert not ExternalTaskLog.objects.filter(task_id=task.id, event="completed").exists()


def test_complete_of_unknown_task_is_404(worker_api):
    assert complete(worker_api, "no-such-task").status_code == 404
