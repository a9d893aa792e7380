"""The overview refreshes itself in a real browser, and stops while its tab is hidden."""

import pytest
from playwright.sync_api import expect

from console.models import Snapshot
from jobs.models import Job
from tests.conftest import make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

HIDE = (
    "Object.defineProperty(document, 'visibilityState', {value: 'hidden', configurable: true});"
    "document.dispatchEvent(new Event('visibilitychange'))"
)
SHOW = (
    "Object.defineProperty(document, 'visibilityState', {value: 'visible', configurable: true});"
    "document.dispatchEvent(new Event('visibilitychange'))"
)


def fail_a_job():
    Job.objects.create(handler="billing.tasks.charge", tenant_id="acme", retries=0)
    # The overview reads a shared snapshot of its numbers: without it the next refresh counts.
    Snapshot.objects.all().delete()


def test_overview_refreshes_itself_and_pauses_while_hidden(page_for, settings):
    settings.TASKYARD_CONSOLE = {"OVERVIEW_REFRESH": 1}
    user = make_user("bob", "operator", ["acme"])
    page = page_for(user)
    refreshes = []
    page.on(
        "request",
        lambda request: (
            refreshes.append(request.url)
            if request.headers.get("hx-request") == "true" and "window=" in request.url
            else None
        ),
    )
    failed = page.locator('[data-status="job-failed"] .n')
    expect(failed).to_have_text("0")
    page.evaluate("window.sameDocument = true")

    fail_a_job()
    # A new failed job appears without a reload: the same document, the partial swapped.
    expect(failed).to_have_text("1", timeout=10_000)
    assert page.evaluate("window.sameDocument") is True
    assert refreshes and all("window=24h" in url for url in refreshes)

    page.evaluate(HIDE)
    page.wait_for_timeout(1_500)  # a refresh already under way may still land
    seen = len(refreshes)
    fail_a_job()
    page.wait_for_timeout(3_500)  # several refresh intervals
    assert len(refreshes) == seen, "polled while the tab was hidden"
    expect(failed).to_have_text("1")

    page.evaluate(SHOW)
    # Visible again: refreshed at once, then polling resumes.
    expect(failed).to_have_text("2", timeout=5_000)


def test_overview_window_choice_is_kept_in_the_url_and_the_refresh(page_for, settings):
    settings.TASKYARD_CONSOLE = {"OVERVIEW_REFRESH": 1}
    user = make_user("bob", "operator", ["acme"])
    page = page_for(user)
    page.get_by_role("link", name="7d", exact=True).click()
    page.wait_for_url("**/?window=7d")
    expect(page.locator("#chart-title")).to_contain_text("last 7d")
    with page.expect_request(lambda r: "window=7d" in r.url and r.headers.get("hx-request")):
        pass
    expect(page.locator("#chart-title")).to_contain_text("last 7d")


def test_overview_cards_fit_their_columns_at_1440(page_for):
    user = make_user("bob", "operator", ["acme"])
    for i in range(3):
        Job.objects.create(
            handler="billing.integrations.very_long_module_name.handlers."
            f"charge_the_customer_again_and_again_{i}",
            tenant_id="acme",
            retries=0,
        )
    page = page_for(user)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.reload()
    overflowing = page.evaluate(
        """() => Array.from(document.querySelectorAll('#overview-body .card'))
              .filter(card => card.scrollWidth > card.clientWidth + 1)
              .map(card => `${card.querySelector("h2").textContent}: ${card.scrollWidth}px`
                           + ` of ${card.clientWidth}px`)"""
    )
    assert overflowing == []
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
