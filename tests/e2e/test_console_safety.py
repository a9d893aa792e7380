"""Safety first, in a real browser: a misspelled filter is refused, and a failure group's action
asks first (exact count, the filter in words, a reason) and its link lists exactly the group."""

import re

import pytest
from playwright.sync_api import expect

from jobs.models import Job
from project.models import AuditEntry
from tests.batches import run_batches

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def seed_jobs():
    rows = [
        Job(
            handler="billing.tasks.charge",
            tenant_id="acme",
            retries=0,
            exception_message=f"card {i} declined",
            process_definition_key="invoice" if i % 3 == 0 else "other",
        )
        for i in range(9)
    ]
    rows.append(
        Job(handler="billing.tasks.charge", tenant_id="acme", retries=0, exception_message="boom")
    )
    rows.append(
        Job(handler="mail.send", tenant_id="acme", retries=0, exception_message="card 99 declined")
    )
    Job.objects.bulk_create(rows)


def test_a_misspelled_filter_is_refused_and_the_suggestion_repairs_it(
    page_for, operator_user, live_server
):
    seed_jobs()
    page = page_for(operator_user)
    page.goto(f"{live_server.url}/jobs/?status=failed&processDefinitonKey=invoice")
    errors = page.locator("#job-table .form-errors")
    expect(errors).to_contain_text("Unknown filter 'processDefinitonKey'")
    expect(errors).to_contain_text("did you mean 'processDefinitionKey'?")
    assert page.locator("#job-table tbody tr").count() == 0
    assert page.locator("[data-bulkbar]").count() == 0  # nothing to act on "all matching"
    assert "invoice" not in page.locator("#job-table").inner_text().split("Unknown")[0]

    page.click("#job-table [data-fixes] >> text=Use processDefinitionKey")
    page.wait_for_url(re.compile(r"processDefinitionKey=invoice"))
    expect(page.locator("#job-table h1")).to_have_text(re.compile(r"^3 jobs"))
    expect(page.locator("#job-table .chips")).to_contain_text("Process definition key: invoice")


def test_a_group_action_confirms_and_the_group_link_lists_exactly_the_group(
    page_for, operator_user, live_server
):
    seed_jobs()
    page = page_for(operator_user)
    page.goto(f"{live_server.url}/failures/?kind=job")
    row = page.locator("tr", has_text="card <n> declined").filter(has_text="billing.tasks.charge")
    expect(row.locator("td.num")).to_have_text("9")

    # The action asks first: exact count, the filter in words, retries and a reason.
    row.locator("button", has_text="Set retries").click()
    dialog = page.locator("dialog#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("[data-confirm-count]")).to_have_text("9 jobs")
    expect(dialog).to_contain_text(
        "Status: Failed; Handler: billing.tasks.charge; Failure group: card <n> declined"
    )
    # Nothing happened yet (the console's own snapshot refresh job aside: a view scheduled it).
    assert not Job.objects.filter(retries__gt=0).exclude(queue_name="console").exists()
    dialog.locator("input[name=retries]").fill("2")
    dialog.locator("input[name=reason]").fill("gateway back")
    dialog.locator("button[type=submit]").click()
    # A group's action is a batch: the confirmation leads to its page, the batch queue runs it.
    page.wait_for_url(re.compile(r"/batches/"))
    expect(page.locator(".messages, [role=status], body").first).to_contain_text(
        "set retries to 2 on 9 jobs"
    )
    run_batches()
    assert Job.objects.filter(retries=2).count() == 9
    assert Job.objects.filter(retries=0).count() == 2  # "boom" and the other handler's
    entry = AuditEntry.objects.get()
    assert entry.after["reason"] == "gateway back"
    assert entry.filter["failureGroup"] == "card <n> declined"

    # The remaining group of the other handler links to exactly its one row.
    page.goto(f"{live_server.url}/failures/?kind=job")
    other = page.locator("tr", has_text="mail.send")
    expect(other.locator("td.num")).to_have_text("1")
    other.locator("td.msg a").click()
    page.wait_for_url(re.compile(r"/jobs/\?.*failureGroup="))
    expect(page.locator("#job-table h1")).to_have_text(re.compile(r"^1 job\b"))
    assert page.locator("#job-table tbody tr").count() == 1
