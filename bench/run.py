"""Taskyard benchmark: `make bench` or `.venv/bin/python bench/run.py [--quick] [--only ...]`.

Runs against a PostgreSQL copy of the 1M-job / 1M-task seed (created from `--template` when the
bench database does not exist), starts the ASGI server as a subprocess on a free port, prints a
table and writes JSON to bench/results/. Figures are reported, never asserted. See
bench/README.md for what each section measures and the latest figures.
"""

import argparse
import asyncio
import base64
import collections
import contextlib
import json
import math
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECTIONS = ["ceiling", "http", "executor", "queries", "bulk", "longpoll", "memory"]
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/taskyard_bench"
TASK_TABLE = "external_tasks_externaltask"
LOG_TABLE = "external_tasks_externaltasklog"
PASSWORD = "bench-password-not-secret"
ADMIN = "bench-admin"
WORKER = "bench-worker"


# ---------------------------------------------------------------------------------------------
# Small helpers


def pct(values, q):
    """The q-th percentile (0-100) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def ms(seconds):
    return None if seconds is None else round(seconds * 1000, 2)


def latency(values):
    return {"n": len(values), "p50_ms": ms(pct(values, 50)), "p95_ms": ms(pct(values, 95))}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log(text):
    print(f"[{datetime.now(UTC):%H:%M:%S}] {text}", flush=True)


class Report:
    """Rows for the printed table plus the raw figures for the JSON file."""

    def __init__(self):
        self.rows = []  # (section, metric, value, unit, note)
        self.data = collections.defaultdict(dict)
        self.skipped = {}

    def add(self, section, metric, value, unit="", note=""):
        self.rows.append((section, metric, value, unit, note))
        self.data[section][metric] = {"value": value, "unit": unit, "note": note}

    def skip(self, section, why):
        self.skipped[section] = why
        self.rows.append((section, "(skipped)", None, "", why))

    def print(self):
        widths = [10, 58, 12, 8]
        header = ("section", "metric", "value", "unit", "note")
        line = "  ".join(h.ljust(w) for h, w in zip(header, widths + [0], strict=False))
        print()
        print(line)
        print("-" * 120)
        for section, metric, value, unit, note in self.rows:
            if isinstance(value, float):
                text = f"{value:,.1f}" if abs(value) >= 10 else f"{value:,.3g}"
            elif isinstance(value, int):
                text = f"{value:,}"
            else:
                text = "-" if value is None else str(value)
            print(
                f"{section:<10}  {metric[:58]:<58}  {text:>12}  {unit:<8}  {note}".rstrip(),
                flush=True,
            )


# ---------------------------------------------------------------------------------------------
# Database and Django


def conninfo(url: str) -> str:
    from psycopg.conninfo import make_conninfo

    parts = urlsplit(url)
    return make_conninfo(
        host=parts.hostname or "127.0.0.1",
        port=str(parts.port or 5432),
        user=parts.username or "postgres",
        password=parts.password or None,
        dbname=parts.path.lstrip("/"),
    )


def prepare_database(url: str, template: str, fresh: bool):
    """Create the bench database from the seeded template when missing (or --fresh)."""
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(conninfo(admin_url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and fresh:
            log(f"dropping {name} (--fresh)")
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if not exists:
            has_template = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [template]
            ).fetchone()
            if has_template:
                log(f"creating {name} from template {template} (a file copy, about a minute)")
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
                # A copy starts without activity counts, so autovacuum would not analyze it for
                # a long time; without planner statistics claims picked 80 ms bitmap plans.
                log(f"analyzing {name}")
                with psycopg.connect(conninfo(url), autocommit=True) as copy:
                    copy.execute("ANALYZE")
                return False
            log(f"creating empty {name}; it will be seeded with 1M jobs and 1M tasks")
            conn.execute(f'CREATE DATABASE "{name}"')
            return True
    return False


def setup_django(url: str, seed_needed: bool):
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if seed_needed:
        call_command("seed_demo", jobs=1_000_000, external_tasks=1_000_000, seed=7, quiet=True)
    call_command("create_user", ADMIN, role="admin", password=PASSWORD, verbosity=0)
    call_command("create_user", WORKER, role="worker", password=PASSWORD, verbosity=0)


def sql(statement, params=None, fetch=True):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params or [])
        if fetch and cursor.description:
            return cursor.fetchall()
    return None


def insert_tasks(topic: str, n: int, tenant=None):
    """n fetchable tasks on `topic`, created in one INSERT … SELECT (a producer's backlog)."""
    sql(
        f"""
        INSERT INTO {TASK_TABLE} (id, topic_name, priority, suspended, variables,
            extension_properties, create_time, tenant_id, activity_id, process_definition_key)
        SELECT gen_random_uuid()::text, %s, 0, false, '{{}}'::jsonb, '{{}}'::jsonb,
            now() - (%s - g) * interval '1 millisecond', %s, 'bench', 'bench'
        FROM generate_series(1, %s) g
        """,
        [topic, n, tenant, n],
        fetch=False,
    )
    sql(f"ANALYZE {TASK_TABLE}", fetch=False)


def delete_topic(topic: str):
    sql(f"DELETE FROM {TASK_TABLE} WHERE topic_name = %s", [topic], fetch=False)


# ---------------------------------------------------------------------------------------------
# The server under test


class Server:
    """`manage.py serve` (uvicorn, project.asgi) on a free port, with RSS/CPU sampling through
    psutil."""

    def __init__(self, url: str, workers: int, conn_max_age: int):
        self.url = url
        self.workers = workers
        self.conn_max_age = conn_max_age
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.peak_rss = 0
        self._sampling = False

    def __enter__(self):
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        env.update(
            DATABASE_URL=self.url,
            DEBUG="0",
            CONN_MAX_AGE=str(self.conn_max_age),
            LOG_LEVEL="WARNING",
        )
        command = [
            sys.executable,
            "manage.py",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]
        self.proc = subprocess.Popen(command, cwd=ROOT, env=env)
        deadline = time.monotonic() + 60
        import urllib.error
        import urllib.request

        while True:
            try:
                urllib.request.urlopen(self.base + "/engine-rest/version", timeout=2)
                break
            except urllib.error.HTTPError:
                break  # 401: it answers
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.2)
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def processes(self):
        import psutil

        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss(self) -> int:
        total = 0
        for p in self.processes():
            with contextlib.suppress(Exception):
                total += p.memory_info().rss
        return total

    def cpu_seconds(self) -> float:
        """CPU seconds so far of all the server's processes, its supervisor included."""
        total = 0.0
        for p in self.processes():
            with contextlib.suppress(Exception):
                times = p.cpu_times()
                total += times.user + times.system
        return total

    def cpu_by_process(self) -> dict[int, float]:
        """CPU seconds (user + system) so far of each process that serves requests: the
        workers of `serve --workers N` (not their supervisor or multiprocessing's resource
        tracker), or the one process."""
        used = {}
        for p in self.processes():
            with contextlib.suppress(Exception):
                if self.workers > 1 and "--multiprocessing-fork" not in p.cmdline():
                    continue
                times = p.cpu_times()
                used[p.pid] = times.user + times.system
        return used

    def db_connections(self) -> int:
        """TCP connections from the server's processes to PostgreSQL."""
        port = urlsplit(self.url).port or 5432
        n = 0
        for p in self.processes():
            with contextlib.suppress(Exception):
                n += sum(
                    1
                    for c in p.net_connections(kind="tcp")
                    if c.raddr and c.raddr.port == port and c.status == "ESTABLISHED"
                )
        return n

    @contextlib.contextmanager
    def sampling(self, interval=0.1):
        """Track the peak RSS while the block runs, and the CPU seconds each server process
        spent in it (`cpu_split`, largest first: how evenly the connections were spread);
        yields a dict filled with the result."""
        result = {"peak_rss": 0, "start_rss": self.rss()}
        cpu_before = self.cpu_by_process()
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                result["peak_rss"] = max(result["peak_rss"], self.rss())
                stop.wait(interval)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            yield result
        finally:
            stop.set()
            thread.join()
            result["peak_rss"] = max(result["peak_rss"], self.rss())
            self.peak_rss = max(self.peak_rss, result["peak_rss"])
            used = {pid: t - cpu_before.get(pid, 0.0) for pid, t in self.cpu_by_process().items()}
            result["cpu_split"] = sorted((round(t, 1) for t in used.values()), reverse=True)


def basic(user=WORKER) -> dict:
    token = base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def client_session(user=WORKER, limit=100):
    """An HTTP client sending Basic credentials on every request, as Camunda clients do."""
    import aiohttp

    return aiohttp.ClientSession(
        headers=basic(user),
        connector=aiohttp.TCPConnector(limit=limit),
        timeout=aiohttp.ClientTimeout(total=None),
    )


# ---------------------------------------------------------------------------------------------
# 1. Raw-SQL ceiling: claim + complete through psycopg, 8 connections

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
    import psycopg

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


# ---------------------------------------------------------------------------------------------
# 2. HTTP workers: fetchAndLock + complete, 8 concurrent Camunda-protocol workers


async def http_worker(session, base, topic, max_tasks, stop_at, stats, index):
    worker = f"http-worker-{index}"
    fetch_url = base + "/engine-rest/external-task/fetchAndLock"
    body = {
        "workerId": worker,
        "maxTasks": max_tasks,
        "topics": [{"topicName": topic, "lockDuration": 300_000}],
    }
    while time.monotonic() < stop_at:
        t0 = time.perf_counter()
        async with session.post(fetch_url, json=body) as response:
            tasks = await response.json() if response.status == 200 else None
            if response.status != 200:
                stats["errors"][f"fetchAndLock {response.status}"] += 1
                await asyncio.sleep(0.05)
                continue
        stats["fetch"].append(time.perf_counter() - t0)
        if not tasks:
            break  # backlog drained
        for task in tasks:
            stats["delivered"].append(task["id"])
            t0 = time.perf_counter()
            async with session.post(
                f"{base}/engine-rest/external-task/{task['id']}/complete",
                json={"workerId": worker},
            ) as response:
                await response.read()
                if response.status != 204:
                    stats["errors"][f"complete {response.status}"] += 1
                else:
                    stats["completed"] += 1
            stats["complete"].append(time.perf_counter() - t0)


async def http_workers(base, topic, max_tasks, seconds, concurrency):
    stats = {
        "fetch": [],
        "complete": [],
        "delivered": [],
        "completed": 0,
        "errors": collections.Counter(),
    }
    async with client_session() as session:
        stop_at = time.monotonic() + seconds
        started = time.perf_counter()
        await asyncio.gather(
            *(
                http_worker(session, base, topic, max_tasks, stop_at, stats, i)
                for i in range(concurrency)
            )
        )
        stats["elapsed"] = time.perf_counter() - started
    return stats


async def trivial_view(base, seconds, concurrency):
    durations, errors = [], collections.Counter()

    async def one(session, stop_at):
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            async with session.get(base + "/engine-rest/version") as response:
                await response.read()
                if response.status != 200:
                    errors[response.status] += 1
            durations.append(time.perf_counter() - t0)

    # An operator account: worker accounts may only use the worker endpoints.
    async with client_session(ADMIN) as session:
        stop_at = time.monotonic() + seconds
        started = time.perf_counter()
        await asyncio.gather(*(one(session, stop_at) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return durations, elapsed, errors


async def warm_up(base, connections: int = 16):
    """Verify each account's Basic credentials in every server process (PBKDF2, then cached by
    the process), so the timed runs measure the steady state a long-running worker sees. The
    processes share one listening socket and a connection goes to whichever accepts it: many
    concurrent new connections reach them all (one warmed process left the other to verify
    the credentials during the timed run: 2 s for the first fetches)."""
    body = {
        "workerId": "warm-up",
        "maxTasks": 1,
        "topics": [{"topicName": "bench-warm-up", "lockDuration": 1000}],
    }

    async def one():
        url = base + "/engine-rest/version"
        async with client_session(ADMIN) as session, session.get(url) as response:
            await response.read()
        url = base + "/engine-rest/external-task/fetchAndLock"
        async with client_session(WORKER) as session, session.post(url, json=body) as response:
            await response.read()

    for _ in range(2):
        await asyncio.gather(*(one() for _ in range(connections)))


def trivial_view_wrk(base, seconds, concurrency) -> float | None:
    """The trivial view's requests/s with wrk (a C client, when installed): the aiohttp client
    in this process costs about as much CPU per request as the server, on the same cores."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    (header,) = (f"{k}: {v}" for k, v in basic(ADMIN).items())
    command = [wrk, "-t1", f"-c{concurrency}", f"-d{seconds}s", "-H", header]
    output = subprocess.run(
        [*command, base + "/engine-rest/version"], capture_output=True, text=True, check=True
    ).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", output)
    return float(found.group(1)) if found and "Non-2xx" not in output else None


def run_http(args, report, server, state):
    seconds = 3 if args.quick else 10
    asyncio.run(warm_up(server.base))
    durations, elapsed, errors = asyncio.run(trivial_view(server.base, seconds, args.concurrency))
    trivial_rate = len(durations) / elapsed
    state["trivial"] = trivial_rate
    report.add(
        "http",
        f"GET /engine-rest/version (Basic), {args.concurrency} clients",
        round(trivial_rate, 1),
        "req/s",
        f"p50 {ms(pct(durations, 50))} ms, p95 {ms(pct(durations, 95))} ms"
        + (f", errors {dict(errors)}" if errors else ""),
    )
    wrk_rate = trivial_view_wrk(server.base, seconds, args.concurrency)
    if wrk_rate is not None:
        report.add(
            "http",
            f"GET /engine-rest/version (Basic), {args.concurrency} connections of wrk",
            round(wrk_rate, 1),
            "req/s",
            "a C client: what the server answers when the client costs little CPU",
        )
    for max_tasks in (10, 1):
        topic = f"bench-http-{uuid.uuid4().hex[:8]}"
        insert_tasks(topic, args.backlog)
        with server.sampling() as memory:
            stats = asyncio.run(
                http_workers(server.base, topic, max_tasks, seconds, args.concurrency)
            )
        rate = stats["completed"] / stats["elapsed"]
        duplicates = len(stats["delivered"]) - len(set(stats["delivered"]))
        label = f"HTTP fetchAndLock(maxTasks {max_tasks})+complete, {args.concurrency} workers"
        ceiling = state.get(f"ceiling_{max_tasks}") or state.get("ceiling_10")
        note = f"{stats['completed']:,} tasks in {stats['elapsed']:.1f}s"
        if ceiling:
            note += f"; {rate / ceiling:.1%} of the raw-SQL ceiling"
        if len(memory.get("cpu_split", ())) > 1:
            split = " / ".join(f"{t:g}" for t in memory["cpu_split"])
            note += f"; server processes' CPU {split} s"
        report.add("http", f"{label}: tasks/s", round(rate, 1), "tasks/s", note)
        requests = len(stats["fetch"]) + len(stats["complete"])
        report.add(
            "http",
            f"{label}: requests/s",
            round(requests / stats["elapsed"], 1),
            "req/s",
            f"{requests / stats['elapsed'] / trivial_rate:.0%} of the trivial view's req/s",
        )
        report.add(
            "http",
            f"{label}: fetchAndLock p50/p95",
            f"{ms(pct(stats['fetch'], 50))}/{ms(pct(stats['fetch'], 95))}",
            "ms",
        )
        report.add(
            "http",
            f"{label}: complete p50/p95",
            f"{ms(pct(stats['complete'], 50))}/{ms(pct(stats['complete'], 95))}",
            "ms",
        )
        report.add(
            "http",
            f"{label}: duplicate deliveries",
            duplicates,
            "tasks",
            f"errors: {dict(stats['errors']) or 'none'}",
        )
        report.add(
            "memory",
            f"server peak RSS during HTTP workers (maxTasks {max_tasks})",
            round(memory["peak_rss"] / 2**20, 1),
            "MiB",
            f"{args.server_workers} server process(es)",
        )
        delete_topic(topic)


# ---------------------------------------------------------------------------------------------
# 3. Job executors: runjobs beside django-tasks-db and procrastinate


def wait_drained(count_sql, total, timeout):
    """Poll the remaining count; the rate is measured from the first finished job to the last,
    so process start-up is not counted."""
    import psycopg

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


def run_executor(args, report, url, state):
    from django.db import connection

    from jobs.models import Job

    n = 300 if args.quick else 2000
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    # bench.tasks is not an installed app of the product; allow its module explicitly.
    env.update(DATABASE_URL=url, LOG_LEVEL="WARNING", DEBUG="0", TASKYARD_HANDLER_MODULES="bench")
    python = sys.executable
    figures = {}
    for concurrency in (1, 4):
        # Taskyard: runjobs on queue "bench"; jobs written in bulk as the backend would.
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
        procs = run_processes(
            [
                [
                    python,
                    "manage.py",
                    "runjobs",
                    "--queue",
                    "bench",
                    "--once",
                    "--concurrency",
                    str(concurrency),
                ]
            ],
            env,
        )
        rate = wait_drained("SELECT count(*) FROM jobs_job WHERE queue_name = 'bench'", n, 300)
        stop_processes(procs)
        figures[("taskyard", concurrency)] = rate
        report.add(
            "executor",
            f"taskyard runjobs --concurrency {concurrency}: no-op jobs/s",
            None if rate is None else round(rate, 1),
            "jobs/s",
            f"{n:,} jobs",
        )

        # django-tasks-db: its db_worker, one process per unit of concurrency.
        from django.conf import settings

        if getattr(settings, "HAVE_DJANGO_TASKS_DB", False):
            from django_tasks_db.models import DBTaskResult

            from bench.tasks import noop

            DBTaskResult.objects.all().delete()
            dtdb = noop.using(backend="dtdb")
            for _ in range(n):
                dtdb.enqueue()
            table = DBTaskResult._meta.db_table
            denv = dict(env, DJANGO_SETTINGS_MODULE="bench.settings")
            procs = run_processes(
                [
                    [
                        python,
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
                    for _ in range(concurrency)
                ],
                denv,
            )
            rate = wait_drained(
                f"SELECT count(*) FROM {table} WHERE status IN ('READY', 'RUNNING')", n, 300
            )
            stop_processes(procs)
            figures[("django-tasks-db", concurrency)] = rate
            report.add(
                "executor",
                f"django-tasks-db db_worker x{concurrency} processes: jobs/s",
                None if rate is None else round(rate, 1),
                "jobs/s",
                f"{n:,} tasks",
            )
        else:
            report.add("executor", "django-tasks-db", None, "", "not installed (pip .[bench])")

        # procrastinate: one worker process with `concurrency` async slots.
        try:
            import procrastinate  # noqa: F401
        except ImportError:
            report.add("executor", "procrastinate", None, "", "not installed (pip .[bench])")
        else:
            penv = dict(env, BENCH_CONNINFO=conninfo(url))
            module = [python, "-m", "bench.procrastinate_worker"]
            subprocess.run([*module, "schema"], cwd=ROOT, env=penv, check=True)
            sql("DELETE FROM procrastinate_jobs WHERE queue_name = 'bench'", fetch=False)
            subprocess.run([*module, "defer", str(n)], cwd=ROOT, env=penv, check=True)
            procs = run_processes([[*module, "work", str(concurrency)]], penv)
            rate = wait_drained(
                "SELECT count(*) FROM procrastinate_jobs WHERE queue_name = 'bench' "
                "AND status IN ('todo', 'doing')",
                n,
                300,
            )
            stop_processes(procs)
            figures[("procrastinate", concurrency)] = rate
            report.add(
                "executor",
                f"procrastinate worker concurrency {concurrency}: jobs/s",
                None if rate is None else round(rate, 1),
                "jobs/s",
                f"{n:,} jobs",
            )
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


# ---------------------------------------------------------------------------------------------
# 4. Queries at scale (server time measured by a client on the same machine)


def sample_values():
    """Real values from the seeded rows, so each filter matches something."""
    one = lambda q: (sql(q) or [[None]])[0][0]  # noqa: E731
    t = TASK_TABLE
    return {
        "task_id": one(f"SELECT id FROM {t} ORDER BY create_time DESC LIMIT 1 OFFSET 777"),
        "task_pi": one(
            f"SELECT process_instance_id FROM {t} WHERE process_instance_id IS NOT "
            "NULL LIMIT 1 OFFSET 4242"
        ),
        "task_exec": one(
            f"SELECT execution_id FROM {t} WHERE execution_id IS NOT NULL LIMIT 1 OFFSET 999"
        ),
        "task_pd": one(
            f"SELECT process_definition_id FROM {t} WHERE process_definition_id IS NOT NULL LIMIT 1"
        ),
        "task_worker": one(
            f"SELECT worker_id FROM {t} WHERE worker_id IS NOT NULL "
            "AND worker_id NOT LIKE 'sql-worker%%' AND worker_id NOT LIKE "
            "'http-worker%%' LIMIT 1"
        ),
        "task_activity": one(f"SELECT activity_id FROM {t} WHERE activity_id <> 'bench' LIMIT 1"),
        "job_id": one("SELECT id FROM jobs_job ORDER BY create_time DESC LIMIT 1 OFFSET 555"),
        "job_def": one(
            "SELECT job_definition_id FROM jobs_job WHERE job_definition_id IS NOT NULL LIMIT 1"
        ),
        "job_pi": one(
            "SELECT process_instance_id FROM jobs_job WHERE process_instance_id IS "
            "NOT NULL LIMIT 1 OFFSET 31337"
        ),
        "job_exec": one(
            "SELECT execution_id FROM jobs_job WHERE execution_id IS NOT NULL LIMIT 1 OFFSET 1234"
        ),
        "job_pd": one(
            "SELECT process_definition_id FROM jobs_job WHERE process_definition_id "
            "IS NOT NULL LIMIT 1"
        ),
        "job_activity": one(
            "SELECT activity_id FROM jobs_job WHERE activity_id IS NOT NULL LIMIT 1"
        ),
        "job_exception": one(
            "SELECT exception_message FROM jobs_job WHERE exception_message IS NOT NULL LIMIT 1"
        ),
    }


def camunda_date(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def api_queries(v):
    """(name, method, path, query params, body): 20 queries covering every parameter of the
    two query seeds (external tasks and jobs) at least once, with sorts and deep pages."""
    now = datetime.now(UTC)
    et, job = "/engine-rest/external-task", "/engine-rest/job"
    page = {"maxResults": 50}

    def deep(n):
        return {"firstResult": n, "maxResults": 50}

    def sort(*pairs):
        return [{"sortBy": k, "sortOrder": o} for k, o in pairs]

    return [
        (
            "task: topic, newest first",
            "GET",
            et,
            {"topicName": "send-invoice", "sortBy": "createTime", "sortOrder": "desc", **page},
            None,
        ),
        (
            "task: topic+notLocked+withRetriesLeft by priority, deep 50,000",
            "GET",
            et,
            {
                "topicName": "kyc-check",
                "notLocked": "true",
                "withRetriesLeft": "true",
                "sortBy": "taskPriority",
                "sortOrder": "desc",
                **deep(50_000),
            },
            None,
        ),
        (
            "task: workerId+locked, by lock expiration",
            "POST",
            et,
            page,
            {
                "workerId": v["task_worker"],
                "locked": True,
                "sorting": sort(("lockExpirationTime", "desc")),
            },
        ),
        (
            "task: noRetriesLeft, newest first",
            "POST",
            et,
            page,
            {"noRetriesLeft": True, "sorting": sort(("createTime", "desc"))},
        ),
        (
            "task: lockExpirationAfter/Before window",
            "POST",
            et,
            page,
            {
                "lockExpirationAfter": camunda_date(now - timedelta(days=1)),
                "lockExpirationBefore": camunda_date(now + timedelta(days=1)),
                "sorting": sort(("lockExpirationTime", "asc")),
            },
        ),
        (
            "task: activityId+processDefinitionId by id",
            "GET",
            et,
            {
                "activityId": v["task_activity"],
                "processDefinitionId": v["task_pd"],
                "sortBy": "id",
                "sortOrder": "asc",
                **page,
            },
            None,
        ),
        (
            "task: activityIdIn+tenantIdIn by key,tenant, deep 100,000",
            "POST",
            et,
            deep(100_000),
            {
                "activityIdIn": [v["task_activity"], "ship_parcel", "kyc_check"],
                "tenantIdIn": ["acme", "globex"],
                "sorting": sort(("processDefinitionKey", "asc"), ("tenantId", "desc")),
            },
        ),
        (
            "task: externalTaskId+processInstanceId+executionId",
            "POST",
            et,
            page,
            {
                "externalTaskId": v["task_id"],
                "processInstanceId": v["task_pi"],
                "executionId": v["task_exec"],
            },
        ),
        (
            "task: suspended+priority range by priority",
            "POST",
            et,
            page,
            {
                "suspended": True,
                "priorityHigherThanOrEquals": 10,
                "priorityLowerThanOrEquals": 80,
                "sorting": sort(("taskPriority", "desc")),
            },
        ),
        (
            "task: active by process instance, deep 200,000",
            "GET",
            et,
            {"active": "true", "sortBy": "processInstanceId", "sortOrder": "asc", **deep(200_000)},
            None,
        ),
        (
            "job: processDefinitionKey by due date",
            "GET",
            job,
            {"processDefinitionKey": "invoice", "sortBy": "jobDueDate", "sortOrder": "asc", **page},
            None,
        ),
        (
            "job: executable by priority, deep 100,000",
            "POST",
            job,
            deep(100_000),
            {"executable": True, "sorting": sort(("jobPriority", "desc"))},
        ),
        (
            "job: withException+noRetriesLeft, newest failures",
            "POST",
            job,
            page,
            {
                "withException": True,
                "noRetriesLeft": True,
                "sorting": sort(("jobRetries", "asc"), ("jobId", "asc")),
            },
        ),
        ("job: exceptionMessage", "POST", job, page, {"exceptionMessage": v["job_exception"]}),
        (
            "job: timers+dueDates window by due date",
            "POST",
            job,
            page,
            {
                "timers": True,
                "dueDates": [
                    {"operator": "gt", "value": camunda_date(now - timedelta(days=7))},
                    {"operator": "lt", "value": camunda_date(now + timedelta(days=7))},
                ],
                "sorting": sort(("jobDueDate", "desc")),
            },
        ),
        (
            "job: messages+withRetriesLeft+active by id, deep 50,000",
            "GET",
            job,
            {
                "messages": "true",
                "withRetriesLeft": "true",
                "active": "true",
                "sortBy": "jobId",
                "sortOrder": "asc",
                **deep(50_000),
            },
            None,
        ),
        (
            "job: jobId+jobDefinitionId+processInstanceId",
            "POST",
            job,
            page,
            {
                "jobId": v["job_id"],
                "jobDefinitionId": v["job_def"],
                "processInstanceId": v["job_pi"],
            },
        ),
        (
            "job: executionId+processDefinitionId+activityId",
            "POST",
            job,
            page,
            {
                "executionId": v["job_exec"],
                "processDefinitionId": v["job_pd"],
                "activityId": v["job_activity"],
            },
        ),
        (
            "job: suspended+priority range by execution",
            "POST",
            job,
            page,
            {
                "suspended": True,
                "priorityLowerThanOrEquals": 50,
                "priorityHigherThanOrEquals": 0,
                "sorting": sort(("executionId", "asc")),
            },
        ),
        (
            "job: tenantIdIn+includeJobsWithoutTenantId by tenant,key",
            "POST",
            job,
            page,
            {
                "tenantIdIn": ["acme"],
                "includeJobsWithoutTenantId": True,
                "sorting": sort(("tenantId", "asc"), ("processDefinitionKey", "asc")),
            },
        ),
        (
            "job: withoutTenantId by processDefinitionId, deep 20,000",
            "POST",
            job,
            deep(20_000),
            {"withoutTenantId": True, "sorting": sort(("processDefinitionId", "desc"))},
        ),
    ]


def count_queries():
    et, job = "/engine-rest/external-task/count", "/engine-rest/job/count"
    return [
        ("task count: all", "GET", et, {}, None),
        ("task count: topicName", "GET", et, {"topicName": "send-invoice"}, None),
        (
            "task count: noRetriesLeft+tenantIdIn",
            "POST",
            et,
            {},
            {"noRetriesLeft": True, "tenantIdIn": ["acme"]},
        ),
        ("job count: all", "GET", job, {}, None),
        ("job count: executable", "POST", job, {}, {"executable": True}),
        (
            "job count: withException+processDefinitionKey",
            "POST",
            job,
            {},
            {"withException": True, "processDefinitionKey": "invoice"},
        ),
    ]


def console_views():
    return [
        ("console: external tasks default", "/external-tasks/", {}),
        (
            "console: external tasks filtered",
            "/external-tasks/",
            {"topicName": "send-invoice", "noRetriesLeft": "true", "sort": "-priority"},
        ),
        (
            "console: external tasks deep page 2,000",
            "/external-tasks/",
            {"page": "2000", "size": "50"},
        ),
        ("console: jobs default", "/jobs/", {}),
        (
            "console: jobs filtered",
            "/jobs/",
            {"processDefinitionKey": "invoice", "withException": "true", "tenantIdIn": "acme"},
        ),
        ("console: jobs deep page 2,000", "/jobs/", {"page": "2000", "size": "50"}),
        ("console: overview", "/", {}),
    ]


async def console_login(session, base):
    """Session login through the login form, as an operator's browser does."""
    from yarl import URL

    async with session.get(base + "/login/") as response:
        await response.read()
    token = session.cookie_jar.filter_cookies(URL(base)).get("csrftoken")
    async with session.post(
        base + "/login/",
        data={
            "username": ADMIN,
            "password": PASSWORD,
            "csrfmiddlewaretoken": token.value if token else "",
        },
        headers={"Referer": base + "/login/"},
        allow_redirects=False,
    ) as response:
        await response.read()
        if response.status not in (302, 303):
            raise RuntimeError(f"console login failed: {response.status}")
    return session.cookie_jar.filter_cookies(URL(base))["csrftoken"].value


async def timed(session, method, url, params, body, repeat):
    durations, status = [], None
    for i in range(repeat + 1):
        t0 = time.perf_counter()
        async with session.request(method, url, params=params, json=body) as response:
            await response.read()
            status = response.status
        if i:  # the first run warms caches and is not counted
            durations.append(time.perf_counter() - t0)
        if status >= 400:
            return durations, status
    return durations, status


def run_queries(args, report, server, state, section="queries"):
    """The queries, counts and console pages, each timed `repeat` times. Run twice in a full
    bench: first on the settled seed ("queries settled", before anything writes), then after
    the ceiling, executor and HTTP sections have inserted and deleted ~400k tasks ("queries"):
    the second pass shows what such churn costs until autovacuum has caught up."""
    import aiohttp

    repeat = 3 if args.quick else 10
    values = sample_values()
    missing = set()

    async def go():
        results = []
        async with client_session(ADMIN) as session:
            for kind, items in (("query", api_queries(values)), ("count", count_queries())):
                for name, method, path, params, body in items:
                    durations, status = await timed(
                        session, method, server.base + path, params, body, repeat
                    )
                    results.append((kind, name, durations, status, path))
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            try:
                await console_login(session, server.base)
            except Exception as error:  # the console may not be merged yet
                results.append(("console", "console login", [], str(error), "/login/"))
                return results
            for name, path, params in console_views():
                durations, status = await timed(
                    session, "GET", server.base + path, params, None, repeat
                )
                results.append(("console", name, durations, status, path))
        return results

    p95s = collections.defaultdict(list)
    for kind, name, durations, status, path in asyncio.run(go()):
        if status != 200:
            missing.add(path)
            report.add(section, name, None, "ms", f"HTTP {status}: not measured")
            continue
        p50, p95 = ms(pct(durations, 50)), ms(pct(durations, 95))
        p95s[kind].append(p95)
        report.add(section, f"{name} p50/p95", f"{p50}/{p95}", "ms")
    for kind, values_ in p95s.items():
        report.add(section, f"worst p95 of {len(values_)} {kind} requests", max(values_), "ms")
    state["queries_missing"] = sorted(missing)


# ---------------------------------------------------------------------------------------------
# 5. Bulk set-retries on ~100k rows


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


def run_bulk(args, report, server, state):
    import aiohttp

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
                await response.read()
                out["api_jobs"] = (time.perf_counter() - t0, response.status)
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
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
                out["console_run"] = (time.perf_counter() - t0, response.status)
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
        report.add(
            "bulk",
            f"API POST job/retries on {n_jobs:,} jobs",
            round(seconds, 2),
            "s",
            f"HTTP {status}; {changed:,} rows now have retries={retries}",
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
        report.add(
            "bulk",
            f"console set retries on {n_console:,} tasks (matching filter)",
            round(seconds, 2),
            "s",
            f"HTTP {status}; {changed_console:,} rows now have retries={retries}",
        )


# ---------------------------------------------------------------------------------------------
# 6. Long polling: idle fetchers, connections held, wake-up latency


async def long_poll(server, waiters, wakeups, idle_seconds):
    import aiohttp

    topic = f"bench-longpoll-{uuid.uuid4().hex[:8]}"
    done_at = {}
    loop = asyncio.get_running_loop()
    arrived = asyncio.Queue()

    async def fetcher(session, index):
        body = {
            "workerId": f"poller-{index}",
            "maxTasks": 1,
            "asyncResponseTimeout": 120_000,
            "topics": [{"topicName": topic, "lockDuration": 60_000}],
        }
        async with session.post(
            server.base + "/engine-rest/external-task/fetchAndLock", json=body
        ) as response:
            tasks = await response.json()
        now = time.perf_counter()
        for task in tasks:
            done_at[task["id"]] = now
            await arrived.put(task["id"])

    # Connections open and close between samples: count them every 20 ms, keep the largest.
    conns = {"idle": 0, "wakeups": 0}
    phase = {"name": None}
    stop = threading.Event()

    def count_connections():
        while not stop.wait(0.02):
            if phase["name"]:
                conns[phase["name"]] = max(conns[phase["name"]], server.db_connections())

    baseline_conns = server.db_connections()
    counter = threading.Thread(target=count_connections, daemon=True)
    counter.start()
    async with aiohttp.ClientSession(
        headers=basic(WORKER),
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=None),
    ) as session:
        pending = [loop.create_task(fetcher(session, i)) for i in range(waiters)]
        # Every request makes its first attempt, then waits. On a busy machine 200 first attempts
        # take longer than a few seconds: wait until the server is quiet (under 10 % of a core
        # for a second), at most 30 s, so the idle figures are not those of the arrival.
        await asyncio.sleep(3)
        settle_start = time.perf_counter()
        while time.perf_counter() - settle_start < 30:
            cpu0 = server.cpu_seconds()
            await asyncio.sleep(1)
            if server.cpu_seconds() - cpu0 < 0.1:
                break
        settled = 3 + time.perf_counter() - settle_start
        phase["name"] = "idle"
        cpu0, t0 = server.cpu_seconds(), time.perf_counter()
        await asyncio.sleep(idle_seconds)
        cpu = (server.cpu_seconds() - cpu0) / (time.perf_counter() - t0)
        phase["name"] = "wakeups"
        latencies, after_answer, create_status = [], [], None
        async with client_session(ADMIN) as producer:
            # The first request of a login pays the password hash (~1 s): not a wake-up's cost.
            async with producer.get(server.base + "/engine-rest/version") as response:
                await response.read()
            for _ in range(wakeups):
                t_create = time.perf_counter()
                async with producer.post(
                    server.base + "/engine-rest/external-task/create", json={"topicName": topic}
                ) as response:
                    await response.read()
                    create_status = response.status
                t_answered = time.perf_counter()
                if create_status >= 300:
                    break
                try:
                    task_id = await asyncio.wait_for(arrived.get(), 10)
                    latencies.append(done_at[task_id] - t_create)
                    after_answer.append(max(done_at[task_id] - t_answered, 0))
                except TimeoutError:
                    latencies.append(10.0)
                    after_answer.append(10.0)
                await asyncio.sleep(0.2)
        phase["name"] = None
        stop.set()
        counter.join()
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    return {
        "topic": topic,
        "baseline_conns": baseline_conns,
        "conns": conns["idle"],
        "conns_wakeups": conns["wakeups"],
        "cpu": cpu,
        "settled": settled,
        "latencies": latencies,
        "after_answer": after_answer,
        "create_status": create_status,
    }


def idle_seconds(args) -> int:
    return 3 if args.quick else 10


def run_longpoll(args, report, server, state):
    waiters = 50 if args.quick else 200
    wakeups = 5 if args.quick else 30
    result = asyncio.run(long_poll(server, waiters, wakeups, idle_seconds(args)))
    delete_topic(result["topic"])
    report.add(
        "longpoll",
        f"server CPU with {waiters} idle long-polling fetchers",
        round(result["cpu"] * 100, 1),
        "% core",
        f"over {idle_seconds(args)} s, from {result['settled']:.0f} s after they arrived",
    )
    report.add(
        "longpoll",
        f"DB connections held by the server for {waiters} waiters",
        result["conns"],
        "conns",
        f"most at any 20 ms sample while idle; {result['baseline_conns']} before they arrived, "
        f"{result['conns_wakeups']} during the wake-ups",
    )
    if result["latencies"]:
        report.add(
            "longpoll",
            "wake-up latency after create p50/p95",
            f"{ms(pct(result['latencies'], 50))}/{ms(pct(result['latencies'], 95))}",
            "ms",
            f"{len(result['latencies'])} tasks created through "
            "POST /external-task/create, each delivered to one waiter; from sending the create",
        )
        report.add(
            "longpoll",
            "wake-up latency after create answered p50/p95",
            f"{ms(pct(result['after_answer'], 50))}/{ms(pct(result['after_answer'], 95))}",
            "ms",
            "the same deliveries, from the create's 204/200 (its commit) to the waiter's answer",
        )
    else:
        report.add(
            "longpoll",
            "wake-up latency",
            None,
            "ms",
            f"/external-task/create answered {result['create_status']}",
        )


# ---------------------------------------------------------------------------------------------
# 7. Memory: streamed export of every external task


def run_memory(args, report, server, state):
    import aiohttp

    async def go():
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(
            cookie_jar=jar, timeout=aiohttp.ClientTimeout(total=None)
        ) as session:
            await console_login(session, server.base)
            total, lines = 0, 0
            t0 = time.perf_counter()
            params = {"format": "csv"}
            if args.quick:
                params["topicName"] = "send-invoice"
            async with session.get(
                server.base + "/external-tasks/export/", params=params
            ) as response:
                status = response.status
                async for chunk in response.content.iter_chunked(1 << 16):
                    total += len(chunk)
                    lines += chunk.count(b"\n")
            return status, total, lines, time.perf_counter() - t0

    with server.sampling() as memory:
        try:
            status, size, lines, seconds = asyncio.run(go())
        except Exception as error:
            report.add("memory", "streamed export", None, "", f"not measured: {error}")
            return
    if status != 200:
        report.add("memory", "streamed export", None, "", f"HTTP {status}: not measured")
        return
    rows = max(lines - 1, 0)
    report.add(
        "memory",
        f"streamed CSV export of {rows:,} tasks: server peak RSS",
        round(memory["peak_rss"] / 2**20, 1),
        "MiB",
        f"{memory['start_rss'] / 2**20:.0f} MiB before; "
        f"{size / 2**20:.0f} MiB in {seconds:.1f}s ({rows / seconds:,.0f} rows/s)",
    )


# ---------------------------------------------------------------------------------------------


def machine():
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    with contextlib.suppress(Exception):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(Exception):
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    with contextlib.suppress(Exception):
        info["postgresql"] = sql("SHOW server_version")[0][0]
        # Server settings that change the figures: autovacuum off (as on CI machines) leaves
        # the churned queue tables unvacuumed for the rest of the run.
        info["postgresql_settings"] = {
            name: sql(f"SHOW {name}")[0][0]
            for name in ("autovacuum", "shared_buffers", "max_wal_size", "synchronous_commit")
        }
        info["rows"] = {
            "external tasks": sql(f"SELECT count(*) FROM {TASK_TABLE}")[0][0],
            "jobs": sql("SELECT count(*) FROM jobs_job")[0][0],
        }
    return info


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--db",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL),
        help="bench database URL (default %(default)s)",
    )
    parser.add_argument(
        "--template",
        default="taskyard_seed",
        help="database to copy when the bench database is missing",
    )
    parser.add_argument("--fresh", action="store_true", help="drop and recreate the database")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated sections: {','.join(SECTIONS)}"
    )
    parser.add_argument("--quick", action="store_true", help="a small smoke run (~3 minutes)")
    parser.add_argument("--concurrency", type=int, default=8, help="workers/connections")
    parser.add_argument("--backlog", type=int, default=None, help="tasks per throughput run")
    parser.add_argument(
        "--server-workers",
        type=int,
        default=2,
        help="server processes: manage.py serve --workers N (default 2, one per core)",
    )
    parser.add_argument(
        "--conn-max-age",
        type=int,
        default=0,
        help="CONN_MAX_AGE for the server (the product default is 0: a connection pool; "
        "above 0 replaces the pool by persistent connections)",
    )
    parser.add_argument("--output", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    if args.backlog is None:
        args.backlog = 20_000 if args.quick else 100_000
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")

    started = datetime.now(UTC)
    Path(args.output).mkdir(parents=True, exist_ok=True)
    seed_needed = prepare_database(args.db, args.template, args.fresh)
    setup_django(args.db, seed_needed)
    report, state = Report(), {}
    log(f"bench on {args.db}: {', '.join(only)}{' (quick)' if args.quick else ''}")
    writers = {"ceiling", "executor", "http"} & set(only)
    if "queries" in only and writers:
        from django.db import connection

        connection.close()
        log("queries on the settled seed")
        with Server(args.db, args.server_workers, args.conn_max_age) as server:
            asyncio.run(warm_up(server.base))
            run_queries(args, report, server, state, section="queries settled")
    if "ceiling" in only:
        log("raw-SQL ceiling")
        run_ceiling(args, report, args.db, state)
    if "executor" in only:
        log("job executors")
        run_executor(args, report, args.db, state)
    server_sections = [s for s in ("http", "queries", "bulk", "longpoll", "memory") if s in only]
    if server_sections:
        from django.db import connection

        connection.close()
        with Server(args.db, args.server_workers, args.conn_max_age) as server:
            for section in server_sections:
                log(section)
                try:
                    globals()[f"run_{section}"](args, report, server, state)
                except Exception as error:  # one broken section must not lose the others
                    report.skip(section, f"{type(error).__name__}: {error}")
            report.add(
                "memory",
                "server peak RSS over the whole run",
                round(server.peak_rss / 2**20, 1),
                "MiB",
            )
    machine_info = machine()
    if machine_info.get("postgresql_settings", {}).get("autovacuum") == "off":
        report.add(
            "machine",
            "PostgreSQL autovacuum",
            "off",
            "",
            "the churned tables stay unvacuumed: compare 'queries settled' with 'queries'",
        )
    load = os.getloadavg()
    report.add(
        "machine",
        "load average 1/5/15 min at the end (2 cores)",
        "/".join(f"{x:.1f}" for x in load),
        "",
        "other work on the machine skews figures",
    )
    report.print()
    result = {
        "started": started.isoformat(),
        "finished": datetime.now(UTC).isoformat(),
        "arguments": vars(args),
        "machine": machine_info,
        "results": report.data,
        "skipped": report.skipped,
        "state": state,
    }
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench-{started:%Y%m%d-%H%M%S}.json"
    text = json.dumps(result, indent=2, default=str)
    path.write_text(text)
    (out / "latest.json").write_text(text)
    log(f"results written to {path}")


if __name__ == "__main__":
    main()
