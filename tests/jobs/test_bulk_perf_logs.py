"""Bulk job actions write their history set-based (INSERT … SELECT): what lands in the log, per
batch, scoped to the user's tenants, and all or nothing."""

import pytest
from django.db import connection

from jobs import services
from jobs.models import Job, JobDefinition, JobLog
from project.models import AuditEntry
from tests.jobs.factories import at, make_job

LOG_COPIED = ("tenant_id", "handler", "queue_name", "process_instance_id", "activity_id")


@pytest.fixture
def small_batches(monkeypatch):
    monkeypatch.setattr(services, "BATCH_SIZE", 2)


def make_acme_jobs(count, **fields):
    definition = JobDefinition.objects.create(id="def-1", tenant_id="acme")
    return [
        make_job(
            f"j{index}",
            tenant_id="acme",
            job_definition=definition,
            queue_name="mail",
            process_instance_id=f"pi{index}",
            activity_id="sendMail",
            payload={"secret": index},
            **fields,
        )
        for index in range(count)
    ]


def test_set_retries_logs_each_changed_job_with_its_copied_fields(admin_user, small_batches):
    jobs = make_acme_jobs(5, retries=0)
    result = services.set_retries(admin_user, [job.id for job in jobs], 4)
    assert result == services.BulkResult(5, 0)
    logs = {log.job_id: log for log in JobLog.objects.filter(event="retries-set")}
    assert set(logs) == {job.id for job in jobs}
    for job in jobs:
        log = logs[job.id]
        assert log.retries == 4
        assert log.worker == "alice"
        assert log.job_definition_id == "def-1"
        assert log.payload is None  # kept on the "created" entry only
        assert log.exception_message is None
        assert log.timestamp is not None
        for name in LOG_COPIED:
            assert getattr(log, name) == getattr(job, name)
    assert set(Job.objects.values_list("retries", flat=True)) == {4}


def test_bulk_log_timestamps_are_stored_like_orm_timestamps(admin_user):
    make_job("old", retries=0)
    services.set_retries(admin_user, ["old"], 1)
    log = JobLog.objects.get(event="retries-set")
    # Read back through the ORM (and filterable by date): the raw INSERT adapted the value.
    assert JobLog.objects.filter(event="retries-set", timestamp__gt=at("2020-01-01")).count() == 1
    assert log.timestamp.tzinfo is not None


def test_bulk_action_only_touches_the_operators_tenants(operator_user, small_batches):
    make_acme_jobs(3, retries=0)
    make_job("other", tenant_id="globex", retries=0)
    result = services.set_retries(operator_user, Job.objects.all(), 2)
    assert result.changed == 3
    assert Job.objects.get(id="other").retries == 0
    assert not JobLog.objects.filter(job_id="other").exists()
    by_ids = services.set_retries(operator_user, ["j0", "other", "missing"], 1)
    assert by_ids == services.BulkResult(1, 2)


def test_suspend_logs_only_the_jobs_it_changed(admin_user, small_batches):
    make_acme_jobs(4)
    Job.objects.filter(id__in=["j1", "j3"]).update(suspended=True)
    result = services.suspend(admin_user, Job.objects.all())
    assert result == services.BulkResult(2, 2)
    assert sorted(JobLog.objects.filter(event="suspended").values_list("job_id", flat=True)) == [
        "j0",
        "j2",
    ]
    # The log keeps the job's retries: only set_retries overrides them.
    assert set(JobLog.objects.filter(event="suspended").values_list("retries", flat=True)) == {3}


def test_progress_is_reported_after_each_batch(admin_user, small_batches):
    make_acme_jobs(5, retries=0)
    calls = []
    services.set_retries(admin_user, Job.objects.all(), 1, progress=lambda *a: calls.append(a))
    assert calls == [(2, 2), (4, 4), (5, 5)]


def test_a_failing_bulk_action_leaves_no_change_and_no_log(admin_user, small_batches):
    make_acme_jobs(5, retries=0)

    def fail_on_second_batch(matched, changed):
        if matched > 2:
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        services.set_retries(admin_user, Job.objects.all(), 1, progress=fail_on_second_batch)
    assert set(Job.objects.values_list("retries", flat=True)) == {0}
    assert not JobLog.objects.filter(event="retries-set").exists()
    assert not AuditEntry.objects.filter(action="job.set_retries").exists()


def test_one_audit_entry_with_the_before_histogram(admin_user, small_batches):
    make_acme_jobs(3, retries=0)
    Job.objects.filter(id="j2").update(retries=2)
    services.set_retries(admin_user, Job.objects.all(), 5)
    entry = AuditEntry.objects.get(action="job.set_retries")
    assert entry.count == 3
    assert entry.before == {"retries": {"0": 2, "2": 1}}


def test_delete_leaves_a_deleted_entry_copied_from_each_job(admin_user, small_batches):
    jobs = make_acme_jobs(3)
    assert services.delete(admin_user, [job.id for job in jobs] + ["gone"]) == (
        services.BulkResult(3, 1)
    )
    assert not Job.objects.exists()
    logs = JobLog.objects.filter(event="deleted")
    assert sorted(logs.values_list("process_instance_id", flat=True)) == ["pi0", "pi1", "pi2"]
    assert set(logs.values_list("queue_name", "worker")) == {("mail", "alice")}


def test_bulk_update_sends_a_fixed_number_of_statements_per_batch(admin_user, monkeypatch):
    """Set-based: the statements per batch do not grow with the rows in it."""
    monkeypatch.setattr(services, "BATCH_SIZE", 50)
    make_acme_jobs(100, retries=0)
    statements = []

    def count(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        services.set_retries(admin_user, Job.objects.all(), 1)
    # One log INSERT per batch (on PostgreSQL inside the batch's one lock-update-log statement).
    inserts = [sql for sql in statements if "INSERT INTO" in sql and "jobs_joblog" in sql]
    assert len(inserts) == 2
    assert JobLog.objects.filter(event="retries-set").count() == 100
