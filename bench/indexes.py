"""Section "indexes": what each index of the external-task table pays for and what it costs.

Run on the settled seed, with no server running (it holds table locks while it measures):

1. Capture. Every request the product makes of the table, as the product makes it: the bench's
   API queries and counts, the console's pages (default, each sortable column, each status,
   search, topics, failures, detail, a tenant user's page), the worker path (fetchAndLock with
   and without usePriority, failure, complete) and the long-poll re-check. Each is run once
   in-process through Django's test client inside a transaction that is rolled back, and the
   statements that touch the table are kept, with their literal parameters.
2. Baseline. Each workload (the statements of one request) replayed `repeat` times in one
   transaction (writes inside a savepoint rolled back after each run); its p95 is the client
   time of all its statements together. EXPLAIN names the indexes each plan reads.
3. Without each index: `BEGIN; DROP INDEX …;` the workloads whose plan read it timed again (and
   their new plans' indexes noted), `ROLLBACK`.
4. Bulk write cost: a copy of the table (same columns, generated column and storage options,
   primary key only) takes the operator's usual bulk action, bringing failed tasks back
   (retries 0 -> 3 for two tenants' failed tasks, ~104k of 1M, in 5,000-id statements as
   `project.bulk` and the batch chunks do). Each 0 -> n change moves the row in every index
   (it cannot be a HOT update), so this is where indexes cost. Timed with the primary key alone,
   with the primary key and each index in turn (created before, after a CHECKPOINT, rolled
   back, the copy vacuumed), and with every index of the table. A change of retries that keeps
   retries left (3 -> 5) is HOT and costs no index anything: not measured here.

Prints the table of bench/README.md ("Index audit") and writes it as Markdown beside the JSON.
`--quick`: 3 runs per workload, a 200k-row copy for the bulk part.
"""

import contextlib
import json
import re
import time
from base64 import b64encode
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from bench.api_queries import API_QUERIES, CONSOLE_PAGES, COUNT_QUERIES, Query, filled
from bench.common import ADMIN, PASSWORD, TASK_TABLE, WORKER, conninfo, log, ms, pct, sql

COPY_TABLE = "bench_index_copy"
BULK_TENANTS = ["acme", "globex"]
BULK_CHUNK = 5_000
VIEWER = "bench-viewer"  # a tenant user: the console as most operators see it
VIEWER_TENANT = "acme"
TASKS = "/engine-rest/external-task"


def extra_workloads(samples) -> list[Query]:
    """Requests beyond bench/api_queries.py: the console's other ways to read the table and the
    worker path. Their names are metrics, like the bench's."""
    console = [
        Query(f"console: tasks sorted by {key}", "GET", "/external-tasks/", {"sort": f"-{key}"})
        for key in (
            "id",
            "topic",
            "priority",
            "worker",
            "lock",
            "process",
            "business_key",
            "activity",
            "tenant",
        )
    ]
    console += [
        Query(f"console: tasks status {status}", "GET", "/external-tasks/", {"status": status})
        for status in ("failed", "suspended", "locked", "retrying", "expired", "waiting")
    ]
    console += [
        Query(
            "console: tasks search business key",
            "GET",
            "/external-tasks/",
            {"q": samples["task_business_key"] or "none"},
        ),
        Query(
            "console: tasks search execution id",
            "GET",
            "/external-tasks/",
            {"q": samples["task_exec"] or "none"},
        ),
        Query("console: global search id", "GET", "/search/", {"q": samples["task_id"] or "x"}),
        Query("console: topics & workers", "GET", "/topics/", {}),
        Query("console: failures", "GET", "/failures/", {"kind": "task"}),
        Query("console: task detail", "GET", f"/external-tasks/{samples['task_id']}/", {}),
        Query(
            "console: tasks filtered by topic, newest",
            "GET",
            "/external-tasks/",
            {"topicName": "send-invoice", "sort": "-created"},
        ),
        Query(
            "console: tasks by business key filter",
            "GET",
            "/external-tasks/",
            {"businessKey": samples["task_business_key"] or "none"},
        ),
    ]
    api = [
        Query(
            "API: all tasks by processDefinitionId",
            "GET",
            TASKS,
            {"sortBy": "processDefinitionId", "sortOrder": "asc", "maxResults": 50},
        ),
        Query(
            "API: processDefinitionId filter",
            "GET",
            TASKS,
            {"processDefinitionId": samples["task_pd"] or "none", "maxResults": 50},
        ),
        Query(
            "API: topic oldest first, deep 20,000",
            "GET",
            TASKS,
            {
                "topicName": "send-invoice",
                "sortBy": "createTime",
                "sortOrder": "asc",
                "firstResult": 20_000,
                "maxResults": 50,
            },
        ),
        Query(
            "API: businessKey filter",
            "POST",
            TASKS,
            {"maxResults": 50},
            {"businessKey": samples["task_business_key"] or "none"},
        ),
    ]
    viewer = [
        Query("viewer console: external tasks default", "GET", "/external-tasks/", {}),
        Query(
            "viewer console: failed tasks",
            "GET",
            "/external-tasks/",
            {"status": "failed"},
        ),
        Query("viewer API: task count", "GET", f"{TASKS}/count", {}),
    ]
    worker = [
        Query(
            "worker: fetchAndLock 10, oldest first",
            "POST",
            f"{TASKS}/fetchAndLock",
            {},
            {
                "workerId": "bench-index-worker",
                "maxTasks": 10,
                "topics": [{"topicName": "send-invoice", "lockDuration": 60_000}],
            },
        ),
        Query(
            "worker: fetchAndLock 10, usePriority",
            "POST",
            f"{TASKS}/fetchAndLock",
            {},
            {
                "workerId": "bench-index-worker",
                "maxTasks": 10,
                "usePriority": True,
                "topics": [{"topicName": "kyc-check", "lockDuration": 60_000}],
            },
        ),
    ]
    return console + api, viewer, worker


def capture(samples) -> list[dict]:
    """[{name, kind, statements}] for every workload: the SQL on the task table it ran."""
    from django.db import connection, transaction
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from external_tasks import notify

    def basic(user):
        return "Basic " + b64encode(f"{user}:{PASSWORD}".encode()).decode()

    from django.contrib.auth import get_user_model

    users = get_user_model().objects
    console_client, viewer_client = Client(), Client()
    console_client.force_login(users.get(username=ADMIN))
    viewer_client.force_login(users.get(username=VIEWER))
    api = Client(HTTP_AUTHORIZATION=basic(ADMIN))
    viewer_api = Client(HTTP_AUTHORIZATION=basic(VIEWER))
    worker_api = Client(HTTP_AUTHORIZATION=basic(WORKER))
    console_extra, viewer_pages, worker_requests = extra_workloads(samples)

    plan = [("api", api, q) for q in filled(API_QUERIES, samples)]
    plan += [("count", api, q) for q in COUNT_QUERIES]
    plan += [("console", console_client, q) for q in (*CONSOLE_PAGES, *console_extra)]
    plan += [
        ("viewer", viewer_api if q.path.startswith("/engine-rest") else viewer_client, q)
        for q in viewer_pages
    ]
    plan += [("worker", worker_api, q) for q in worker_requests]

    def send(client, query):
        if query.method == "GET":
            return client.get(query.path, query.params)
        path = query.path
        if query.params:
            path += "?" + "&".join(f"{k}={v}" for k, v in query.params.items())
        return client.post(path, json.dumps(query.body), content_type="application/json")

    def kept(ctx):
        return [
            q["sql"]
            for q in ctx.captured_queries
            if TASK_TABLE in q["sql"]
            and not q["sql"].startswith(("SAVEPOINT", "RELEASE", "EXPLAIN"))
        ]

    workloads = []
    for kind, client, query in plan:
        with transaction.atomic(), CaptureQueriesContext(connection) as ctx:
            response = send(client, query)
            transaction.set_rollback(True)
        if response.status_code >= 400:
            log(f"  {query.name}: HTTP {response.status_code}, left out")
            continue
        workloads.append({"name": query.name, "kind": kind, "statements": kept(ctx)})

    # The failure path: a worker's failure (retries left, then none) and complete on tasks it
    # has just locked, and the long-poll dispatcher's shared re-check.
    with transaction.atomic(), CaptureQueriesContext(connection) as ctx:
        fetched = send(worker_api, worker_requests[0]).json()
        ids = [task["id"] for task in fetched]
        for task_id, retries in zip(ids[:2], (2, 0), strict=False):
            worker_api.post(
                f"{TASKS}/{task_id}/failure",
                json.dumps(
                    {
                        "workerId": "bench-index-worker",
                        "errorMessage": "bench failure",
                        "retries": retries,
                        "retryTimeout": 1000,
                    }
                ),
                content_type="application/json",
            )
        if len(ids) > 2:
            worker_api.post(
                f"{TASKS}/{ids[2]}/complete",
                json.dumps({"workerId": "bench-index-worker"}),
                content_type="application/json",
            )
        transaction.set_rollback(True)
    workloads.append(
        {"name": "worker: fetch 10, fail 2, complete 1", "kind": "worker", "statements": kept(ctx)}
    )
    with CaptureQueriesContext(connection) as ctx:
        notify.fetchable_topics({"send-invoice", "kyc-check"}, datetime.now(UTC))
    workloads.append(
        {"name": "long-poll re-check (expired locks)", "kind": "worker", "statements": kept(ctx)}
    )
    # The /metrics backlog gauge: tasks per topic and status (bounded counts or samples).
    from external_tasks.models import STATUSES, ExternalTask
    from project import metrics

    with CaptureQueriesContext(connection) as ctx:
        metrics._count_backlog(ExternalTask, "topic_name", STATUSES.partition(datetime.now(UTC)))
    workloads.append(
        {"name": "metrics: backlog by topic and status", "kind": "metrics", "statements": kept(ctx)}
    )
    return [w for w in workloads if w["statements"]]


# --- measuring ---------------------------------------------------------------------------------


def plan_indexes(cursor, statement) -> set[str]:
    cursor.execute("EXPLAIN (FORMAT JSON) " + statement)
    found = set()

    def walk(node):
        if isinstance(node, dict):
            if "Index Name" in node:
                found.add(node["Index Name"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(cursor.fetchone()[0])
    return found


def run_workload(cursor, workload) -> float:
    t0 = time.perf_counter()
    cursor.execute("SAVEPOINT workload")
    for statement in workload["statements"]:
        cursor.execute(statement)
        if cursor.description:
            cursor.fetchall()
    cursor.execute("ROLLBACK TO SAVEPOINT workload")
    return time.perf_counter() - t0


def p95_of(cursor, workload, repeat) -> float:
    run_workload(cursor, workload)  # warm-up, not counted
    return pct([run_workload(cursor, workload) for _ in range(repeat)], 95)


def table_indexes(cursor, table) -> dict[str, str]:
    """name -> definition of every index of `table` but the primary key."""
    cursor.execute(
        "SELECT i.relname, pg_get_indexdef(x.indexrelid) FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = %s::regclass "
        "AND NOT x.indisprimary ORDER BY i.relname",
        [table],
    )
    return dict(cursor.fetchall())


def index_sizes(cursor, table) -> dict[str, int]:
    cursor.execute(
        "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index "
        "WHERE indrelid = %s::regclass",
        [table],
    )
    return dict(cursor.fetchall())


def measure_queries(conn, workloads, repeat):
    """(baseline {name: p95}, plans {name: indexes}, without {index: {name: (p95, indexes)}})."""
    with conn.cursor() as cursor:
        indexes = table_indexes(cursor, TASK_TABLE)
        baseline, plans = {}, {}
        with conn.transaction(force_rollback=True):
            for workload in workloads:
                name = workload["name"]
                plans[name] = set().union(
                    *(plan_indexes(cursor, s) for s in workload["statements"])
                )
                baseline[name] = p95_of(cursor, workload, repeat)
        without = {}
        for index in indexes:
            users = [w for w in workloads if index in plans[w["name"]]]
            without[index] = {}
            if not users:
                continue
            with conn.transaction(force_rollback=True):
                cursor.execute(f'DROP INDEX "{index}"')
                for workload in users:
                    name = workload["name"]
                    replaced = set().union(
                        *(plan_indexes(cursor, s) for s in workload["statements"])
                    )
                    without[index][name] = (p95_of(cursor, workload, repeat), replaced)
            log(f"  without {index}: {len(users)} workload(s)")
    return indexes, baseline, plans, without


def autocommit(url):
    return psycopg.connect(conninfo(url), autocommit=True, options="-c jit=off")


def make_copy(url, rows_limit, table=TASK_TABLE):
    """A copy of `table` (the task table, or the job table: bench/index_costs.py) with its
    primary key only; the ids of the bulk action's rows and the copy's row count."""
    with autocommit(url) as conn:
        options = conn.execute(
            "SELECT reloptions FROM pg_class WHERE oid = %s::regclass", [table]
        ).fetchone()[0]
        columns = [
            r[0]
            for r in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                "AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
                [table],
            )
        ]
        names = ", ".join(f'"{c}"' for c in columns)
        storage = f" WITH ({', '.join(options)})" if options else ""
        limit = f" LIMIT {int(rows_limit)}" if rows_limit else ""
        conn.execute(f"DROP TABLE IF EXISTS {COPY_TABLE}")
        conn.execute(
            f"CREATE TABLE {COPY_TABLE} (LIKE {table} INCLUDING DEFAULTS "
            f"INCLUDING GENERATED){storage}"
        )
        conn.execute(f"INSERT INTO {COPY_TABLE} ({names}) SELECT {names} FROM {table}{limit}")
        conn.execute(f"ALTER TABLE {COPY_TABLE} ADD PRIMARY KEY (id)")
        conn.execute(f"VACUUM ANALYZE {COPY_TABLE}")
        ids = [
            r[0]
            for r in conn.execute(
                f"SELECT id FROM {COPY_TABLE} WHERE retries = 0 AND tenant_id = ANY(%s) "
                "ORDER BY id",
                [BULK_TENANTS],
            )
        ]
        total = conn.execute(f"SELECT count(*) FROM {COPY_TABLE}").fetchone()[0]
    return ids, total


def on_copy(definition: str, name: str) -> str:
    """An index definition of the task table, renamed, on the copy."""
    text = re.sub(r" ON \S+ USING ", f" ON {COPY_TABLE} USING ", definition, count=1)
    return text.replace(f"INDEX {name} ON", f"INDEX {name}_copy ON", 1)


def bulk_retry(url, ids) -> tuple[float, int]:
    """(seconds, WAL bytes) of bringing `ids` back (retries 0 -> 3) on the copy, rolled back,
    after a CHECKPOINT (each first touch of a page after one writes its full image)."""
    with autocommit(url) as conn:
        conn.execute("CHECKPOINT")
        start = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
        t0 = time.perf_counter()
        with conn.transaction(force_rollback=True):
            for i in range(0, len(ids), BULK_CHUNK):
                conn.execute(
                    f"UPDATE {COPY_TABLE} SET retries = 3 WHERE id = ANY(%s)",
                    [ids[i : i + BULK_CHUNK]],
                )
        seconds = time.perf_counter() - t0
        wal = conn.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s)", [start]
        ).fetchone()[0]
        conn.execute(f"VACUUM {COPY_TABLE}")  # the aborted row versions, before the next run
    return seconds, int(wal)


def measure_bulk(url, indexes, rows_limit):
    ids, total = make_copy(url, rows_limit)
    log(f"  copy of {total:,} tasks; bulk retry of {len(ids):,} failed tasks")
    results = {"rows": len(ids), "table_rows": total}
    results["primary key only"] = bulk_retry(url, ids)
    for name, definition in indexes.items():
        with autocommit(url) as conn:
            conn.execute(on_copy(definition, name))
            conn.execute(f"ANALYZE {COPY_TABLE}")
        results[name] = bulk_retry(url, ids)
        with autocommit(url) as conn:
            conn.execute(f"DROP INDEX {name}_copy")
        log(f"  bulk with {name}: {results[name][0]:.2f} s")
    with autocommit(url) as conn:
        for name, definition in indexes.items():
            conn.execute(on_copy(definition, name))
        conn.execute(f"ANALYZE {COPY_TABLE}")
    results["all indexes"] = bulk_retry(url, ids)
    with autocommit(url) as conn:
        conn.execute(f"DROP TABLE {COPY_TABLE}")
    return results


# --- the section -------------------------------------------------------------------------------


def setup_viewer():
    from django.core.management import call_command

    call_command(
        "create_user",
        VIEWER,
        role="viewer",
        tenant=[VIEWER_TENANT],
        password=PASSWORD,
        verbosity=0,
    )


def markdown(indexes, sizes, baseline, plans, without, bulk) -> str:
    base_s, base_wal = bulk["primary key only"]
    lines = [
        f"Bulk write: {bulk['rows']:,} failed tasks brought back (retries 0 -> 3) on a copy of "
        f"{bulk['table_rows']:,} tasks; primary key only {base_s:.2f} s "
        f"({base_wal / 2**20:,.0f} MB WAL), every index {bulk['all indexes'][0]:.2f} s "
        f"({bulk['all indexes'][1] / 2**20:,.0f} MB WAL).",
        "",
        "| index | size | query it serves: p95 with → without it (ms) | bulk write +s (+MB WAL) |",
        "|---|---|---|---|",
    ]
    for index in indexes:
        served = []
        for name, (p95, replaced) in sorted(without[index].items()):
            instead = ", ".join(sorted(replaced)) or "no index"
            served.append(f"{name}: {ms(baseline[name])} → {ms(p95)} ({instead})")
        seconds, wal = bulk.get(index, (None, None))
        cost = (
            f"+{seconds - base_s:.2f} (+{(wal - base_wal) / 2**20:,.0f})"
            if seconds is not None
            else "-"
        )
        lines.append(
            f"| `{index}` | {sizes.get(index, 0) / 2**20:.0f} MB | "
            f"{'; '.join(served) or 'no measured query reads it'} | {cost} |"
        )
    return "\n".join(lines)


def run_indexes(args, report, url, state):
    from django.db import connection

    from bench.queries import sample_values

    setup_viewer()
    samples = sample_values()
    samples["task_business_key"] = (
        sql(f"SELECT business_key FROM {TASK_TABLE} WHERE business_key IS NOT NULL LIMIT 1")
        or [[None]]
    )[0][0]
    repeat = 3 if args.quick else 10
    log("  capturing the product's statements on the task table")
    workloads = capture(samples)
    connection.close()
    log(f"  {len(workloads)} workloads, {sum(len(w['statements']) for w in workloads)} statements")
    with autocommit(url) as conn:
        indexes, baseline, plans, without = measure_queries(conn, workloads, repeat)
        with conn.cursor() as cursor:
            sizes = index_sizes(cursor, TASK_TABLE)
    bulk = measure_bulk(url, indexes, 200_000 if args.quick else None)

    base_s, base_wal = bulk["primary key only"]
    report.add(
        "indexes",
        f"bulk retry of {bulk['rows']:,} failed tasks, primary key only",
        round(base_s, 2),
        "s",
        f"{base_wal / 2**20:,.0f} MB WAL; a copy of {bulk['table_rows']:,} tasks",
    )
    all_s, all_wal = bulk["all indexes"]
    report.add(
        "indexes",
        f"the same with all {len(indexes)} indexes and the primary key",
        round(all_s, 2),
        "s",
        f"{all_wal / 2**20:,.0f} MB WAL",
    )
    for index in indexes:
        seconds, wal = bulk[index]
        worst = [
            f"{name} {ms(baseline[name])}→{ms(p95)}"
            for name, (p95, _r) in sorted(
                without[index].items(), key=lambda item: -(item[1][0] / baseline[item[0]])
            )
        ][:3]
        report.add(
            "indexes",
            f"{index}: + bulk seconds; p95 ms with→without",
            round(seconds - base_s, 2),
            "s",
            "; ".join(worst) or "no measured query reads it",
        )
    text = markdown(indexes, sizes, baseline, plans, without, bulk)
    print(text, flush=True)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "indexes-latest.md").write_text(text + "\n")
    state["indexes"] = {
        "workloads": {w["name"]: w["statements"] for w in workloads},
        "baseline_ms": {k: ms(v) for k, v in baseline.items()},
        "plans": {k: sorted(v) for k, v in plans.items()},
        "without_ms": {
            index: {k: [ms(p), sorted(r)] for k, (p, r) in served.items()}
            for index, served in without.items()
        },
        "bulk": {k: list(v) if isinstance(v, tuple) else v for k, v in bulk.items()},
        "sizes": sizes,
    }
    with contextlib.suppress(Exception):
        connection.close()
