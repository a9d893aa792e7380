"""The real flowable-external-worker-client against a live ASGI server."""

import time

import pytest
from flowable.external_worker_client import ExternalWorkerClient
from requests.auth import HTTPBasicAuth

from external_tasks import services
from external_tasks.models import ExternalTask, ExternalTaskLog
from tests.external_tasks.live import asgi_server  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def handler(job, result):
    action = {v.name: v.value for v in job.variables}["action"]
    if action == "complete":
        return result.success().variable_string("result", "ok").variable_int("pages", 5)
    if action == "fail":
        return result.failure().error_message("scanner jam").error_details("trace").retries(0)
    if action == "bpmn":
        return result.bpmn_error().error_code("NO_CUSTOMER").variable_boolean("known", False)
    raise RuntimeError("worker crashed")


def test_flowable_worker_client_acquires_completes_and_fails(
    asgi_server,  # noqa: F811
    worker_user,
    admin_user,
):
    created = services.create(
        worker_user,
        [
            {"topicName": "invoices", "variables": {"action": {"value": a}}}
            for a in ("complete", "fail", "bpmn", "raise")
        ],
    )
    ids = {t.variables["action"]["value"]: t.id for t in created}
    client = ExternalWorkerClient(
        flowable_host=asgi_server,
        worker_id="flowable-worker",
        auth=HTTPBasicAuth("walter", "walter-password"),
    )
    subscription = client.subscribe(
        "invoices", handler, lock_duration="PT1M", wait_period_seconds=0.1, number_of_tasks=2
    )
    try:
        # Done when nothing fetchable is left: three handled, the crashing one out of retries.
        for _ in range(1200):  # up to a minute on a busy machine
            if not ExternalTask.objects.exclude(retries=0).exists():
                break
            time.sleep(0.05)
    finally:
        subscription.unsubscribe(timeout=10)

    remaining = dict(ExternalTask.objects.values_list("id", "retries"))
    assert remaining == {ids["fail"]: 0, ids["raise"]: 0}
    failed = ExternalTask.objects.get(pk=ids["fail"])
    assert (failed.error_message, failed.error_details) == ("scanner jam", "trace")
    crashed = ExternalTask.objects.get(pk=ids["raise"])
    assert crashed.error_message == "worker crashed"
    # Retries absent: each crash took one of the default three.
    assert ExternalTaskLog.objects.filter(task_id=ids["raise"], event="failed").count() == 3

    completed = ExternalTaskLog.objects.get(task_id=ids["complete"], event="completed")
    assert completed.worker_id == "flowable-worker"
    assert completed.variables == {
        "result": {"type": "String", "value": "ok", "valueInfo": {}},
        "pages": {"type": "Integer", "value": 5, "valueInfo": {}},
    }
    bpmn = ExternalTaskLog.objects.get(task_id=ids["bpmn"], event="bpmn-error")
    assert bpmn.error_code == "NO_CUSTOMER"
    assert bpmn.variables["known"]["value"] is False

    # The client's own query calls, as an operator: the two failed jobs remain.
    reader = ExternalWorkerClient(
        flowable_host=asgi_server, auth=HTTPBasicAuth("alice", "alice-password")
    )
    listed = reader._restClient.list_jobs()
    assert sorted(job.id for job in listed.data) == sorted([ids["fail"], ids["raise"]])
    job = reader._restClient.get_job(ids["fail"])
    assert (job.retries, job.exception_message) == (0, "scanner jam")
