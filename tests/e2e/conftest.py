"""Browser tests: Playwright driving Debian's chromium against pytest-django's live_server.

Playwright never downloads a browser here: it launches /usr/bin/chromium (apt-get install
chromium). Tests are marked `browser` and skipped when chromium is missing.
"""

import os
import shutil

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def browser(transactional_db, live_server):
    """A chromium for one test, started after the test database and stopped before it is
    flushed. While Playwright's sync API lives, an asyncio loop runs in this thread, and
    Django (asgiref's Local) then hands out a separate set of connections: the database
    fixtures must not set up or tear down inside that window, and later tests must not
    inherit a running loop."""
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        # Locally a missing browser skips; in CI (.ci/run installs it) it is a failure.
        message = f"chromium not installed at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from django.db import connections
    from playwright.sync_api import sync_playwright

    # With that loop running, Django refuses ORM calls from this thread unless told they are
    # safe (they are: the tests call the ORM between page steps, never inside the loop).
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                yield browser
            finally:
                browser.close()
                # The connections the test opened while the loop ran (PostgreSQL could not
                # drop the test database with them still open).
                connections.close_all()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page_for(browser, live_server):
    """page_for(user, color_scheme="light") -> a logged-in page on the live server."""
    contexts = []

    def open_page(user, color_scheme="light"):
        context = browser.new_context(
            color_scheme=color_scheme, viewport={"width": 1400, "height": 900}
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(f"{live_server.url}/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", f"{user.username}-password")
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/")
        return page

    yield open_page
    for context in contexts:
        context.close()
