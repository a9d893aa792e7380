"""Batches run by real `manage.py runjobs` processes: an executor killed with SIGKILL in the
middle of a batch leaves no half-done chunk, and another one finishes the batch with exact
counts; chunks keep exact counts while worker connections change the same rows."""

import signal
import threading

import pytest
from django.db import connections

from external_tasks import services as task_services
from external_tasks.models import ExternalTask, ExternalTaskLog
from jobs.models import Job, JobLog
from project import batches
from project.models import Batch, BatchChunk
from tests.conftest import make_user
from tests.jobs.test_executor_processes import executors, finish, wait_until  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def failed_jobs(count, tenant="acme"):
    return Job.objects.bulk_create(
        Job(handler="jobs.demo_handlers.send_invoice", retries=0, tenant_id=tenant)
        for _ in range(count)
    )


def test_a_batch_killed_mid_way_resumes_on_another_executor_with_exact_counts(
    executors,  # noqa: F811
    settings,
):
    settings.TASKYARD_BATCH_CHUNK_SIZE = 5
    operator = make_user("bob", "operator", ["acme"])
    failed_jobs(400)
    batch = batches.start(operator, "set-job-retries", Job.objects.all(), {"retries": 2})
    assert batch.total_jobs == 80

    doomed = executors(
        "--queue", "batch", "--lock-time", "2", "--poll-interval", "0.1", "--worker-id", "doomed"
    )
    wait_until(lambda: Batch.objects.get(pk=batch.id).rows_changed >= 50, "some chunks to have run")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()

    # Whatever ran, ran whole: each chunk's rows, log rows and counts landed together.
    interrupted = Batch.objects.get(pk=batch.id)
    assert interrupted.end_time is None
    changed = Job.objects.filter(retries=2).count()
    logged = JobLog.objects.filter(event="retries-set").count()
    left = sum(BatchChunk.objects.filter(batch_id=batch.id).values_list("size", flat=True))
    assert changed == logged == interrupted.rows_changed
    assert changed + left == 400 and changed % 5 == 0

    rescuer = executors(
        "--queue", "batch", "--lock-time", "30", "--poll-interval", "0.1", "--worker-id", "rescuer"
    )
    wait_until(lambda: Batch.objects.get(pk=batch.id).end_time is not None, "the batch to end")
    rescuer.send_signal(signal.SIGTERM)
    finish(rescuer)

    done = Batch.objects.get(pk=batch.id)
    assert (done.outcome, done.rows_changed, done.rows_skipped, done.rows_failed) == (
        "completed",
        400,
        0,
        0,
    )
    assert done.completed_jobs == 80
    assert Job.objects.filter(queue_name="default", retries=2).count() == 400
    # Every row changed exactly once: no chunk ran twice after the kill.
    assert JobLog.objects.filter(event="retries-set").count() == 400
    assert not Job.objects.filter(queue_name="batch").exists()


def test_exact_counts_while_workers_change_the_same_tasks(executors, settings):  # noqa: F811
    settings.TASKYARD_BATCH_CHUNK_SIZE = 20
    operator = make_user("bob", "operator", ["acme"])
    tasks = ExternalTask.objects.bulk_create(
        ExternalTask(topic_name="invoices", retries=0, tenant_id="acme") for _ in range(600)
    )
    ids = sorted(task.id for task in tasks)
    batch = batches.start(
        operator, "set-external-task-retries", ExternalTask.objects.all(), {"retries": 3}
    )
    stop = threading.Event()
    retried_by_others = []

    def meddle(offset):
        # Other connections: an operator deletes some tasks, another sets their retries.
        try:
            for position in range(offset, len(ids), 7):
                if stop.is_set():
                    return
                task_id = ids[position]
                if position % 2:
                    task_services.delete(operator, [task_id], strict=False)
                else:
                    result = task_services.set_retries(operator, [task_id], 3, strict=False)
                    retried_by_others.append(result.changed)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=meddle, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    runner = executors("--queue", "batch", "--poll-interval", "0.1")
    wait_until(lambda: Batch.objects.get(pk=batch.id).end_time is not None, "the batch to end")
    stop.set()
    for thread in threads:
        thread.join()
    runner.send_signal(signal.SIGTERM)
    finish(runner)

    done = Batch.objects.get(pk=batch.id)
    assert done.rows_changed + done.rows_skipped == done.total_rows == 600
    assert done.rows_skipped > 0  # the others got to some rows first
    # Each retries-set entry is the batch's or another operator's, never one row twice.
    logs = list(
        ExternalTaskLog.objects.filter(event="retries-set").values_list("task_id", flat=True)
    )
    assert len(logs) == len(set(logs)) == done.rows_changed + sum(retried_by_others)
    assert not ExternalTask.objects.filter(retries=0).exists()
    assert not ExternalTask.objects.exclude(retries=3).exists()


def test_workers_fetch_the_other_rows_while_a_chunk_holds_its_rows(settings):
    from django.db import transaction

    from external_tasks.services import TopicRequest

    settings.TASKYARD_BATCH_CHUNK_SIZE = 20
    operator = make_user("bob", "operator", ["acme"])
    worker = make_user("walter", "worker", ["acme"])
    ExternalTask.objects.bulk_create(
        ExternalTask(topic_name="invoices", retries=3, tenant_id="acme") for _ in range(40)
    )
    batch = batches.start(
        operator, "set-external-task-priority", ExternalTask.objects.all(), {"priority": 5}
    )
    first = BatchChunk.objects.get(batch_id=batch.id, number=1)
    holding, release = threading.Event(), threading.Event()

    def chunk_in_progress():
        try:
            with transaction.atomic():
                batch_type = batches.TYPES[batch.type]
                batch_type.apply(operator, first.ids, batch.parameters)
                holding.set()
                release.wait()
        finally:
            connections.close_all()

    thread = threading.Thread(target=chunk_in_progress)
    thread.start()
    try:
        holding.wait()
        with connections["default"].cursor() as cursor:
            # Waiting for the chunk's locks would fail the claim instead of hanging the test.
            cursor.execute("SET lock_timeout = '10s'")
        claimed = task_services.fetch_and_lock(
            worker, "w1", 40, [TopicRequest("invoices", lock_duration_ms=60_000)]
        )
    finally:
        release.set()
        thread.join()
        with connections["default"].cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")

    assert sorted(task.id for task in claimed) == sorted(
        ExternalTask.objects.exclude(id__in=first.ids).values_list("id", flat=True)
    )


def test_cancelling_waits_for_the_running_chunk_and_keeps_its_changes(settings, monkeypatch):
    from jobs import batches as engine

    settings.TASKYARD_BATCH_CHUNK_SIZE = 3
    operator = make_user("bob", "operator", ["acme"])
    failed_jobs(7)
    batch = batches.start(operator, "set-job-retries", Job.objects.all(), {"retries": 2})
    holding, release = threading.Event(), threading.Event()
    record = batches.record_chunk

    def slow_record(*args):
        holding.set()  # the chunk's rows are changed and locked, its counts not yet added
        release.wait()
        return record(*args)

    monkeypatch.setattr(batches, "record_chunk", slow_record)
    results = {}

    def run(name, call):
        try:
            results[name] = call()
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            results[name] = error
        finally:
            connections.close_all()

    chunk = threading.Thread(
        target=run, args=("chunk", lambda: engine.run_chunk.call(batch=batch.id, chunk=1))
    )
    chunk.start()
    holding.wait()
    cancel = threading.Thread(
        target=run, args=("cancel", lambda: batches.delete(operator, batch.id))
    )
    cancel.start()
    release.set()
    chunk.join()
    cancel.join()

    assert results == {"chunk": {"changed": 3, "skipped": 0}, "cancel": None}
    done = Batch.objects.get(pk=batch.id)
    assert (done.outcome, done.rows_changed, done.completed_jobs) == ("cancelled", 3, 1)
    assert Job.objects.filter(queue_name="default", retries=2).count() == 3
    assert not BatchChunk.objects.filter(batch_id=batch.id).exists()
