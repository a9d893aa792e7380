"""The console's screenshots in project/docs/screenshots/, for project/docs/console.md.

    make screenshots        (= .venv/bin/python -m tests.e2e.screenshots [--out DIR] [--all])

Starts the console in this process on a throwaway SQLite database (a temporary folder, removed
afterwards), seeds it as `make run` does (seed_demo with a fixed seed, demo_users) plus a
finished and a running batch, logs in as admin in Debian's chromium (Playwright, never a
downloaded browser) and writes viewport-sized PNGs, light and dark, desktop and phone.

Deterministic: the seed is fixed, the clock stands still at FROZEN_AT (the pages show "3 hours
ago" and counts against 24 hours before) and ids come from a seeded generator, so a rerun
changes a picture only where the page changed (give or take a few anti-aliased pixels at a
rounded corner, which Chromium does not draw the same every time). PNGs are optimised with
optipng when it is installed (apt-get install optipng). --all takes every page in light and
dark, to review them; DESKTOP_SHOTS and PHONE_SHOTS say which the docs keep.
"""

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.e2e.conftest import ARGS, CHROMIUM

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "project" / "docs" / "screenshots"
FROZEN_AT = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)  # a Monday morning
SEED = 7
ROWS = 10_000  # jobs, and as many external tasks
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}


class FrozenDateTime(datetime):
    @classmethod
    def now(cls, tz=None):
        return FROZEN_AT.astimezone(tz) if tz else FROZEN_AT.replace(tzinfo=None)


def freeze():
    """Stop the clock and seed the ids. Taskyard reads the time through timezone.now();
    Django's relative-time filters (naturaltime, timesince) read datetime.now() themselves."""
    from django.contrib.humanize.templatetags import humanize
    from django.template import defaultfilters
    from django.utils import timesince, timezone

    timezone.now = lambda: FROZEN_AT
    humanize.datetime = FrozenDateTime
    defaultfilters.timesince = lambda d, now=None, **kw: timesince.timesince(
        d, now or FROZEN_AT, **kw
    )
    ids = random.Random(SEED)
    uuid.uuid4 = lambda: uuid.UUID(int=ids.getrandbits(128), version=4)


def prepare(database: Path):
    os.environ["DATABASE_URL"] = f"sqlite:///{database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    import django

    django.setup()
    freeze()
    from django.core.management import call_command

    quiet = {"stdout": open(os.devnull, "w"), "verbosity": 0}  # noqa: SIM115
    call_command("migrate", **quiet)
    call_command("seed_demo", jobs=ROWS, external_tasks=ROWS, seed=SEED, quiet=True, **quiet)
    renumber_incidents()
    call_command("demo_users", **quiet)
    make_batches()


def renumber_incidents():
    """The seed's incidents get random ids from the database: give them seeded ones."""
    from django.db import transaction

    from project.models import Incident

    with transaction.atomic():
        ids = Incident.objects.order_by("incident_type", "configuration").values_list(
            "id", flat=True
        )
        for old in list(ids):
            Incident.objects.filter(pk=old).update(id=str(uuid.uuid4()))


def make_batches():
    """A batch the executor really ran (ended 20 minutes ago), one 40 % through, and an
    executor that reports in: the Batches and Queues pages as an operator finds them."""
    from django.contrib.auth import get_user_model

    from jobs.models import ExecutorHeartbeat, Job
    from project import batches
    from project.models import AuditEntry, Batch
    from tests.batches import run_batches

    admin = get_user_model().objects.get(username="admin")
    handler = "jobs.demo_handlers.flaky_report"
    done = batches.start(
        admin,
        "set-job-retries",
        Job.objects.filter(retries=0, handler=handler),
        {"retries": 3},
        filter={"noRetriesLeft": "true", "handler": handler},
        description=f"No retries left; Handler: {handler}",
        source="console",
        reason="The report database is back",
    )
    run_batches()
    Batch.objects.filter(pk=done.pk).update(
        start_time=FROZEN_AT - timedelta(minutes=21),
        execution_start_time=FROZEN_AT - timedelta(minutes=21),
        end_time=FROZEN_AT - timedelta(minutes=20, seconds=52),
    )
    AuditEntry.objects.filter(pk=done.audit_entry_id).update(
        timestamp=FROZEN_AT - timedelta(minutes=21)
    )
    running = batches.start(
        admin,
        "suspend-jobs",
        Job.objects.filter(tenant_id="acme", suspended=False),
        {},
        filter={"tenantIdIn": ["acme"]},
        description="Tenant IDs: acme",
        source="console",
        reason="acme's maintenance window",
    )
    Batch.objects.filter(pk=running.pk).update(
        rows_changed=running.total_rows * 2 // 5,
        rows_skipped=3,
        completed_jobs=max(running.total_jobs // 3, 1),
        jobs_created=running.total_jobs,
        start_time=FROZEN_AT - timedelta(seconds=41),
        execution_start_time=FROZEN_AT - timedelta(seconds=38),
    )
    AuditEntry.objects.filter(pk=running.audit_entry_id).update(
        timestamp=FROZEN_AT - timedelta(seconds=41)
    )
    ExecutorHeartbeat.objects.all().delete()
    ExecutorHeartbeat.objects.create(
        worker_id="executor@app-1:4211",
        hostname="app-1",
        pid=4211,
        queues=["default", "batch"],
        started_at=FROZEN_AT - timedelta(hours=5),
        last_seen=FROZEN_AT - timedelta(seconds=3),
        running=2,
    )


def serve():
    """The console on a free local port, in a thread; answers its base URL."""
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.core.wsgi import get_wsgi_application

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadedWSGIServer(("127.0.0.1", 0), Quiet, allow_reuse_address=False)
    server.set_app(get_wsgi_application())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}"


# (file name, page, schemes kept in the docs; --all takes both everywhere). A page is a path,
# or the name of a function below that leads there (they take the page and the base URL).
DESKTOP_SHOTS = [
    ("overview", "/", ("light", "dark")),
    ("jobs", "jobs_with_bulk_bar", ("light", "dark")),
    ("jobs-confirm", "confirm_all_matching", ("light",)),
    ("external-tasks", "/external-tasks/?status=expired", ("light",)),
    ("job-detail", "/jobs/{job}/", ("light",)),
    ("task-detail", "/external-tasks/{task}/", ("dark",)),
    ("batches", "/batches/", ("light",)),
    ("batch", "/batches/{batch}/", ("light",)),
    ("queues", "/queues/", ("light",)),
    ("topics", "/topics/", ("dark",)),
    ("failures", "/failures/", ("light",)),
    ("audit", "/audit/", ("light",)),
]
PHONE_SHOTS = [
    ("phone-overview", "/", ("light", "dark")),
    ("phone-jobs", "/jobs/?status=failed", ("light",)),
    ("phone-job-detail", "/jobs/{job}/", ("dark",)),
]


def shoot(url: str, out: Path, every: bool) -> list[Path]:
    from playwright.sync_api import sync_playwright

    from external_tasks.models import ExternalTask
    from jobs.models import Job
    from project.models import Batch

    ids = {
        "job": Job.objects.filter(retries=0).order_by("id").values_list("id", flat=True)[0],
        "task": ExternalTask.objects.filter(retries=0)
        .order_by("id")
        .values_list("id", flat=True)[0],
        "batch": Batch.objects.filter(end_time=None).get().pk,
    }
    written = []
    # Playwright's sync API runs an event loop in this thread; the ORM calls above are done.
    with sync_playwright() as playwright:
        # One raster thread and no scrollbars: the same page gives the same pixels (rounded
        # corners and scrollbars otherwise differ by a few pixels from run to run).
        args = [*ARGS, "--num-raster-threads=1", "--hide-scrollbars"]
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        for scheme in ("light", "dark"):
            for shots, viewport in ((DESKTOP_SHOTS, DESKTOP), (PHONE_SHOTS, PHONE)):
                page = login(browser, url, scheme, viewport, mobile=viewport is PHONE)
                for name, where, schemes in shots:
                    if scheme not in schemes and not every:
                        continue
                    if where.startswith("/"):
                        page.goto(url + where.format(**ids))
                    else:
                        globals()[where](page, url)
                    written.append(save(page, out / f"{name}-{scheme}.png"))
                page.context.close()
        browser.close()
    return written


def login(browser, url, scheme, viewport, mobile=False):
    context = browser.new_context(
        color_scheme=scheme,
        viewport=viewport,
        is_mobile=mobile,
        has_touch=mobile,
        timezone_id="UTC",
        locale="en-GB",
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{url}/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "taskyard-admin")
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/")
    return page


def jobs_with_bulk_bar(page, url):
    page.goto(url + "/jobs/?status=failed&sort=-created")
    boxes = page.locator("#job-table tbody input[name=ids]")
    for index in range(3):
        boxes.nth(index).check()


def confirm_all_matching(page, url):
    """The confirmation of an action on every matching row, with its count and words."""
    page.goto(url + "/jobs/?status=failed")
    page.locator("#job-table tbody input[name=ids]").first.check()
    page.check("[data-scope-matching]")
    page.click(".bulkbar button[value=set_retries]")
    page.locator("dialog#confirm-dialog").wait_for(state="visible")


def save(page, path: Path) -> Path:
    page.wait_for_load_state("networkidle")
    # No blinking caret or half-run transition in the picture.
    page.add_style_tag(content="*{caret-color:transparent!important;transition:none!important}")
    page.screenshot(path=str(path), animations="disabled")
    return path


def optimise(paths):
    tool = shutil.which("optipng")
    if tool is None:
        print("optipng not installed: PNGs left as Chromium wrote them (apt-get install optipng)")
        return
    subprocess.run([tool, "-quiet", "-o2", "-strip", "all", *map(str, paths)], check=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"folder for the PNGs ({OUT})")
    parser.add_argument(
        "--all", action="store_true", help="every page in light and dark (to review them)"
    )
    args = parser.parse_args(argv)
    if not os.path.exists(CHROMIUM):
        sys.exit(f"chromium not found at {CHROMIUM} (apt-get install chromium)")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="taskyard-screenshots-") as folder:
        prepare(Path(folder) / "db.sqlite3")
        written = shoot(serve(), args.out, args.all)
        from django.db import connections

        connections.close_all()
    optimise(written)
    total = sum(path.stat().st_size for path in written)
    print(f"{len(written)} screenshots in {args.out} ({total / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
