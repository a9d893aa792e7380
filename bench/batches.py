"""Section "batch": issue #22's three speed figures, each beside its baseline in the same run.

On one seed topic of ~100k tasks (`--quick`: ~20k of one topic and tenant), with a real job
executor (`manage.py runjobs --queue batch`, a subprocess started before the batch):

(a) the answer time of `POST /engine-rest/external-task/retries-async` (an `externalTaskQuery`
    on the topic): Camunda's asynchronous set retries, which creates the batch and returns. When
    the endpoint of this checkout still does the work in the request, the figure is
    `project.batches.start()` in this process instead, and the report says so.
(b) the batch's processing rate (rows / seconds from its answer until every chunk is done) beside
    one raw set-based `UPDATE … SET retries = n WHERE topic_name = …` of the same rows on the
    same table, each after a CHECKPOINT, the raw update once before and once after the batch:
    the ratio is to their mean. All three change every row (a new value each time) and keep
    retries left, as most of a topic's rows do (HOT updates; a warm-up update first brings the
    topic's failed tasks back, so none of the three pays for those).
(c) the bench's HTTP workers (fetchAndLock 10 + complete, `--concurrency` of them) on a fresh
    topic, alone and then while a second batch on the first topic runs; the ratio of their
    throughput. The run with the batch lasts while the batch does (at most the usual 10 s).

Also the chunk jobs' run time from the job log (how long a chunk holds its row locks) and the
batch's end-to-end time including its monitor job. `--batch-chunk-sizes 500,1000,5000` repeats
(b) per chunk size through `start()` (the snapshot is cut where the batch starts).
"""

import asyncio
import os
import subprocess
import sys
import time
import uuid

from bench.bulk import pick_rows
from bench.clients import client_session, warm_up
from bench.common import ADMIN, ROOT, TASK_TABLE, delete_topic, insert_tasks, ms, pct, sql
from bench.http_workers import http_workers

BATCH_TYPE = "set-external-task-retries"
DONE_TIMEOUT = 600  # seconds a batch may take before the section gives up on it


def start_executor(url, concurrency=None):
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(DATABASE_URL=url, LOG_LEVEL="WARNING", DEBUG="0")
    command = [sys.executable, "manage.py", "runjobs", "--queue", "batch"]
    if concurrency:
        command += ["--concurrency", str(concurrency)]
    return subprocess.Popen(command, cwd=ROOT, env=env)


def stop_executor(proc):
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def raw_update(where, params, retries) -> float:
    """Seconds of one set-based UPDATE of the rows, after a CHECKPOINT (own transaction)."""
    sql("CHECKPOINT", fetch=False)
    t0 = time.perf_counter()
    sql(f"UPDATE {TASK_TABLE} SET retries = %s WHERE {where}", [retries, *params], fetch=False)
    return time.perf_counter() - t0


def batch_row(batch_id):
    from project.models import Batch

    return Batch.objects.filter(pk=batch_id).first()


def wait_done(batch_id, started_at, poll=0.05):
    """(seconds from started_at until every row is counted, seconds until end_time is set).
    A row is counted when its chunk committed: changed, skipped or failed."""
    done_at = None
    deadline = time.monotonic() + DONE_TIMEOUT
    while time.monotonic() < deadline:
        batch = batch_row(batch_id)
        if batch is None:
            raise RuntimeError(f"batch {batch_id} is gone")
        counted = batch.rows_changed + batch.rows_skipped + batch.rows_failed
        # A large batch's total is known once its seed job selected the rows.
        if done_at is None and not batch.selecting and counted >= batch.total_rows:
            done_at = time.perf_counter()
        if batch.end_time is not None:
            return (done_at or time.perf_counter()) - started_at, time.perf_counter() - started_at
        time.sleep(poll)
    raise RuntimeError(f"batch {batch_id} did not finish within {DONE_TIMEOUT} s")


def endpoint_starts_batches() -> bool:
    """Whether this checkout's POST …/retries-async creates a batch (issue #22) rather than
    doing the work in the request, as it did before: then the section does not call it, since
    a synchronous 100k-row update would change the rows before the batch it measures."""
    import inspect

    from external_tasks import api

    return "batches.start(" in inspect.getsource(api)


def start_by_api(server, query, retries):
    """(seconds, status, batch id or None) of POST …/retries-async."""

    async def go():
        async with client_session(ADMIN) as session:
            t0 = time.perf_counter()
            async with session.post(
                server.base + "/engine-rest/external-task/retries-async",
                json={"retries": retries, "externalTaskQuery": query},
            ) as response:
                body = await response.json(content_type=None)
                return time.perf_counter() - t0, response.status, body

    seconds, status, body = asyncio.run(go())
    batch_id = body.get("id") if isinstance(body, dict) else None
    return seconds, status, batch_id


def start_in_process(topic, retries, tenant=None, chunk_size=None):
    from django.contrib.auth import get_user_model
    from django.test.utils import override_settings

    from external_tasks.models import ExternalTask
    from project import batches

    user = get_user_model().objects.get(username=ADMIN)
    rows = ExternalTask.objects.filter(topic_name=topic)
    if tenant is not None:
        rows = rows.filter(tenant_id=tenant)
    size = {"TASKYARD_BATCH_CHUNK_SIZE": chunk_size} if chunk_size else {}
    with override_settings(**size):
        t0 = time.perf_counter()
        batch = batches.start(user, BATCH_TYPE, rows, {"retries": retries}, source="bench")
        return time.perf_counter() - t0, batch.id


def chunk_durations(batch_id):
    """Run times (s) of the batch's chunk jobs, from the job log's succeeded entries."""
    from jobs.models import JobLog

    batch = batch_row(batch_id)
    if batch is None or not batch.batch_job_definition_id:
        return []
    rows = JobLog.objects.filter(
        job_definition_id=batch.batch_job_definition_id,
        event=JobLog.Event.SUCCEEDED,
        duration_ms__isnull=False,
    )
    return [d / 1000 for d in rows.values_list("duration_ms", flat=True)]


def run_batch(args, report, server, state):
    from django.db import connection

    quick = args.quick
    columns = ["topic_name", "tenant_id"] if quick else ["topic_name"]
    rows, n = pick_rows(TASK_TABLE, columns, 20_000 if quick else 100_000)
    where = " AND ".join(f"{c} = %s" for c in rows)
    params = list(rows.values())
    query = {"topicName": rows["topic_name"]}
    if "tenant_id" in rows:
        query["tenantIdIn"] = [rows["tenant_id"]]
    base = 100 + int(time.time()) % 100 * 10  # new values each run: every update changes rows
    warm = raw_update(where, params, base)
    report.add(
        "batch",
        f"warm-up raw UPDATE of {n:,} tasks (failed ones brought back)",
        round(warm, 2),
        "s",
        f"topic {rows['topic_name']}",
    )
    asyncio.run(warm_up(server.base))  # each server process verifies the logins once
    executor = start_executor(args.db, getattr(args, "batch_executor_concurrency", None))
    try:
        time.sleep(3)  # the executor's start-up is not the batch's time
        raw_before = raw_update(where, params, base + 1)
        sql("CHECKPOINT", fetch=False)
        via_api = endpoint_starts_batches()
        batch = None
        if via_api:
            seconds, status, batch_id = start_by_api(server, query, base + 2)
            how = "POST /engine-rest/external-task/retries-async"
            started_at = time.perf_counter()
            batch = batch_row(batch_id) if batch_id and status == 200 else None
        if batch is None:
            seconds, batch_id = start_in_process(
                rows["topic_name"], base + 5, rows.get("tenant_id")
            )
            started_at = time.perf_counter()
            how = "project.batches.start() in-process: " + (
                f"the endpoint answered HTTP {status} without a batch"
                if via_api
                else "retries-async of this checkout is still synchronous"
            )
        elif batch.end_time is not None:
            how += " (the batch had already finished when it answered)"
        report.add(
            "batch",
            f"(a) 100k-row retries batch answered ({n:,} rows)",
            ms(seconds),
            "ms",
            f"{how}; target ≤ 300 ms",
        )
        processed, ended = wait_done(batch_id, started_at)
        raw_after = raw_update(where, params, base + 3)
        raw_rate = n / ((raw_before + raw_after) / 2)
        batch_rate = n / processed
        report.add(
            "batch",
            "(b) raw set-based UPDATE of the same rows, before / after",
            f"{raw_before:.2f}/{raw_after:.2f}",
            "s",
            f"{n / raw_before:,.0f} / {n / raw_after:,.0f} rows/s",
        )
        report.add(
            "batch",
            "(b) the batch, answer to last chunk",
            round(processed, 2),
            "s",
            f"{batch_rate:,.0f} rows/s; end_time set after {ended:.2f} s (monitor job)",
        )
        report.add(
            "batch",
            "(b) batch rate / raw UPDATE rate (mean of both)",
            round(batch_rate / raw_rate, 3),
            "",
            "target ≥ 0.70",
        )
        durations = chunk_durations(batch_id)
        if durations:
            report.add(
                "batch",
                "chunk job run time p50/p95/max (row locks held)",
                f"{ms(pct(durations, 50))}/{ms(pct(durations, 95))}/{ms(max(durations))}",
                "ms",
                f"{len(durations)} chunks",
            )
        state["batch"] = {
            "rows": n, "answer_s": seconds, "via": how, "raw_s": [raw_before, raw_after],
            "batch_s": processed, "end_s": ended, "chunks_ms": [ms(d) for d in durations],
        }  # fmt: skip

        # (c) the workers alone, then while a second batch runs on the first topic.
        seconds_alone = 3 if quick else 10
        overlap = min(seconds_alone, max(processed * 0.8, 1.0))
        alone_topic = f"bench-batch-alone-{uuid.uuid4().hex[:8]}"
        insert_tasks(alone_topic, args.backlog)
        connection.close()
        alone = asyncio.run(http_workers(server.base, alone_topic, 10, overlap, args.concurrency))
        delete_topic(alone_topic)
        busy_topic = f"bench-batch-busy-{uuid.uuid4().hex[:8]}"
        insert_tasks(busy_topic, args.backlog)
        sql("CHECKPOINT", fetch=False)
        connection.close()
        second = start_by_api(server, query, base + 4)[2] if via_api else None
        if not (second and batch_row(second) and batch_row(second).end_time is None):
            _s, second = start_in_process(rows["topic_name"], base + 6, rows.get("tenant_id"))
        busy = asyncio.run(http_workers(server.base, busy_topic, 10, overlap, args.concurrency))
        still = batch_row(second)
        counted = still.rows_changed + still.rows_skipped + still.rows_failed
        delete_topic(busy_topic)
        rate_alone = alone["completed"] / alone["elapsed"]
        rate_busy = busy["completed"] / busy["elapsed"]
        report.add(
            "batch",
            "(c) HTTP fetchAndLock(10)+complete alone / with the batch",
            f"{rate_alone:,.0f}/{rate_busy:,.0f}",
            "tasks/s",
            f"{args.concurrency} workers, {overlap:.1f} s each; the batch had done "
            f"{counted:,} of {still.total_rows:,} rows when the workers stopped",
        )
        report.add(
            "batch",
            "(c) workers' throughput with / without the batch",
            round(rate_busy / rate_alone, 3),
            "",
            "target ≥ 0.70",
        )
        wait_done(second, time.perf_counter())
        state["batch"].update(workers_alone=rate_alone, workers_busy=rate_busy)

        for size in getattr(args, "batch_chunk_sizes", None) or []:
            sql("CHECKPOINT", fetch=False)
            value = base + 10 + size % 97
            answer, tuned = start_in_process(rows["topic_name"], value, rows.get("tenant_id"), size)
            processed, _ended = wait_done(tuned, time.perf_counter())
            durations = chunk_durations(tuned)
            report.add(
                "batch",
                f"chunk size {size:,}: batch rate / raw UPDATE rate",
                round(n / processed / raw_rate, 3),
                "",
                f"{n / processed:,.0f} rows/s; chunk p95 "
                f"{ms(pct(durations, 95))} ms; start() {ms(answer)} ms",
            )
    finally:
        stop_executor(executor)
        connection.close()
