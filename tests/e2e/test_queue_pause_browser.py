"""Pause and resume a queue in a real browser while a real executor (`manage.py runjobs`, its
own process) runs it: after "Pause" it takes none of the queue's jobs, after "Resume" it does."""

import pytest
from playwright.sync_api import expect

from jobs import claims
from jobs.models import Job, QueuePause
from project.models import AuditEntry
from tests.jobs.test_executor_processes import executors, lines, wait_until  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def enqueue(queue_name, path, token, priority=0):
    return claims.enqueue_job(
        "jobs.demo_handlers.record_run",
        {"kwargs": {"path": str(path), "token": token}},
        queue_name=queue_name,
        priority=priority,
    )


def test_a_running_executor_stops_taking_a_paused_queues_jobs_and_resumes(
    page_for,
    admin_user,
    live_server,
    executors,  # noqa: F811 (the fixture imported above)
    tmp_path,
):
    runs = tmp_path / "runs.txt"
    executor = executors("--queue", "emails,other", "--poll-interval", "0.1", "--lock-time", "30")
    enqueue("emails", runs, "before-pause")
    wait_until(lambda: lines(runs) == ["before-pause"], "the executor to run the emails job")

    page = page_for(admin_user)
    page.goto(f"{live_server.url}/queues/")
    # The running executor reports itself (its heartbeat) with the queues it runs.
    expect(page.locator("#executors tbody tr")).to_have_count(1)
    executor_row = page.locator("#executors tbody tr").first
    expect(executor_row).to_contain_text("Running")
    expect(executor_row).to_contain_text("emails, other")
    expect(page.locator('tr[data-queue="emails"] td').nth(10)).to_have_text("1")
    row = page.locator('tr[data-queue="emails"]')
    row.get_by_role("textbox").fill("mail relay maintenance")
    row.get_by_role("button", name="Pause queue emails").click()
    expect(page.locator(".messages")).to_contain_text("Paused queue emails.")
    expect(page.locator('tr[data-queue="emails"]')).to_contain_text("Paused")
    assert QueuePause.objects.get().reason == "mail relay maintenance"

    # The paused queue's job comes first by priority; the other queue's job is enqueued after
    # it. Once the executor has run the latter, it has claimed since the former was waiting
    # and passed it over: the pause held.
    held = enqueue("emails", runs, "while-paused", priority=100)
    enqueue("other", runs, "other-queue")
    wait_until(lambda: "other-queue" in lines(runs), "the executor to run the other queue")
    assert "while-paused" not in lines(runs)
    held.refresh_from_db()
    assert held.lock_owner is None

    page.goto(f"{live_server.url}/queues/?fresh=1")
    expect(page.locator('tr[data-queue="emails"] td').nth(2)).to_have_text("1")  # ready
    page.locator('tr[data-queue="emails"]').get_by_role(
        "button", name="Resume queue emails"
    ).click()
    expect(page.locator(".messages")).to_contain_text("Resumed queue emails.")

    wait_until(lambda: "while-paused" in lines(runs), "the resumed queue's job to run")
    wait_until(lambda: not Job.objects.filter(id=held.id).exists(), "the job to be recorded")
    assert lines(runs) == ["before-pause", "other-queue", "while-paused"]
    assert executor.poll() is None  # the executor kept running throughout
    assert list(AuditEntry.objects.order_by("id").values_list("action", flat=True)) == [
        "queue.pause",
        "queue.resume",
    ]
