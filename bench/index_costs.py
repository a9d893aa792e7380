"""What given indexes cost the operator's usual bulk write, as section "indexes" measures it
(bench/indexes.py step 4), for the task or the job table, without the rest of that section.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<migrated copy of the seed> \\
        .venv/bin/python -m bench.index_costs --table jobs_job job_lock_exp_idx job_handler_idx \\
        --sql "CREATE INDEX job_lock_exp_old ON jobs_job (lock_expiration_time)"

A copy of the table (primary key only) brings two tenants' failed rows back (retries 0 -> 3,
in 5,000-id UPDATEs, rolled back, after a CHECKPOINT): once with the key alone, then with the
key and each index in turn (a name of an index the table has, or a CREATE INDEX statement on
the table, e.g. an index's old definition). Prints each index's size and its added seconds and
WAL: the "bulk +s (+WAL)" column of bench/README.md's index tables.
"""

import argparse
import os
import re

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django.setup()

from bench.indexes import (  # noqa: E402
    COPY_TABLE,
    autocommit,
    bulk_retry,
    make_copy,
    on_copy,
    table_indexes,
)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--table", default="external_tasks_externaltask")
    parser.add_argument("--sql", action="append", default=[], help="a CREATE INDEX statement")
    parser.add_argument("--rows", type=int, default=0, help="copy only this many rows")
    parser.add_argument("--repeat", type=int, default=1, help="runs per index (the best kept)")
    parser.add_argument("names", nargs="*", help="indexes of the table")
    args = parser.parse_args()
    url = os.environ["DATABASE_URL"]
    with autocommit(url) as conn, conn.cursor() as cursor:
        existing = table_indexes(cursor, args.table)
    definitions = {name: existing[name] for name in args.names}
    for statement in args.sql:
        definitions[re.search(r"INDEX (\S+) ON", statement)[1]] = statement
    ids, total = make_copy(url, args.rows, table=args.table)
    print(f"{args.table}: copy of {total:,} rows; bulk retry of {len(ids):,} failed rows")

    def best():
        return min((bulk_retry(url, ids) for _ in range(args.repeat)), key=lambda r: r[0])

    base_s, base_wal = best()
    print(f"primary key only: {base_s:.2f} s, {base_wal / 2**20:,.0f} MB WAL")
    for name, definition in definitions.items():
        with autocommit(url) as conn:
            conn.execute(on_copy(definition, name))
            size = conn.execute("SELECT pg_relation_size(%s)", [f"{name}_copy"]).fetchone()[0]
            conn.execute(f"ANALYZE {COPY_TABLE}")
        seconds, wal = best()
        with autocommit(url) as conn:
            conn.execute(f"DROP INDEX {name}_copy")
        print(
            f"{name} ({size / 2**20:.0f} MB): +{seconds - base_s:.2f} s "
            f"(+{(wal - base_wal) / 2**20:,.0f} MB WAL)",
            flush=True,
        )
    with autocommit(url) as conn:
        conn.execute(f"DROP TABLE {COPY_TABLE}")


if __name__ == "__main__":
    main()
