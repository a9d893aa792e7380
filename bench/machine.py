"""What the figures were measured on: Python, CPU, memory, PostgreSQL and its settings."""

import contextlib
import os
import platform
from pathlib import Path

from bench.common import TASK_TABLE, sql


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
        # psutil is the optional `bench` extra: imported on use, so `run.py --help` works
        # without it (and the figure is left out).
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
