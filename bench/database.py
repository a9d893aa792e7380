"""The bench database: copied from the seeded template when missing, then migrated, with the
bench's accounts."""

import os
from urllib.parse import urlsplit

import django
import psycopg
from django.core.management import call_command

from bench.common import ADMIN, PASSWORD, VIEWER, VIEWER_TENANT, WORKER, conninfo, log


def prepare_database(url: str, template: str, fresh: bool):
    """Create the bench database from the seeded template when missing (or --fresh)."""
    name = urlsplit(url).path.lstrip("/")
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(conninfo(admin_url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and fresh:
            log(f"dropping {name} (--fresh)")
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if not exists:
            has_template = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [template]
            ).fetchone()
            if has_template:
                log(f"creating {name} from template {template} (a file copy, about a minute)")
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
                # A copy starts without activity counts, so autovacuum would not analyze it for
                # a long time; without planner statistics claims picked 80 ms bitmap plans.
                log(f"analyzing {name}")
                with psycopg.connect(conninfo(url), autocommit=True) as copy:
                    copy.execute("ANALYZE")
                return False
            log(f"creating empty {name}; it will be seeded with 1M jobs and 1M tasks")
            conn.execute(f'CREATE DATABASE "{name}"')
            return True
    return False


def setup_django(url: str, seed_needed: bool):
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    django.setup()
    call_command("migrate", verbosity=0)
    if seed_needed:
        call_command("seed_demo", jobs=1_000_000, external_tasks=1_000_000, seed=7, quiet=True)
    call_command("create_user", ADMIN, role="admin", password=PASSWORD, verbosity=0)
    call_command("create_user", WORKER, role="worker", password=PASSWORD, verbosity=0)
    call_command(
        "create_user", VIEWER, role="viewer", tenant=[VIEWER_TENANT], password=PASSWORD, verbosity=0
    )
