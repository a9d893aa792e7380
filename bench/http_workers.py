"""Section "http": Camunda-protocol workers over HTTP (fetchAndLock + complete, aiohttp
coroutines in this process) beside the trivial view, the server's own ceiling per request.

Also adds the server's peak RSS during each worker run to the "memory" section.
"""

import asyncio
import collections
import re
import shutil
import subprocess
import time
import uuid

from bench.clients import basic, client_session, warm_up
from bench.common import ADMIN, delete_topic, insert_tasks, ms, pct


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
