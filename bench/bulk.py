"""Section "bulk": set retries on ~100k rows at once, through the API (external tasks by
topic, jobs by activity, failed tasks brought back) and through the console's confirmed
"all matching" action.

`PUT /external-task/retries` is synchronous: its time is the work's. `POST /job/retries` and the
console's "all matching" action start a batch (issue #22) and answer at once: for those the
section reports the answer and, separately, the batch from that answer to its end, run by a
`runjobs --queue batch` it starts for the section (each batch waited for before the next
request, so neither waits behind the other)."""

import asyncio
import re
import time
from urllib.parse import urlencode

from bench.clients import client_session, console_login, console_session
from bench.common import ADMIN, TASK_TABLE, ms, sql


def pick_rows(table, columns, target, exclude=None):
    """The group of rows (equal values in `columns`) whose size is nearest `target`."""
    names = ", ".join(columns)
    not_null = " AND ".join(f"{c} IS NOT NULL" for c in columns)
    where, params = not_null + f" AND {columns[0]} NOT LIKE 'bench-%%'", []
    if exclude is not None:
        where += f" AND {columns[0]} <> %s"
        params.append(exclude)
    rows = sql(
        f"SELECT {names}, count(*) FROM {table} WHERE {where} GROUP BY {names} "
        f"ORDER BY abs(count(*) - %s) LIMIT 1",
        [*params, target],
    )
    if not rows:
        return None, 0
    return dict(zip(columns, rows[0][:-1], strict=True)), rows[0][-1]


def task_query(values):
    query = {"topicName": values["topic_name"]}
    if "tenant_id" in values:
        query["tenantIdIn"] = [values["tenant_id"]]
    return query


def changed_rows(table, values, retries):
    where = " AND ".join(f"{c} = %s" for c in values)
    return sql(
        f"SELECT count(*) FROM {table} WHERE {where} AND retries = %s",
        [*values.values(), retries],
    )[0][0]


def batch_id_of(body=None, location=None):
    """The batch an answer started: a BatchDto's id, or the /batches/<id>/ it redirects to."""
    if isinstance(body, dict) and isinstance(body.get("id"), str):
        return body["id"]
    match = re.search(r"/batches/([^/]+)/", location or "")
    return match.group(1) if match else None


async def batch_to_end(batch_id, answered_at):
    """Seconds from the answer until the batch's last chunk committed (None: no batch)."""
    from bench.batches import wait_done

    if batch_id is None:
        return None
    processed, _ended = await asyncio.to_thread(wait_done, batch_id, answered_at)
    return processed


def run_bulk(args, report, server, state):
    from bench.batches import start_executor, stop_executor

    executor = start_executor(args.db)
    try:
        time.sleep(3)  # the executor's start-up is not a batch's time
        _run_bulk(args, report, server, state)
    finally:
        stop_executor(executor)


def _run_bulk(args, report, server, state):
    # ~100k rows per action (--quick: ~10k, one tenant of a topic).
    target = 10_000 if args.quick else 100_000
    task_columns = ["topic_name", "tenant_id"] if args.quick else ["topic_name"]
    job_columns = ["activity_id", "tenant_id"] if args.quick else ["activity_id"]
    api_rows, n_api = pick_rows(TASK_TABLE, task_columns, target)
    # A different topic for the console path, so both change rows.
    console_rows, n_console = pick_rows(
        TASK_TABLE, task_columns, target, exclude=api_rows["topic_name"]
    )
    job_rows, n_jobs = pick_rows("jobs_job", job_columns, target)
    job_query = {"activityId": job_rows["activity_id"]}
    if "tenant_id" in job_rows:
        job_query["tenantIdIn"] = [job_rows["tenant_id"]]
    console_query = {
        k: v[0] if isinstance(v, list) else v for k, v in task_query(console_rows).items()
    }
    retries = 7 if int(time.time()) % 2 else 6  # a real change on every run
    # The operator's usual bulk action: bring failed tasks back. Each is 0 -> n, so unlike most
    # of a topic's rows it cannot be a HOT update. Two tenants' failures (--quick: one), run
    # last: those among the rows changed above are no longer failed by then.
    tenants = ["initech"] if args.quick else ["acme", "globex"]
    failed_query = {"noRetriesLeft": True, "tenantIdIn": tenants}
    failed_where, failed_params = "retries = 0 AND tenant_id = ANY(%s)", [tenants]
    for rows in (api_rows, console_rows):  # changed before, so no longer failed then
        failed_where += " AND NOT (" + " AND ".join(f"{c} = %s" for c in rows) + ")"
        failed_params += list(rows.values())
    n_failed = sql(f"SELECT count(*) FROM {TASK_TABLE} WHERE {failed_where}", failed_params)[0][0]

    async def go():
        out = {}
        async with client_session(ADMIN) as session:
            t0 = time.perf_counter()
            async with session.put(
                server.base + "/engine-rest/external-task/retries",
                json={"retries": retries, "externalTaskQuery": task_query(api_rows)},
            ) as response:
                await response.read()
                out["api_tasks"] = (time.perf_counter() - t0, response.status)
            t0 = time.perf_counter()
            async with session.post(
                server.base + "/engine-rest/job/retries",
                json={"retries": retries, "jobQuery": job_query},
            ) as response:
                body = await response.json(content_type=None)
                answered = time.perf_counter()
                out["api_jobs"] = (answered - t0, response.status)
            out["api_jobs_batch"] = await batch_to_end(batch_id_of(body), answered)
        async with console_session() as session:
            try:
                token = await console_login(session, server.base)
            except Exception as error:
                out["console_error"] = str(error)
                return out
            form = {
                "csrfmiddlewaretoken": token,
                "action": "set_retries",
                "scope": "matching",
                "query": urlencode(console_query),
                "retries": str(retries),
            }
            headers = {"Referer": server.base + "/external-tasks/"}
            t0 = time.perf_counter()
            async with session.post(
                server.base + "/external-tasks/actions/",
                data=form,
                headers=headers,
                allow_redirects=False,
            ) as response:
                await response.read()
                out["console_confirm"] = (time.perf_counter() - t0, response.status)
            t0 = time.perf_counter()
            async with session.post(
                server.base + "/external-tasks/actions/",
                data={**form, "confirmed": "1", "expected": str(n_console)},
                headers=headers,
                allow_redirects=False,
            ) as response:
                await response.read()
                answered = time.perf_counter()
                out["console_run"] = (answered - t0, response.status)
                location = response.headers.get("Location") or response.headers.get("HX-Redirect")
            out["console_batch"] = await batch_to_end(batch_id_of(location=location), answered)
        # Last: the topics above keep their figures whatever their failed tasks were.
        async with client_session(ADMIN) as session:
            t0 = time.perf_counter()
            async with session.put(
                server.base + "/engine-rest/external-task/retries",
                json={"retries": 3, "externalTaskQuery": failed_query},
            ) as response:
                await response.read()
                out["api_failed"] = (time.perf_counter() - t0, response.status)
        return out

    out = asyncio.run(go())
    changed_api = changed_rows(TASK_TABLE, api_rows, retries)
    changed_console = changed_rows(TASK_TABLE, console_rows, retries)
    seconds, status = out["api_tasks"]
    report.add(
        "bulk",
        f"API PUT external-task/retries on {n_api:,} tasks",
        round(seconds, 2),
        "s",
        f"HTTP {status}; {changed_api:,} rows now have retries={retries}",
    )
    seconds, status = out["api_jobs"]
    if status < 300:
        changed = changed_rows("jobs_job", job_rows, retries)
        batch_seconds = out.get("api_jobs_batch")
        report.add(
            "bulk",
            f"API POST job/retries on {n_jobs:,} jobs: answered",
            ms(seconds),
            "ms",
            f"HTTP {status}; "
            + ("starts a batch" if batch_seconds is not None else "no batch in the answer"),
        )
        if batch_seconds is not None:
            report.add(
                "bulk",
                f"API POST job/retries on {n_jobs:,} jobs: its batch, answer to last chunk",
                round(batch_seconds, 2),
                "s",
                f"{n_jobs / batch_seconds:,.0f} rows/s; {changed:,} rows now have "
                f"retries={retries}",
            )
    else:
        report.add("bulk", "API POST job/retries", None, "s", f"HTTP {status}: not measured")
    if "api_failed" in out:
        seconds, status = out["api_failed"]
        report.add(
            "bulk",
            f"API PUT external-task/retries on {n_failed:,} failed tasks "
            "(noRetriesLeft+tenantIdIn)",
            round(seconds, 2),
            "s",
            f"HTTP {status}; none HOT (0 -> 3 moves every index entry)",
        )
    if "console_error" in out:
        report.add("bulk", "console set retries", None, "s", out["console_error"])
    else:
        seconds, status = out["console_confirm"]
        report.add(
            "bulk",
            f"console confirm (exact count of {n_console:,})",
            round(seconds, 2),
            "s",
            f"HTTP {status}",
        )
        seconds, status = out["console_run"]
        batch_seconds = out.get("console_batch")
        report.add(
            "bulk",
            f"console set retries on {n_console:,} tasks (matching filter)"
            + (": answered (starts a batch)" if batch_seconds is not None else ""),
            round(seconds, 2),
            "s",
            f"HTTP {status}; {changed_console:,} rows now have retries={retries}",
        )
        if batch_seconds is not None:
            report.add(
                "bulk",
                f"console set retries on {n_console:,} tasks: its batch, answer to last chunk",
                round(batch_seconds, 2),
                "s",
                f"{n_console / batch_seconds:,.0f} rows/s",
            )
