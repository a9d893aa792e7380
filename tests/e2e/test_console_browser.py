"""The console in a real browser (Debian chromium through Playwright): few, end-to-end tests."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from external_tasks.models import ExternalTask
from project.models import AuditEntry
from tests.console.conftest import run_batches

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def seed_tasks():
    now = timezone.now()
    tasks = []
    for i in range(40):
        tasks.append(
            ExternalTask(
                topic_name="invoice" if i % 4 else "shipping",
                tenant_id="acme",
                priority=i,
                retries=0 if i % 2 else None,
                error_message=f"timeout after {i} s" if i % 2 else None,
                create_time=now - timedelta(minutes=i),
                business_key=f"ORDER-{i}",
            )
        )
    ExternalTask.objects.bulk_create(tasks)


def first_row_id(page):
    return page.locator("#task-table tbody tr").first.get_attribute("data-id")


def test_filter_search_sort_page_reload_back_and_open_detail(page_for, operator_user, live_server):
    seed_tasks()
    page = page_for(operator_user)
    page.goto(f"{live_server.url}/external-tasks/")
    assert page.locator("#task-table h1").inner_text() == "40 external tasks"

    # Two filters (one inline, one under "More filters") and the free-text search.
    page.fill("#task-filters input[name=topicName]", "invoice")
    page.wait_for_url(re.compile(r"topicName=invoice"))
    page.click("#task-filters summary")
    page.fill("#task-filters input[name=priorityHigherThanOrEquals]", "4")
    page.wait_for_url(re.compile(r"priorityHigherThanOrEquals=4"))
    page.fill("#task-filters input[name=q]", "timeout")
    page.wait_for_url(re.compile(r"q=timeout"))
    expect(page.locator("#task-table h1")).to_have_text(re.compile(r"^18 "))
    assert "Topic name: invoice" in page.locator("#task-table .chips").inner_text()

    # Sort by priority (click, then click again for descending) and add created (shift-click).
    page.click("#task-table th >> text=Priority")
    page.wait_for_url(re.compile(r"sort=-priority"))
    page.click("#task-table th >> text=Created", modifiers=["Shift"])
    page.wait_for_url(re.compile(r"sort=-priority%2C-created"))
    assert page.locator("#task-table th[aria-sort]").count() == 2
    top = ExternalTask.objects.filter(topic_name="invoice", retries=0).order_by("-priority")[0]
    assert first_row_id(page) == top.pk

    # Page forward with a smaller page size.
    page.select_option("#task-filters select[name=size]", "25")
    page.wait_for_url(re.compile(r"size=25"))
    page.fill("#task-filters input[name=q]", "")
    expect(page.locator("#task-table h1")).to_have_text(re.compile(r"^27 "))
    page.click("#task-table a[rel=next]")
    page.wait_for_url(re.compile(r"page=2"))
    second_page_first = first_row_id(page)
    url = page.url

    # Reload and back restore the same view.
    page.reload()
    assert page.url == url and first_row_id(page) == second_page_first
    assert page.locator("#task-filters input[name=topicName]").input_value() == "invoice"
    page.go_back()
    page.wait_for_url(lambda u: "page=2" not in u)
    assert page.locator("#task-table a[rel=next]").count() == 1

    # Open a detail page from the table.
    row_id = first_row_id(page)
    page.click(f"#task-table tr[data-id='{row_id}'] td a >> nth=0")
    page.wait_for_url(re.compile(r"/external-tasks/" + row_id))
    assert row_id in page.locator("h1").inner_text()


def test_select_all_matching_set_retries_confirm_and_audit(page_for, operator_user, live_server):
    seed_tasks()
    page = page_for(operator_user)
    page.goto(f"{live_server.url}/external-tasks/?noRetriesLeft=true&topicName=invoice")
    assert page.locator(".bulkbar").is_hidden()
    page.locator("#task-table tbody input[name=ids]").first.check()
    assert page.locator(".bulkbar").is_visible()
    assert page.locator("[data-selected-count]").inner_text() == "1"
    page.check("[data-scope-matching]")
    page.click(".bulkbar button[value=set_retries]")
    dialog = page.locator("dialog#confirm-dialog")
    dialog.wait_for(state="visible")
    assert "20 external tasks" in dialog.inner_text()
    assert "No retries left; Topic name: invoice" in dialog.inner_text()
    page.fill("#confirm-retries", "5")
    page.fill("#confirm-reason", "gateway fixed")
    assert "This starts a batch" in dialog.inner_text()
    dialog.locator("button[type=submit]").click()
    # All matching rows: a batch, and the confirmation leads to its page.
    page.wait_for_url(re.compile(r"/batches/[^/]+/$"))
    assert (
        "Batch started: set retries to 5 on 20 external tasks."
        in page.locator(".messages").inner_text()
    )
    run_batches()
    page.reload()
    assert page.locator("#batch-progress [data-state]").inner_text() == "Completed"
    assert ExternalTask.objects.filter(topic_name="invoice", retries=5).count() == 20
    page.goto(f"{live_server.url}/external-tasks/?noRetriesLeft=true&topicName=invoice")
    assert page.locator("#task-table h1").inner_text() == "0 external tasks"
    page.click("nav.side >> text=Audit")
    row = page.locator("#audit-table tbody tr").first
    assert "external_task.set_retries" in row.inner_text() and "bob" in row.inner_text()
    assert AuditEntry.objects.get().after["reason"] == "gateway fixed"


def test_suspend_from_detail_page_and_viewer_sees_no_actions_in_dark_mode(
    page_for, operator_user, viewer_user, live_server
):
    task = ExternalTask.objects.create(topic_name="invoice", tenant_id="acme")
    page = page_for(operator_user)
    page.goto(f"{live_server.url}/external-tasks/{task.pk}/")
    page.click("button[value=suspend]")
    page.wait_for_selector(".messages")
    assert "Suspended on 1 external task." in page.locator(".messages").inner_text()
    assert page.locator(".idline .badge").inner_text().endswith("Suspended")

    viewer = page_for(viewer_user, color_scheme="dark")
    viewer.goto(f"{live_server.url}/external-tasks/{task.pk}/")
    assert viewer.locator("button[name=action]").count() == 0
    viewer.goto(f"{live_server.url}/external-tasks/")
    assert viewer.locator("input[name=ids]").count() == 0
    background = viewer.evaluate("getComputedStyle(document.body).backgroundColor")
    red, green, blue = (int(n) for n in re.findall(r"\d+", background)[:3])
    assert red + green + blue < 120, background  # the dark palette is in use


def test_live_refresh_keeps_selection_and_announces_new_rows_and_keyboard_works(
    page_for, operator_user, live_server
):
    first = ExternalTask.objects.create(topic_name="invoice", tenant_id="acme")
    page = page_for(operator_user)
    page.goto(f"{live_server.url}/external-tasks/")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.name") == "q"
    page.keyboard.press("Escape")
    page.keyboard.press("j")
    assert page.locator("tr.current").get_attribute("data-id") == first.pk
    page.locator(f"input[name=ids][value='{first.pk}']").check()
    page.check("[data-live]")
    ExternalTask.objects.create(topic_name="invoice", tenant_id="acme")
    # The table refreshes itself within one live interval (5 s).
    expect(page.locator("#task-table h1")).to_have_text("2 external tasks", timeout=12_000)
    assert page.locator(f"input[name=ids][value='{first.pk}']").is_checked()
    assert page.locator("[data-live]").is_checked()
    expect(page.locator("#announcer")).to_have_text("1 new row, 0 changed")
