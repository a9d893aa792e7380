"""What the executor spends per job: successes written several per statement, no TaskResult
built and no history read when nobody receives the django.tasks signals, the claim statement
compiled once. Behaviour stays: every success is logged once, receivers still see it written."""

import logging
import threading
from datetime import UTC, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection
from django.tasks import TaskResultStatus, default_task_backend
from django.tasks.signals import task_finished
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs import backends, claims, executor
from jobs.models import Job, JobLog

SEND_INVOICE = "jobs.demo_handlers.send_invoice"
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


def runjobs(*args):
    call_command("runjobs", "--once", *args, stdout=StringIO(), stderr=StringIO())


def enqueue(count, handler=SEND_INVOICE):
    return [claims.enqueue_job(handler, {"args": [f"INV-{n}"]}) for n in range(count)]


def events(job_id):
    entries = JobLog.objects.filter(job_id=job_id).order_by("timestamp", "id")
    return list(entries.values_list("event", flat=True))


def claim(count, worker="w"):
    return claims.acquire_jobs(worker, lock_time=timedelta(minutes=5), limit=count)


@pytest.mark.django_db
def test_successes_of_several_jobs_are_one_statement_and_only_own_jobs_are_deleted():
    jobs = claim(10) if enqueue(3) else []
    taken_over = jobs[2]
    Job.objects.filter(id=taken_over.id).update(lock_owner="another-executor")
    successes = [
        (job.id, claims.success_rows(job, "w", duration_ms=1.0, return_value={"n": n}))
        for n, job in enumerate(jobs)
    ]

    with CaptureQueriesContext(connection) as queries:
        done = claims.complete_jobs("w", successes)

    assert done == {jobs[0].id, jobs[1].id}
    writes = [q for q in queries if not q["sql"].upper().startswith(TRANSACTION_CONTROL)]
    # PostgreSQL: DELETE … RETURNING and the log INSERT in one statement. SQLite: the ids still
    # ours, the DELETE, the INSERT, in one transaction.
    assert len(writes) == (1 if connection.vendor == "postgresql" else 3)
    assert not Job.objects.filter(id__in=done).exists()
    assert Job.objects.filter(id=taken_over.id, lock_owner="another-executor").exists()
    for n, job in enumerate(jobs):
        entry = JobLog.objects.get(job_id=job.id, event="succeeded")  # the late run too
        assert entry.worker == "w" and entry.return_value == {"n": n}
        assert entry.duration_ms == 1.0 and entry.handler == SEND_INVOICE


@pytest.mark.django_db
def test_no_task_result_is_built_when_no_one_receives_the_signals(monkeypatch, caplog):
    built = []
    real = backends.task_result_for

    def counting(*args, **kwargs):
        built.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(backends, "task_result_for", counting)
    # Django's own receivers only log to "django.tasks" at INFO; with that off nobody reads them.
    caplog.set_level(logging.WARNING, logger="django.tasks")
    jobs = enqueue(3)

    with CaptureQueriesContext(connection) as queries:
        runjobs()

    assert built == []
    reads = [q["sql"] for q in queries if q["sql"].upper().startswith("SELECT")]
    assert not [sql for sql in reads if "jobs_joblog" in sql]  # no history read
    for job in jobs:
        assert events(job.id) == ["created", "started", "succeeded"]

    caplog.set_level(logging.INFO, logger="django.tasks")
    again = enqueue(1)[0]
    runjobs()
    assert built.count(again.id) == 2  # started and finished, both logged by Django


@pytest.mark.django_db
def test_a_project_receiver_gets_its_signal_whatever_the_log_level(caplog):
    caplog.set_level(logging.WARNING, logger="django.tasks")
    seen = []

    def finished(sender, task_result, **kwargs):
        seen.append(task_result.status)

    job = enqueue(1)[0]
    task_finished.connect(finished)
    try:
        runjobs()
    finally:
        task_finished.disconnect(finished)
    assert seen == [TaskResultStatus.SUCCESSFUL]
    assert not Job.objects.filter(id=job.id).exists()


@pytest.mark.django_db
def test_the_claim_compares_with_the_time_of_each_claim(monkeypatch):
    now = timezone.now()
    timer = claims.enqueue_job(SEND_INVOICE, {"args": ["INV-T"]}, due_date=now + timedelta(hours=1))

    assert claim(5) == []  # compiles and keeps the claim statement
    monkeypatch.setattr(timezone, "now", lambda: now + timedelta(hours=2))
    assert [job.id for job in claim(5)] == [timer.id]


@pytest.mark.django_db
def test_the_claim_logs_expired_locks_and_the_start_of_the_first_job_it_returns():
    expired_at = timezone.now().replace(microsecond=0) - timedelta(seconds=30)
    low = claims.enqueue_job(SEND_INVOICE, {}, priority=1)
    high = claims.enqueue_job(SEND_INVOICE, {}, priority=5)
    Job.objects.filter(id=low.id).update(lock_owner="crashed:1", lock_expiration_time=expired_at)

    jobs = claims.acquire_jobs("rescuer", lock_time=timedelta(minutes=5), limit=5, start=1)

    assert [job.id for job in jobs] == [high.id, low.id]
    assert events(high.id) == ["created", "started"]
    assert events(low.id) == ["created", "lock-expired"]  # started when it starts
    entry = JobLog.objects.get(job_id=low.id, event="lock-expired")
    expiry = expired_at.astimezone(UTC).isoformat(timespec="microseconds")
    assert entry.exception_message == f"Lock of crashed:1 expired at {expiry}; claimed by rescuer"
    assert (entry.worker, entry.retries, entry.handler) == ("crashed:1", 3, SEND_INVOICE)
    assert entry.queue_name == "default"


@pytest.mark.django_db
def test_among_equal_jobs_the_one_logged_as_started_is_the_first_returned():
    enqueue(6)

    jobs = claims.acquire_jobs("w", lock_time=timedelta(minutes=5), limit=6, start=1)

    started = JobLog.objects.filter(event="started").values_list("job_id", flat=True)
    assert list(started) == [jobs[0].id]


@pytest.mark.django_db
def test_a_success_the_recorder_cannot_write_is_left_to_run_again(monkeypatch, caplog):
    job = claim(1)[0] if enqueue(1) else None
    renewer = executor.LockRenewer("w", timedelta(minutes=5))
    renewer.track(job.id)
    recorder = executor.SuccessRecorder("w", renewer)

    def failing(worker_id, successes):
        raise DatabaseError("connection lost")

    monkeypatch.setattr(claims, "complete_jobs", failing)
    outcome = claims.JobOutcome(job.id, job.handler, True, 1.0, held_lock=None)
    batch = [(job, claims.success_rows(job, "w", duration_ms=1.0), outcome)]
    # From a thread of its own, as the recorder runs: it closes its connection after an error.
    writer = threading.Thread(target=recorder.write, args=(batch,))
    writer.start()
    writer.join()

    assert job.id not in renewer.job_ids  # its lock is no longer renewed: it expires
    assert Job.objects.filter(id=job.id, lock_owner="w").exists()
    assert "cannot record 1 successful jobs; they will run again" in caplog.text


@pytest.fixture
def writes(monkeypatch):
    """(thread name, number of successes) of each claims.complete_jobs call."""
    seen = []
    real = claims.complete_jobs

    def recording(worker_id, successes):
        seen.append((threading.current_thread().name, len(successes)))
        return real(worker_id, successes)

    monkeypatch.setattr(claims, "complete_jobs", recording)
    return seen


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_runjobs_writes_successes_in_the_background_each_once(writes, caplog):
    caplog.set_level(logging.WARNING, logger="django.tasks")
    jobs = enqueue(40)

    runjobs("--prefetch", "10")

    assert not Job.objects.exists()
    for job in jobs:
        assert events(job.id) == ["created", "started", "succeeded"]
    assert sum(size for _, size in writes) == 40
    assert all(name.startswith("success-recorder") for name, _ in writes)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_djangos_task_log_lines_do_not_hold_successes_back(writes, caplog):
    caplog.set_level(logging.INFO, logger="django.tasks")
    jobs = enqueue(5)

    runjobs()

    assert writes and all(name.startswith("success-recorder") for name, _ in writes)
    finished = [r.getMessage() for r in caplog.records if "state=SUCCESSFUL" in r.getMessage()]
    assert sorted(finished) == sorted(
        f"Task id={job.id} path={SEND_INVOICE} state=SUCCESSFUL" for job in jobs
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_finished_receiver_reads_the_written_success_back():
    statuses = []

    def finished(sender, task_result, **kwargs):
        statuses.append(default_task_backend.get_result(task_result.id).status)

    enqueue(3)
    task_finished.connect(finished)
    try:
        runjobs()
    finally:
        task_finished.disconnect(finished)
    assert statuses == [TaskResultStatus.SUCCESSFUL] * 3
