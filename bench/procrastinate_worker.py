"""procrastinate on the bench database: `python -m bench.procrastinate_worker CMD`.

Commands: `schema`, `defer N`, `work CONCURRENCY`.

Runs the same no-op task as the other job systems, in procrastinate's own tables
(procrastinate_jobs, ...), so the comparison shares the database and the machine.
"""

import os
import sys

from procrastinate import App, PsycopgConnector

app = App(connector=PsycopgConnector(conninfo=os.environ["BENCH_CONNINFO"]))


@app.task(queue="bench", name="noop")
def noop():
    return None


def main(argv):
    command = argv[0]
    with app.open():
        if command == "schema":
            exists = app.connector.get_sync_connector().execute_query_one(
                query="SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS present"
            )
            if not exists["present"]:
                app.schema_manager.apply_schema()
        elif command == "defer":
            n = int(argv[1])
            for start in range(0, n, 1000):
                noop.batch_defer(*({} for _ in range(min(1000, n - start))))
        elif command == "work":
            app.run_worker(
                queues=["bench"],
                concurrency=int(argv[1]),
                wait=False,
                install_signal_handlers=False,
                listen_notify=False,
                fetch_job_polling_interval=0.05,
            )
        else:
            raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
