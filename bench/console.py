"""Section "console": every console page of issue #23 at the seed's 1M jobs + 1M tasks, timed
over HTTP against the bench's server for an admin and a tenant viewer.

Each page: one warm-up request, then `--console-runs` timed ones (default 10, 3 with
`--quick`) one after another on one keep-alive connection (so every run reaches the same
server process and its per-process cache); client time on the same machine ≈ server time.
A page is OK when its p95 is at most TARGET_MS, else MISS.

The overview, failures, topics and queues pages read their tenant scope's snapshot from the
database (console.snapshots), which a periodic job refreshes: their "first view" is the plain
URL, the same row whichever server process or user of the scope asks. While the section runs,
a thread here refreshes the snapshots every SNAPSHOT_INTERVAL seconds, as `runjobs` on the
console queue would (its database work competes with the pages, as it would in production);
each refresh's seconds are reported. "recount (?fresh)" is what a page costs without a
snapshot (none yet, or no executor serves the console queue): reported, not held to the target.

The tenant viewer is `bench-viewer` (bench/database.py), member of VIEWER_TENANT only, the
seed's largest tenant (40 % of the rows). The rows the pages open (a job, a task, a business
key, a batch) are read from that tenant, so both accounts time the same rows. The batch is
one the section creates once: a set-retries batch over 2,000 of that tenant's tasks, suspended
at once so no executor ever applies it.
"""

import asyncio
import os
import threading
import time

from bench.clients import console_login, console_session
from bench.common import ADMIN, TASK_TABLE, VIEWER, VIEWER_TENANT, log, ms, pct, sql

TARGET_MS = 300
JOB_TABLE = "jobs_job"
BATCH_SOURCE = "bench-console"
BATCH_ROWS = 2_000
# The substring fallback of search: a word of the seed's error messages, not an identifier.
WORD = "gateway"
DEEP_PAGE = {"page": "2000", "size": "50"}  # 100,000 rows deep, the console's last page
# A page counted in the request (no snapshot): what it costs, not a view the target applies to.
RECOUNT = "recount (?fresh)"


def samples() -> dict:
    """Rows of VIEWER_TENANT the pages open; the handler and topic of the filtered lists."""
    tenant = [VIEWER_TENANT]
    one = lambda statement: (sql(statement, tenant) or [[None]])[0][0]  # noqa: E731
    return {
        "job": one(
            f"SELECT id FROM {JOB_TABLE} WHERE tenant_id = %s AND retries = 0 "
            "ORDER BY create_time DESC LIMIT 1 OFFSET 100"
        ),
        "task": one(
            f"SELECT id FROM {TASK_TABLE} WHERE tenant_id = %s AND retries = 0 "
            "ORDER BY create_time DESC LIMIT 1 OFFSET 100"
        ),
        # The business key's prefix, one digit short of the whole key (e.g. SEN-2026-12345).
        "business_key": one(
            f"SELECT left(business_key, length(business_key) - 1) FROM {TASK_TABLE} "
            "WHERE tenant_id = %s AND business_key IS NOT NULL ORDER BY create_time DESC "
            "LIMIT 1 OFFSET 500"
        ),
        "handler": one(
            f"SELECT handler FROM {JOB_TABLE} WHERE tenant_id = %s AND retries = 0 LIMIT 1"
        ),
        "topic": one(
            f"SELECT topic_name FROM {TASK_TABLE} WHERE tenant_id = %s AND retries = 0 LIMIT 1"
        ),
    }


def bench_batch() -> str:
    """The id of the section's batch: created once (suspended, never applied), then reused."""
    from django.contrib.auth import get_user_model

    from project import batches
    from project.models import Batch

    existing = Batch.objects.filter(source=BATCH_SOURCE).order_by("-start_time").first()
    if existing is not None:
        return existing.id
    admin = get_user_model().objects.get(username=ADMIN)
    ids = [
        row[0]
        for row in sql(
            f"SELECT id FROM {TASK_TABLE} WHERE tenant_id = %s ORDER BY id LIMIT %s",
            [VIEWER_TENANT, BATCH_ROWS],
        )
    ]
    batch = batches.start(
        admin, "set-external-task-retries", ids, {"retries": 3}, source=BATCH_SOURCE
    )
    batches.set_suspended(admin, batch.id, True, source=BATCH_SOURCE)
    return batch.id


def sort_pages(label: str, path: str, resource) -> list:
    """One list page per sortable column, in the column's first direction."""
    pages = []
    for column in resource.columns:
        if column.field:
            key = ("-" if column.first == "desc" else "") + column.key
            pages.append((f"{label} sort {key}", path, {"sort": key}))
    return pages


def pages(sample: dict, batch_id: str) -> list:
    """(name, path, params) of every page timed, in the order of issue #23's list."""
    from console.resources import EXTERNAL_TASKS, JOBS

    fresh = {"fresh": "1"}
    return [
        ("overview first view (snapshot)", "/", {}),
        (f"overview {RECOUNT}", "/", fresh),
        ("jobs default", "/jobs/", {}),
        (
            "jobs filtered (failed + handler)",
            "/jobs/",
            {"status": "failed", "handler": sample["handler"]},
        ),
        ("jobs deep page 2,000", "/jobs/", DEEP_PAGE),
        *sort_pages("jobs", "/jobs/", JOBS),
        ("jobs search id", "/jobs/", {"q": sample["job"]}),
        ("jobs search word", "/jobs/", {"q": WORD}),
        ("tasks default", "/external-tasks/", {}),
        (
            "tasks filtered (failed + topic)",
            "/external-tasks/",
            {"status": "failed", "topicName": sample["topic"]},
        ),
        ("tasks deep page 2,000", "/external-tasks/", DEEP_PAGE),
        *sort_pages("tasks", "/external-tasks/", EXTERNAL_TASKS),
        ("tasks search id", "/external-tasks/", {"q": sample["task"]}),
        ("tasks search business-key prefix", "/external-tasks/", {"q": sample["business_key"]}),
        ("tasks search word", "/external-tasks/", {"q": WORD}),
        ("global search id (redirect)", "/search/", {"q": sample["task"]}),
        ("global search word", "/search/", {"q": WORD}),
        ("failures first view (snapshot)", "/failures/", {}),
        (f"failures {RECOUNT}", "/failures/", fresh),
        ("topics & workers first view (snapshot)", "/topics/", {}),
        (f"topics & workers {RECOUNT}", "/topics/", fresh),
        ("queues & executors first view (snapshot)", "/queues/", {}),
        (f"queues & executors {RECOUNT}", "/queues/", fresh),
        ("audit", "/audit/", {}),
        ("job detail", f"/jobs/{sample['job']}/", {}),
        ("task detail", f"/external-tasks/{sample['task']}/", {}),
        ("batches", "/batches/", {}),
        ("batch detail", f"/batches/{batch_id}/", {}),
    ]


async def time_page(session, url, params, runs):
    """(seconds of each timed run, the last HTTP status); redirects are answers, not followed."""
    durations, status = [], None
    for i in range(runs + 1):
        t0 = time.perf_counter()
        async with session.get(url, params=params, allow_redirects=False) as response:
            await response.read()
            status = response.status
        if i:  # the warm-up is not counted
            durations.append(time.perf_counter() - t0)
        if status >= 400:
            break
    return durations, status


def run_console(args, report, server, state):
    runs = args.console_runs or (3 if args.quick else 10)
    sample = samples()
    missing = [key for key, value in sample.items() if value is None]
    if missing:
        raise RuntimeError(f"no {', '.join(missing)} of tenant {VIEWER_TENANT} in the database")
    batch_id = bench_batch()
    listed = pages(sample, batch_id)
    refresher = Refresher()
    refresher.start()

    async def one_user(username):
        results = []
        async with console_session() as session:
            await console_login(session, server.base, username)
            for name, path, params in listed:
                durations, status = await time_page(session, server.base + path, params, runs)
                results.append((name, durations, status))
        return results

    table = {}
    timed = []
    try:
        for who, username in (("admin", ADMIN), ("viewer", VIEWER)):
            log(f"console pages as {who} ({username}), {runs} runs each")
            timed.append((who, asyncio.run(one_user(username))))
    finally:
        refresher.stop()
    refreshes = refresher.seconds
    report.add(
        "console",
        f"snapshot refresh, every scope and page, p50/max ({len(refreshes)} runs)",
        f"{pct(refreshes, 50):.1f}/{max(refreshes):.1f}" if refreshes else None,
        "s",
    )
    for who, results in timed:
        for name, durations, status in results:
            row = table.setdefault(name, {})
            if status not in (200, 302) or not durations:
                row[who] = {"status": status}
                report.add("console", f"{who}: {name}", None, "ms", f"HTTP {status}")
                continue
            p50, p95 = ms(pct(durations, 50)), ms(pct(durations, 95))
            verdict = "ok" if p95 <= TARGET_MS else "MISS"
            if RECOUNT in name:
                verdict = "recount"
            row[who] = {"p50": p50, "p95": p95, "verdict": verdict}
            report.add("console", f"{who}: {name} p50/p95", f"{p50}/{p95}", "ms", verdict)
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    views = {name: row for name, row in table.items() if RECOUNT not in name}
    misses = sum(1 for row in views.values() for r in row.values() if r.get("verdict") != "ok")
    report.add(
        "console", f"pages over {TARGET_MS} ms p95 (or failing), of {2 * len(views)}", misses
    )
    state["console"] = {
        "runs": runs,
        "load_after": load,
        "pages": table,
        "snapshot_refresh_seconds": refreshes,
    }
    lines = [
        f"| page | admin p50 / p95 (ms) | viewer ({VIEWER_TENANT}) p50 / p95 (ms) |",
        "|---|---|---|",
    ]
    for name, row in table.items():
        cells = []
        for who in ("admin", "viewer"):
            r = row.get(who, {})
            if "p95" in r:
                mark = {"ok": "", "recount": " (recount)"}.get(r["verdict"], " **MISS**")
                cells.append(f"{r['p50']:.0f} / {r['p95']:.0f}{mark}")
            else:
                cells.append(f"HTTP {r.get('status')}")
        lines.append(f"| {name} | {' | '.join(cells)} |")
    refreshed = ", ".join(f"{x:.1f}" for x in refreshes)
    log(
        "console pages (markdown):\n"
        + "\n".join(lines)
        + f"\n\nsnapshot refreshes (s): {refreshed}\nload average after: {load}"
    )


class Refresher:
    """What `runjobs` on the console queue does, in a thread: refresh every snapshot (every
    scope, every page) at once, then every SNAPSHOT_INTERVAL seconds; `seconds` of each run."""

    def __init__(self):
        self.seconds: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self):
        self._refresh()  # the pages' first view finds the snapshots there
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join()

    def _refresh(self):
        from console import snapshots

        t0 = time.perf_counter()
        snapshots.refresh_all()
        self.seconds.append(time.perf_counter() - t0)

    def _loop(self):
        from django.db import connection

        from console import snapshots

        try:
            while not self._stop.wait(snapshots.interval()):
                self._refresh()
        finally:
            connection.close()
