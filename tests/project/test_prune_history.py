"""prune_history removes exactly the history past retention, and nothing else."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from external_tasks.models import ExternalTask, ExternalTaskLog
from jobs.models import Job, JobLog
from project.models import AuditEntry

DAY = timedelta(days=1)


def prune(*args) -> str:
    out = StringIO()
    call_command("prune_history", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def job_log(job_id, age, event="succeeded"):
    return JobLog.objects.create(job_id=job_id, event=event, timestamp=timezone.now() - age)


def task_log(task_id, age, event="completed"):
    return ExternalTaskLog.objects.create(
        task_id=task_id, event=event, timestamp=timezone.now() - age, topic_name="invoice"
    )


def audit_entry(age):
    entry = AuditEntry.objects.create(username="bob", action="job.set_retries", target_type="job")
    # timestamp is auto_now_add, so age it afterwards
    AuditEntry.objects.filter(id=entry.id).update(timestamp=timezone.now() - age)
    return entry


def ids(model):
    return set(model.objects.values_list("id", flat=True))


@pytest.fixture
def history(db):
    """Old and recent history of finished work, of live work, and audit entries."""
    live_job = Job.objects.create(handler="report.build", retries=0)
    live_task = ExternalTask.objects.create(topic_name="invoice", retries=0)
    rows = {
        "old_job_logs": {job_log("gone-job", 31 * DAY).id, job_log("gone-job", 90 * DAY).id},
        "recent_job_logs": {job_log("gone-job", 29 * DAY).id, job_log("other", DAY).id},
        "live_job_logs": {job_log(live_job.id, 400 * DAY, "failed").id},
        "old_task_logs": {task_log("gone-task", 45 * DAY).id},
        "recent_task_logs": {task_log("gone-task", 2 * DAY).id},
        "live_task_logs": {task_log(live_task.id, 400 * DAY, "failed").id},
        "old_audit": {audit_entry(400 * DAY).id},
        "kept_audit": {audit_entry(100 * DAY).id, audit_entry(DAY).id},
    }
    return rows


def test_prune_removes_exactly_the_history_past_retention(history):
    output = prune("--history-days", "30", "--audit-days", "365")

    assert ids(JobLog) == history["recent_job_logs"] | history["live_job_logs"]
    assert ids(ExternalTaskLog) == history["recent_task_logs"] | history["live_task_logs"]
    remaining_audit = ids(AuditEntry) - {e.id for e in AuditEntry.objects.filter(source="command")}
    assert remaining_audit == history["kept_audit"]
    assert "Deleted 2 job log entries older than 30 days." in output
    assert "Deleted 1 external task log entries older than 30 days." in output
    assert "Deleted 1 audit entries older than 365 days." in output


def test_history_of_work_still_in_the_runtime_tables_is_kept_at_any_age(history):
    prune("--history-days", "1", "--audit-days", "never")
    assert history["live_job_logs"] <= ids(JobLog)
    assert history["live_task_logs"] <= ids(ExternalTaskLog)


def test_prune_uses_the_retention_settings_by_default(history, settings):
    settings.TASKYARD_HISTORY_RETENTION_DAYS = "60"
    settings.TASKYARD_AUDIT_RETENTION_DAYS = "50"
    # Defaults are read when the command's parser is built, i.e. at each call.
    output = prune()
    assert "older than 60 days" in output
    assert ids(JobLog) == (
        history["recent_job_logs"] | history["live_job_logs"] | {min(history["old_job_logs"])}
    )
    assert AuditEntry.objects.exclude(source="command").count() == 1


def test_dry_run_counts_without_deleting(history):
    before = (ids(JobLog), ids(ExternalTaskLog), ids(AuditEntry))
    output = prune("--history-days", "30", "--audit-days", "365", "--dry-run")
    assert (ids(JobLog), ids(ExternalTaskLog), ids(AuditEntry)) == before
    assert "Would delete 2 job log entries" in output
    assert "Would delete 1 audit entries" in output


def test_never_keeps_everything(history):
    before = (ids(JobLog), ids(ExternalTaskLog), ids(AuditEntry))
    output = prune("--history-days", "never", "--audit-days", "never")
    assert (ids(JobLog), ids(ExternalTaskLog), ids(AuditEntry)) == before
    assert "Nothing to prune" in output


def test_prune_deletes_in_batches_until_done(db):
    for n in range(7):
        job_log(f"gone-{n}", 40 * DAY)
    job_log("recent", DAY)
    out = StringIO()
    call_command(
        "prune_history", "--history-days=30", "--batch-size=3", "--verbosity=2", stdout=out
    )
    assert JobLog.objects.count() == 1
    progress = [line for line in out.getvalue().splitlines() if "job log entries:" in line]
    assert progress == [
        "  job log entries: 3 so far",
        "  job log entries: 6 so far",
        "  job log entries: 7 so far",
    ]


def test_old_history_of_live_work_does_not_stall_the_batches(db):
    live = Job.objects.create(handler="report.build")
    kept = {job_log(live.id, 50 * DAY, "failed").id for _ in range(5)}
    for n in range(3):
        job_log(f"gone-{n}", 50 * DAY)
    output = prune("--history-days=30", "--audit-days=never", "--batch-size=2")
    assert ids(JobLog) == kept
    assert "Deleted 3 job log entries" in output


def test_dry_run_counts_exactly_what_a_real_run_deletes(history):
    dry = prune("--history-days", "30", "--audit-days", "365", "--dry-run", "--batch-size", "1")
    real = prune("--history-days", "30", "--audit-days", "365", "--batch-size", "1")
    assert dry.replace("Would delete", "Deleted") == real


def test_prune_leaves_an_audit_entry_saying_what_it_removed(history):
    prune("--history-days", "30", "--audit-days", "365")
    [entry] = AuditEntry.objects.filter(action="history.prune")
    assert entry.username == "system" and entry.source == "command"
    assert entry.count == 4
    assert entry.after == {
        "job_log_entries": 2,
        "external_task_log_entries": 1,
        "audit_entries": 1,
    }


def test_prune_with_nothing_to_remove_writes_no_audit_entry(db):
    assert "Deleted 0 job log entries" in prune("--history-days", "30")
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--history-days", "0"], "at least 1 day"),
        (["--history-days", "-3"], "at least 1 day"),
        (["--audit-days", "soon"], "whole number of days"),
        (["--batch-size", "0"], "--batch-size"),
        (["--pause", "-1"], "--pause"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_deleted(history, args, message):
    before = ids(JobLog)
    with pytest.raises(CommandError, match=message):
        prune(*args)
    assert ids(JobLog) == before
