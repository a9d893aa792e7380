"""Section "memory": the server's RSS while it streams a CSV export of every external task.

(The HTTP section adds the RSS during its worker runs, and run.py the peak over the whole run.)
"""

import asyncio
import time

from bench.clients import console_login, console_session


def run_memory(args, report, server, state):
    async def go():
        # No overall time limit (aiohttp's default is 5 minutes): a slow export is a figure.
        async with console_session(time_limit=False) as session:
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
