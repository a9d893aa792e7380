"""Job operations over /engine-rest/job: retries, suspension, due dates, priority, execute,
delete, the retries batch, suspension by selector and the /job/create extension."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import services
from jobs.models import Job, JobLog
from project.models import AuditEntry, Batch
from tests.batches import ended, run_batches
from tests.jobs import handlers
from tests.jobs.factories import at, make_definition, make_job


@pytest.fixture
def jobs(db):
    make_definition("d1", process_definition_key="invoice", tenant_id="acme")
    make_job("shared", retries=0, exception_message="boom", priority=1)
    make_job("mine", tenant_id="acme", retries=0, job_definition_id="d1", priority=2)
    make_job("theirs", tenant_id="globex", retries=0, priority=3)


def events(job_id):
    return list(JobLog.objects.filter(job_id=job_id).values_list("event", flat=True))


def last_audit():
    return AuditEntry.objects.order_by("-id").first()


def assert_error(response, status, text, error_type="InvalidRequestException"):
    assert response.status_code == status, response.content
    assert response.json()["type"] == error_type
    assert text in response.json()["message"]


# --- PUT /job/{id}/retries ------------------------------------------------------------------


def test_operator_sets_retries_and_it_is_logged_and_audited(operator_api, jobs):
    response = operator_api.put("/engine-rest/job/mine/retries", {"retries": 5}, format="json")
    assert response.status_code == 204
    assert response.content == b""
    assert Job.objects.get(id="mine").retries == 5
    log = JobLog.objects.get(job_id="mine")
    assert (log.event, log.retries, log.worker, log.tenant_id) == ("retries-set", 5, "bob", "acme")
    entry = last_audit()
    assert (entry.action, entry.source, entry.count, entry.target_ids) == (
        "job.set_retries",
        "api",
        1,
        ["mine"],
    )
    assert entry.before == {"retries": {"0": 1}}
    assert entry.after == {"retries": 5}


def test_set_retries_with_a_new_due_date(operator_api, jobs):
    body = {"retries": 1, "dueDate": "2030-01-02T03:04:05.000+0200"}
    assert operator_api.put("/engine-rest/job/mine/retries", body, format="json").status_code == 204
    job = Job.objects.get(id="mine")
    assert (job.retries, job.due_date) == (1, at("2030-01-02 01:04:05"))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"retries": -1}, "non-negative Integer, but '-1'"),
        ({"retries": None}, "but 'null'"),
        ({}, "but 'null'"),
        ({"retries": "three"}, "retries"),
        ({"retries": 1.5}, "retries"),
        ({"retries": True}, "retries"),
        ({"retries": 3, "dueDate": "soon"}, "dueDate"),
        ({"retries": 3, "extra": 1}, "extra"),
    ],
)
def test_bad_retries_are_400_and_change_nothing(operator_api, jobs, body, message):
    response = operator_api.put("/engine-rest/job/mine/retries", body, format="json")
    assert_error(response, 400, message)
    assert Job.objects.get(id="mine").retries == 0
    assert not JobLog.objects.exists()
    assert not AuditEntry.objects.exists()


def test_other_tenants_and_unknown_jobs_answer_404_on_every_operation(operator_api, jobs):
    for job_id in ("theirs", "missing"):
        calls = [
            operator_api.put(f"/engine-rest/job/{job_id}/retries", {"retries": 1}, format="json"),
            operator_api.put(
                f"/engine-rest/job/{job_id}/suspended", {"suspended": True}, format="json"
            ),
            operator_api.put(f"/engine-rest/job/{job_id}/priority", {"priority": 1}, format="json"),
            operator_api.put(
                f"/engine-rest/job/{job_id}/duedate", {"duedate": None}, format="json"
            ),
            operator_api.post(f"/engine-rest/job/{job_id}/duedate/recalculate"),
            operator_api.post(f"/engine-rest/job/{job_id}/execute"),
        ]
        for response in calls:
            assert_error(response, 404, f"Job with id {job_id} does not exist")
    theirs = Job.objects.get(id="theirs")
    assert (theirs.retries, theirs.suspended, theirs.priority) == (0, False, 3)


def test_viewers_and_workers_cannot_change_jobs(viewer_api, worker_api, jobs):
    for api in (viewer_api, worker_api):
        response = api.put("/engine-rest/job/mine/retries", {"retries": 1}, format="json")
        assert_error(response, 403, "operators", "AuthorizationException")
        assert api.post("/engine-rest/job/mine/execute").status_code == 403
        assert api.delete("/engine-rest/job/mine").status_code == 403
    assert Job.objects.get(id="mine").retries == 0


# --- suspension -----------------------------------------------------------------------------


def test_suspend_and_activate_one_job(operator_api, jobs):
    url = "/engine-rest/job/mine/suspended"
    assert operator_api.put(url, {"suspended": True}, format="json").status_code == 204
    assert Job.objects.get(id="mine").suspended is True
    # Suspending again changes nothing and logs nothing new.
    assert operator_api.put(url, {"suspended": True}, format="json").status_code == 204
    assert operator_api.put(url, {"suspended": False}, format="json").status_code == 204
    assert Job.objects.get(id="mine").suspended is False
    assert events("mine") == ["activated", "suspended"]
    assert last_audit().action == "job.activate"


@pytest.mark.parametrize(
    "body", [{}, {"suspended": None}, {"suspended": "maybe"}, {"suspended": 1}]
)
def test_suspended_flag_is_required_and_boolean(operator_api, jobs, body):
    response = operator_api.put("/engine-rest/job/mine/suspended", body, format="json")
    assert_error(response, 400, "suspended")


@pytest.fixture
def process_jobs(db):
    make_definition("def-a", process_definition_key="order")
    make_job(
        "a1",
        job_definition_id="def-a",
        process_instance_id="p1",
        process_definition_id="order:1",
        process_definition_key="order",
    )
    make_job(
        "a2",
        job_definition_id="def-a",
        process_instance_id="p2",
        process_definition_id="order:2",
        process_definition_key="order",
        tenant_id="acme",
    )
    make_job(
        "a3",
        process_instance_id="p1",
        process_definition_id="order:1",
        process_definition_key="order",
        tenant_id="globex",
    )
    make_job(
        "b1",
        process_instance_id="p3",
        process_definition_id="bill:1",
        process_definition_key="bill",
    )


def suspended_ids():
    return sorted(Job.objects.filter(suspended=True).values_list("id", flat=True))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"jobDefinitionId": "def-a"}, ["a1", "a2"]),
        ({"processInstanceId": "p1"}, ["a1", "a3"]),
        ({"processDefinitionId": "order:2"}, ["a2"]),
        ({"processDefinitionKey": "order"}, ["a1", "a2", "a3"]),
        ({"processDefinitionKey": "order", "processDefinitionTenantId": "acme"}, ["a2"]),
        ({"processDefinitionKey": "order", "processDefinitionWithoutTenantId": True}, ["a1"]),
    ],
)
def test_suspend_jobs_by_selector(admin_api, process_jobs, body, expected):
    response = admin_api.put(
        "/engine-rest/job/suspended", {**body, "suspended": True}, format="json"
    )
    assert response.status_code == 204
    assert suspended_ids() == expected
    response = admin_api.put(
        "/engine-rest/job/suspended", {**body, "suspended": False}, format="json"
    )
    assert response.status_code == 204
    assert suspended_ids() == []


def test_suspend_by_selector_touches_only_the_callers_tenants(operator_api, process_jobs):
    body = {"processDefinitionKey": "order", "suspended": True}
    assert operator_api.put("/engine-rest/job/suspended", body, format="json").status_code == 204
    assert suspended_ids() == ["a1", "a2"]
    assert last_audit().count == 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"suspended": True}, "Either"),
        ({"jobDefinitionId": "def-a", "processInstanceId": "p1", "suspended": True}, "Only one"),
        (
            {
                "processDefinitionId": "order:1",
                "processDefinitionTenantId": "acme",
                "suspended": True,
            },
            "processDefinitionKey",
        ),
        (
            {
                "processDefinitionKey": "order",
                "processDefinitionTenantId": "acme",
                "processDefinitionWithoutTenantId": True,
                "suspended": True,
            },
            "together",
        ),
        ({"processInstanceId": "p1"}, "suspended"),
        ({"processInstanceId": 7, "suspended": True}, "processInstanceId"),
    ],
)
def test_suspend_by_selector_rejects_bad_selections(admin_api, process_jobs, body, message):
    response = admin_api.put("/engine-rest/job/suspended", body, format="json")
    assert_error(response, 400, message)
    assert suspended_ids() == []


# --- due dates and priority -----------------------------------------------------------------


def test_set_and_clear_due_date(operator_api, jobs):
    url = "/engine-rest/job/mine/duedate"
    body = {"duedate": "2031-05-06T07:08:09.000+0000", "cascade": False}
    assert operator_api.put(url, body, format="json").status_code == 204
    assert Job.objects.get(id="mine").due_date == at("2031-05-06 07:08:09")
    assert operator_api.put(url, {"duedate": None}, format="json").status_code == 204
    assert Job.objects.get(id="mine").due_date is None
    assert events("mine") == ["due-date-set", "due-date-set"]


@pytest.mark.parametrize(
    "body", [{"duedate": "31/12/2030"}, {"duedate": None, "cascade": "often"}, {"dueDate": None}]
)
def test_bad_due_dates_are_400(operator_api, jobs, body):
    response = operator_api.put("/engine-rest/job/mine/duedate", body, format="json")
    assert response.status_code == 400


def test_recalculate_due_date_from_the_timer_configuration(operator_api, db):
    make_definition("timer-def", job_configuration="DURATION: PT5M", job_type="timer-transition")
    created = at("2020-01-01 12:00")
    make_job("t1", type="timer", job_definition_id="timer-def", create_time=created)
    assert operator_api.post("/engine-rest/job/t1/duedate/recalculate").status_code == 204
    assert Job.objects.get(id="t1").due_date == created + timedelta(minutes=5)
    before = timezone.now()
    url = "/engine-rest/job/t1/duedate/recalculate?creationDateBased=false"
    assert operator_api.post(url).status_code == 204
    due = Job.objects.get(id="t1").due_date
    assert before + timedelta(minutes=5) <= due <= timezone.now() + timedelta(minutes=5)


def test_recalculate_handles_cycles_and_dates_and_rejects_non_timers(operator_api, db):
    make_definition("cycle", job_configuration="R3/PT10M")
    make_definition("date", job_configuration="2033-03-03T03:03:03Z")
    created = at("2020-01-01 12:00")
    make_job("c", type="timer", job_definition_id="cycle", create_time=created)
    make_job("d", type="timer", job_definition_id="date", create_time=created)
    make_job("m", type="message", job_definition_id="cycle")
    make_job("bare", type="timer")
    operator_api.post("/engine-rest/job/c/duedate/recalculate")
    operator_api.post("/engine-rest/job/d/duedate/recalculate")
    assert Job.objects.get(id="c").due_date == created + timedelta(minutes=10)
    assert Job.objects.get(id="d").due_date == at("2033-03-03 03:03:03")
    for job_id in ("m", "bare"):
        response = operator_api.post(f"/engine-rest/job/{job_id}/duedate/recalculate")
        assert_error(response, 400, "timer", "BadUserRequestException")
    response = operator_api.post("/engine-rest/job/c/duedate/recalculate?creationDateBased=nah")
    assert_error(response, 400, "creationDateBased")


def test_set_priority(operator_api, jobs):
    url = "/engine-rest/job/mine/priority"
    assert operator_api.put(url, {"priority": 2**40}, format="json").status_code == 204
    assert Job.objects.get(id="mine").priority == 2**40
    assert last_audit().before == {"priority": {"2": 1}}
    assert events("mine") == ["priority-set"]


@pytest.mark.parametrize(
    "body", [{}, {"priority": None}, {"priority": "high"}, {"priority": 2**63}]
)
def test_bad_priorities_are_400(operator_api, jobs, body):
    response = operator_api.put("/engine-rest/job/mine/priority", body, format="json")
    assert_error(response, 400, "priority")
    assert Job.objects.get(id="mine").priority == 2


# --- execute and delete ---------------------------------------------------------------------


def test_execute_runs_the_job_now_and_removes_it(operator_api, db):
    handlers.CALLS.clear()
    make_job(
        "run-me",
        tenant_id="acme",
        due_date=timezone.now() + timedelta(days=1),
        payload={"args": [1, 2], "kwargs": {"to": "x"}},
    )
    response = operator_api.post("/engine-rest/job/run-me/execute")
    assert response.status_code == 204
    assert handlers.CALLS == [((1, 2), {"to": "x"})]
    assert not Job.objects.filter(id="run-me").exists()
    log = JobLog.objects.get(job_id="run-me", event="succeeded")
    assert log.return_value == {"args": [1, 2], "kwargs": {"to": "x"}}
    assert last_audit().action == "job.execute"


def test_execute_of_a_failing_job_answers_500_and_records_the_failure(operator_api, db):
    make_job("bad", handler="tests.jobs.handlers.explode", retries=3, activity_id="send")
    response = operator_api.post("/engine-rest/job/bad/execute")
    assert response.status_code == 500
    assert "the printer is on fire" in response.json()["message"]
    job = Job.objects.get(id="bad")
    assert job.retries == 2
    assert "the printer is on fire" in job.exception_message
    assert "ValueError" in job.exception_stacktrace
    assert job.failed_activity_id == "send"
    # The newest entry records the failure (the executor may also log "started" first).
    assert events("bad")[0] == "failed"
    stacktrace = operator_api.get("/engine-rest/job/bad/stacktrace")
    assert b"ValueError" in stacktrace.content


def test_suspended_or_running_jobs_are_not_executed(operator_api, db):
    handlers.CALLS.clear()
    make_definition("paused", suspended=True)
    make_job("suspended", suspended=True)
    make_job("of-paused-definition", job_definition_id="paused")
    make_job(
        "running", lock_owner="exec-1", lock_expiration_time=timezone.now() + timedelta(hours=1)
    )
    for job_id in ("suspended", "of-paused-definition", "running"):
        response = operator_api.post(f"/engine-rest/job/{job_id}/execute")
        assert response.status_code == 400, job_id
        assert response.json()["type"] == "BadUserRequestException"
        assert Job.objects.filter(id=job_id).exists()
    assert handlers.CALLS == []


def test_admin_deletes_a_job_and_history_remembers_it(admin_api, jobs):
    assert admin_api.delete("/engine-rest/job/theirs").status_code == 204
    assert not Job.objects.filter(id="theirs").exists()
    log = JobLog.objects.get(job_id="theirs")
    assert (log.event, log.tenant_id) == ("deleted", "globex")
    assert (last_audit().action, last_audit().count) == ("job.delete", 1)
    assert admin_api.delete("/engine-rest/job/theirs").status_code == 404


def test_operators_may_not_delete(operator_api, jobs):
    response = operator_api.delete("/engine-rest/job/mine")
    assert_error(response, 403, "admins", "AuthorizationException")
    assert Job.objects.filter(id="mine").exists()


# --- POST /job/retries ----------------------------------------------------------------------


def test_retries_batch_on_ids_and_query_union(admin_api, db):
    for index in range(6):
        make_job(f"b{index}", retries=0, priority=index)
    body = {
        "retries": 4,
        "jobIds": ["b0", "b1"],
        "jobQuery": {"priorityHigherThanOrEquals": 4, "noRetriesLeft": True},
    }
    response = admin_api.post("/engine-rest/job/retries", body, format="json")
    assert response.status_code == 200
    batch = response.json()
    assert batch["type"] == "set-job-retries"
    # Camunda's totalJobs counts batch jobs: four rows fit in one.
    assert batch["totalJobs"] == 1
    assert batch["createUserId"] == "alice"
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
    # Answered at once: the rows change when the job executor has run the batch.
    assert not Job.objects.filter(retries=4).exists()
    run_batches()
    changed = sorted(Job.objects.filter(retries=4).values_list("id", flat=True))
    assert changed == ["b0", "b1", "b4", "b5"]
    assert ended(batch["id"]).total_rows == 4
    entry = AuditEntry.objects.get(batches__id=batch["id"])
    assert (entry.count, entry.filter["jobIds"]) == (4, ["b0", "b1"])


def test_retries_batch_query_touches_only_the_callers_tenants(operator_api, jobs):
    body = {"retries": 2, "jobIds": ["mine"], "jobQuery": {"noRetriesLeft": True}}
    response = operator_api.post("/engine-rest/job/retries", body, format="json")
    assert response.json()["tenantId"] is None  # acme's job and a tenant-less one
    assert ended_after_run(response.json()["id"]).total_rows == 2
    assert dict(Job.objects.values_list("id", "retries")) == {"shared": 2, "mine": 2, "theirs": 0}


def ended_after_run(batch_id):
    run_batches()
    return ended(batch_id)


def test_retries_batch_with_an_unknown_or_foreign_id_is_404_and_changes_nothing(operator_api, jobs):
    for job_id in ("theirs", "missing"):
        body = {"retries": 2, "jobIds": ["mine", job_id], "jobQuery": {"noRetriesLeft": True}}
        response = operator_api.post("/engine-rest/job/retries", body, format="json")
        assert response.status_code == 404
        assert response.json()["message"] == f"Job with id {job_id} does not exist"
    assert set(Job.objects.values_list("retries", flat=True)) == {0}
    assert not AuditEntry.objects.exists()
    assert not Batch.objects.exists()


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"retries": 1}, 400, "jobIds or jobQuery"),
        ({"jobIds": ["mine"]}, 400, "'null'"),
        ({"retries": -2, "jobIds": ["mine"]}, 400, "'-2'"),
        ({"retries": 1, "jobIds": "mine"}, 400, "jobIds"),
        (
            {"retries": 1, "jobQuery": {"dueDates": [{"operator": "eq", "value": "2020-01-01"}]}},
            400,
            "comparator",
        ),
        ({"retries": 1, "jobQuery": {"jobId": "nothing-matches"}}, 400, "jobIds is empty"),
        ({"retries": 1, "jobQuery": []}, 400, "jobQuery"),
    ],
)
def test_retries_batch_rejects_bad_requests(admin_api, jobs, body, status, message):
    response = admin_api.post("/engine-rest/job/retries", body, format="json")
    assert response.status_code == status
    assert message in response.json()["message"]
    assert set(Job.objects.values_list("retries", flat=True)) == {0}
    assert not Batch.objects.exists()


# --- service layer: set-based in batches, counts, skipped -----------------------------------


def test_bulk_services_work_in_batches_and_count_changes_and_skips(operator_user, monkeypatch, db):
    monkeypatch.setattr(services, "BATCH_SIZE", 3)
    for index in range(10):
        make_job(f"k{index:02}", tenant_id="acme" if index % 2 else "globex", retries=0)
    # A queryset: only the caller's tenant is touched.
    seen = []
    result = services.set_retries(
        operator_user, Job.objects.all(), 7, progress=lambda looked, changed: seen.append(changed)
    )
    assert (result.changed, result.skipped) == (5, 0)
    assert seen == [3, 5]
    assert Job.objects.filter(retries=7).count() == 5
    # Ids: invisible and missing ids are skipped.
    result = services.suspend(operator_user, ["k01", "k03", "k00", "gone"])
    assert (result.changed, result.skipped) == (2, 2)
    # Already suspended rows are skipped, not rewritten.
    result = services.suspend(operator_user, Job.objects.filter(tenant_id="acme"))
    assert (result.changed, result.skipped) == (3, 2)
    assert JobLog.objects.filter(event="suspended").count() == 5
    result = services.set_priority(operator_user, Job.objects.all(), 9)
    assert result.changed == 5
    result = services.delete(operator_user, Job.objects.filter(retries=7))
    assert result.changed == 5
    assert Job.objects.count() == 5


def test_unlock_releases_executor_locks(operator_user, db):
    make_job("locked", lock_owner="exec", lock_expiration_time=timezone.now() + timedelta(hours=1))
    make_job("free")
    result = services.unlock(operator_user, ["locked", "free"])
    assert (result.changed, result.skipped) == (1, 1)
    job = Job.objects.get(id="locked")
    assert (job.lock_owner, job.lock_expiration_time) == (None, None)
    assert events("locked") == ["unlocked"]


# --- POST /job/create -----------------------------------------------------------------------


def test_create_one_job(operator_api, db):
    body = {
        "handler": "tests.jobs.handlers.succeed",
        "payload": {"args": [1], "kwargs": {"a": "b"}},
        "processInstanceId": "pi-9",
        "tenantId": "acme",
        "priority": 4,
    }
    response = operator_api.post("/engine-rest/job/create", body, format="json")
    assert response.status_code == 200
    job = response.json()
    assert (job["processInstanceId"], job["tenantId"], job["priority"], job["retries"]) == (
        "pi-9",
        "acme",
        4,
        3,
    )
    assert (job["type"], job["handler"], job["dueDate"]) == (
        "message",
        "tests.jobs.handlers.succeed",
        None,
    )
    assert events(job["id"]) == ["created"]
    assert operator_api.get(f"/engine-rest/job/{job['id']}").status_code == 200


def test_create_a_list_of_jobs_inheriting_from_their_definition(operator_api, db):
    make_definition(
        "send-mail",
        tenant_id="acme",
        overriding_priority=50,
        suspended=True,
        process_definition_key="mail",
        activity_id="send",
    )
    body = [
        {"handler": "tests.jobs.handlers.succeed", "jobDefinitionId": "send-mail"},
        {
            "handler": "tests.jobs.handlers.succeed",
            "dueDate": "2030-01-01T00:00:00.000+0000",
            "retries": 0,
        },
    ]
    response = operator_api.post("/engine-rest/job/create", body, format="json")
    first, second = response.json()
    assert (first["tenantId"], first["priority"], first["suspended"]) == ("acme", 50, True)
    assert first["processDefinitionKey"] == "mail"
    assert (second["type"], second["dueDate"], second["retries"]) == (
        "timer",
        "2030-01-01T00:00:00.000+0000",
        0,
    )


OK = "tests.jobs.handlers.succeed"


def test_create_puts_jobs_on_the_named_queue_or_the_default_one(operator_api, db):
    body = [{"handler": OK, "queueName": "reports"}, {"handler": OK}]
    response = operator_api.post("/engine-rest/job/create", body, format="json")
    assert response.status_code == 200, response.content
    queues = [Job.objects.get(id=job["id"]).queue_name for job in response.json()]
    assert queues == ["reports", "default"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"handler": "not a path"}, 400, "handler"),
        ({"handler": "os.system", "payload": {"args": ["rm -rf /"]}}, 400, "not allowed"),
        ({"handler": "tests.jobs.handlers.missing"}, 400, "handler"),
        ({}, 400, "job object"),
        ([], 400, "empty"),
        ({"handler": OK, "payload": [1]}, 400, "payload"),
        ({"handler": OK, "payload": {"args": {}}}, 400, "args"),
        ({"handler": OK, "colour": "red"}, 400, "colour"),
        ({"handler": OK, "retries": -1}, 400, "'-1'"),
        ({"handler": OK, "type": "cron"}, 400, "type"),
        ({"handler": OK, "dueDate": "tomorrow"}, 400, "dueDate"),
        ({"handler": OK, "tenantId": "globex"}, 403, "globex"),
        ({"handler": OK, "jobDefinitionId": "nope"}, 404, "nope"),
        ([{"handler": OK}, {"handler": OK, "priority": "x"}], 400, "priority"),
        ({"handler": OK, "queueName": 7}, 400, "queueName"),
        ({"handler": OK, "queueName": "q" * 101}, 400, "queueName"),
        ({"handler": OK, "tenantId": "t" * 65}, 400, "tenantId"),
    ],
)
def test_create_rejects_bad_jobs_and_creates_nothing(operator_api, db, body, status, message):
    response = operator_api.post("/engine-rest/job/create", body, format="json")
    assert response.status_code == status, response.content
    assert message in response.json()["message"]
    assert not Job.objects.exists()


def test_retries_batch_counts_jobs_that_already_had_those_retries(admin_api):
    make_job("failed", retries=0)
    make_job("done-before", retries=5)
    body = {"retries": 5, "jobIds": ["failed", "done-before"]}
    batch = admin_api.post("/engine-rest/job/retries", body, format="json").json()
    assert batch["totalJobs"] == 1
    done = ended_after_run(batch["id"])
    assert done.total_rows == 2
    assert dict(Job.objects.values_list("id", "retries")) == {"failed": 5, "done-before": 5}
