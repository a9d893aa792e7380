"""Section "ceiling": the raw-SQL claim + complete through psycopg, one connection per thread.

The same work as the HTTP path (the claim with its "locked" log rows, one transaction per
complete with its "completed" log row) minus HTTP, Django and JSON: the ceiling the worker path
is measured against.
"""

import threading
import time
import uuid

import psycopg

from bench.common import LOG_TABLE, TASK_TABLE, conninfo, delete_topic, insert_tasks, ms, pct

CLAIM_SQL = f"""
WITH claimed AS (
    UPDATE {TASK_TABLE} SET worker_id = %(worker)s,
        lock_expiration_time = now() + interval '5 minutes'
    WHERE id IN (
        SELECT id FROM {TASK_TABLE}
        WHERE topic_name = %(topic)s AND NOT suspended AND has_retries
          AND (lock_expiration_time IS NULL OR lock_expiration_time <= now())
        ORDER BY create_time, id LIMIT %(n)s FOR UPDATE SKIP LOCKED)
    RETURNING id, topic_name, tenant_id, retries
), logged AS (
    INSERT INTO {LOG_TABLE} (task_id, event, timestamp, worker_id, retries, topic_name,
        tenant_id)
    SELECT id, 'locked', now(), %(worker)s, retries, topic_name, tenant_id FROM claimed
)
SELECT id FROM claimed
"""

COMPLETE_SQL = f"""
WITH done AS (
    DELETE FROM {TASK_TABLE}
    WHERE id = %(id)s AND worker_id = %(worker)s AND lock_expiration_time > now()
    RETURNING id, topic_name, tenant_id, retries, process_instance_id, activity_id
)
INSERT INTO {LOG_TABLE} (task_id, event, timestamp, worker_id, retries, topic_name, tenant_id,
    process_instance_id, activity_id)
SELECT id, 'completed', now(), %(worker)s, retries, topic_name, tenant_id, process_instance_id,
    activity_id FROM done
"""


def sql_worker(info, topic, max_tasks, stop_at, results, index):
    worker = f"sql-worker-{index}"
    claims, completes, delivered, lost = [], [], [], 0
    with psycopg.connect(info) as conn:
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            with conn.transaction():
                ids = [
                    r[0]
                    for r in conn.execute(
                        CLAIM_SQL, {"worker": worker, "topic": topic, "n": max_tasks}
                    )
                ]
            claims.append(time.perf_counter() - t0)
            if not ids:
                break
            for task_id in ids:
                t0 = time.perf_counter()
                with conn.transaction():
                    cur = conn.execute(COMPLETE_SQL, {"id": task_id, "worker": worker})
                    lost += cur.rowcount != 1
                completes.append(time.perf_counter() - t0)
            delivered.extend(ids)
    results[index] = (claims, completes, delivered, lost)


def run_ceiling(args, report, url, state):
    info = conninfo(url)
    seconds = 3 if args.quick else 10
    for max_tasks in (10, 1):
        topic = f"bench-sql-{uuid.uuid4().hex[:8]}"
        insert_tasks(topic, args.backlog)
        results = [None] * args.concurrency
        stop_at = time.monotonic() + seconds
        started = time.perf_counter()
        threads = [
            threading.Thread(target=sql_worker, args=(info, topic, max_tasks, stop_at, results, i))
            for i in range(args.concurrency)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        delivered = [i for r in results for i in r[2]]
        duplicates = len(delivered) - len(set(delivered))
        rate = len(delivered) / elapsed
        state[f"ceiling_{max_tasks}"] = rate
        label = f"raw SQL claim({max_tasks})+complete, {args.concurrency} conns"
        report.add(
            "ceiling",
            f"{label}: tasks/s",
            round(rate, 1),
            "tasks/s",
            f"{len(delivered):,} tasks in {elapsed:.1f}s",
        )
        claims = [c for r in results for c in r[0]]
        completes = [c for r in results for c in r[1]]
        report.add(
            "ceiling",
            f"{label}: claim p50/p95",
            f"{ms(pct(claims, 50))}/{ms(pct(claims, 95))}",
            "ms",
        )
        report.add(
            "ceiling",
            f"{label}: complete p50/p95",
            f"{ms(pct(completes, 50))}/{ms(pct(completes, 95))}",
            "ms",
        )
        report.add(
            "ceiling",
            f"{label}: duplicate deliveries",
            duplicates,
            "tasks",
            f"{sum(r[3] for r in results)} completes lost",
        )
        delete_topic(topic)
