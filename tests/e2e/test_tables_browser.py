"""A table one can read, in a real browser: the phone layout, the keyboard, copying ids and the
column chooser (Debian chromium through Playwright)."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from jobs.models import Job, JobLog
from project.models import AuditEntry

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PHONE = {"width": 390, "height": 844}
OVERFLOW = "document.scrollingElement.scrollWidth - window.innerWidth"


def seed_jobs(n=60):
    now = timezone.now()
    jobs = [
        Job(
            id=f"job-{i:03d}-with-a-rather-long-identifier-0000000000",
            handler="billing.tasks.charge_customer_for_the_monthly_subscription",
            tenant_id="acme",
            retries=0 if i % 3 == 0 else 3,
            priority=1000 * i,
            due_date=now + timedelta(minutes=i) if i % 2 else None,
            exception_message="ConnectionError: the payment provider did not answer in 30 s"
            if i % 3 == 0
            else None,
            exception_stacktrace="Traceback (most recent call last):\n  " + "x" * 400
            if i % 3 == 0
            else None,
            process_instance_id=f"process-instance-{i:03d}-0000000000000000000000",
            create_time=now - timedelta(minutes=i),
        )
        for i in range(n)
    ]
    Job.objects.bulk_create(jobs)
    return jobs


def test_phone_layout_has_no_horizontal_overflow_and_the_menu_opens(
    page_for, operator_user, live_server
):
    jobs = seed_jobs(12)
    JobLog.objects.create(job_id=jobs[0].pk, event="failed", tenant_id="acme", duration_ms=1500)
    AuditEntry.objects.create(
        username="bob",
        action="job.set_retries",
        target_type="job",
        target_ids=[jobs[0].pk],
        count=1,
        before={"retries": {"0": 1}},
        after={"retries": 3},
    )
    page = page_for(operator_user)
    page.set_viewport_size(PHONE)
    for path in (
        "/",
        "/jobs/",
        "/jobs/?columns=" + ",".join(["id", "handler", "message", "process", "lock", "tenant"]),
        f"/jobs/{jobs[0].pk}/",
        "/external-tasks/",
        "/audit/",
        "/failures/",
        "/topics/",
    ):
        page.goto(live_server.url + path)
        assert page.evaluate(OVERFLOW) <= 0, path
    # The navigation waits behind the menu button instead of taking a third of the screen.
    page.goto(f"{live_server.url}/jobs/{jobs[0].pk}/")
    nav = page.locator("nav.side")
    expect(nav).to_be_hidden()
    page.click("[data-nav-toggle]")
    expect(nav).to_be_visible()
    assert page.get_attribute("[data-nav-toggle]", "aria-expanded") == "true"
    assert page.evaluate(OVERFLOW) <= 0
    # Facts read as label over value: a value gets most of the width, not one letter a line.
    widths = page.eval_on_selector_all("dl.facts dd", "dds => dds.map(d => d.clientWidth)")
    assert min(widths) > 250, widths
    # The table scrolls inside its own frame.
    page.goto(f"{live_server.url}/jobs/?columns=id,handler,message,process,lock,tenant")
    frame = page.locator(".table-wrap").first
    assert frame.evaluate("el => el.scrollWidth > el.clientWidth")


def test_desktop_keeps_the_side_navigation_without_a_menu_button(
    page_for, operator_user, live_server
):
    page = page_for(operator_user)
    page.goto(f"{live_server.url}/jobs/")
    expect(page.locator("nav.side")).to_be_visible()
    expect(page.locator("[data-nav-toggle]")).to_be_hidden()


def test_keyboard_search_rows_select_act_bulk_bar_and_paging(page_for, operator_user, live_server):
    jobs = seed_jobs(60)
    page = page_for(operator_user)
    # The overview the login landed on scheduled the console's snapshot refresh: a job too,
    # the newest; the rows below are the seeded ones.
    Job.objects.filter(queue_name="console").delete()
    page.goto(f"{live_server.url}/jobs/?sort=-created")
    # "/" focuses the global search box, whose placeholder says so.
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "global-search"
    assert "(press /)" in page.get_attribute("#global-search", "placeholder")
    # No shortcuts while typing: j goes into the box.
    page.keyboard.type("jk")
    assert page.input_value("#global-search") == "jk"
    assert page.locator("tr.current").count() == 0
    page.keyboard.press("Escape")
    # j / k and the arrows move the current row.
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    page.keyboard.press("ArrowDown")
    current = page.locator("tr.current")
    expect(current).to_have_attribute("data-id", jobs[1].pk)
    # r on the current row opens the usual confirmation for exactly that row.
    page.keyboard.press("r")
    dialog = page.locator("dialog#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("h2")).to_contain_text("Set retries on 1 job")
    assert dialog.locator("input[name=ids]").get_attribute("value") == jobs[1].pk
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    # x selects; s then acts on the selection (two rows), through the confirmation.
    page.keyboard.press("x")
    page.keyboard.press("j")
    page.keyboard.press("x")
    assert page.locator("tbody input[name=ids]:checked").count() == 2
    page.keyboard.press("s")
    expect(dialog.locator("h2")).to_contain_text("Suspend on 2 jobs")
    dialog.locator("button[type=submit]").click()
    expect(page.locator(".messages")).to_contain_text("Suspended on 2 jobs")
    assert Job.objects.filter(suspended=True).count() == 2
    assert set(Job.objects.filter(suspended=True).values_list("pk", flat=True)) == {
        jobs[1].pk,
        jobs[2].pk,
    }
    # b reaches the bulk bar with one key even with nothing selected: "all matching" first.
    page.wait_for_load_state("load")  # the page after the action, its script included
    page.keyboard.press("b")
    expect(page.locator("[data-bulkbar]")).to_be_visible()
    assert page.evaluate("document.activeElement.matches('[data-scope-matching]')")
    page.keyboard.press("Escape")
    page.evaluate("document.activeElement.blur()")
    # n / p page without the mouse.
    page.keyboard.press("n")
    page.wait_for_url("**page=2**")
    expect(page.locator("tbody tr").first).to_have_attribute("data-id", jobs[50].pk)
    page.keyboard.press("p")
    page.wait_for_url(lambda url: "page=" not in url)
    expect(page.locator("tbody tr").first).to_have_attribute("data-id", jobs[0].pk)
    # ? lists the shortcuts.
    page.keyboard.press("?")
    help_dialog = page.locator("dialog#help")
    expect(help_dialog).to_be_visible()
    expect(help_dialog).to_contain_text("go to the bulk-action bar")
    page.keyboard.press("Escape")
    expect(help_dialog).to_be_hidden()
    # Enter opens the current row.
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/jobs/{jobs[1].pk}/")


def test_copy_an_id_with_one_click_and_choose_columns(page_for, operator_user, live_server):
    jobs = seed_jobs(3)
    page = page_for(operator_user)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(f"{live_server.url}/jobs/?sort=-created")
    cell = page.locator(f"tr[data-id='{jobs[0].pk}'] td.idcell")
    code = cell.locator("code.id")
    assert code.get_attribute("title") == jobs[0].pk
    # Shown short: the cell is narrower than the whole id would be.
    assert code.evaluate("el => el.scrollWidth > el.clientWidth")
    cell.locator("button.copy-id").click()
    expect(cell.locator("button.copy-id")).to_have_class("copy-id copied")
    assert page.evaluate("navigator.clipboard.readText()") == jobs[0].pk
    # The column chooser: untick Handler, tick Tenant, save; the table and a reload keep it.
    page.click("details.colchooser summary")
    page.uncheck("details.colchooser input[value=handler]")
    page.check("details.colchooser input[value=tenant]")
    page.click("details.colchooser button.primary")
    expect(page.locator(".messages")).to_contain_text("Columns saved")
    head = page.locator("#job-table thead")
    expect(head).to_contain_text("Tenant")
    expect(head).not_to_contain_text("Handler")
    page.reload()
    expect(page.locator("#job-table thead")).to_contain_text("Tenant")
    assert "sort=-created" in page.url
