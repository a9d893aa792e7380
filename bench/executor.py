"""Section "executor": no-op jobs through `manage.py runjobs`, beside django-tasks-db's
`db_worker` and procrastinate's worker on the same database and machine.

Each rate counts the jobs finished between the first and the last finished one, sampled from the
remaining count, so process start-up is not counted.
"""

import importlib.util
import os
import subprocess
import sys
import time

import psycopg
from django.conf import settings
from django.db import connection

from bench.common import ROOT, conninfo, sql

DRAIN_TIMEOUT = 300  # seconds one system may take for its jobs before it counts as failed


def wait_drained(count_sql, total, timeout):
    """Poll the remaining count; the rate is measured from the first finished job to the last,
    so process start-up is not counted."""
    info = conninfo(os.environ["DATABASE_URL"])
    first = None
    deadline = time.monotonic() + timeout
    with psycopg.connect(info, autocommit=True) as conn:
        while time.monotonic() < deadline:
            remaining = conn.execute(count_sql).fetchone()[0]
            now = time.perf_counter()
            if first is None and remaining < total:
                first = (now, remaining)
            if remaining == 0:
                if first is None:
                    return None
                t0, left = first
                return left / (now - t0) if now > t0 else None
            time.sleep(0.02)
    return None


def run_processes(commands, env):
    # Output goes to a file: an unread pipe fills up and stalls a chatty worker.
    logfile = open(ROOT / "bench" / "results" / "workers.log", "ab")  # noqa: SIM115
    return [
        subprocess.Popen(c, cwd=ROOT, env=env, stdout=logfile, stderr=subprocess.STDOUT)
        for c in commands
    ]


def stop_processes(procs):
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def rounded(rate):
    return None if rate is None else round(rate, 1)


def time_runjobs(report, env, n, concurrency):
    """Taskyard: runjobs on queue "bench"; jobs written in bulk as the backend would."""
    # The product's models can only be imported once bench.database.setup_django has run.
    from jobs.models import Job

    sql("DELETE FROM jobs_job WHERE queue_name = 'bench'", fetch=False)
    Job.objects.bulk_create(
        [
            Job(
                handler="bench.tasks.noop",
                payload={"args": [], "kwargs": {}},
                queue_name="bench",
                retries=3,
            )
            for _ in range(n)
        ],
        batch_size=2000,
    )
    sql("ANALYZE jobs_job", fetch=False)
    command = [
        sys.executable,
        "manage.py",
        "runjobs",
        "--queue",
        "bench",
        "--once",
        "--concurrency",
        str(concurrency),
    ]
    procs = run_processes([command], env)
    rate = wait_drained(
        "SELECT count(*) FROM jobs_job WHERE queue_name = 'bench'", n, DRAIN_TIMEOUT
    )
    stop_processes(procs)
    report.add(
        "executor",
        f"taskyard runjobs --concurrency {concurrency}: no-op jobs/s",
        rounded(rate),
        "jobs/s",
        f"{n:,} jobs",
    )
    return rate


def time_django_tasks_db(report, env, n, concurrency):
    """django-tasks-db: its db_worker, one process per unit of concurrency."""
    # Both need Django set up: the peer's model, and a task that its decorator built from the
    # configured backends (settings.TASKS).
    from django_tasks_db.models import DBTaskResult

    from bench.tasks import noop

    DBTaskResult.objects.all().delete()
    dtdb = noop.using(backend="dtdb")
    for _ in range(n):
        dtdb.enqueue()
    table = DBTaskResult._meta.db_table
    command = [
        sys.executable,
        "manage.py",
        "db_worker",
        "--backend",
        "dtdb",
        "--queue-name",
        "bench",
        "--batch",
        "--no-startup-delay",
        "--interval",
        "0.05",
        "--no-reload",
    ]
    procs = run_processes(
        [command] * concurrency, dict(env, DJANGO_SETTINGS_MODULE="bench.settings")
    )
    rate = wait_drained(
        f"SELECT count(*) FROM {table} WHERE status IN ('READY', 'RUNNING')", n, DRAIN_TIMEOUT
    )
    stop_processes(procs)
    report.add(
        "executor",
        f"django-tasks-db db_worker x{concurrency} processes: jobs/s",
        rounded(rate),
        "jobs/s",
        f"{n:,} tasks",
    )
    return rate


def time_procrastinate(report, env, url, n, concurrency):
    """procrastinate: one worker process with `concurrency` async slots."""
    penv = dict(env, BENCH_CONNINFO=conninfo(url))
    module = [sys.executable, "-m", "bench.procrastinate_worker"]
    subprocess.run([*module, "schema"], cwd=ROOT, env=penv, check=True)
    sql("DELETE FROM procrastinate_jobs WHERE queue_name = 'bench'", fetch=False)
    subprocess.run([*module, "defer", str(n)], cwd=ROOT, env=penv, check=True)
    procs = run_processes([[*module, "work", str(concurrency)]], penv)
    rate = wait_drained(
        "SELECT count(*) FROM procrastinate_jobs WHERE queue_name = 'bench' "
        "AND status IN ('todo', 'doing')",
        n,
        DRAIN_TIMEOUT,
    )
    stop_processes(procs)
    report.add(
        "executor",
        f"procrastinate worker concurrency {concurrency}: jobs/s",
        rounded(rate),
        "jobs/s",
        f"{n:,} jobs",
    )
    return rate


def run_executor(args, report, url, state):
    n = 300 if args.quick else 2000
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    # bench.tasks is not an installed app of the product; allow its module explicitly.
    env.update(DATABASE_URL=url, LOG_LEVEL="WARNING", DEBUG="0", TASKYARD_HANDLER_MODULES="bench")
    # The peers are the optional `bench` extra; only the worker processes import procrastinate.
    have_procrastinate = importlib.util.find_spec("procrastinate") is not None
    figures = {}
    for concurrency in (1, 4):
        figures[("taskyard", concurrency)] = time_runjobs(report, env, n, concurrency)
        if getattr(settings, "HAVE_DJANGO_TASKS_DB", False):
            rate = time_django_tasks_db(report, env, n, concurrency)
            figures[("django-tasks-db", concurrency)] = rate
        else:
            report.add("executor", "django-tasks-db", None, "", "not installed (pip .[bench])")
        if have_procrastinate:
            rate = time_procrastinate(report, env, url, n, concurrency)
            figures[("procrastinate", concurrency)] = rate
        else:
            report.add("executor", "procrastinate", None, "", "not installed (pip .[bench])")
        ours = figures.get(("taskyard", concurrency))
        for peer in ("django-tasks-db", "procrastinate"):
            theirs = figures.get((peer, concurrency))
            if ours and theirs:
                report.add(
                    "executor",
                    f"taskyard / {peer} at concurrency {concurrency}",
                    round(ours / theirs, 2),
                    "x",
                )
    connection.close()
    state["executor"] = {f"{k[0]}@{k[1]}": v for k, v in figures.items()}
