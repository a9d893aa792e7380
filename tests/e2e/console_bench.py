"""Console timings on a big PostgreSQL database (a script, not a test).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<db> \
        .venv/bin/python tests/e2e/console_bench.py --seed 1000000 --runs 20

--seed N inserts N jobs and N external tasks with generate_series (skipped when the tables
already hold that many). Then each console view is rendered `--runs` times through Django's
test client (server time, no network) and p50/p95 are printed.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

JOBS_SQL = """
INSERT INTO jobs_job (id, type, handler, payload, due_date, retries, exception_message,
    suspended, priority, process_instance_id, process_definition_key, activity_id, tenant_id,
    lock_owner, lock_expiration_time, create_time)
SELECT 'bench-job-' || i,
       CASE WHEN i %% 5 = 0 THEN 'timer' ELSE 'message' END,
       'app.handlers.h' || (i %% 20),
       '{}'::jsonb,
       CASE WHEN i %% 5 = 0 THEN now() + (i %% 1000) * interval '1 minute' END,
       CASE WHEN i %% 50 = 0 THEN 0 WHEN i %% 20 = 0 THEN 2 ELSE 3 END,
       CASE WHEN i %% 50 = 0 OR i %% 20 = 0 THEN 'failure ' || (i %% 97) || ' in step' END,
       i %% 200 = 0,
       i %% 100,
       'pi-' || (i / 3),
       'process-' || (i %% 10),
       'Activity_' || (i %% 40),
       (ARRAY['acme', 'globex', 'initech'])[1 + i %% 3],
       CASE WHEN i %% 100 = 1 THEN 'executor-' || (i %% 4) END,
       CASE WHEN i %% 100 = 1 THEN now() + interval '5 minutes' END,
       now() - (i * interval '2 seconds')
FROM generate_series(1, %s) AS i
"""

TASKS_SQL = """
INSERT INTO external_tasks_externaltask (id, topic_name, worker_id, lock_expiration_time,
    retries, error_message, priority, suspended, activity_id, process_instance_id,
    process_definition_key, tenant_id, business_key, variables, extension_properties,
    create_time)
SELECT 'bench-task-' || i,
       'topic-' || (i %% 30),
       CASE WHEN i %% 33 = 1 OR i %% 50 = 0 THEN 'worker-' || (i %% 8) END,
       CASE WHEN i %% 33 = 1 THEN now() + interval '5 minutes'
            WHEN i %% 50 = 0 THEN now() - interval '5 minutes' END,
       CASE WHEN i %% 50 = 0 THEN 0 WHEN i %% 25 = 0 THEN 2 END,
       CASE WHEN i %% 25 = 0 THEN 'address ' || (i %% 89) || ' not found' END,
       i %% 100,
       i %% 300 = 0,
       'Task_' || (i %% 40),
       'pi-' || (i / 3),
       'process-' || (i %% 10),
       (ARRAY['acme', 'globex', 'initech'])[1 + i %% 3],
       'ORDER-' || i,
       '{}'::jsonb, '{}'::jsonb,
       now() - (i * interval '2 seconds')
FROM generate_series(1, %s) AS i
"""


def seed(n):
    with connection.cursor() as cursor:
        for table, sql in (("jobs_job", JOBS_SQL), ("external_tasks_externaltask", TASKS_SQL)):
            cursor.execute(f"SELECT count(*) FROM {table} WHERE id LIKE 'bench-%%'")
            have = cursor.fetchone()[0]
            if have >= n:
                print(f"{table}: {have:,} bench rows already there")
                continue
            cursor.execute(f"DELETE FROM {table} WHERE id LIKE 'bench-%%'")
            started = time.perf_counter()
            cursor.execute(sql, [n])
            cursor.execute(f"ANALYZE {table}")
            print(f"{table}: seeded {n:,} rows in {time.perf_counter() - started:.1f} s")


def timings(client, url, runs):
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(url)
        if response.streaming:
            for _chunk in response.streaming_content:
                pass
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return statistics.median(samples), p95


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--bulk", action="store_true", help="also time console bulk set-retries on ~100k jobs"
    )
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("Run against PostgreSQL (DATABASE_URL=postgres://...)")
    call_command("migrate", verbosity=0)
    if args.seed:
        seed(args.seed)
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_superuser": True, "is_staff": True}
    )
    viewer, _ = get_user_model().objects.get_or_create(username="bench-viewer")
    from django.contrib.auth.models import Group

    viewer.groups.add(Group.objects.get(name="viewer"))
    viewer.memberships.get_or_create(tenant_id="acme")
    views = [
        ("jobs: default view", "/jobs/"),
        ("jobs: filtered (failed, one handler)", "/jobs/?status=failed&q=app.handlers.h3"),
        (
            "jobs: filtered (FilterSet + sort)",
            "/jobs/?processDefinitionKey=process-3&sort=-priority",
        ),
        ("jobs: deep page 400 (x50)", "/jobs/?page=400"),
        ("jobs: noRetriesLeft", "/jobs/?noRetriesLeft=true"),
        ("tasks: default view", "/external-tasks/"),
        ("tasks: filtered (topic, locked)", "/external-tasks/?topicName=topic-7&locked=true"),
        ("tasks: search business key", "/external-tasks/?q=ORDER-777777"),
        ("tasks: deep page 400 (x50)", "/external-tasks/?page=400"),
        ("job detail", "/jobs/bench-job-501/"),
        ("task detail", "/external-tasks/bench-task-501/"),
        ("overview", "/"),
        ("failures", "/failures/"),
        ("topics & workers", "/topics/"),
    ]
    accounts = (("admin (all tenants)", user), ("viewer (tenant acme)", viewer))
    for who, account in accounts if args.runs else ():
        client = Client()
        client.force_login(account)
        print(f"\n{who}: {args.runs} runs each, server time in ms")
        print(f"{'view':45} {'p50':>8} {'p95':>8}")
        for name, url in views:
            p50, p95 = timings(client, url, args.runs)
            print(f"{name:45} {p50:8.1f} {p95:8.1f}")
    if args.bulk:
        bulk(user)


def bulk(user):
    """Set retries through the console on every job matching one filter (about N/10 rows)."""
    from django.utils import timezone

    from jobs.models import Job

    client = Client()
    client.force_login(user)
    query = "processDefinitionKey=process-3"
    n = Job.objects.filter(process_definition_key="process-3").count()
    for retries in (5, 3):
        started = time.perf_counter()
        response = client.post(
            "/jobs/actions/",
            {
                "action": "set_retries",
                "retries": str(retries),
                "scope": "matching",
                "query": query,
                "confirmed": "1",
                "as_of": timezone.now().isoformat(),
                "expected": str(n),
            },
            follow=True,
        )
        elapsed = time.perf_counter() - started
        import re

        message = re.findall(r'<ul class="messages"[^>]*><li[^>]*>([^<]*)', response.text)
        print(f"console bulk set-retries on {n:,} jobs: {elapsed:.1f} s -> {message}")


if __name__ == "__main__":
    main()
