"""What hiding other tenants' batch jobs costs a one-tenant user's queries (tenancy.scope).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<a copy of taskyard_seed> \\
        .venv/bin/python bench/batch_tenancy.py [--repeat 15] [--batches 20]

Writes to that database: a viewer of "acme" and `--batches` small batches over two tenants'
rows (an admin's, left running: no executor runs them). Times, alternately in the same run,
each query with the plain tenant filter (tenancy.restrict: what scope() did before) and with
scope(), and prints the medians and their ratio; then cancels the batches (their history
stays, as the job log's does) and times again: the usual case, no running batch the viewer
may not see. Never point it at taskyard_seed itself.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

import django  # noqa: E402

django.setup()

from jobs.models import Job, JobDefinition, JobLog  # noqa: E402
from project import batches, tenancy  # noqa: E402
from project.models import Batch  # noqa: E402
from tests.conftest import make_user  # noqa: E402


def user(name, role, tenants=()):
    from django.contrib.auth import get_user_model

    found = get_user_model().objects.filter(username=name).first()
    return found or make_user(name, role, tenants)


def ensure_batches(admin, count):
    running = Batch.objects.filter(end_time__isnull=True, tenant_id__isnull=True).count()
    for _ in range(max(count - running, 0)):
        rows = [
            *Job.objects.filter(tenant_id="acme").values_list("id", flat=True)[:5],
            *Job.objects.filter(tenant_id="globex").values_list("id", flat=True)[:5],
        ]
        batches.start(admin, "set-job-priority", rows, {"priority": 1}, source="command")


QUERIES = {
    "job list, first page by id": lambda qs: list(qs(Job).order_by("id")[:25]),
    "job count": lambda qs: qs(Job).count(),
    "failed job count": lambda qs: qs(Job).filter(retries=0).count(),
    "job log, first page by time": lambda qs: list(qs(JobLog).order_by("-timestamp")[:25]),
    "job definition list": lambda qs: list(qs(JobDefinition).order_by("id")),
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    viewer = user("bench-acme", "viewer", ["acme"])
    admin = user("bench-batch-admin", "admin")
    ensure_batches(admin, args.batches)
    tenants = tenancy.tenant_ids(viewer)
    ways = {
        "before": lambda model: tenancy.restrict(model.objects.all(), tenants),
        "scope()": lambda model: tenancy.scope(model.objects.all(), viewer),
    }
    running = Batch.objects.filter(end_time__isnull=True)
    table(f"{running.count()} running batches over acme and globex", ways, args.repeat)
    for batch_id in running.values_list("id", flat=True):
        batches.delete(admin, batch_id, source="command")
    ended = Batch.objects.count()
    table(f"no running batch ({ended} ended ones, their job log kept)", ways, args.repeat)


def table(title, ways, repeat):
    print(f"\n{title}; load average {os.getloadavg()[0]:.2f}")
    print(f"{'query':32} {'before ms':>10} {'scope() ms':>10} {'ratio':>6}")
    for name, query in QUERIES.items():
        times = {way: [] for way in ways}
        for i in range(repeat + 1):
            for way, qs in ways.items():
                t0 = time.perf_counter()
                query(qs)
                if i:  # the first round warms the caches
                    times[way].append((time.perf_counter() - t0) * 1000)
        before, after = (statistics.median(times[way]) for way in ways)
        print(f"{name:32} {before:10.2f} {after:10.2f} {after / before:6.2f}")


if __name__ == "__main__":
    main()
