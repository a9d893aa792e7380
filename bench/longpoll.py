"""Section "longpoll": idle long-polling fetchAndLock requests (server CPU, database
connections held) and the time from a task's creation to a waiter's answer."""

import asyncio
import threading
import time
import uuid

from bench.clients import client_session
from bench.common import ADMIN, WORKER, delete_topic, ms, pct


async def long_poll(server, waiters, wakeups, idle_seconds):
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
    # No limit on connections: every waiter holds one open.
    async with client_session(WORKER, limit=0) as session:
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
