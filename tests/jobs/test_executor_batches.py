"""The executor claims jobs in batches: statements per job, exclusive claims, prefetched jobs
logged as started only when they start, and given back unstarted on shutdown or when stale."""

import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from jobs import claims, executor
from jobs.models import Job, JobLog

SEND_INVOICE = "jobs.demo_handlers.send_invoice"  # a django.tasks task: signals are sent
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


def runjobs(*args):
    out = StringIO()
    call_command("runjobs", "--once", *args, stdout=out, stderr=out)
    return out.getvalue()


def enqueue(count, handler=SEND_INVOICE, **fields):
    return [claims.enqueue_job(handler, {"args": [f"INV-{n}"]}, **fields) for n in range(count)]


def events(job):
    entries = JobLog.objects.filter(job_id=job.id).order_by("timestamp", "id")
    return list(entries.values_list("event", flat=True))


def statements(queries) -> list[str]:
    return [q["sql"] for q in queries if not q["sql"].upper().startswith(TRANSACTION_CONTROL)]


@pytest.mark.django_db
def test_a_batch_of_jobs_costs_about_one_statement_per_job():
    jobs = enqueue(20)

    with CaptureQueriesContext(connection) as queries:
        runjobs("--prefetch", "10")

    assert not Job.objects.filter(id__in=[job.id for job in jobs]).exists()
    # Per batch: the claim, its log entries, one read of the batch's history; per job: the
    # outcome (DELETE + log INSERT: one statement on PostgreSQL, two on SQLite). It was 8 per
    # job with one claim, two commits and two log read-backs per job.
    per_job = 1 if connection.vendor == "postgresql" else 2
    assert len(statements(queries)) <= 12 + per_job * len(jobs)
    commits = [q for q in queries if q["sql"].upper().startswith("COMMIT")]
    assert len(commits) <= 3 + (0 if connection.vendor == "postgresql" else len(jobs))


@pytest.mark.django_db
def test_jobs_of_a_batch_log_started_once_each_when_they_start():
    jobs = enqueue(5)

    runjobs("--prefetch", "5")

    for job in jobs:
        assert events(job) == ["created", "started", "succeeded"]
    started = list(JobLog.objects.filter(event="started").order_by("timestamp", "id"))
    succeeded = list(JobLog.objects.filter(event="succeeded").order_by("timestamp", "id"))
    # Each job starts after the previous one succeeded, not when the batch was claimed.
    for previous, following in zip(succeeded, started[1:], strict=False):
        assert following.timestamp >= previous.timestamp


@pytest.mark.django_db
def test_a_failure_in_a_batch_is_recorded_as_before_and_the_next_job_still_runs():
    first = claims.enqueue_job(SEND_INVOICE, {"args": ["INV-1"]}, priority=3)
    failing = claims.enqueue_job(
        "jobs.demo_handlers.always_fails", {"args": ["paper jam"]}, priority=2
    )
    last = claims.enqueue_job(SEND_INVOICE, {"args": ["INV-3"]}, priority=1)

    runjobs("--prefetch", "3")

    failing.refresh_from_db()
    assert failing.retries == 2 and failing.exception_message == "paper jam"
    assert failing.lock_owner is None and failing.due_date is not None
    assert events(failing) == ["created", "started", "failed"]
    assert events(first) == events(last) == ["created", "started", "succeeded"]


@pytest.mark.django_db
def test_shutdown_gives_back_claimed_jobs_it_has_not_started():
    stopper = claims.enqueue_job("tests.jobs.handlers.stop_executor", {}, priority=10)
    waiting = enqueue(3)

    options = executor.ExecutorOptions(prefetch=10, once=True, worker_id="leaving")
    ran = executor.Executor(options).run()

    assert ran == 1
    assert not Job.objects.filter(id=stopper.id).exists()
    for job in waiting:
        job.refresh_from_db()
        assert job.lock_owner is None and job.lock_expiration_time is None
        assert job.retries == 3
        assert events(job) == ["created"]  # claimed ahead of time, never started: no trace
    runjobs()
    assert not Job.objects.filter(id__in=[job.id for job in waiting]).exists()


@pytest.mark.django_db
def test_jobs_held_past_the_prefetch_window_are_given_back_and_claimed_again(monkeypatch):
    monkeypatch.setattr(executor, "PREFETCH_WINDOW", 0)
    jobs = enqueue(4)
    claimed_per_call = []
    acquire = claims.acquire_jobs

    def counting_acquire(*args, **kwargs):
        claimed = acquire(*args, **kwargs)
        claimed_per_call.append(len(claimed))
        return claimed

    monkeypatch.setattr(claims, "acquire_jobs", counting_acquire)

    runjobs("--prefetch", "4")

    assert not Job.objects.filter(id__in=[job.id for job in jobs]).exists()
    for job in jobs:
        assert events(job) == ["created", "started", "succeeded"]
    # The first batch went stale after its first job; then one job per claim.
    assert claimed_per_call == [4, 1, 1, 1, 0]


@pytest.mark.django_db
def test_max_jobs_never_claims_more_than_it_will_run(monkeypatch):
    jobs = enqueue(5)
    limits = []
    acquire = claims.acquire_jobs

    def recording_acquire(*args, **kwargs):
        limits.append(kwargs["limit"])
        return acquire(*args, **kwargs)

    monkeypatch.setattr(claims, "acquire_jobs", recording_acquire)

    runjobs("--prefetch", "10", "--max-jobs", "2")

    assert limits == [2]
    assert Job.objects.filter(id__in=[job.id for job in jobs]).count() == 3
    assert not Job.objects.filter(lock_owner__isnull=False).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_batch_claims_never_hand_a_job_to_two_executors():
    Job.objects.bulk_create(Job(handler=SEND_INVOICE, payload=["INV"]) for _ in range(600))
    claimed: dict[str, list[str]] = {}
    errors = []

    def executor_thread(name):
        try:
            mine = claimed.setdefault(name, [])
            while batch := claims.acquire_jobs(name, lock_time=timedelta(minutes=5), limit=10):
                mine.extend(job.id for job in batch)
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=executor_thread, args=(f"x{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors
    every = [job_id for ids in claimed.values() for job_id in ids]
    assert len(every) == len(set(every)) == 600
    assert sum(1 for ids in claimed.values() if ids) > 1  # they really competed
    assert JobLog.objects.filter(event="started").count() == 600
