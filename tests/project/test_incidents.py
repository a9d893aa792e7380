"""Camunda's incidents over jobs and external tasks: a row whose retries reach 0 has an incident
(failedJob / failedExternalTask) until its retries go above 0; /engine-rest/incident serves the
open ones with Camunda's parameters, sort keys, IncidentDto and errors; history keeps the rest."""

import importlib
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from external_tasks.models import ExternalTask, ExternalTaskLog
from jobs import claims
from jobs.models import Job, JobLog
from project.models import AuditEntry, Incident
from project.rest.dates import format_date
from tests.batches import run_batches
from tests.conftest import basic_client, make_user

pytestmark = pytest.mark.django_db

URL = "/engine-rest/incident"
ALWAYS_FAILS = "jobs.demo_handlers.always_fails"
TASKS = "/engine-rest/external-task"


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def runjobs():
    out = StringIO()
    call_command("runjobs", "--once", stdout=out, stderr=out)


def failing_job(retries=1, **fields):
    job = claims.enqueue_job(ALWAYS_FAILS, {"args": ["printer on fire"]}, retries=retries)
    if fields:
        Job.objects.filter(id=job.id).update(**fields)
    return job


def open_incidents():
    return list(Incident.objects.filter(state="open"))


# ---------------------------------------------------------------------------------------------
# Jobs


def test_a_job_failing_to_zero_retries_opens_a_failed_job_incident(admin_api):
    job = failing_job(activity_id="sendInvoice", tenant_id="acme", process_instance_id="pi-1")
    runjobs()

    failure = JobLog.objects.get(job_id=job.id, event="failed")
    [incident] = admin_api.get(URL).json()
    assert incident == {
        "id": incident["id"],
        "processDefinitionId": None,
        "processInstanceId": "pi-1",
        "executionId": None,
        "incidentTimestamp": format_date(failure.timestamp),
        "incidentType": "failedJob",
        "activityId": "sendInvoice",
        "failedActivityId": "sendInvoice",
        "causeIncidentId": incident["id"],
        "rootCauseIncidentId": incident["id"],
        "configuration": job.id,
        "tenantId": "acme",
        "incidentMessage": "printer on fire",
        "jobDefinitionId": None,
        "annotation": None,
    }
    assert admin_api.get(f"{URL}/{incident['id']}").json() == incident
    assert admin_api.get(f"{URL}/count").json() == {"count": 1}


def test_a_failure_with_retries_left_opens_no_incident(admin_api):
    failing_job(retries=2)
    runjobs()
    assert Job.objects.get().retries == 1
    assert admin_api.get(URL).json() == []


def test_a_job_failing_again_at_zero_keeps_its_one_incident(admin_api):
    job = failing_job()
    runjobs()
    first = admin_api.get(URL).json()
    assert admin_api.post(f"/engine-rest/job/{job.id}/execute").status_code == 500
    assert admin_api.get(URL).json() == first


def _job_retries_api(client, job):
    return client.put(f"/engine-rest/job/{job.id}/retries", {"retries": 2}, format="json")


def _job_retries_bulk(client, job):
    return client.post(
        "/engine-rest/job/retries", {"jobIds": [job.id], "retries": 2}, format="json"
    )


def _job_retries_console(client, job):
    console = Client()
    console.force_login(make_user("olga", "operator"))
    return console.post(
        "/jobs/actions/",
        {
            "action": "set_retries",
            "scope": "ids",
            "ids": [job.id],
            "retries": "2",
            "confirmed": "1",
        },
    )


@pytest.mark.parametrize("set_retries", [_job_retries_api, _job_retries_bulk, _job_retries_console])
def test_setting_a_failed_jobs_retries_resolves_its_incident_and_history_keeps_it(
    admin_api, set_retries
):
    job = failing_job()
    runjobs()
    [opened] = admin_api.get(URL).json()

    assert set_retries(admin_api, job).status_code in {200, 204, 302}
    run_batches()  # POST /job/retries is a batch the job executor runs

    assert Job.objects.get(id=job.id).retries == 2
    assert admin_api.get(URL).json() == []
    assert admin_api.get(f"{URL}/{opened['id']}").status_code == 404
    kept = Incident.objects.get(id=opened["id"])
    assert kept.state == "resolved" and kept.end_time is not None
    assert kept.configuration == job.id and kept.incident_message == "printer on fire"


def test_setting_retries_to_zero_opens_and_above_zero_resolves_in_bulk(admin_api):
    jobs = [claims.enqueue_job(ALWAYS_FAILS, {"args": []}) for _ in range(3)]
    ids = [job.id for job in jobs]
    body = {"jobIds": ids, "retries": 0}
    assert admin_api.post("/engine-rest/job/retries", body, format="json").status_code == 200
    run_batches()
    listed = admin_api.get(URL, {"sortBy": "configuration", "sortOrder": "asc"}).json()
    assert [i["configuration"] for i in listed] == sorted(ids)
    assert {i["incidentMessage"] for i in listed} == {None}  # never failed: no exception yet

    body = {"jobQuery": {"noRetriesLeft": True}, "retries": 1}
    assert admin_api.post("/engine-rest/job/retries", body, format="json").status_code == 200
    run_batches()
    assert admin_api.get(f"{URL}/count").json() == {"count": 0}
    assert Incident.objects.filter(state="resolved").count() == 3


def test_deleting_a_failed_job_closes_its_incident_as_deleted(admin_api):
    job = failing_job()
    runjobs()
    assert admin_api.delete(f"/engine-rest/job/{job.id}").status_code == 204
    assert admin_api.get(URL).json() == []
    assert Incident.objects.get().state == "deleted"


def test_a_failed_job_that_succeeds_when_executed_resolves_its_incident(admin_api):
    job = failing_job()
    runjobs()
    Job.objects.filter(id=job.id).update(
        handler="jobs.demo_handlers.send_invoice", payload={"args": ["INV-1"], "kwargs": {}}
    )
    assert admin_api.post(f"/engine-rest/job/{job.id}/execute").status_code == 204
    assert not Job.objects.filter(id=job.id).exists()
    assert Incident.objects.get().state == "resolved"


def test_a_job_created_without_retries_has_an_incident_from_the_start(admin_api):
    body = {"handler": "jobs.demo_handlers.send_invoice", "retries": 0}
    [created] = admin_api.post("/engine-rest/job/create", [body], format="json").json()
    [incident] = admin_api.get(URL).json()
    assert incident["configuration"] == created["id"]


# ---------------------------------------------------------------------------------------------
# External tasks


def failed_task(worker_api, retries=0, **fields):
    task = ExternalTask.objects.create(topic_name="invoice", tenant_id="acme", **fields)
    fetch = {
        "workerId": "w1",
        "maxTasks": 1,
        "topics": [{"topicName": "invoice", "lockDuration": 60000}],
    }
    assert worker_api.post(f"{TASKS}/fetchAndLock", fetch, format="json").json()
    body = {"workerId": "w1", "errorMessage": "no stock", "retries": retries, "retryTimeout": 60000}
    assert worker_api.post(f"{TASKS}/{task.id}/failure", body, format="json").status_code == 204
    return task


def test_an_external_task_failing_to_zero_retries_opens_a_failed_external_task_incident(
    admin_api, worker_api
):
    task = failed_task(worker_api, activity_id="reserve", execution_id="ex-1")
    failure = ExternalTaskLog.objects.get(task_id=task.id, event="failed")
    [incident] = admin_api.get(URL).json()
    assert incident["incidentType"] == "failedExternalTask"
    assert incident["configuration"] == task.id
    assert incident["incidentMessage"] == "no stock"
    assert incident["incidentTimestamp"] == format_date(failure.timestamp)
    assert (incident["activityId"], incident["executionId"]) == ("reserve", "ex-1")
    assert incident["failedActivityId"] is incident["jobDefinitionId"] is None


def test_an_external_task_failure_with_retries_left_opens_none(admin_api, worker_api):
    failed_task(worker_api, retries=2)
    assert admin_api.get(f"{URL}/count").json() == {"count": 0}


def _task_retries_api(client, task):
    return client.put(f"{TASKS}/{task.id}/retries", {"retries": 3}, format="json")


def _task_retries_bulk(client, task):
    body = {"externalTaskIds": [task.id], "retries": 3}
    return client.put(f"{TASKS}/retries", body, format="json")


def _task_retries_console(client, task):
    console = Client()
    console.force_login(make_user("olga", "operator", ["acme"]))
    return console.post(
        "/external-tasks/actions/",
        {
            "action": "set_retries",
            "scope": "ids",
            "ids": [task.id],
            "retries": "3",
            "confirmed": "1",
        },
    )


@pytest.mark.parametrize(
    "set_retries", [_task_retries_api, _task_retries_bulk, _task_retries_console]
)
def test_setting_a_failed_tasks_retries_resolves_its_incident(admin_api, worker_api, set_retries):
    task = failed_task(worker_api)
    [opened] = admin_api.get(URL).json()
    assert set_retries(admin_api, task).status_code in {200, 204, 302}
    assert ExternalTask.objects.get(id=task.id).retries == 3
    assert admin_api.get(URL).json() == []
    assert Incident.objects.get(id=opened["id"]).state == "resolved"


@pytest.mark.parametrize(("verb", "state"), [("complete", "resolved"), ("bpmnError", "deleted")])
def test_the_worker_ending_a_failed_task_closes_its_incident(admin_api, worker_api, verb, state):
    # Failed with no retries left, the task stays locked for the retry timeout: its worker
    # may still complete it (Camunda resolves the incident) or report a BPMN error.
    task = failed_task(worker_api)
    body = {"workerId": "w1", "errorCode": "out-of-stock"}
    assert worker_api.post(f"{TASKS}/{task.id}/{verb}", body, format="json").status_code == 204
    assert admin_api.get(URL).json() == []
    assert Incident.objects.get().state == state


def test_deleting_failed_tasks_closes_their_incidents_as_deleted(admin_api, worker_api):
    task = failed_task(worker_api)
    from external_tasks import services

    services.delete(make_user("root", "admin"), [task.id])
    assert Incident.objects.get().state == "deleted"


# ---------------------------------------------------------------------------------------------
# The query: every parameter, every sort key, paging


def incident(**fields) -> Incident:
    fields.setdefault("id", str(uuid.uuid4()))
    fields.setdefault("incident_type", "failedJob")
    fields.setdefault("incident_timestamp", timezone.now())
    fields.setdefault("configuration", "job-" + fields["id"])
    return Incident.objects.create(**fields)


T0 = timezone.now().replace(microsecond=0) - timedelta(days=1)

PARAMETERS = [
    ("incidentId", "id", "inc-a", "inc-a"),
    ("incidentType", "incident_type", "failedExternalTask", "failedExternalTask"),
    ("incidentMessage", "incident_message", "disk full", "disk full"),
    ("incidentMessageLike", "incident_message", "disk full", "%sk f%"),
    ("processDefinitionId", "process_definition_id", "pd:1", "pd:1"),
    ("processDefinitionKeyIn", "process_definition_key", "invoice", "other,invoice"),
    ("processInstanceId", "process_instance_id", "pi-9", "pi-9"),
    ("executionId", "execution_id", "ex-9", "ex-9"),
    ("activityId", "activity_id", "ship", "ship"),
    ("failedActivityId", "failed_activity_id", "ship", "ship"),
    ("causeIncidentId", "id", "inc-a", "inc-a"),
    ("rootCauseIncidentId", "id", "inc-a", "inc-a"),
    ("configuration", "configuration", "job-77", "job-77"),
    ("tenantIdIn", "tenant_id", "acme", "globex,acme"),
    ("jobDefinitionIdIn", "job_definition_id", "jd-1", "jd-0,jd-1"),
]


@pytest.mark.parametrize(("name", "field", "stored", "asked"), PARAMETERS)
def test_every_query_parameter_selects_its_incidents(admin_api, name, field, stored, asked):
    wanted = incident(**{"id": "inc-a", field: stored})
    incident(id="inc-b", incident_type="failedJob", configuration="job-b")
    for path in (URL, f"{URL}/count"):
        answer = admin_api.get(path, {name: asked}).json()
        if path == URL:
            assert [row["id"] for row in answer] == [wanted.id], name
        else:
            assert answer == {"count": 1}, name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("incidentTimestampBefore", ["early"]),
        ("incidentTimestampAfter", ["late"]),
    ],
)
def test_timestamp_bounds_are_strict(admin_api, name, expected):
    incident(id="early", incident_timestamp=T0)
    incident(id="middle", incident_timestamp=T0 + timedelta(hours=1))
    incident(id="late", incident_timestamp=T0 + timedelta(hours=2))
    bound = format_date(T0 + timedelta(hours=1))
    assert [row["id"] for row in admin_api.get(URL, {name: bound}).json()] == expected


def test_closed_incidents_are_not_listed(admin_api):
    incident(id="gone", state="resolved", end_time=timezone.now())
    assert admin_api.get(URL).json() == []
    assert admin_api.get(f"{URL}/count").json() == {"count": 0}
    assert admin_api.get(f"{URL}/gone").status_code == 404


SORTS = {
    "incidentId": "id",
    "incidentMessage": "incident_message",
    "incidentTimestamp": "incident_timestamp",
    "incidentType": "incident_type",
    "executionId": "execution_id",
    "activityId": "activity_id",
    "processInstanceId": "process_instance_id",
    "processDefinitionId": "process_definition_id",
    "causeIncidentId": "id",
    "rootCauseIncidentId": "id",
    "configuration": "configuration",
    "tenantId": "tenant_id",
}


@pytest.mark.parametrize("sort_by", list(SORTS))
def test_every_sort_key_orders_both_ways(admin_api, sort_by):
    field = SORTS[sort_by]
    values = {
        "incident_timestamp": [T0 + timedelta(minutes=m) for m in (2, 0, 1)],
        "incident_type": ["failedJob", "custom", "failedExternalTask"],
    }.get(field, ["b", "c", "a"])
    names = []
    for index, value in enumerate(values):
        fields = {"id": f"i{index}", "configuration": f"c{index}"}
        fields[field] = value
        names.append(incident(**fields).id)
    expected = [names[i] for i in sorted(range(3), key=lambda i: values[i])]
    ascending = admin_api.get(URL, {"sortBy": sort_by, "sortOrder": "asc"}).json()
    assert [row["id"] for row in ascending] == expected
    descending = admin_api.get(URL, {"sortBy": sort_by, "sortOrder": "desc"}).json()
    assert [row["id"] for row in descending] == expected[::-1]


def test_sorting_and_paging_errors_are_camundas(admin_api):
    response = admin_api.get(URL, {"sortBy": "jobPriority", "sortOrder": "asc"})
    assert response.status_code == 400
    assert response.json()["type"] == "InvalidRequestException"
    assert admin_api.get(URL, {"sortBy": "incidentId"}).status_code == 400
    assert admin_api.get(URL, {"incidentTimestampAfter": "yesterday"}).status_code == 400


def test_paging_windows_the_sorted_list(admin_api):
    for name in "abcde":
        incident(id=name)
    page = admin_api.get(
        URL, {"sortBy": "incidentId", "sortOrder": "asc", "firstResult": 1, "maxResults": 2}
    )
    assert [row["id"] for row in page.json()] == ["b", "c"]


# ---------------------------------------------------------------------------------------------
# Annotations, resolving, errors


def test_operators_annotate_and_clear_an_incident_and_it_is_audited(operator_api, viewer_api):
    target = incident(id="inc-1", tenant_id="acme")
    put = operator_api.put(f"{URL}/inc-1/annotation", {"annotation": "vendor down"}, format="json")
    assert put.status_code == 204 and put.content == b""
    assert viewer_api.get(f"{URL}/inc-1").json()["annotation"] == "vendor down"
    assert operator_api.delete(f"{URL}/inc-1/annotation").status_code == 204
    target.refresh_from_db()
    assert target.annotation is None
    entries = AuditEntry.objects.order_by("id")
    assert [e.action for e in entries] == ["incident.set_annotation", "incident.clear_annotation"]
    assert entries[0].target_ids == ["inc-1"] and entries[0].after == {"annotation": "vendor down"}
    assert entries[1].before["annotation"] == "vendor down"


def test_viewers_may_not_annotate(viewer_api):
    incident(id="inc-1", tenant_id="acme")
    response = viewer_api.put(f"{URL}/inc-1/annotation", {"annotation": "x"}, format="json")
    assert response.status_code == 403
    assert Incident.objects.get().annotation is None


def test_annotating_an_unknown_incident_is_camundas_bad_user_request(operator_api):
    for response in (
        operator_api.put(f"{URL}/nope/annotation", {"annotation": "x"}, format="json"),
        operator_api.delete(f"{URL}/nope/annotation"),
    ):
        assert response.status_code == 400
        assert response.json() == {"type": "BadUserRequestException", "message": "incident is null"}


def test_annotation_values_are_checked(operator_api):
    incident(id="inc-1")
    for body in ({"annotation": 5}, {"annotation": "x" * 4001}, {"note": "x"}):
        response = operator_api.put(f"{URL}/inc-1/annotation", body, format="json")
        assert response.status_code == 400, body
    assert Incident.objects.get().annotation is None


def test_resolving_a_failed_job_or_task_incident_is_refused_as_camunda_does(operator_api):
    incident(id="job-inc", incident_type="failedJob")
    incident(id="task-inc", incident_type="failedExternalTask")
    for incident_id, kind in (("job-inc", "failedJob"), ("task-inc", "failedExternalTask")):
        response = operator_api.delete(f"{URL}/{incident_id}")
        assert response.status_code == 400
        assert response.json() == {
            "type": "InvalidRequestException",
            "message": f"Cannot resolve an incident of type {kind}",
        }
    assert Incident.objects.filter(state="open").count() == 2
    missing = operator_api.delete(f"{URL}/nope")
    assert missing.status_code == 404
    assert missing.json()["message"] == "Cannot find an incident with id 'nope': incident is null"


def test_an_unknown_incident_is_camundas_404(viewer_api):
    response = viewer_api.get(f"{URL}/nope")
    assert response.status_code == 404
    assert response.json() == {
        "type": "InvalidRequestException",
        "message": "No matching incident with id nope",
    }


# ---------------------------------------------------------------------------------------------
# Tenants


def test_a_tenant_sees_and_annotates_only_its_own_and_shared_incidents(operator_api):
    incident(id="acme-1", tenant_id="acme")
    incident(id="shared", tenant_id=None)
    incident(id="globex-1", tenant_id="globex")
    listed = operator_api.get(URL, {"sortBy": "incidentId", "sortOrder": "asc"}).json()
    assert [row["id"] for row in listed] == ["acme-1", "shared"]
    assert operator_api.get(f"{URL}/count").json() == {"count": 2}
    assert operator_api.get(f"{URL}/count", {"tenantIdIn": "globex"}).json() == {"count": 0}
    assert operator_api.get(f"{URL}/globex-1").status_code == 404
    put = operator_api.put(f"{URL}/globex-1/annotation", {"annotation": "x"}, format="json")
    assert put.status_code == 400 and put.json()["message"] == "incident is null"
    assert operator_api.delete(f"{URL}/globex-1").status_code == 404
    assert Incident.objects.get(id="globex-1").annotation is None
    globex = basic_client(make_user("gina", "viewer", ["globex"]))
    assert [row["id"] for row in globex.get(URL).json()] == sorted(["globex-1", "shared"])


# ---------------------------------------------------------------------------------------------
# Backfill of rows that failed before incidents existed


def _run_backfill(app):
    migration = importlib.import_module(f"{app}.migrations.0009_incident_backfill")
    migration.open_incidents(apps, None)


def test_the_backfill_opens_incidents_for_rows_without_retries_stamped_by_their_history():
    job = Job.objects.create(handler="a.b", retries=0, exception_message="boom", tenant_id="acme")
    Incident.objects.all().delete()  # as before incidents existed
    failed_at = T0 + timedelta(hours=3)
    JobLog.objects.create(
        job_id=job.id, event="failed", timestamp=failed_at, retries=0, handler="a.b"
    )
    JobLog.objects.create(job_id=job.id, event="failed", timestamp=T0, retries=1, handler="a.b")
    never_logged = Job.objects.create(handler="a.b", retries=0)
    Job.objects.create(handler="a.b", retries=2)
    task = ExternalTask.objects.create(topic_name="t", retries=0, error_message="no stock")
    ExternalTask.objects.create(topic_name="t")  # never failed: retries null
    Incident.objects.all().delete()

    _run_backfill("jobs")
    _run_backfill("external_tasks")
    _run_backfill("jobs")  # twice changes nothing

    rows = {i.configuration: i for i in Incident.objects.all()}
    assert set(rows) == {job.id, never_logged.id, task.id}
    assert rows[job.id].incident_timestamp == failed_at
    assert rows[job.id].incident_message == "boom" and rows[job.id].tenant_id == "acme"
    assert rows[never_logged.id].incident_timestamp == never_logged.create_time
    assert rows[task.id].incident_type == "failedExternalTask"
    assert rows[task.id].incident_message == "no stock"
    assert {i.state for i in rows.values()} == {"open"}
