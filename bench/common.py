"""What every section shares: the accounts and tables, percentiles, the report, SQL helpers."""

import collections
import math
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from django.db import connection
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parent.parent
TASK_TABLE = "external_tasks_externaltask"
LOG_TABLE = "external_tasks_externaltasklog"
PASSWORD = "bench-password-not-secret"
ADMIN = "bench-admin"
WORKER = "bench-worker"
# A tenant viewer of the seed's largest tenant (40 % of the rows): the console section's second
# account.
VIEWER = "bench-viewer"
VIEWER_TENANT = "acme"


def pct(values, q):
    """The q-th percentile (0-100) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def ms(seconds):
    return None if seconds is None else round(seconds * 1000, 2)


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


def conninfo(url: str) -> str:
    """psycopg's connection string for a postgres:// URL (for connections outside Django's)."""
    parts = urlsplit(url)
    return make_conninfo(
        host=parts.hostname or "127.0.0.1",
        port=str(parts.port or 5432),
        user=parts.username or "postgres",
        password=parts.password or None,
        dbname=parts.path.lstrip("/"),
    )


def sql(statement, params=None, fetch=True):
    """Run one statement on Django's connection; its rows, if it returns any and fetch."""
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
