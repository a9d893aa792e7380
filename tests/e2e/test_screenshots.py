"""Screenshots of the main console pages, for people, not assertions.

Run:  SCREENSHOTS_DIR=build/screenshots .venv/bin/pytest tests/e2e/test_screenshots.py
(skipped unless SCREENSHOTS_DIR is set).
"""

import os
from pathlib import Path

import pytest

from tests.e2e.seed import seed_demo_rows

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.environ.get("SCREENSHOTS_DIR"), reason="set SCREENSHOTS_DIR"),
]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots_of_main_pages(page_for, admin_user, live_server, scheme):
    target = Path(os.environ["SCREENSHOTS_DIR"])
    target.mkdir(parents=True, exist_ok=True)
    job, task = seed_demo_rows()
    page = page_for(admin_user, scheme)
    pages = {
        "overview": "/",
        "jobs": "/jobs/",
        "external-tasks": "/external-tasks/",
        "job-detail": f"/jobs/{job.pk}/",
        "task-detail": f"/external-tasks/{task.pk}/",
        "topics": "/topics/",
        "failures": "/failures/",
        "audit": "/audit/",
    }
    batch = _batches(admin_user)
    pages["batches"] = "/batches/"
    pages["batch"] = f"/batches/{batch.pk}/"
    for name, path in pages.items():
        page.goto(live_server.url + path)
        page.screenshot(path=str(target / f"{name}-{scheme}.png"), full_page=True)
    # The interactive parts: a row menu, and the confirmation for all matching rows.
    page.goto(live_server.url + "/jobs/?status=failed")
    page.locator("#job-table .rowmenu summary").first.click()
    page.screenshot(path=str(target / f"jobs-rowmenu-{scheme}.png"))
    page.keyboard.press("Escape")
    page.goto(live_server.url + "/jobs/?status=failed")
    page.locator("#job-table tbody input[name=ids]").first.check()
    page.check("[data-scope-matching]")
    page.click(".bulkbar button[value=set_retries]")
    page.locator("dialog#confirm-dialog").wait_for(state="visible")
    page.screenshot(path=str(target / f"jobs-confirm-{scheme}.png"))


def _batches(user):
    """A batch half done and one finished, for the Batches pages."""
    from datetime import timedelta

    from django.utils import timezone

    from jobs.models import Job
    from project import batches
    from project.models import Batch

    failed = Job.objects.filter(retries=0)
    done = batches.start(user, "suspend-jobs", failed, {}, description="No retries left")
    Batch.objects.filter(pk=done.pk).update(
        end_time=timezone.now(), outcome="completed", rows_changed=done.total_rows
    )
    batch = batches.start(
        user, "set-job-retries", Job.objects.all(), {"retries": 3}, description="All jobs"
    )
    Batch.objects.filter(pk=batch.pk).update(
        rows_changed=batch.total_rows // 3,
        rows_skipped=2,
        execution_start_time=timezone.now() - timedelta(seconds=12),
    )
    return batch
