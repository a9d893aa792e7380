"""Durability: replay a mixed workload through the REST faces and account for every task from
the log alone: created = completed + BPMN error + deleted + still open, row for row, and every
accepted worker outcome and operator action is in the log or the audit trail."""

import random
from collections import Counter

import pytest

from external_tasks import services
from external_tasks.models import ExternalTask, ExternalTaskLog
from project.models import AuditEntry

Event = ExternalTaskLog.Event
ET = "/engine-rest/external-task"
FJ = "/external-job-api"


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_every_created_task_is_accounted_for_by_the_log(worker_api, operator_api, admin_user):
    rng = random.Random(20261125)
    accepted = Counter()
    specs = [
        {"topicName": rng.choice(["bill", "ship"]), "tenantId": rng.choice(["acme", None])}
        for _ in range(60)
    ]
    response = worker_api.post(f"{ET}/create", specs, format="json")
    assert response.status_code == 200
    accepted["created"] = len(response.json())

    for round_ in range(8):
        fetched = worker_api.post(
            f"{ET}/fetchAndLock",
            {
                "workerId": "w",
                "maxTasks": 8,
                "topics": [
                    {"topicName": "bill", "lockDuration": 600_000},
                    {"topicName": "ship", "lockDuration": 600_000},
                ],
            },
            format="json",
        ).json()
        for task in fetched:
            choice = rng.choice(["complete", "fail", "fail-final", "bpmn", "flowable", "keep"])
            url = f"{ET}/{task['id']}"
            if choice == "complete":
                response = worker_api.post(
                    f"{url}/complete",
                    {"workerId": "w", "variables": {"n": {"value": round_}}},
                    format="json",
                )
            elif choice in ("fail", "fail-final"):
                retries = 1 if choice == "fail" else 0
                response = worker_api.post(
                    f"{url}/failure",
                    {"workerId": "w", "errorMessage": "x", "retries": retries, "retryTimeout": 0},
                    format="json",
                )
            elif choice == "bpmn":
                response = worker_api.post(
                    f"{url}/bpmnError", {"workerId": "w", "errorCode": "E"}, format="json"
                )
            elif choice == "flowable":
                response = worker_api.post(
                    f"{FJ}/acquire/jobs/{task['id']}/complete", {"workerId": "w"}, format="json"
                )
                choice = "complete"
            else:
                continue
            assert response.status_code == 204, response.content
            accepted[choice] += 1
        # Operators revive incidents now and then, and delete a few tasks.
        incidents = list(ExternalTask.objects.filter(retries=0).values_list("pk", flat=True))
        if incidents and round_ % 2:
            response = operator_api.put(
                f"{ET}/retries", {"retries": 2, "externalTaskIds": incidents}, format="json"
            )
            assert response.status_code == 204
            accepted["revived"] += len(incidents)
        if round_ % 3 == 2:
            doomed = list(ExternalTask.objects.order_by("?").values_list("pk", flat=True)[:3])
            accepted["deleted"] += services.delete(admin_user, doomed).changed

    log = ExternalTaskLog.objects

    def ids(event):
        return set(log.filter(event=event).values_list("task_id", flat=True))

    created, completed = ids(Event.CREATED), ids(Event.COMPLETED)
    bpmn, deleted = ids(Event.BPMN_ERROR), ids(Event.DELETED)
    still_open = set(ExternalTask.objects.values_list("pk", flat=True))
    outcomes = [completed, bpmn, deleted, still_open]
    assert len(created) == accepted["created"] == 60
    # Row for row: each created task has exactly one of the four fates.
    assert set().union(*outcomes) == created
    assert sum(len(s) for s in outcomes) == len(created)
    # Each accepted call left exactly one log line, none more.
    assert log.filter(event=Event.COMPLETED).count() == accepted["complete"]
    assert log.filter(event=Event.BPMN_ERROR).count() == accepted["bpmn"]
    assert log.filter(event=Event.FAILED).count() == accepted["fail"] + accepted["fail-final"]
    assert log.filter(event=Event.DELETED).count() == accepted["deleted"]
    assert log.filter(event=Event.RETRIES_SET).count() == accepted["revived"]
    # Operator actions are in the audit trail with exact counts.
    audited = Counter()
    for entry in AuditEntry.objects.all():
        audited[entry.action] += entry.count
    assert audited["external_task.set_retries"] == accepted["revived"]
    assert audited["external_task.delete"] == accepted["deleted"]
    # The workload really was mixed.
    assert all(accepted[k] for k in ("complete", "fail", "fail-final", "bpmn", "deleted"))
