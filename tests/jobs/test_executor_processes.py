"""`manage.py runjobs` as real processes: crashes, signals, lock renewal, many executors.

These run against the test database from separate processes, so they use transactional tests
(committed rows) and count the handlers' side effects in a file each run appends a line to.
"""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from jobs import claims
from jobs.models import Job, JobLog

pytestmark = pytest.mark.django_db(transaction=True)

DEADLINE = 120  # seconds; generous for a loaded machine, never reached when things work


def database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        password = f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
        host = db.get("HOST") or "127.0.0.1"
        port = db.get("PORT") or 5432
        return f"postgres://{quote(db['USER'])}{password}@{host}:{port}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


@pytest.fixture
def executors(tmp_path):
    """Start `runjobs` processes against the test database; all are stopped afterwards."""
    started = []

    def start(*args):
        output = tmp_path / f"runjobs-{len(started)}.log"
        env = {**os.environ, "DATABASE_URL": database_url(), "LOG_LEVEL": "INFO"}
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runjobs", *args],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=output.open("w"),
            stderr=subprocess.STDOUT,
        )
        process.output = output
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_until(condition, what: str):
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def finish(process, deadline=DEADLINE):
    try:
        code = process.wait(timeout=deadline)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"runjobs did not exit:\n{process.output.read_text()}") from None
    assert code == 0, process.output.read_text()


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def events(job_id):
    entries = JobLog.objects.filter(job_id=job_id).order_by("timestamp", "id")
    return list(entries.values_list("event", "worker"))


def enqueue(handler, priority=0, **kwargs):
    return claims.enqueue_job(
        f"jobs.demo_handlers.{handler}", {"kwargs": kwargs}, priority=priority
    )


def test_job_of_a_killed_executor_runs_again_after_its_lock_expires(executors, tmp_path):
    runs = tmp_path / "runs.txt"
    job = enqueue("hangs_first_time", path=str(runs))

    doomed = executors("--lock-time", "1", "--poll-interval", "0.1", "--worker-id", "doomed")
    wait_until(lambda: len(lines(runs)) == 1, "the first run to start")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()

    job.refresh_from_db()
    assert job.lock_owner == "doomed" and job.retries == 3  # nothing lost, nothing spent

    rescuer = executors(
        "--lock-time", "30", "--poll-interval", "0.1", "--max-jobs", "1", "--worker-id", "rescuer"
    )
    finish(rescuer)

    assert len(lines(runs)) == 2
    assert not Job.objects.filter(id=job.id).exists()
    assert events(job.id) == [
        ("created", None),
        ("started", "doomed"),
        ("lock-expired", "doomed"),
        ("started", "rescuer"),
        ("succeeded", "rescuer"),
    ]
    assert JobLog.objects.get(job_id=job.id, event="succeeded").return_value == 2


def test_long_job_keeps_its_lock_while_another_executor_polls(executors, tmp_path):
    runs = tmp_path / "runs.txt"
    # Runs for more than twice its lock time; renewed every third of it.
    job = enqueue("slow", seconds=4.5, path=str(runs))

    first = executors("--lock-time", "2", "--poll-interval", "0.1", "--max-jobs", "1")
    wait_until(lambda: JobLog.objects.filter(job_id=job.id, event="started").exists(), "start")
    second = executors("--lock-time", "2", "--poll-interval", "0.1")
    # On a loaded machine start-up can outlast the first job; a SIGTERM before the executor's
    # own handler is installed would simply kill it.
    wait_until(lambda: "running jobs" in second.output.read_text(), "the second executor")
    finish(first)
    second.send_signal(signal.SIGTERM)
    finish(second)

    assert lines(runs) == ["slow"]
    assert [event for event, _ in events(job.id)] == ["created", "started", "succeeded"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_shutdown_signal_finishes_the_running_job_and_starts_no_more(executors, tmp_path, signum):
    runs = tmp_path / "runs.txt"
    running = enqueue("slow", priority=10, seconds=1.5, path=str(runs))
    waiting = enqueue("send_invoice", invoice_id="INV-1")

    process = executors("--poll-interval", "0.1")
    wait_until(lambda: JobLog.objects.filter(job_id=running.id, event="started").exists(), "start")
    process.send_signal(signum)
    finish(process)

    assert lines(runs) == ["slow"]
    assert not Job.objects.filter(id=running.id).exists()
    assert [event for event, _ in events(waiting.id)] == ["created"]


def test_second_signal_interrupts_and_releases_the_running_job(executors, tmp_path):
    job = enqueue("slow", seconds=60)

    process = executors("--poll-interval", "0.1", "--worker-id", "leaving")
    wait_until(lambda: JobLog.objects.filter(job_id=job.id, event="started").exists(), "start")
    process.send_signal(signal.SIGTERM)
    wait_until(lambda: "stopping after" in process.output.read_text(), "the first signal")
    process.send_signal(signal.SIGTERM)
    finish(process)

    job.refresh_from_db()
    assert job.lock_owner is None and job.lock_expiration_time is None
    assert job.retries == 3  # released, not failed
    assert [event for event, _ in events(job.id)] == ["created", "started", "unlocked"]


def test_concurrent_executor_processes_run_every_job_once(executors, tmp_path):
    runs = tmp_path / "runs.txt"
    tokens = [f"job-{n}" for n in range(150)]
    for token in tokens:
        claims.enqueue_job("jobs.demo_handlers.record_run", [str(runs), token])

    finish(executors("--once", "--concurrency", "3"))

    assert sorted(lines(runs)) == sorted(tokens)
    assert not Job.objects.exists()
    owners = set(JobLog.objects.filter(event="succeeded").values_list("worker", flat=True))
    assert owners and all(owner.rsplit("/", 1)[-1] in {"1", "2", "3"} for owner in owners)


def test_max_jobs_is_the_total_over_all_processes(executors):
    jobs = [enqueue("send_invoice", invoice_id=f"INV-{n}") for n in range(10)]

    finish(executors("--concurrency", "3", "--max-jobs", "7", "--poll-interval", "0.1"))

    assert JobLog.objects.filter(event="succeeded").count() == 7
    assert Job.objects.filter(id__in=[job.id for job in jobs]).count() == 3


def test_pool_replaces_killed_processes_and_their_job_runs_again(executors, tmp_path):
    runs = tmp_path / "runs.txt"
    job = enqueue("hangs_first_time", path=str(runs))
    pool = executors("--concurrency", "2", "--lock-time", "1", "--poll-interval", "0.1")
    wait_until(lambda: len(lines(runs)) == 1, "the first run to start")

    children = subprocess.run(
        ["pgrep", "-P", str(pool.pid)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert len(children) == 2
    for pid in children:
        os.kill(int(pid), signal.SIGKILL)

    wait_until(lambda: not Job.objects.filter(id=job.id).exists(), "the job to run again")
    pool.send_signal(signal.SIGTERM)
    finish(pool)
    assert len(lines(runs)) == 2
    succeeded = JobLog.objects.get(job_id=job.id, event="succeeded")
    assert succeeded.worker.endswith("r1")  # a replacement process
    assert JobLog.objects.filter(job_id=job.id, event="lock-expired").count() == 1


@pytest.mark.postgres
def test_several_executors_run_each_of_thousands_of_jobs_exactly_once(executors, tmp_path):
    runs = tmp_path / "runs.txt"
    tokens = [f"job-{n}" for n in range(2000)]
    Job.objects.bulk_create(
        Job(handler="jobs.demo_handlers.record_run", payload=[str(runs), token], priority=n % 7)
        for n, token in enumerate(tokens)
    )

    processes = [executors("--once", "--concurrency", "2") for _ in range(3)]
    for process in processes:
        finish(process, deadline=600)  # a hang guard only: 2000 jobs on a busy shared machine

    assert len(lines(runs)) == 2000
    assert sorted(lines(runs)) == sorted(tokens)  # each exactly once
    assert not Job.objects.exists()
    assert JobLog.objects.filter(event="started").count() == 2000
    assert JobLog.objects.filter(event="succeeded").count() == 2000
    assert JobLog.objects.filter(event="lock-expired").count() == 0
    workers = set(JobLog.objects.values_list("worker", flat=True))
    assert len(workers) > 1  # the work really was shared


@pytest.mark.postgres
def test_idle_executor_wakes_on_a_new_job_without_waiting_for_its_poll(executors, tmp_path):
    process = executors("--poll-interval", "600", "--lock-time", str(timedelta(minutes=1).seconds))

    def listening():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN taskyard_jobs%%'"
            )
            return cursor.fetchone()[0] > 0

    wait_until(listening, "the executor to LISTEN")
    # Created the way the REST API does (a plain insert): the table's trigger sends the NOTIFY.
    job = Job.objects.create(handler="jobs.demo_handlers.send_invoice", payload=["INV-42"])
    # The poll interval is ten minutes: only the NOTIFY can have woken it.
    wait_until(lambda: not Job.objects.filter(id=job.id).exists(), "the job to run")
    assert [event for event, _ in events(job.id)] == ["started", "succeeded"]

    # An operator resetting a failed job's retries wakes it as well.
    failed = Job.objects.create(handler="jobs.demo_handlers.send_invoice", payload=[1], retries=0)
    Job.objects.filter(id=failed.id).update(retries=1)
    wait_until(lambda: not Job.objects.filter(id=failed.id).exists(), "the reset job to run")

    process.send_signal(signal.SIGTERM)
    finish(process)
