"""A bulk action in a real browser becomes a batch, and a real executor (`manage.py runjobs
--queue batch`, a separate process on the live server's database) runs it while the page
watches its progress reach "Completed"."""

import os
import re
import subprocess
import sys

import pytest
from django.conf import settings
from playwright.sync_api import expect

from jobs.models import Job
from project.models import Batch
from tests.jobs.test_executor_processes import database_url

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

FINISH_WITHIN_MS = 90_000  # a loaded machine; a working executor needs a few seconds


@pytest.fixture
def batch_executor(tmp_path):
    """start() -> a `runjobs --queue batch` process on the test database, killed afterwards."""
    started = []

    def start():
        output = tmp_path / "runjobs.log"
        env = {**os.environ, "DATABASE_URL": database_url()}
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runjobs", "--queue", "batch", "--poll-interval", "0.2"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=output.open("w"),
            stderr=subprocess.STDOUT,
        )
        process.output = output
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def CHARGES():  # noqa: N802 - the seeded jobs, not the batch's own seed/monitor/chunk jobs
    return Job.objects.filter(handler="billing.tasks.charge")


def seed_jobs():
    Job.objects.bulk_create(
        Job(
            handler="billing.tasks.charge",
            tenant_id="acme",
            retries=0,
            exception_message=f"gateway timeout {i}",
            process_definition_key="orders" if i % 4 else "returns",
        )
        for i in range(32)
    )


def test_all_matching_set_retries_runs_as_a_batch_and_the_page_watches_it_finish(
    page_for, operator_user, live_server, batch_executor, settings
):
    settings.TASKYARD_BATCH_CHUNK_SIZE = 5  # 24 rows: five chunk jobs
    seed_jobs()
    page = page_for(operator_user)
    page.goto(f"{live_server.url}/jobs/?noRetriesLeft=true")
    page.fill("#job-filters input[name=processDefinitionKey]", "orders")
    page.wait_for_url(re.compile(r"processDefinitionKey=orders"))
    expect(page.locator("#job-table h1")).to_have_text(re.compile(r"^24 jobs"))

    page.locator("#job-table tbody input[name=ids]").first.check()
    page.check("[data-scope-matching]")
    page.click(".bulkbar button[value=set_retries]")
    dialog = page.locator("dialog#confirm-dialog")
    dialog.wait_for(state="visible")
    assert "24 jobs" in dialog.inner_text()
    assert "Process definition key: orders" in dialog.inner_text()
    assert "This starts a batch" in dialog.inner_text()
    page.fill("#confirm-retries", "3")
    dialog.locator("button[type=submit]").click()

    # Straight to the batch's progress page; nothing has run yet and no executor is there.
    page.wait_for_url(re.compile(r"/batches/[^/]+/$"))
    batch = Batch.objects.get()
    assert page.url.endswith(f"/batches/{batch.pk}/")
    assert "Batch started" in page.locator(".messages").inner_text()
    assert "24 jobs" in page.locator("h1").inner_text()
    expect(page.locator("[data-executor-warning]")).to_contain_text("runjobs --queue batch")
    assert CHARGES().filter(retries=3).count() == 0

    # A real executor runs the batch queue; the page polls itself to the end.
    batch_executor()
    state = page.locator("#batch-progress [data-state]")
    expect(state).to_have_text("Completed", timeout=FINISH_WITHIN_MS)
    expect(page.locator("[data-changed]")).to_have_text("24")
    expect(page.locator("#batch-progress progress")).to_have_attribute("value", "100")
    assert page.locator("[data-executor-warning]").count() == 0
    assert CHARGES().filter(retries=3).count() == 24
    assert CHARGES().filter(process_definition_key="returns", retries=0).count() == 8

    # The Batches page lists it among the finished ones, linked to its audit entry.
    page.click("nav.side >> text=Batches")
    row = page.locator(f"#finished-batches tr[data-id='{batch.pk}']")
    expect(row).to_contain_text("Completed")
    row.locator("text=audit entry").click()
    page.wait_for_url(re.compile(r"/audit/\?id=\d+"))
    assert "job.set_retries" in page.locator("#audit-table tbody tr").first.inner_text()
