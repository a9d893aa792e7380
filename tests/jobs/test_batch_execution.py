"""The executor's side of batches: its heartbeat (and executors_seen), and the batch queue."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from jobs import executor
from jobs.models import ExecutorHeartbeat, Job
from project import batches, clock

pytestmark = pytest.mark.django_db


def test_an_executor_reports_itself_while_it_runs_and_removes_its_row_on_a_clean_stop():
    seen = []
    options = executor.ExecutorOptions(worker_id="exec-1", queues=["batch", "demo"], once=True)
    runner = executor.Executor(options)
    original = runner.run_until_stopped

    def run_until_stopped(renewer, waiter):
        seen.append(ExecutorHeartbeat.objects.get(worker_id="exec-1"))
        assert batches.executors_seen("batch")
        assert batches.executors_seen("demo")
        assert not batches.executors_seen("reports")
        return original(renewer, waiter)

    runner.run_until_stopped = run_until_stopped
    runner.run()

    [row] = seen
    assert row.queues == ["batch", "demo"] and row.pid and row.hostname
    assert row.running == 0
    assert not ExecutorHeartbeat.objects.exists()
    assert not batches.executors_seen("batch")


def test_executors_seen_ignores_old_heartbeats_and_counts_every_queue_executors():
    ExecutorHeartbeat.objects.create(
        worker_id="stale", queues=["batch"], last_seen=clock.now() - timedelta(minutes=5)
    )
    assert not batches.executors_seen("batch", within_seconds=30)
    assert batches.executors_seen("batch", within_seconds=600)
    ExecutorHeartbeat.objects.create(worker_id="all-queues", queues=[])
    assert batches.executors_seen("batch")
    assert batches.executors_seen("anything")


def test_batch_jobs_run_only_on_executors_of_the_batch_queue(operator_user, settings):
    settings.TASKYARD_BATCH_CHUNK_SIZE = 2
    Job.objects.bulk_create(
        Job(handler="jobs.demo_handlers.send_invoice", retries=0, tenant_id="acme")
        for _ in range(3)
    )
    batch = batches.start(operator_user, "set-job-retries", Job.objects.all(), {"retries": 1})
    out = StringIO()

    call_command("runjobs", "--once", "--queue", "demo", stdout=out, stderr=out)
    batch.refresh_from_db()
    assert batch.jobs_created == 0

    call_command("runjobs", "--once", "--queue", "demo,batch", stdout=out, stderr=out)
    batch.refresh_from_db()
    assert (batch.outcome, batch.rows_changed) == ("completed", 3)
