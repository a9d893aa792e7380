"""Taskyard benchmark: `make bench` or `.venv/bin/python bench/run.py [--quick] [--only ...]`.

Runs against a PostgreSQL copy of the 1M-job / 1M-task seed (created from `--template` when the
bench database does not exist), starts the ASGI server as a subprocess on a free port, prints a
table and writes JSON to bench/results/. Figures are reported, never asserted. See
bench/README.md for what each section measures and the latest figures.

This module is the entry point (`python bench/run.py` or `python -m bench.run`): the options,
the order of the sections and the results file. Each section is a module of its own.
"""

import sys
from pathlib import Path

# Run as a script, Python puts bench/ itself first on sys.path: the product's packages and
# `bench.…` would not be importable, and bench's modules would shadow top-level modules of the
# same name. Import from the repository root instead, as `python -m bench.run` does.
_REPOSITORY = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == _REPOSITORY / "bench":
    sys.path[0] = str(_REPOSITORY)
elif str(_REPOSITORY) not in sys.path:
    sys.path.insert(0, str(_REPOSITORY))

# The imports below need the path above (E402).
import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

from django.db import connection  # noqa: E402

from bench.batches import run_batch  # noqa: E402
from bench.bulk import run_bulk  # noqa: E402
from bench.ceiling import run_ceiling  # noqa: E402
from bench.clients import warm_up  # noqa: E402
from bench.common import ROOT, Report, log  # noqa: E402
from bench.console import run_console  # noqa: E402
from bench.database import prepare_database, setup_django  # noqa: E402
from bench.executor import run_executor  # noqa: E402
from bench.http_workers import run_http  # noqa: E402
from bench.indexes import run_indexes  # noqa: E402
from bench.longpoll import run_longpoll  # noqa: E402
from bench.machine import machine  # noqa: E402
from bench.memory import run_memory  # noqa: E402
from bench.queries import run_queries  # noqa: E402
from bench.server import Server  # noqa: E402

SECTIONS = [
    "indexes",
    "ceiling",
    "http",
    "executor",
    "queries",
    "bulk",
    "batch",
    "longpoll",
    "memory",
    "console",
]
# The sections that talk to one server, started once for all of them, in this order.
SERVER_SECTIONS = {
    "http": run_http,
    "queries": run_queries,
    "bulk": run_bulk,
    "batch": run_batch,
    "longpoll": run_longpoll,
    "memory": run_memory,
    "console": run_console,
}
# Sections that insert and delete tasks: with any of them, "queries" first runs on the seed
# as it was ("queries settled").
WRITERS = {"ceiling", "executor", "http"}
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/taskyard_bench"


def parse_arguments(argv):
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
    parser.add_argument(
        "--batch-chunk-sizes",
        default="",
        help="batch section: also run the batch with these TASKYARD_BATCH_CHUNK_SIZE values "
        "(comma-separated), each beside the same raw UPDATE",
    )
    parser.add_argument(
        "--batch-executor-concurrency",
        type=int,
        default=None,
        help="batch section: runjobs --concurrency of the batch executor (default: its own)",
    )
    parser.add_argument(
        "--console-runs",
        type=int,
        default=None,
        help="console section: timed runs per page after one warm-up (default 10, 3 with --quick)",
    )
    parser.add_argument("--output", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    if args.backlog is None:
        args.backlog = 20_000 if args.quick else 100_000
    args.batch_chunk_sizes = [int(n) for n in args.batch_chunk_sizes.split(",") if n.strip()]
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    return args, only


def main(argv=None):
    args, only = parse_arguments(argv)
    started = datetime.now(UTC)
    Path(args.output).mkdir(parents=True, exist_ok=True)
    seed_needed = prepare_database(args.db, args.template, args.fresh)
    setup_django(args.db, seed_needed)
    report, state = Report(), {}
    log(f"bench on {args.db}: {', '.join(only)}{' (quick)' if args.quick else ''}")
    if "queries" in only and WRITERS & set(only):
        connection.close()
        log("queries on the settled seed")
        with Server(args.db, args.server_workers, args.conn_max_age) as server:
            asyncio.run(warm_up(server.base))
            run_queries(args, report, server, state, section="queries settled")
    if "indexes" in only:
        # On the settled seed, with no server running: it drops indexes inside transactions.
        connection.close()
        log("index audit of the external-task table")
        run_indexes(args, report, args.db, state)
    if "ceiling" in only:
        log("raw-SQL ceiling")
        run_ceiling(args, report, args.db, state)
    if "executor" in only:
        log("job executors")
        run_executor(args, report, args.db, state)
    server_sections = [s for s in SERVER_SECTIONS if s in only]
    if server_sections:
        connection.close()
        with Server(args.db, args.server_workers, args.conn_max_age) as server:
            for section in server_sections:
                log(section)
                try:
                    SERVER_SECTIONS[section](args, report, server, state)
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
