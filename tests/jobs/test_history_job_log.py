"""GET/POST /engine-rest/history/job-log, /count, /{id}, /{id}/stacktrace: Camunda's historic job
log over the job log, every parameter and sort key against entries the real transitions wrote."""

import socket
from io import StringIO

import pytest
from django.core.management import call_command

from jobs.filters import JOB_LOG_SORT_KEYS
from jobs.models import Job, JobLog
from tests.conftest import basic_client, make_user
from tests.jobs.factories import make_definition

URL = "/engine-rest/history/job-log"
EXPLODE = "tests.jobs.handlers.explode"
SUCCEED = "tests.jobs.handlers.succeed"
# Camunda's HistoricJobLogDto, key for key.
DTO_KEYS = {
    "id",
    "timestamp",
    "removalTime",
    "jobId",
    "jobDueDate",
    "jobRetries",
    "jobPriority",
    "jobExceptionMessage",
    "failedActivityId",
    "jobDefinitionId",
    "jobDefinitionType",
    "jobDefinitionConfiguration",
    "activityId",
    "executionId",
    "processInstanceId",
    "processDefinitionId",
    "processDefinitionKey",
    "deploymentId",
    "rootProcessInstanceId",
    "tenantId",
    "hostname",
    "batchId",
    "creationLog",
    "failureLog",
    "successLog",
    "deletionLog",
}
FLAGS = ("creationLog", "failureLog", "successLog", "deletionLog")


def create_job(api, **fields) -> str:
    response = api.post("/engine-rest/job/create", fields, format="json")
    assert response.status_code == 200, response.content
    return response.json()["id"]


@pytest.fixture
def life(admin_api):
    """Three jobs' lives through the real endpoints: `failing` (tenant acme, of definition d1)
    fails twice and gets a retry; `done` (no tenant) succeeds; `gone` (tenant globex) is
    suspended and deleted. Returns their ids."""
    make_definition(
        "d1",
        activity_id="task1",
        job_type="async-continuation",
        job_configuration="async-before",
        process_definition_id="pd:1",
        process_definition_key="pd",
        tenant_id="acme",
    )
    failing = create_job(
        admin_api,
        handler=EXPLODE,
        jobDefinitionId="d1",
        retries=2,
        priority=10,
        processInstanceId="pi1",
        executionId="ex1",
    )
    done = create_job(
        admin_api,
        handler=SUCCEED,
        priority=5,
        processInstanceId="pi2",
        processDefinitionId="other:1",
        processDefinitionKey="other",
        executionId="ex2",
        activityId="task2",
    )
    gone = create_job(admin_api, handler=SUCCEED, priority=1, tenantId="globex", activityId="task3")
    for _ in range(2):
        assert admin_api.post(f"/engine-rest/job/{failing}/execute").status_code == 500
    assert (
        admin_api.put(
            f"/engine-rest/job/{failing}/retries", {"retries": 1}, format="json"
        ).status_code
        == 204
    )
    assert admin_api.post(f"/engine-rest/job/{done}/execute").status_code == 204
    assert (
        admin_api.put(
            f"/engine-rest/job/{gone}/suspended", {"suspended": True}, format="json"
        ).status_code
        == 204
    )
    assert admin_api.delete(f"/engine-rest/job/{gone}").status_code == 204
    return {"failing": failing, "done": done, "gone": gone}


def states(entries) -> list[tuple[str, str]]:
    """(job id, the one flag set) of each entry."""
    result = []
    for entry in entries:
        flags = [flag for flag in FLAGS if entry[flag]]
        assert len(flags) == 1, entry
        result.append((entry["jobId"], flags[0]))
    return result


def get(api, **params):
    response = api.get(URL, params)
    assert response.status_code == 200, response.content
    return response.json()


def post(api, body, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    response = api.post(f"{URL}?{query}" if query else URL, body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def job_ids(entries) -> list[str]:
    return [entry["jobId"] for entry in entries]


# --- which entries the history shows ---------------------------------------------------------


def test_history_shows_creation_failures_success_and_deletion_but_no_locks_or_changes(
    admin_api, life
):
    entries = get(admin_api, sortBy="occurrence", sortOrder="asc")

    failing, done, gone = life["failing"], life["done"], life["gone"]
    assert states(entries) == [
        (failing, "creationLog"),
        (done, "creationLog"),
        (gone, "creationLog"),
        (failing, "failureLog"),
        (failing, "failureLog"),
        (done, "successLog"),
        (gone, "deletionLog"),
    ]
    # The log keeps more (started, retries set, suspended) for the console; history does not.
    kept = set(JobLog.objects.values_list("event", flat=True))
    assert {"started", "retries-set", "suspended"} <= kept
    assert admin_api.get(f"{URL}/count").json() == {"count": 7}


def test_a_succeeded_job_has_no_deletion_entry_after_its_success(admin_api, life):
    entries = get(admin_api, jobId=life["done"], sortBy="occurrence", sortOrder="asc")

    assert states(entries) == [(life["done"], "creationLog"), (life["done"], "successLog")]
    assert not Job.objects.filter(id=life["done"]).exists()


def test_entry_carries_every_field_of_camunda_dto(admin_api, life):
    first_failure = get(admin_api, jobId=life["failing"], failureLog="true")[0]

    entry = admin_api.get(f"{URL}/{first_failure['id']}").json()

    assert set(entry) == DTO_KEYS
    assert entry["jobId"] == life["failing"]
    assert entry["jobRetries"] == 1  # left after this failure
    assert entry["jobPriority"] == 10
    assert entry["jobDueDate"] is not None  # the next attempt's, set by the failure
    assert entry["jobExceptionMessage"] == "the printer is on fire"
    assert entry["failedActivityId"] == "task1"
    assert entry["jobDefinitionId"] == "d1"
    assert entry["jobDefinitionType"] == "async-continuation"
    assert entry["jobDefinitionConfiguration"] == "async-before"
    assert entry["activityId"] == "task1"
    assert entry["executionId"] == "ex1"
    assert entry["processInstanceId"] == "pi1"
    assert entry["processDefinitionId"] == "pd:1"
    assert entry["processDefinitionKey"] == "pd"
    assert entry["tenantId"] == "acme"
    assert entry["hostname"] == socket.gethostname()
    assert entry["failureLog"] is True
    assert [entry["creationLog"], entry["successLog"], entry["deletionLog"]] == [False] * 3
    for absent in ("removalTime", "deploymentId", "rootProcessInstanceId", "batchId"):
        assert entry[absent] is None
    assert entry["timestamp"].endswith("+0000") and len(entry["timestamp"]) == 28


def test_creation_entry_has_the_new_jobs_due_date_retries_and_priority(admin_api, life):
    created = get(admin_api, jobId=life["failing"], creationLog="true")

    assert len(created) == 1
    assert created[0]["jobRetries"] == 2
    assert created[0]["jobPriority"] == 10
    assert created[0]["jobDueDate"] is None
    assert created[0]["jobExceptionMessage"] is None
    assert created[0]["hostname"] == socket.gethostname()


def test_executor_entries_carry_the_definition_due_date_and_host(admin_api, settings):
    settings.TASKYARD_EXECUTOR = {
        **settings.TASKYARD_EXECUTOR,
        "HOSTNAME": "engine-7",
        "RETRY_CYCLE": "R3/PT5M",
    }
    make_definition("d2", job_type="timer-transition", job_configuration="cfg", tenant_id="acme")
    failing = create_job(admin_api, handler=EXPLODE, jobDefinitionId="d2", priority=3)
    done = create_job(admin_api, handler=SUCCEED, jobDefinitionId="d2", executionId="ex9")

    call_command("runjobs", "--once", stdout=StringIO(), stderr=StringIO())

    failure = get(admin_api, jobId=failing, failureLog="true")[0]
    success = get(admin_api, jobId=done, successLog="true")[0]
    job = Job.objects.get(id=failing)
    for entry in (failure, success):
        assert entry["hostname"] == "engine-7"
        assert entry["jobDefinitionType"] == "timer-transition"
        assert entry["jobDefinitionConfiguration"] == "cfg"
        assert entry["tenantId"] == "acme"
    assert failure["jobRetries"] == job.retries == 2
    assert failure["jobPriority"] == 3
    assert failure["jobDueDate"] is not None and job.due_date is not None
    assert success["executionId"] == "ex9"


# --- log type flags ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        ("creationLog", ["failing", "done", "gone"]),
        ("failureLog", ["failing", "failing"]),
        ("successLog", ["done"]),
        ("deletionLog", ["gone"]),
    ],
)
def test_each_log_type_flag_selects_its_entries(admin_api, life, flag, expected):
    wanted = [life[name] for name in expected]

    by_get = get(admin_api, **{flag: "true"}, sortBy="occurrence", sortOrder="asc")
    by_post = post(
        admin_api, {flag: True, "sorting": [{"sortBy": "occurrence", "sortOrder": "asc"}]}
    )

    assert job_ids(by_get) == job_ids(by_post) == wanted
    assert all(entry[flag] for entry in by_get)
    assert admin_api.get(f"{URL}/count", {flag: "true"}).json() == {"count": len(wanted)}


def test_false_flags_filter_nothing(admin_api, life):
    assert len(get(admin_api, creationLog="false", failureLog="false")) == 7
    assert len(post(admin_api, {"successLog": False, "deletionLog": None})) == 7


def test_the_last_of_several_log_type_flags_wins_as_in_camunda(admin_api, life):
    # Camunda's query keeps one state; each flag (creation, failure, success, deletion in that
    # order) replaces the previous one.
    both = get(admin_api, creationLog="true", failureLog="true")
    assert {e["jobId"] for e in both} == {life["failing"]} and all(e["failureLog"] for e in both)
    assert job_ids(post(admin_api, {"creationLog": True, "deletionLog": True})) == [life["gone"]]


# --- string, list and number parameters ----------------------------------------------------


@pytest.mark.parametrize(
    ("param", "value", "expected"),
    [
        ("jobId", "FAILING", {"failing"}),
        ("jobExceptionMessage", "the printer is on fire", {"failing"}),
        ("jobDefinitionId", "d1", {"failing"}),
        ("jobDefinitionType", "async-continuation", {"failing"}),
        ("jobDefinitionConfiguration", "async-before", {"failing"}),
        ("processInstanceId", "pi2", {"done"}),
        ("processDefinitionId", "pd:1", {"failing"}),
        ("processDefinitionKey", "other", {"done"}),
        ("hostname", socket.gethostname(), {"failing", "done", "gone"}),
        ("hostname", "elsewhere", set()),
        ("deploymentId", "aDeploymentId", set()),
        ("jobId", "nope", set()),
    ],
)
def test_string_parameters_match_exactly(admin_api, life, param, value, expected):
    value = life["failing"] if value == "FAILING" else value
    wanted = {life[name] for name in expected}

    assert set(job_ids(get(admin_api, **{param: value}))) == wanted
    assert set(job_ids(post(admin_api, {param: value}))) == wanted


def test_log_id_finds_one_entry_and_a_non_numeric_id_none(admin_api, life):
    entry = get(admin_api, jobId=life["done"], successLog="true")[0]

    assert [e["id"] for e in get(admin_api, logId=entry["id"])] == [entry["id"]]
    assert [e["id"] for e in post(admin_api, {"logId": entry["id"]})] == [entry["id"]]
    assert get(admin_api, logId="someId") == []
    assert get(admin_api, logId="99999999999999999999") == []


@pytest.mark.parametrize(
    ("param", "values", "expected"),
    [
        ("activityIdIn", [], {"failing", "done", "gone"}),
        ("activityIdIn", ["task2"], {"done"}),
        ("activityIdIn", ["task1", "task3"], {"failing", "gone"}),
        ("failedActivityIdIn", ["task1"], {"failing"}),
        ("failedActivityIdIn", ["task2", "task3"], set()),
        ("executionIdIn", ["ex1"], {"failing"}),
        ("executionIdIn", ["ex1", "ex2", "unknown"], {"failing", "done"}),
        ("tenantIdIn", ["acme"], {"failing"}),
        ("tenantIdIn", ["acme", "globex"], {"failing", "gone"}),
        ("tenantIdIn", [], {"failing", "done", "gone"}),
    ],
)
def test_list_parameters_empty_one_or_many(admin_api, life, param, values, expected):
    wanted = {life[name] for name in expected}

    by_get = get(admin_api, **{param: ",".join(values)}) if values else get(admin_api)
    repeated = admin_api.get(URL + "?" + "&".join(f"{param}={v}" for v in values)).json()
    by_post = post(admin_api, {param: values})

    assert set(job_ids(by_get)) == set(job_ids(repeated)) == set(job_ids(by_post)) == wanted


def test_failed_activity_is_only_on_failure_entries_of_that_activity(admin_api, life):
    entries = get(admin_api, failedActivityIdIn="task1")

    assert {e["jobId"] for e in entries} == {life["failing"]}
    # The job's failedActivityId is copied onto every later entry, as Camunda copies it.
    assert {e["failedActivityId"] for e in entries} == {"task1"}


def test_without_tenant_id_keeps_tenantless_entries_and_wins_over_tenant_ids(admin_api, life):
    assert set(job_ids(get(admin_api, withoutTenantId="true"))) == {life["done"]}
    both = post(admin_api, {"withoutTenantId": True, "tenantIdIn": ["acme"]})
    assert set(job_ids(both)) == {life["done"]}


@pytest.mark.parametrize(
    ("bounds", "expected"),
    [
        ({"jobPriorityHigherThanOrEquals": 5}, {"failing", "done"}),
        ({"jobPriorityHigherThanOrEquals": 11}, set()),
        ({"jobPriorityLowerThanOrEquals": 5}, {"done", "gone"}),
        ({"jobPriorityLowerThanOrEquals": 0}, set()),
        ({"jobPriorityHigherThanOrEquals": 5, "jobPriorityLowerThanOrEquals": 5}, {"done"}),
        ({"jobPriorityHigherThanOrEquals": 6, "jobPriorityLowerThanOrEquals": 4}, set()),
    ],
)
def test_priority_bounds_are_inclusive(admin_api, life, bounds, expected):
    wanted = {life[name] for name in expected}

    assert set(job_ids(get(admin_api, **bounds))) == wanted
    assert set(job_ids(post(admin_api, bounds))) == wanted


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"creationLog": "maybe"},
        {"withoutTenantId": "yes"},
        {"jobPriorityLowerThanOrEquals": "high"},
        {"jobPriorityHigherThanOrEquals": "9223372036854775808"},
        {"sortBy": "jobType", "sortOrder": "asc"},
        {"sortBy": "timestamp", "sortOrder": "up"},
        {"sortBy": "timestamp"},
        {"sortOrder": "desc"},
        {"firstResult": "-1"},
        {"maxResults": "many"},
    ],
)
def test_bad_query_values_are_camunda_400s(admin_api, life, params):
    for path in (URL, f"{URL}/count"):
        if path.endswith("count") and ("sortBy" in params or "sortOrder" in params):
            continue  # GET count ignores sorting, as Camunda's does
        if path.endswith("count") and ("firstResult" in params or "maxResults" in params):
            continue
        response = admin_api.get(path, params)
        assert response.status_code == 400, (path, params, response.content)
        assert response.json()["type"] == "InvalidRequestException"
        assert response.json()["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"unknownParameter": 1},
        {"creationLog": "maybe"},
        {"activityIdIn": [{"a": 1}]},
        {"jobPriorityLowerThanOrEquals": "high"},
        {"sorting": [{"sortBy": "jobType", "sortOrder": "asc"}]},
        {"sorting": [{"sortBy": "timestamp"}]},
        {"sorting": "timestamp"},
        ["not", "an", "object"],
    ],
)
def test_bad_bodies_are_camunda_400s(admin_api, life, body):
    for path in (URL, f"{URL}/count"):
        response = admin_api.post(path, body, format="json")
        assert response.status_code == 400, (path, body, response.content)
        assert set(response.json()) == {"type", "message"}


# --- sorting, paging, count ------------------------------------------------------------------

FIELD_OF_SORT_KEY = {
    "timestamp": "timestamp",
    "jobId": "jobId",
    "jobDefinitionId": "jobDefinitionId",
    "jobDueDate": "jobDueDate",
    "jobRetries": "jobRetries",
    "jobPriority": "jobPriority",
    "activityId": "activityId",
    "executionId": "executionId",
    "processInstanceId": "processInstanceId",
    "processDefinitionId": "processDefinitionId",
    "processDefinitionKey": "processDefinitionKey",
    "hostname": "hostname",
    "tenantId": "tenantId",
    "occurrence": "id",
}


def _key(value):
    # Nulls sort as the smallest value; ids compare as numbers.
    if value is None:
        return (0, "")
    return (1, int(value)) if isinstance(value, str) and value.isdigit() else (1, value)


def test_every_camunda_sort_key_is_accepted():
    assert set(JOB_LOG_SORT_KEYS) == {*FIELD_OF_SORT_KEY, "deploymentId"}


@pytest.mark.parametrize("sort_by", sorted(FIELD_OF_SORT_KEY))
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_sorting_by_each_key_orders_the_entries(admin_api, life, sort_by, order):
    field = FIELD_OF_SORT_KEY[sort_by]

    by_get = get(admin_api, sortBy=sort_by, sortOrder=order)
    by_post = post(admin_api, {"sorting": [{"sortBy": sort_by, "sortOrder": order}]})

    values = [_key(entry[field]) for entry in by_get]
    assert values == sorted(values, reverse=order == "desc")
    assert [e["id"] for e in by_get] == [e["id"] for e in by_post]
    assert len(by_get) == 7


def test_sorting_by_deployment_id_leaves_the_order_to_the_next_key(admin_api, life):
    sorting = [
        {"sortBy": "deploymentId", "sortOrder": "desc"},
        {"sortBy": "jobPriority", "sortOrder": "desc"},
    ]
    entries = post(admin_api, {"sorting": sorting})

    priorities = [entry["jobPriority"] for entry in entries]
    assert priorities == sorted(priorities, reverse=True) and priorities[0] == 10


def test_paging_walks_the_sorted_entries(admin_api, life):
    everything = [e["id"] for e in get(admin_api, sortBy="occurrence", sortOrder="asc")]

    pages = [
        [
            e["id"]
            for e in get(
                admin_api, sortBy="occurrence", sortOrder="asc", firstResult=first, maxResults=3
            )
        ]
        for first in (0, 3, 6)
    ]
    assert pages == [everything[0:3], everything[3:6], everything[6:]]
    assert [e["id"] for e in post(admin_api, {}, firstResult=5, maxResults=1)] == [everything[5]]


def test_count_matches_the_list_for_get_and_post(admin_api, life):
    assert admin_api.get(f"{URL}/count", {"jobId": life["failing"]}).json() == {"count": 3}
    counted = admin_api.post(
        f"{URL}/count",
        {"jobId": life["failing"], "sorting": [{"sortBy": "timestamp", "sortOrder": "asc"}]},
        format="json",
    )
    assert counted.json() == {"count": 3}
    assert admin_api.post(f"{URL}/count", {"successLog": True}, format="json").json() == {
        "count": 1
    }


# --- one entry, its stack trace --------------------------------------------------------------


def test_detail_answers_the_entry_and_404_for_unknown_or_hidden_entries(admin_api, life):
    entry = get(admin_api, jobId=life["done"], successLog="true")[0]
    started = JobLog.objects.filter(job_id=life["done"], event="started").get()

    assert admin_api.get(f"{URL}/{entry['id']}").json() == entry
    for missing in ("someId", "987654321", str(started.pk), "a%00b"):
        response = admin_api.get(f"{URL}/{missing}")
        assert response.status_code == 404, missing
        assert response.json()["type"] == "InvalidRequestException"
    assert admin_api.get(f"{URL}/someId").json()["message"] == (
        "Historic job log with id someId does not exist"
    )


def test_stacktrace_is_plain_text_of_the_failure_and_empty_elsewhere(admin_api, life):
    failure = get(admin_api, jobId=life["failing"], failureLog="true")[0]
    created = get(admin_api, jobId=life["failing"], creationLog="true")[0]

    response = admin_api.get(f"{URL}/{failure['id']}/stacktrace")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert "ValueError: the printer is on fire" in response.content.decode()
    assert admin_api.get(f"{URL}/{created['id']}/stacktrace").status_code == 204
    missing = admin_api.get(f"{URL}/424242/stacktrace")
    assert missing.status_code == 404
    assert missing.json() == {
        "type": "InvalidRequestException",
        "message": "No historic job log found with id 424242: historicJobLog is null",
    }


# --- tenants and roles -----------------------------------------------------------------------


def test_a_tenant_sees_its_own_and_tenantless_entries_only(viewer_api, admin_api, life):
    gone_entry = get(admin_api, jobId=life["gone"])[0]

    seen = get(viewer_api)
    assert {e["jobId"] for e in seen} == {life["failing"], life["done"]}
    assert viewer_api.get(f"{URL}/count").json() == {"count": 5}
    assert get(viewer_api, tenantIdIn="globex") == []
    assert post(viewer_api, {"deletionLog": True}) == []
    assert viewer_api.get(f"{URL}/{gone_entry['id']}").status_code == 404
    assert viewer_api.get(f"{URL}/{gone_entry['id']}/stacktrace").status_code == 404


def test_the_other_tenant_sees_the_mirror_image(life):
    other = basic_client(make_user("gina", "viewer", ["globex"]))

    assert {e["jobId"] for e in get(other)} == {life["done"], life["gone"]}
    assert other.get(f"{URL}/count", {"tenantIdIn": "acme"}).json() == {"count": 0}


def test_workers_and_anonymous_callers_cannot_read_history(worker_api, life):
    from rest_framework.test import APIClient

    assert worker_api.get(URL).status_code == 403
    assert worker_api.get(f"{URL}/count").status_code == 403
    anonymous = APIClient().get(URL)
    assert anonymous.status_code == 401
    assert anonymous.json()["type"] == "AuthenticationException"


# --- backfill ------------------------------------------------------------------------------


def test_migration_backfills_what_old_entries_can_derive(admin_api):
    import importlib

    from django.apps import apps

    migration = importlib.import_module("jobs.migrations.0008_joblog_history_fields")
    make_definition("d3", job_type="message", job_configuration="conf", tenant_id="acme")
    job = create_job(
        admin_api, handler=EXPLODE, jobDefinitionId="d3", executionId="ex3", priority=4
    )
    admin_api.post(f"/engine-rest/job/{job}/execute")
    # What entries written before the migration looked like.
    JobLog.objects.update(
        job_definition_type=None,
        job_definition_configuration=None,
        execution_id=None,
        process_definition_id=None,
        priority=None,
        failed_activity_id=None,
    )

    migration.backfill(apps, None)

    for entry in JobLog.objects.filter(job_id=job):
        assert (entry.job_definition_type, entry.job_definition_configuration) == (
            "message",
            "conf",
        )
        assert entry.execution_id == "ex3" and entry.priority == 4
    assert JobLog.objects.get(job_id=job, event="failed").failed_activity_id is None  # no activity
