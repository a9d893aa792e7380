"""The server under test: `manage.py serve` as a subprocess, and what psutil sees of it."""

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from bench.common import ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
        # psutil is the optional `bench` extra: imported on use, so `run.py --help` works
        # without it.
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
