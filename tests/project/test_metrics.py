"""/metrics: access rules, the exposition format, backlog gauges and the event counters."""

import base64
import logging
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Q
from django.http import HttpResponse
from django.test import RequestFactory
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from external_tasks.models import STATUSES as TASK_STATUSES
from external_tasks.models import ExternalTask
from jobs.models import STATUSES as JOB_STATUSES
from jobs.models import Job, JobDefinition
from project import metrics
from project.errors import BadUserRequest
from project.logs import RequestLogMiddleware


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    # HTTP Basic checks the password on every call; the default hasher would dominate run time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fresh_backlog(settings):
    settings.TASKYARD_METRICS_REFRESH_SECONDS = 3600
    # Count in the scraping thread: a background thread would not see this test's transaction.
    settings.TASKYARD_METRICS_FIRST_WAIT_SECONDS = None
    settings.TASKYARD_METRICS_PUBLIC = False
    settings.TASKYARD_METRICS_TOKEN = "s3cret-token"
    metrics.snapshots.invalidate()
    yield
    metrics.snapshots.invalidate()


def scrape(client, recount=True) -> dict:
    """Scrape /metrics with the bearer token and parse it with Prometheus' own parser. With
    `recount`, the backlog is counted for this scrape (the first scrape of a process waits for
    the count; later ones are served from the snapshot)."""
    if recount:
        metrics.snapshots.invalidate()
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert response.status_code == 200, response.content
    values = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            values[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return values


def value(values, name, **labels):
    return values.get((name, frozenset(labels.items())), 0)


def task(topic="invoice", **fields):
    return ExternalTask.objects.create(topic_name=topic, **fields)


def basic(username, password):
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


# ---------------------------------------------------------------------------------------------
# Access.


def test_metrics_without_credentials_answers_401(client, db):
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response.json()["type"] == "AuthenticationException"
    assert response["WWW-Authenticate"].startswith("Basic")


def test_metrics_with_wrong_bearer_token_answers_401(client, db):
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong")
    assert response.status_code == 401


def test_bearer_token_is_refused_when_no_token_is_configured(client, db, settings):
    settings.TASKYARD_METRICS_TOKEN = ""
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer ")
    assert response.status_code == 401


def test_metrics_with_bearer_token_answers_exposition_format(client, db):
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    names = {f.name for f in text_string_to_metric_families(response.content.decode())}
    assert {"taskyard_external_tasks", "taskyard_jobs", "taskyard_backlog_up"} <= names
    assert "taskyard_worker_operation_duration_seconds" in names


def test_admin_account_may_scrape_with_basic_auth(client, admin_user):
    response = client.get("/metrics", HTTP_AUTHORIZATION=basic("alice", "alice-password"))
    assert response.status_code == 200


def test_wrong_basic_password_answers_401(client, admin_user):
    response = client.get("/metrics", HTTP_AUTHORIZATION=basic("alice", "nope"))
    assert response.status_code == 401


def test_garbled_basic_credentials_answer_401(client, db):
    response = client.get("/metrics", HTTP_AUTHORIZATION="Basic !!!not-base64")
    assert response.status_code == 401


def test_viewer_and_worker_accounts_may_not_scrape(client, viewer_user, worker_user):
    for name in ("carol", "walter"):
        response = client.get("/metrics", HTTP_AUTHORIZATION=basic(name, f"{name}-password"))
        assert response.status_code == 401
        assert response.json()["type"] == "AuthenticationException"


def test_logged_in_admin_may_open_metrics_in_the_browser(client, admin_user):
    client.login(username="alice", password="alice-password")
    assert client.get("/metrics").status_code == 200


def test_logged_in_operator_is_sent_to_the_console_for_figures(client, operator_user):
    client.login(username="bob", password="bob-password")
    response = client.get("/metrics")
    assert response.status_code == 403
    assert "overview" in response.json()["message"]


def test_public_metrics_setting_drops_authentication(client, db, settings):
    settings.TASKYARD_METRICS_PUBLIC = True
    assert client.get("/metrics").status_code == 200


def test_metrics_never_redirect_to_the_console_login(client, db):
    response = client.get("/metrics")
    assert response.status_code != 302


# ---------------------------------------------------------------------------------------------
# External task backlog.


def test_backlog_counts_external_tasks_by_topic_and_status(client, db):
    now = timezone.now()
    task()
    task()
    task(worker_id="w1", lock_expiration_time=now + timedelta(minutes=5))
    task(worker_id="w1", lock_expiration_time=now - timedelta(minutes=5))
    task(retries=2, error_message="timeout", lock_expiration_time=now - timedelta(minutes=1))
    task(retries=0, error_message="boom")
    task(suspended=True)
    task(topic="shipping", retries=2)

    values = scrape(client)

    def tasks(topic, state):
        return value(values, "taskyard_external_tasks", topic=topic, state=state)

    assert tasks("invoice", "waiting") == 2
    assert tasks("invoice", "locked") == 1
    assert tasks("invoice", "expired") == 1
    assert tasks("invoice", "retrying") == 1
    assert tasks("invoice", "failed") == 1
    assert tasks("invoice", "suspended") == 1
    assert tasks("shipping", "waiting") == 1
    assert tasks("shipping", "failed") == 0
    assert value(values, "taskyard_backlog_estimated", table="external_task") == 0
    assert value(values, "taskyard_backlog_up") == 1


def test_suspended_failed_task_counts_once_as_failed(client, db):
    # The status table's precedence: failed before suspended, as the console's badge says.
    task(suspended=True, retries=0)
    values = scrape(client)
    assert value(values, "taskyard_external_tasks", topic="invoice", state="failed") == 1
    assert value(values, "taskyard_external_tasks", topic="invoice", state="suspended") == 0


def backlog_of(values, name) -> dict:
    """{state: count} summed over the groups of one backlog gauge."""
    counts = {}
    for (sample, labels), count in values.items():
        if sample == name:
            state = dict(labels)["state"]
            counts[state] = counts.get(state, 0) + count
    return counts


def test_task_backlog_states_are_the_status_table_and_agree_with_each_row(client, db):
    now = timezone.now()
    rows = [
        task(retries=0, suspended=True),
        task(suspended=True, worker_id="w1", lock_expiration_time=now + timedelta(minutes=5)),
        task(worker_id="w1", lock_expiration_time=now + timedelta(minutes=5)),
        task(retries=1, error_message="boom", worker_id="w1"),
        task(worker_id="w1", lock_expiration_time=now - timedelta(minutes=5)),
        task(),
    ]
    counts = backlog_of(scrape(client), "taskyard_external_tasks")
    assert set(counts) <= set(TASK_STATUSES.keys)
    assert sum(counts.values()) == ExternalTask.objects.count()
    expected = {}
    for row in rows:
        expected[row.status_at().key] = expected.get(row.status_at().key, 0) + 1
    assert counts == expected
    assert set(expected) == set(TASK_STATUSES.keys)


def test_backlog_follows_fetch_complete_and_failure(client, db):
    """The row changes a fetch, a complete and a failure make move the gauges."""
    ids = [task().id for _ in range(3)]
    values = scrape(client)
    assert value(values, "taskyard_external_tasks", topic="invoice", state="waiting") == 3

    # fetchAndLock of two tasks
    lock = timezone.now() + timedelta(minutes=1)
    ExternalTask.objects.filter(id__in=ids[:2]).update(worker_id="w", lock_expiration_time=lock)
    values = scrape(client)
    assert value(values, "taskyard_external_tasks", topic="invoice", state="waiting") == 1
    assert value(values, "taskyard_external_tasks", topic="invoice", state="locked") == 2

    # complete removes the runtime row; a failure without retries left makes an incident
    ExternalTask.objects.filter(id=ids[0]).delete()
    ExternalTask.objects.filter(id=ids[1]).update(retries=0, lock_expiration_time=None)
    values = scrape(client)
    assert value(values, "taskyard_external_tasks", topic="invoice", state="locked") == 0
    assert value(values, "taskyard_external_tasks", topic="invoice", state="failed") == 1
    assert value(values, "taskyard_external_tasks", topic="invoice", state="waiting") == 1


def test_backlog_follows_real_fetch_complete_and_failure_calls(client, worker_api):
    for _ in range(3):
        task(tenant_id="acme")
    url = "/engine-rest/external-task"
    fetched = worker_api.post(
        f"{url}/fetchAndLock",
        {
            "workerId": "w1",
            "maxTasks": 2,
            "topics": [{"topicName": "invoice", "lockDuration": 60000}],
        },
        format="json",
    )
    assert fetched.status_code == 200
    first, second = (t["id"] for t in fetched.json())
    values = scrape(client)
    assert value(values, "taskyard_external_tasks", topic="invoice", state="waiting") == 1
    assert value(values, "taskyard_external_tasks", topic="invoice", state="locked") == 2

    completed = worker_api.post(f"{url}/{first}/complete", {"workerId": "w1"}, format="json")
    assert completed.status_code == 204
    failure = {"workerId": "w1", "errorMessage": "boom", "retries": 0, "retryTimeout": 0}
    assert worker_api.post(f"{url}/{second}/failure", failure, format="json").status_code == 204
    values = scrape(client)
    assert value(values, "taskyard_external_tasks", topic="invoice", state="locked") == 0
    assert value(values, "taskyard_external_tasks", topic="invoice", state="failed") == 1
    assert value(values, "taskyard_external_tasks", topic="invoice", state="waiting") == 1


def test_empty_tables_give_no_backlog_series_but_parse(client, db):
    values = scrape(client)
    assert not [key for key in values if key[0] in ("taskyard_external_tasks", "taskyard_jobs")]
    assert value(values, "taskyard_backlog_up") == 1


def test_backlog_is_served_from_the_snapshot_within_the_refresh_interval(client, db):
    task()
    assert value(scrape(client), "taskyard_external_tasks", topic="invoice", state="waiting") == 1
    task()
    # Within the interval a scrape reads the snapshot, not the table.
    values = scrape(client, recount=False)
    assert value(values, "taskyard_external_tasks", topic="invoice", state="waiting") == 1
    assert value(values, "taskyard_backlog_snapshot_age_seconds") >= 0
    assert value(scrape(client), "taskyard_external_tasks", topic="invoice", state="waiting") == 2


def test_stale_snapshot_is_served_while_a_background_refresh_counts(
    client, transactional_db, settings
):
    task()
    assert value(scrape(client), "taskyard_external_tasks", topic="invoice", state="waiting") == 1
    task()
    settings.TASKYARD_METRICS_REFRESH_SECONDS = 0  # everything is stale from now on
    stale = scrape(client, recount=False)
    # The scrape did not wait: it answered with the old numbers and started a refresh.
    assert value(stale, "taskyard_external_tasks", topic="invoice", state="waiting") == 1
    metrics.snapshots.wait(timeout=30)
    settings.TASKYARD_METRICS_REFRESH_SECONDS = 3600
    fresh = scrape(client, recount=False)
    assert value(fresh, "taskyard_external_tasks", topic="invoice", state="waiting") == 2


def test_first_scrape_counts_in_the_background_and_waits_for_it(client, transactional_db, settings):
    settings.TASKYARD_METRICS_FIRST_WAIT_SECONDS = 30
    task()
    values = scrape(client)
    assert value(values, "taskyard_external_tasks", topic="invoice", state="waiting") == 1
    assert value(values, "taskyard_backlog_up") == 1


def test_first_scrape_does_not_wait_long_for_a_slow_count(client, transactional_db, settings):
    settings.TASKYARD_METRICS_FIRST_WAIT_SECONDS = 0.05
    task()
    with metrics.snapshots._lock:  # a count that cannot finish yet
        values = scrape(client)
    assert value(values, "taskyard_backlog_up") == 0
    assert not [key for key in values if key[0] == "taskyard_external_tasks"]
    metrics.snapshots.wait(timeout=30)
    values = scrape(client, recount=False)
    assert value(values, "taskyard_external_tasks", topic="invoice", state="waiting") == 1
    assert value(values, "taskyard_backlog_up") == 1


def test_a_process_picks_up_the_snapshot_another_process_left_in_the_cache(client, db):
    task()
    scrape(client)
    task()
    # A second process starts with no snapshot of its own but finds the shared one.
    metrics.snapshots.last = None
    values = scrape(client, recount=False)
    assert value(values, "taskyard_external_tasks", topic="invoice", state="waiting") == 1


def test_many_topics_are_folded_into_other(client, db, settings):
    settings.TASKYARD_METRICS_MAX_GROUPS = 2
    for _ in range(3):
        task("big")
    for _ in range(2):
        task("medium")
    task("small-1")
    task("small-2", retries=0)
    values = scrape(client)
    assert value(values, "taskyard_external_tasks", topic="big", state="waiting") == 3
    assert value(values, "taskyard_external_tasks", topic="medium", state="waiting") == 2
    assert value(values, "taskyard_external_tasks", topic="__other__", state="waiting") == 1
    assert value(values, "taskyard_external_tasks", topic="__other__", state="failed") == 1
    assert value(values, "taskyard_external_tasks", topic="small-1", state="waiting") == 0


def test_state_over_the_exact_limit_is_still_counted_on_sqlite(client, db, settings):
    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL estimates instead; see the next test")
    settings.TASKYARD_METRICS_EXACT_LIMIT = 3
    for _ in range(5):
        task()
    task("other")
    values = scrape(client)
    assert value(values, "taskyard_external_tasks", topic="invoice", state="waiting") == 5
    assert value(values, "taskyard_external_tasks", topic="other", state="waiting") == 1


def seed_big_backlog():
    ExternalTask.objects.bulk_create(ExternalTask(topic_name="invoice") for _ in range(3000))
    ExternalTask.objects.bulk_create(ExternalTask(topic_name="payment") for _ in range(1000))
    task("invoice", retries=0)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {ExternalTask._meta.db_table}")


@pytest.mark.postgres
def test_state_over_the_exact_limit_is_counted_when_the_sample_is_the_whole_table(
    client, db, settings
):
    settings.TASKYARD_METRICS_EXACT_LIMIT = 50
    settings.TASKYARD_METRICS_SAMPLE_ROWS = 1_000_000
    seed_big_backlog()
    values = scrape(client)
    assert value(values, "taskyard_backlog_estimated", table="external_task") == 0
    assert value(values, "taskyard_external_tasks", topic="invoice", state="waiting") == 3000
    assert value(values, "taskyard_external_tasks", topic="payment", state="waiting") == 1000
    assert value(values, "taskyard_external_tasks", topic="invoice", state="failed") == 1


@pytest.mark.postgres
def test_state_over_the_exact_limit_is_estimated_from_a_block_sample(client, db, settings):
    settings.TASKYARD_METRICS_EXACT_LIMIT = 50
    settings.TASKYARD_METRICS_SAMPLE_ROWS = 2000
    seed_big_backlog()
    values = scrape(client)
    assert value(values, "taskyard_backlog_estimated", table="external_task") == 1
    # A sample of about half the blocks scaled up: roughly right, never absurd.
    total = sum(
        value(values, "taskyard_external_tasks", topic=topic, state="waiting")
        for topic in ("invoice", "payment")
    )
    assert 1000 <= total <= 8000
    # The small failed state stays exact.
    assert value(values, "taskyard_external_tasks", topic="invoice", state="failed") == 1


# ---------------------------------------------------------------------------------------------
# Job backlog.


def test_backlog_counts_jobs_by_handler_and_status(client, db):
    now = timezone.now()
    paused = JobDefinition.objects.create(activity_id="pay", suspended=True)
    Job.objects.create(handler="billing.charge")
    Job.objects.create(handler="billing.charge", due_date=now - timedelta(minutes=1))
    Job.objects.create(handler="billing.charge", due_date=now + timedelta(hours=1))
    Job.objects.create(
        handler="billing.charge", lock_owner="exec-1", lock_expiration_time=now + timedelta(1)
    )
    Job.objects.create(
        handler="billing.charge", lock_owner="exec-1", lock_expiration_time=now - timedelta(1)
    )
    Job.objects.create(handler="billing.charge", retries=2, exception_message="boom")
    Job.objects.create(handler="billing.charge", retries=0)
    Job.objects.create(handler="billing.charge", suspended=True)
    Job.objects.create(handler="mail.send", job_definition=paused)

    values = scrape(client)

    def jobs(handler, state):
        return value(values, "taskyard_jobs", handler=handler, state=state)

    assert jobs("billing.charge", "due") == 2
    assert jobs("billing.charge", "waiting") == 1
    assert jobs("billing.charge", "locked") == 1
    assert jobs("billing.charge", "expired") == 1
    assert jobs("billing.charge", "retrying") == 1
    assert jobs("billing.charge", "failed") == 1
    assert jobs("billing.charge", "suspended") == 1
    # Its job definition is suspended: the executor skips it, so it is not due.
    assert jobs("mail.send", "suspended") == 1
    assert jobs("mail.send", "due") == 0
    assert value(values, "taskyard_backlog_estimated", table="job") == 0


def test_job_backlog_states_are_the_status_table_and_agree_with_each_row(client, db):
    now = timezone.now()
    paused = JobDefinition.objects.create(activity_id="pay", suspended=True)
    rows = [
        Job.objects.create(retries=0, job_definition=paused),
        Job.objects.create(job_definition=paused, lock_expiration_time=now + timedelta(1)),
        Job.objects.create(lock_owner="exec-1", lock_expiration_time=now + timedelta(1)),
        Job.objects.create(lock_owner="exec-1", lock_expiration_time=now - timedelta(1)),
        Job.objects.create(retries=1, exception_message="boom"),
        Job.objects.create(),
        Job.objects.create(due_date=now + timedelta(hours=1)),
    ]
    counts = backlog_of(scrape(client), "taskyard_jobs")
    assert set(counts) <= set(JOB_STATUSES.keys)
    assert sum(counts.values()) == Job.objects.count()
    expected = {}
    for row in rows:
        expected[row.status_at().key] = expected.get(row.status_at().key, 0) + 1
    assert counts == expected
    assert set(expected) == set(JOB_STATUSES.keys)


def test_job_backlog_follows_a_run_and_a_failure(client, db):
    first = Job.objects.create(handler="report.build")
    second = Job.objects.create(handler="report.build", retries=1)
    assert value(scrape(client), "taskyard_jobs", handler="report.build", state="due") == 2
    first.delete()  # succeeded: the executor deletes the job
    Job.objects.filter(id=second.id).update(retries=0, exception_message="boom")
    values = scrape(client)
    assert value(values, "taskyard_jobs", handler="report.build", state="due") == 0
    assert value(values, "taskyard_jobs", handler="report.build", state="failed") == 1


# ---------------------------------------------------------------------------------------------
# The backlog registry.


def test_each_app_registers_its_backlog_with_its_status_table():
    sources = {source.table: source for source in metrics.backlog_sources()}
    assert (sources["job"].model, sources["job"].group_field) == (Job, "handler")
    assert sources["job"].states == JOB_STATUSES.partition
    assert (sources["external_task"].metric, sources["external_task"].group_label) == (
        "taskyard_external_tasks",
        "topic",
    )
    assert sources["external_task"].states == TASK_STATUSES.partition


def test_registering_a_table_again_replaces_its_source(client, db, monkeypatch):
    monkeypatch.setattr(metrics, "_backlog_sources", dict(metrics._backlog_sources))
    Job.objects.create(handler="billing.charge", retries=0)
    metrics.register_backlog(
        "job",
        Job,
        "queue_name",
        lambda now: {"any": Q()},
        metric="taskyard_jobs",
        group_label="queue",
        help="Jobs by queue",
    )
    values = scrape(client)
    assert value(values, "taskyard_jobs", queue="default", state="any") == 1
    assert value(values, "taskyard_jobs", handler="billing.charge", state="failed") == 0


def test_metrics_and_logs_load_before_the_app_registry_and_import_no_app():
    # Django imports project.logs (and so project.metrics) while it configures logging, before
    # the apps are ready; neither may pull in an app's models.
    code = (
        "import sys, project.logs, project.metrics; "
        "apps = [m for m in sys.modules if m.split('.')[0] in ('jobs', 'external_tasks')]; "
        "assert not apps, apps"
    )
    env = os.environ | {"DJANGO_SETTINGS_MODULE": "project.settings"}
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], cwd=root, env=env, check=True)


# ---------------------------------------------------------------------------------------------
# Event counters: the API other parts call.


def test_fetch_and_outcome_counters_increase(client, db):
    before = scrape(client)
    metrics.record_fetched(["invoice", "invoice", "shipping"], worker_id="w1", face="camunda")
    metrics.record_task_outcome("invoice", "completed", task_id="t1", face="camunda")
    metrics.record_task_outcome("invoice", "failed", task_id="t2", retries=2, face="camunda")
    metrics.record_task_outcome("shipping", "bpmn_error", task_id="t3", face="flowable")
    after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("taskyard_external_tasks_fetched_total", face="camunda", topic="invoice") == 2
    assert delta("taskyard_external_tasks_fetched_total", face="camunda", topic="shipping") == 1
    outcomes = "taskyard_external_task_outcomes_total"
    assert delta(outcomes, face="camunda", topic="invoice", outcome="completed") == 1
    assert delta(outcomes, face="camunda", topic="invoice", outcome="failed") == 1
    assert delta(outcomes, face="flowable", topic="shipping", outcome="bpmn_error") == 1


def test_worker_operation_counts_ok_rejected_and_error(client, db):
    name = "taskyard_worker_operation_duration_seconds_count"
    before = scrape(client)
    with metrics.worker_operation("complete", face="camunda"):
        pass
    with pytest.raises(BadUserRequest), metrics.worker_operation("complete", face="camunda"):
        raise BadUserRequest("locked by another worker")
    with pytest.raises(RuntimeError), metrics.worker_operation("complete", face="camunda"):
        raise RuntimeError("bug")
    after = scrape(client)
    for outcome in ("ok", "rejected", "error"):
        labels = {"operation": "complete", "face": "camunda", "outcome": outcome}
        assert value(after, name, **labels) - value(before, name, **labels) == 1


def test_long_poll_waiters_gauge_rises_and_falls(client, db):
    with metrics.long_poll_waiting(face="camunda"):
        during = scrape(client)
    after = scrape(client)
    waiting = value(during, "taskyard_long_poll_waiters", face="camunda")
    assert waiting - value(after, "taskyard_long_poll_waiters", face="camunda") == 1


def test_job_runs_polls_and_lock_expirations_are_counted(client, db, caplog):
    before = scrape(client)
    with caplog.at_level(logging.INFO, logger="taskyard.executor"):
        metrics.record_job_run("report.build", "succeeded", 0.2, job_id="j1", worker="exec-1")
        metrics.record_job_run("report.build", "failed", 1.5, job_id="j2", error="ValueError")
    metrics.record_executor_poll(acquired=2, seconds=0.01)
    metrics.record_executor_poll(acquired=0, seconds=0.01)
    metrics.record_lock_expired("external_task", 3)
    after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    runs = "taskyard_job_run_duration_seconds_count"
    assert delta(runs, handler="report.build", outcome="succeeded") == 1
    assert delta(runs, handler="report.build", outcome="failed") == 1
    assert delta("taskyard_job_run_duration_seconds_sum", handler="report.build", outcome="failed")
    assert delta("taskyard_executor_poll_duration_seconds_count") == 2
    assert delta("taskyard_executor_jobs_acquired_total") == 2
    assert delta("taskyard_lock_expirations_total", kind="external_task") == 3
    failed = [r for r in caplog.records if getattr(r, "job_id", None) == "j2"]
    assert failed and failed[0].levelname == "WARNING" and failed[0].error == "ValueError"


def test_outcomes_recorded_outside_a_request_are_labelled_internal(client, db):
    name = "taskyard_external_task_outcomes_total"
    labels = {"face": "internal", "topic": "invoice", "outcome": "completed"}
    before = value(scrape(client), name, **labels)
    metrics.record_task_outcome("invoice", "completed", task_id="t1")
    assert value(scrape(client), name, **labels) - before == 1


def test_outcomes_recorded_while_serving_a_request_take_the_request_face(db):
    def view(request):
        # Service code deep below a view records without knowing the face.
        metrics.record_task_outcome("invoice", "completed", task_id="t1")
        return HttpResponse(status=204)

    labels = {"face": "flowable", "topic": "invoice", "outcome": "completed"}
    name = "taskyard_external_task_outcomes_total"
    before = REGISTRY.get_sample_value(name, labels) or 0
    request = RequestFactory().post("/external-job-api/acquire/jobs/t1/complete")
    RequestLogMiddleware(view)(request)
    assert REGISTRY.get_sample_value(name, labels) - before == 1
    assert metrics.current_face() == "internal"  # reset once the request is done


def test_http_requests_are_counted_by_face(client, viewer_api):
    name = "taskyard_http_request_duration_seconds_count"
    labels = {"face": "camunda", "method": "GET", "status": "2xx"}
    before = value(scrape(client), name, **labels)
    assert viewer_api.get("/engine-rest/version").status_code == 200
    assert value(scrape(client), name, **labels) - before == 1


def test_metrics_server_for_processes_without_a_web_face_serves_event_metrics():
    import urllib.request

    metrics.record_job_run("standalone.handler", "succeeded", 0.5)
    server, thread = metrics.start_metrics_server(0)  # port 0: any free port
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            body = response.read().decode()
    finally:
        server.shutdown()
        thread.join(timeout=10)
    names = {f.name for f in text_string_to_metric_families(body)}
    assert "taskyard_job_run_duration_seconds" in names
    assert 'handler="standalone.handler"' in body
    assert "taskyard_external_tasks" not in names  # the backlog comes from the web processes
