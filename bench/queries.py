"""Section "queries" (and "queries settled"): the API queries, counts and console pages of
bench/api_queries.py, each timed by a client on the same machine (≈ server time + < 1 ms)."""

import asyncio
import collections
import time

from bench.api_queries import API_QUERIES, CONSOLE_PAGES, COUNT_QUERIES, SAMPLE_SQL, filled
from bench.clients import client_session, console_login, console_session
from bench.common import ADMIN, ms, pct, sql


def sample_values():
    """Real values from the seeded rows, so each filter matches something (None if none)."""
    return {key: (sql(statement) or [[None]])[0][0] for key, statement in SAMPLE_SQL.items()}


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
    repeat = 3 if args.quick else 10
    samples = sample_values()
    missing = set()

    async def go():
        results = []
        async with client_session(ADMIN) as session:
            api = filled(API_QUERIES, samples)
            for kind, queries in (("query", api), ("count", COUNT_QUERIES)):
                for name, method, path, params, body in queries:
                    durations, status = await timed(
                        session, method, server.base + path, params, body, repeat
                    )
                    results.append((kind, name, durations, status, path))
        async with console_session() as session:
            try:
                await console_login(session, server.base)
            except Exception as error:  # the console may not be merged yet
                results.append(("console", "console login", [], str(error), "/login/"))
                return results
            for name, method, path, params, body in CONSOLE_PAGES:
                durations, status = await timed(
                    session, method, server.base + path, params, body, repeat
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
    for kind, kind_p95s in p95s.items():
        report.add(section, f"worst p95 of {len(kind_p95s)} {kind} requests", max(kind_p95s), "ms")
    state["queries_missing"] = sorted(missing)
