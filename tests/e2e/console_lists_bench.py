"""Every list sort, status and search of the console, timed on a big PostgreSQL database (a
script, not a test): issue #23's "lists default / filtered / deep, search by id, business-key
prefix and word", for an admin and a tenant viewer.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<copy of the 1M + 1M seed> \\
        .venv/bin/python tests/e2e/console_lists_bench.py --runs 5 [--only sort]

Run it on a copy of the seed (`seed_demo --jobs 1000000 --external-tasks 1000000`): it adds two
users (bench-admin, bench-viewer of tenant acme) and, once, one job and one task whose message
holds a word no other row has (the rare-word search). Each page is rendered `--runs` times
through Django's test client (server time, no network); p50/p95 in ms, and any page over 300 ms
at p95 is marked.
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

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

RARE_WORD = "quokka"
TARGET_MS = 300


def timings(client, url, runs):
    """(p50, p95) ms of `runs` renderings of `url`; a redirect (the global search's id) counts
    as an answer."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code in (200, 302), (url, response.status_code)
    samples.sort()
    return statistics.median(samples), samples[round(0.95 * (len(samples) - 1))]


def accounts():
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    users = get_user_model().objects
    admin, _ = users.get_or_create(
        username="bench-admin", defaults={"is_superuser": True, "is_staff": True}
    )
    viewer, _ = users.get_or_create(username="bench-viewer")
    viewer.groups.add(Group.objects.get(name="viewer"))
    viewer.memberships.get_or_create(tenant_id="acme")
    return (("admin", admin), ("viewer acme", viewer))


def rare_rows():
    """One job and one task of tenant acme whose message alone holds RARE_WORD."""
    from external_tasks.models import ExternalTask
    from jobs.models import Job

    if not Job.objects.filter(exception_message__contains=RARE_WORD).exists():
        Job.objects.create(
            handler="jobs.demo_handlers.send_invoice",
            retries=0,
            tenant_id="acme",
            exception_message=f"The {RARE_WORD} service refused the call",
        )
    if not ExternalTask.objects.filter(error_message__contains=RARE_WORD).exists():
        ExternalTask.objects.create(
            topic_name="send-invoice",
            retries=0,
            tenant_id="acme",
            error_message=f"The {RARE_WORD} service refused the call",
        )


def pages():
    from console.resources import EXTERNAL_TASKS, JOBS
    from external_tasks.models import ExternalTask
    from jobs.models import Job

    job_id = Job.objects.order_by("-create_time").values_list("id", flat=True)[5000]
    task = ExternalTask.objects.exclude(business_key=None).order_by("create_time")[5000]
    result = []
    for resource, path, ids in (
        (JOBS, "/jobs/", {"id": job_id}),
        (EXTERNAL_TASKS, "/external-tasks/", {"id": task.pk}),
    ):
        kind = resource.plural
        result.append((f"{kind}: default", path))
        result.append((f"{kind}: deep page 2,000", path + "?page=2000"))
        for column in resource.columns:
            if column.field:
                for sign in ("", "-"):
                    result.append(
                        (f"{kind}: sort {sign}{column.key}", f"{path}?sort={sign}{column.key}")
                    )
                result.append(
                    (
                        f"{kind}: sort {column.key}, page 400",
                        f"{path}?sort={column.key}&page=400",
                    )
                )
        for status in resource.statuses:
            result.append((f"{kind}: status {status.key}", f"{path}?status={status.key}"))
        result.append((f"{kind}: search id", f"{path}?q={ids['id']}"))
        result.append((f"{kind}: search rare word", f"{path}?q={RARE_WORD}"))
        result.append((f"{kind}: search word (no match)", f"{path}?q=zebrafish"))
    result.append(("jobs: search common word", "/jobs/?q=invoice"))
    result.append(("jobs: failed + handler word", "/jobs/?status=failed&q=send_invoice"))
    result.append(("external tasks: search common word", "/external-tasks/?q=refused"))
    prefix = task.business_key[:-2]
    result.append(("external tasks: business key prefix", f"/external-tasks/?q={prefix}"))
    result.append(("global search: id", f"/search/?q={task.pk}"))
    result.append(("global search: business key prefix", f"/search/?q={prefix}"))
    result.append(("global search: rare word", f"/search/?q={RARE_WORD}"))
    result.append(("global search: common word", "/search/?q=refused"))
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", default="", help="time only the pages whose name has this")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("Run against PostgreSQL (DATABASE_URL=postgres://...)")
    rare_rows()
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {args.runs} runs per page")
    views = [(name, url) for name, url in pages() if args.only in name]
    slow = []
    for who, account in accounts():
        client = Client()
        client.force_login(account)
        print(f"\n{who}: server time in ms")
        print(f"{'page':48} {'p50':>8} {'p95':>8}")
        for name, url in views:
            p50, p95 = timings(client, url, args.runs)
            mark = "  <-- over 300" if p95 > TARGET_MS else ""
            print(f"{name:48} {p50:8.1f} {p95:8.1f}{mark}", flush=True)
            if mark:
                slow.append(f"{who}: {name} {p95:.0f} ms")
    print(f"\n{len(slow)} of {2 * len(views)} pages over {TARGET_MS} ms at p95")
    for line in slow:
        print("  " + line)


if __name__ == "__main__":
    main()
