"""Camunda's /engine-rest/batch and /engine-rest/history/batch over the Batch rows: every query
parameter and sort key of the contract, BatchDto / BatchStatisticsDto / HistoricBatchDto field
for field, Camunda's errors, roles and tenants.

The rows here are written directly (a batch, its audit entry and the audit entry's tenants, as
project.batches.start() leaves them), so every filter and sort can be held to exact rows; the
batches the engine starts and runs are tested in test_batch_api_engine.py."""

from datetime import UTC, datetime

import pytest

from project import audit
from project.models import Batch
from tests.conftest import basic_client, make_user

pytestmark = pytest.mark.django_db

URL = "/engine-rest/batch"
HISTORY = "/engine-rest/history/batch"


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def make_batch(batch_id, *, tenants=(None,), user=None, **fields) -> Batch:
    """A batch whose rows were of `tenants` (its audit entry's tenants decide who sees it)."""
    entry = audit.record(
        user, "job", "set_retries", tenants=list(tenants), count=fields.get("total_rows", 0)
    )
    named = [t for t in tenants if t is not None]
    values = {
        "type": "set-job-retries",
        "target_type": "job",
        "parameters": {"retries": 3},
        "total_rows": 10,
        "total_jobs": 1,
        "jobs_created": 1,
        "batch_jobs_per_seed": 100,
        "invocations_per_batch_job": 1000,
        "seed_job_definition_id": f"{batch_id}-seed",
        "monitor_job_definition_id": f"{batch_id}-monitor",
        "batch_job_definition_id": f"{batch_id}-jobs",
        "tenant_id": named[0] if len(set(tenants)) == 1 and named else None,
        "create_user_id": "bob",
        "start_time": at("2024-03-01 10:00:00"),
        "audit_entry": entry,
        **fields,
    }
    return Batch.objects.create(id=batch_id, **values)


def ended(batch_id, end="2024-03-01 11:00:00", **fields) -> Batch:
    return make_batch(batch_id, end_time=at(end), outcome=Batch.Outcome.COMPLETED, **fields)


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()]


def error(response, code: int) -> str:
    assert response.status_code == code, response.content
    body = response.json()
    assert set(body) == {"type", "message"}
    return body["message"]


# ---------------------------------------------------------------------------------------------
# The DTOs


def test_a_running_batch_answers_camunda_batch_dto_key_for_key(viewer_api):
    make_batch(
        "b1",
        tenants=["acme"],
        total_jobs=7,
        jobs_created=3,
        start_time=at("2024-03-01 10:00:00.123"),
        execution_start_time=at("2024-03-01 10:00:01.5"),
    )
    expected = {
        "id": "b1",
        "type": "set-job-retries",
        "totalJobs": 7,
        "jobsCreated": 3,
        "batchJobsPerSeed": 100,
        "invocationsPerBatchJob": 1000,
        "seedJobDefinitionId": "b1-seed",
        "monitorJobDefinitionId": "b1-monitor",
        "batchJobDefinitionId": "b1-jobs",
        "suspended": False,
        "tenantId": "acme",
        "createUserId": "bob",
        "startTime": "2024-03-01T10:00:00.123+0000",
        "executionStartTime": "2024-03-01T10:00:01.500+0000",
    }
    assert viewer_api.get(URL).json() == [expected]
    assert viewer_api.get(f"{URL}/b1").json() == expected
    assert viewer_api.get(f"{URL}/count").json() == {"count": 1}


def test_statistics_add_remaining_completed_and_failed_jobs(viewer_api):
    make_batch("b1", total_jobs=10, jobs_created=8, completed_jobs=7)
    [row] = viewer_api.get(f"{URL}/statistics").json()
    assert row["id"] == "b1"
    assert (row["remainingJobs"], row["completedJobs"], row["failedJobs"]) == (3, 7, 0)
    assert list(row)[-3:] == ["remainingJobs", "completedJobs", "failedJobs"]
    assert viewer_api.get(f"{URL}/statistics/count").json() == {"count": 1}


def test_a_batch_not_yet_executed_has_a_null_execution_start_time(viewer_api):
    make_batch("b1")
    assert viewer_api.get(f"{URL}/b1").json()["executionStartTime"] is None


def test_the_history_answers_historic_batch_dto_with_end_and_removal_time(viewer_api):
    ended("done", end="2024-03-01 11:30:00.250", removal_time=at("2024-04-01 00:00:00"))
    make_batch("running", start_time=at("2024-03-02 10:00:00"))
    rows = viewer_api.get(HISTORY, {"sortBy": "startTime", "sortOrder": "asc"}).json()
    assert rows == [
        {
            "id": "done",
            "type": "set-job-retries",
            "totalJobs": 1,
            "batchJobsPerSeed": 100,
            "invocationsPerBatchJob": 1000,
            "seedJobDefinitionId": "done-seed",
            "monitorJobDefinitionId": "done-monitor",
            "batchJobDefinitionId": "done-jobs",
            "tenantId": None,
            "createUserId": "bob",
            "startTime": "2024-03-01T10:00:00.000+0000",
            "executionStartTime": None,
            "endTime": "2024-03-01T11:30:00.250+0000",
            "removalTime": "2024-04-01T00:00:00.000+0000",
        },
        {**rows[1], "id": "running", "endTime": None, "removalTime": None},
    ]
    assert viewer_api.get(f"{HISTORY}/done").json() == rows[0]
    assert viewer_api.get(f"{HISTORY}/count").json() == {"count": 2}


def test_an_ended_batch_leaves_batch_and_stays_in_the_history(viewer_api):
    ended("done")
    assert viewer_api.get(URL).json() == []
    assert viewer_api.get(f"{URL}/count").json() == {"count": 0}
    assert viewer_api.get(f"{URL}/statistics").json() == []
    message = error(viewer_api.get(f"{URL}/done"), 404)
    assert message == "Batch with id 'done' does not exist"
    assert viewer_api.get(f"{HISTORY}/done").json()["endTime"] == "2024-03-01T11:00:00.000+0000"


def test_unknown_ids_answer_camunda_404s(viewer_api):
    assert error(viewer_api.get(f"{URL}/nope"), 404) == "Batch with id 'nope' does not exist"
    message = error(viewer_api.get(f"{HISTORY}/nope"), 404)
    assert message == "Historic batch with id 'nope' does not exist"


def test_no_batches_answer_empty_lists_and_zero_counts(viewer_api):
    for path in (URL, f"{URL}/statistics", HISTORY):
        assert viewer_api.get(path).json() == []
    for path in (f"{URL}/count", f"{URL}/statistics/count", f"{HISTORY}/count"):
        assert viewer_api.get(path).json() == {"count": 0}


# ---------------------------------------------------------------------------------------------
# Query parameters of /batch (and /batch/statistics, which take the same)

RUNTIME_LISTS = [URL, f"{URL}/statistics"]


@pytest.fixture
def assorted():
    make_batch("a", tenants=["acme"], create_user_id="bob", start_time=at("2024-03-01 10:00"))
    make_batch(
        "b",
        tenants=["globex"],
        type="set-external-task-retries",
        target_type="external_task",
        suspended=True,
        create_user_id="alice",
        start_time=at("2024-03-02 10:00"),
    )
    make_batch("c", tenants=[None], create_user_id="bob", start_time=at("2024-03-03 10:00"))
    make_batch(
        "d", tenants=["acme", "globex"], create_user_id=None, start_time=at("2024-03-04 10:00")
    )
    ended("e", tenants=["acme"], start_time=at("2024-03-01 09:00"))


@pytest.mark.parametrize("path", RUNTIME_LISTS)
@pytest.mark.parametrize(
    "params, expected",
    [
        ({}, ["a", "b", "c", "d"]),
        ({"batchId": "b"}, ["b"]),
        ({"batchId": "e"}, []),
        ({"type": "set-external-task-retries"}, ["b"]),
        ({"type": "nope"}, []),
        ({"tenantIdIn": "acme,globex"}, ["a", "b"]),
        ({"tenantIdIn": ["acme", "globex"]}, ["a", "b"]),
        ({"tenantIdIn": "acme"}, ["a"]),
        ({"withoutTenantId": "true"}, ["c", "d"]),
        ({"withoutTenantId": "false"}, ["a", "b", "c", "d"]),
        # The engine resets the tenant list when withoutTenantId is set: it wins.
        ({"tenantIdIn": "acme", "withoutTenantId": "true"}, ["c", "d"]),
        ({"suspended": "true"}, ["b"]),
        ({"suspended": "false"}, ["a", "c", "d"]),
        ({"createdBy": "bob"}, ["a", "c"]),
        ({"createdBy": "nobody"}, []),
        # Both bounds include the instant given.
        ({"startedBefore": "2024-03-02T10:00:00.000+0000"}, ["a", "b"]),
        ({"startedAfter": "2024-03-02T10:00:00.000+0000"}, ["b", "c", "d"]),
        ({"startedAfter": "2024-03-02T12:00:00.000+0200"}, ["b", "c", "d"]),
        (
            {"startedAfter": "2024-03-02T00:00:00Z", "startedBefore": "2024-03-03T10:00:00Z"},
            ["b", "c"],
        ),
        ({"startedAfter": "2024-03-05T00:00:00"}, []),
        ({"withoutFailures": "true"}, ["a", "b", "c", "d"]),
        ({"withFailures": "true"}, []),
        ({"withFailures": "false"}, ["a", "b", "c", "d"]),
        ({"type": "set-job-retries", "tenantIdIn": "acme", "suspended": "false"}, ["a"]),
        ({"unknownParameter": "x"}, ["a", "b", "c", "d"]),
    ],
)
def test_runtime_batches_filter_by_every_camunda_parameter(
    admin_api, assorted, path, params, expected
):
    assert sorted(ids(admin_api.get(path, params))) == expected
    count = admin_api.get(f"{path}/count", params).json()
    assert count == {"count": len(expected)}


@pytest.mark.parametrize("path", [URL, f"{URL}/count", f"{URL}/statistics"])
@pytest.mark.parametrize(
    "params, named",
    [
        ({"suspended": "maybe"}, "suspended"),
        ({"withoutTenantId": "maybe"}, "withoutTenantId"),
        ({"withFailures": "maybe"}, "withFailures"),
        ({"startedBefore": "yesterday"}, "startedBefore"),
        ({"startedAfter": "2024-13-01T00:00:00"}, "startedAfter"),
        ({"withFailures": "true", "withoutFailures": "true"}, "withoutFailures"),
    ],
)
def test_bad_runtime_parameters_are_camunda_400s(admin_api, assorted, path, params, named):
    assert named in error(admin_api.get(path, params), 400)


@pytest.mark.parametrize("path", RUNTIME_LISTS)
def test_runtime_lists_sort_by_batch_id_and_tenant_id(admin_api, assorted, path):
    def order(by, direction):
        return ids(admin_api.get(path, {"sortBy": by, "sortOrder": direction}))

    assert order("batchId", "asc") == ["a", "b", "c", "d"]
    assert order("batchId", "desc") == ["d", "c", "b", "a"]
    # Null tenants sort as the smallest value; the id breaks ties in the key's direction.
    assert order("tenantId", "asc") == ["c", "d", "a", "b"]
    assert order("tenantId", "desc") == ["b", "a", "d", "c"]


@pytest.mark.parametrize("path", [*RUNTIME_LISTS, HISTORY])
@pytest.mark.parametrize(
    "params, message",
    [
        ({"sortBy": "batchId"}, "sortBy and sortOrder required"),
        ({"sortOrder": "asc"}, "sortBy and sortOrder required"),
        ({"sortBy": "nope", "sortOrder": "asc"}, "'sortBy' to value 'nope'"),
        ({"sortBy": "batchId", "sortOrder": "up"}, "'sortOrder' to value 'up'"),
        ({"firstResult": "-1"}, "firstResult"),
        ({"maxResults": "many"}, "maxResults"),
    ],
)
def test_bad_sorting_and_paging_are_camunda_400s_even_on_no_rows(admin_api, path, params, message):
    assert message in error(admin_api.get(path, params), 400)


def test_start_time_is_a_history_sort_key_but_not_a_runtime_one(admin_api, assorted):
    params = {"sortBy": "startTime", "sortOrder": "asc"}
    assert "startTime" in error(admin_api.get(URL, params), 400)
    assert ids(admin_api.get(HISTORY, params)) == ["e", "a", "b", "c", "d"]


@pytest.mark.parametrize("path", [*RUNTIME_LISTS, HISTORY])
def test_first_and_max_results_page_the_sorted_list(admin_api, assorted, path):
    def window(first, maximum):
        params = {"sortBy": "batchId", "sortOrder": "asc"}
        params |= {"firstResult": first, "maxResults": maximum}
        return ids(admin_api.get(path, params))

    everything = window(0, 100)
    assert window(1, 2) == everything[1:3]
    assert window(len(everything), 10) == []
    assert window(99, 10) == []
    assert window(0, 0) == []


# ---------------------------------------------------------------------------------------------
# Query parameters of /history/batch


@pytest.mark.parametrize(
    "params, expected",
    [
        ({}, ["a", "b", "c", "d", "e"]),
        ({"completed": "true"}, ["e"]),
        ({"completed": "false"}, ["a", "b", "c", "d"]),
        ({"batchId": "e"}, ["e"]),
        ({"type": "set-external-task-retries"}, ["b"]),
        ({"tenantIdIn": "acme"}, ["a", "e"]),
        ({"tenantIdIn": "acme", "completed": "false"}, ["a"]),
        ({"withoutTenantId": "true"}, ["c", "d"]),
        ({"tenantIdIn": "globex", "withoutTenantId": "true"}, ["c", "d"]),
        # Runtime-only parameters are not the history's: ignored, as Camunda ignores them.
        ({"suspended": "true"}, ["a", "b", "c", "d", "e"]),
    ],
)
def test_historic_batches_filter_by_every_camunda_parameter(admin_api, assorted, params, expected):
    assert sorted(ids(admin_api.get(HISTORY, params))) == expected
    assert admin_api.get(f"{HISTORY}/count", params).json() == {"count": len(expected)}


@pytest.mark.parametrize("path", [HISTORY, f"{HISTORY}/count"])
@pytest.mark.parametrize(
    "params, named",
    [({"completed": "maybe"}, "completed"), ({"withoutTenantId": "1x"}, "withoutTenantId")],
)
def test_bad_history_parameters_are_camunda_400s(admin_api, path, params, named):
    assert named in error(admin_api.get(path, params), 400)


def test_history_sorts_by_start_and_end_time_with_running_batches_as_null_ends(admin_api):
    ended("early-end", start_time=at("2024-03-02 10:00"), end="2024-03-02 11:00")
    ended("late-end", start_time=at("2024-03-01 10:00"), end="2024-03-03 11:00")
    make_batch("running", start_time=at("2024-03-04 10:00"))

    def order(by, direction):
        return ids(admin_api.get(HISTORY, {"sortBy": by, "sortOrder": direction}))

    assert order("startTime", "asc") == ["late-end", "early-end", "running"]
    assert order("startTime", "desc") == ["running", "early-end", "late-end"]
    assert order("endTime", "asc") == ["running", "early-end", "late-end"]
    assert order("endTime", "desc") == ["late-end", "early-end", "running"]


# ---------------------------------------------------------------------------------------------
# Tenants and roles


def test_other_tenants_batches_are_invisible_in_lists_counts_and_by_id(operator_api, assorted):
    # bob is of acme: globex's batch and the one over acme's and globex's rows are not his;
    # the tenant-less one is everyone's.
    assert sorted(ids(operator_api.get(URL))) == ["a", "c"]
    assert operator_api.get(f"{URL}/count").json() == {"count": 2}
    assert sorted(ids(operator_api.get(f"{URL}/statistics"))) == ["a", "c"]
    assert operator_api.get(f"{URL}/statistics/count").json() == {"count": 2}
    assert sorted(ids(operator_api.get(HISTORY))) == ["a", "c", "e"]
    assert operator_api.get(f"{HISTORY}/count").json() == {"count": 3}
    # Asking for them by name changes nothing.
    assert ids(operator_api.get(URL, {"tenantIdIn": "globex"})) == []
    assert operator_api.get(f"{URL}/count", {"batchId": "b"}).json() == {"count": 0}
    for batch_id in ("b", "d"):
        unknown = f"Batch with id '{batch_id}' does not exist"
        assert error(operator_api.get(f"{URL}/{batch_id}"), 404) == unknown
        assert "does not exist" in error(operator_api.get(f"{HISTORY}/{batch_id}"), 404)


def test_other_tenants_batches_cannot_be_suspended_or_deleted(operator_api, assorted):
    response = operator_api.put(f"{URL}/b/suspended", {"suspended": False}, format="json")
    assert error(response, 400) == "Unable to activate batch with id 'b'"
    assert error(operator_api.delete(f"{URL}/d"), 400) == "Unable to delete batch with id 'd'"
    assert Batch.objects.get(id="b").suspended is True
    assert Batch.objects.get(id="d").end_time is None


def test_viewers_may_read_but_not_suspend_or_delete(viewer_api, assorted):
    assert viewer_api.get(f"{URL}/a").status_code == 200
    response = viewer_api.put(f"{URL}/a/suspended", {"suspended": True}, format="json")
    assert response.status_code == 403
    assert response.json()["type"] == "AuthorizationException"
    assert viewer_api.delete(f"{URL}/a").status_code == 403
    assert viewer_api.delete(f"{HISTORY}/e").status_code == 403
    batch = Batch.objects.get(id="a")
    assert (batch.suspended, batch.end_time) == (False, None)
    assert Batch.objects.filter(id="e").exists()


def test_only_admins_may_delete_history(operator_api, assorted):
    assert operator_api.delete(f"{URL}/a?cascade=true").status_code == 403
    assert operator_api.delete(f"{HISTORY}/e").status_code == 403
    assert Batch.objects.get(id="a").end_time is None
    assert Batch.objects.filter(id="e").exists()


def test_worker_accounts_may_not_read_batches(worker_api, assorted):
    for path in (URL, f"{URL}/count", f"{URL}/statistics", f"{URL}/a", HISTORY):
        assert worker_api.get(path).status_code == 403, path


def test_anonymous_requests_are_401(client, assorted):
    assert client.get(URL).status_code == 401
    assert client.get(HISTORY).status_code == 401


def test_a_user_of_both_tenants_sees_the_batch_over_both(assorted):
    both = basic_client(make_user("dave", "viewer", ["acme", "globex"]))
    assert sorted(ids(both.get(URL))) == ["a", "b", "c", "d"]


# ---------------------------------------------------------------------------------------------
# Bad bodies and flags (valid ids; the engine's effects are in test_batch_api_engine.py)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"suspended": None},
        {"suspended": "maybe"},
        {"suspended": 1},
        {"suspended": True, "x": 1},
    ],
)
def test_a_bad_suspension_body_is_a_400_and_changes_nothing(operator_api, assorted, body):
    response = operator_api.put(f"{URL}/a/suspended", body, format="json")
    assert error(response, 400)
    assert Batch.objects.get(id="a").suspended is False


def test_a_suspension_body_that_is_no_object_is_a_400(operator_api, assorted):
    response = operator_api.put(f"{URL}/a/suspended", "[true]", content_type="application/json")
    assert error(response, 400)


def test_a_bad_cascade_flag_is_a_400_and_deletes_nothing(admin_api, assorted):
    message = error(admin_api.delete(f"{URL}/a?cascade=maybe"), 400)
    assert "cascade" in message
    assert Batch.objects.get(id="a").end_time is None


def test_suspending_or_deleting_an_unknown_or_ended_batch_is_camunda_400(admin_api, assorted):
    for batch_id in ("nope", "e"):
        response = admin_api.put(f"{URL}/{batch_id}/suspended", {"suspended": True}, format="json")
        assert error(response, 400) == f"Unable to suspend batch with id '{batch_id}'"
        response = admin_api.delete(f"{URL}/{batch_id}")
        assert error(response, 400) == f"Unable to delete batch with id '{batch_id}'"
    assert Batch.objects.get(id="e").outcome == Batch.Outcome.COMPLETED


def test_deleting_unknown_history_is_a_404(admin_api):
    message = error(admin_api.delete(f"{HISTORY}/nope"), 404)
    assert message == "Historic batch with id 'nope' does not exist"


# ---------------------------------------------------------------------------------------------
# OpenAPI


def test_the_schema_documents_the_batch_resources_under_camunda_operation_ids(admin_api):
    response = admin_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    schema = response.json()
    operations = {
        (path, method): operation["operationId"]
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
        if "/batch" in path or path.endswith(("/job/retries", "/retries-async"))
    }
    assert operations == {
        ("/engine-rest/batch", "get"): "getBatches",
        ("/engine-rest/batch/count", "get"): "getBatchesCount",
        ("/engine-rest/batch/statistics", "get"): "getBatchStatistics",
        ("/engine-rest/batch/statistics/count", "get"): "getBatchStatisticsCount",
        ("/engine-rest/batch/{batch_id}", "get"): "getBatch",
        ("/engine-rest/batch/{batch_id}", "delete"): "deleteBatch",
        ("/engine-rest/batch/{batch_id}/suspended", "put"): "updateBatchSuspensionState",
        ("/engine-rest/history/batch", "get"): "getHistoricBatches",
        ("/engine-rest/history/batch/count", "get"): "getHistoricBatchesCount",
        ("/engine-rest/history/batch/{batch_id}", "get"): "getHistoricBatch",
        ("/engine-rest/history/batch/{batch_id}", "delete"): "deleteHistoricBatch",
        ("/engine-rest/job/retries", "post"): "setJobRetriesAsyncOperation",
        (
            "/engine-rest/external-task/retries-async",
            "post",
        ): "setExternalTaskRetriesAsyncOperation",
    }
    listed = schema["paths"]["/engine-rest/batch"]["get"]
    assert {p["name"] for p in listed["parameters"]} == {
        "batchId",
        "type",
        "tenantIdIn",
        "withoutTenantId",
        "suspended",
        "createdBy",
        "startedBefore",
        "startedAfter",
        "withFailures",
        "withoutFailures",
        "sortBy",
        "sortOrder",
        "firstResult",
        "maxResults",
    }
    sort_by = next(p for p in listed["parameters"] if p["name"] == "sortBy")
    assert set(sort_by["schema"]["enum"]) == {"batchId", "tenantId"}
    history = schema["paths"]["/engine-rest/history/batch"]["get"]["parameters"]
    sort_by = next(p for p in history if p["name"] == "sortBy")
    assert set(sort_by["schema"]["enum"]) == {"batchId", "startTime", "endTime", "tenantId"}
    components = schema["components"]["schemas"]
    assert list(components["BatchStatisticsDto"]["properties"])[-3:] == [
        "remainingJobs",
        "completedJobs",
        "failedJobs",
    ]
    assert "endTime" in components["HistoricBatchDto"]["properties"]
    for operation in ("/engine-rest/job/retries", "/engine-rest/external-task/retries-async"):
        answer = schema["paths"][operation]["post"]["responses"]["200"]
        assert answer["content"]["application/json"]["schema"]["$ref"].endswith("/BatchDto")
