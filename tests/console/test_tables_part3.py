"""A table one can read: the column chooser, whole ids, Due with undated rows last, the audit's
before → after in words, thousands separators and the favicon."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from console.models import ColumnChoice
from console.resources import EXTERNAL_TASKS, JOBS
from console.tables import Table
from jobs.models import Job, JobLog
from project.models import AuditEntry
from tests.batches import run_batches
from tests.console.conftest import HTMX, make_job, make_task

pytestmark = pytest.mark.django_db


def html_of(response) -> str:
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def headers(html: str) -> list[str]:
    """The column headers of the table on the page, in order (links' text or plain text)."""
    head = re.search(r"<thead>(.*?)</thead>", html, re.S).group(1)
    cells = re.findall(r"<th[^>]*scope=\"col\"[^>]*>(.*?)</th>", head, re.S)
    return [re.sub(r"<[^>]+>|[▲▼\d]", "", cell).strip() for cell in cells]


def row_ids(html: str) -> list[str]:
    return re.findall(r'<tr data-href="[^"]+" data-id="([^"]+)"', html)


def body_rows(html: str) -> list[str]:
    body = re.search(r"<tbody>(.*?)</tbody>", html, re.S).group(1)
    return re.findall(r"<tr data-href.*?</tr>", body, re.S)


# ---------------------------------------------------------------------------------------------
# Column chooser


def test_the_job_table_starts_with_its_default_columns_not_every_column(operator_client):
    make_job()
    shown = headers(html_of(operator_client.get("/jobs/")))
    default = ["ID", "Status", "Handler", "Retries", "Priority", "Due", "Created", "Exception"]
    assert shown == default
    assert "Tenant" not in shown and "Process instance" not in shown


def test_a_saved_column_choice_is_remembered_for_that_user_and_that_kind_only(
    operator_client, viewer_client, operator_user
):
    make_job(tenant_id="acme")
    make_task()
    response = operator_client.post(
        "/jobs/columns/", {"columns": ["status", "tenant", "priority"], "next": "/jobs/?size=25"}
    )
    assert response.status_code == 302 and response["Location"] == "/jobs/?size=25"
    # The id stays: it is the link to the row.
    assert ColumnChoice.objects.get(user=operator_user, kind="job").columns == [
        "id",
        "status",
        "priority",
        "tenant",
    ]
    html = html_of(operator_client.get("/jobs/"))
    assert headers(html) == ["ID", "Status", "Priority", "Tenant"]
    assert "<td>acme</td>" in html and "billing.tasks.charge" not in html
    # Another user, and the same user's other table, keep their defaults.
    assert "Handler" in headers(html_of(viewer_client.get("/jobs/")))
    assert "Topic" in headers(html_of(operator_client.get("/external-tasks/")))
    # Choosing again replaces the choice; reset forgets it.
    operator_client.post("/jobs/columns/", {"columns": "handler"})
    assert headers(html_of(operator_client.get("/jobs/"))) == ["ID", "Handler"]
    operator_client.post("/jobs/columns/", {"reset": "1", "columns": "handler"})
    assert not ColumnChoice.objects.filter(user=operator_user).exists()
    assert "Exception" in headers(html_of(operator_client.get("/jobs/")))


def test_columns_in_the_url_override_the_saved_choice_without_replacing_it(
    operator_client, operator_user
):
    make_task(business_key="ORDER-1", tenant_id="acme")
    operator_client.post("/external-tasks/columns/", {"columns": ["topic"]})
    html = html_of(operator_client.get("/external-tasks/?columns=tenant,business_key"))
    assert headers(html) == ["ID", "Business key", "Tenant"]  # the table's order, not the URL's
    assert "ORDER-1" in html
    # Sort links, paging and the filter form keep the link's columns; it is not a filter chip.
    assert re.search(r'href="/external-tasks/\?columns=tenant%2Cbusiness_key&amp;sort=', html)
    assert 'name="columns" value="id,business_key,tenant" form="task-filters"' in html
    assert "Columns: " not in html and 'class="chips"' not in html
    # Repeated keys work as well as commas.
    repeated = operator_client.get("/external-tasks/?columns=tenant&columns=topic")
    assert headers(html_of(repeated)) == ["ID", "Topic", "Tenant"]
    saved = ColumnChoice.objects.get(user=operator_user, kind="task")
    assert saved.columns == ["id", "topic"]
    assert headers(html_of(operator_client.get("/external-tasks/"))) == ["ID", "Topic"]


def test_an_unknown_column_is_refused_naming_it(operator_client, operator_user):
    job = make_job()
    response = operator_client.get("/jobs/?columns=status,handlr")
    html = html_of(response)
    assert "Unknown column &#x27;handlr&#x27;: the columns are id, status, handler" in html
    assert row_ids(html) == [] and job.pk not in html
    post = operator_client.post("/jobs/columns/", {"columns": ["status", "colour"]})
    assert post.status_code == 400
    assert "Unknown column 'colour'" in post.content.decode()
    assert not ColumnChoice.objects.filter(user=operator_user).exists()


def test_an_empty_columns_parameter_means_no_override(operator_client):
    make_job()
    assert "Handler" in headers(html_of(operator_client.get("/jobs/?columns=")))


def test_a_stored_choice_of_a_column_that_no_longer_exists_is_ignored(
    operator_client, operator_user
):
    make_job()
    ColumnChoice.objects.create(user=operator_user, kind="job", columns=["retired", "retries"])
    assert headers(html_of(operator_client.get("/jobs/"))) == ["ID", "Retries"]


def test_the_column_chooser_only_goes_back_to_this_site(operator_client):
    response = operator_client.post(
        "/jobs/columns/", {"columns": "status", "next": "https://evil.example/"}
    )
    assert response["Location"] == "/jobs/"


@pytest.mark.parametrize("resource", [JOBS, EXTERNAL_TASKS], ids=["jobs", "tasks"])
@pytest.mark.parametrize("choice", ["all", "default", "one", "odd"])
def test_every_row_has_one_cell_per_shown_column(admin_client, resource, choice):
    if resource is JOBS:
        make_job(process_instance_id="pi-1", lock_owner="w", tenant_id=None)
        path = "/jobs/"
    else:
        make_task(process_instance_id="pi-1", worker_id="w", business_key="b")
        path = "/external-tasks/"
    keys = [c.key for c in resource.columns]
    query = {
        "all": "?columns=" + ",".join(keys),
        "default": "",
        "one": "?columns=status",
        "odd": "?columns=" + ",".join(keys[1::2]),
    }[choice]
    html = html_of(admin_client.get(path + query))
    shown = headers(html)
    for row in body_rows(html):
        # One cell for the selection box and row menu, then one per shown column.
        assert row.count("<td") == 1 + len(shown), (shown, row)


def test_the_page_offers_a_chooser_with_every_column_of_the_kind(operator_client):
    make_job()
    html = html_of(operator_client.get("/jobs/?columns=tenant"))
    chooser = re.search(r'<details class="colchooser">(.*?)</details>', html, re.S).group(1)
    assert 'action="/jobs/columns/"' in chooser
    offered = re.findall(r'name="columns" value="([a-z_]+)"', chooser)
    assert offered == [c.key for c in JOBS.columns]
    assert 'value="tenant" checked' in chooser and 'value="handler">' in chooser
    assert 'value="id" checked disabled' in chooser
    assert "from the link" in html
    # "Show my columns" goes back to the same view without the override.
    assert '<input type="hidden" name="next" value="/jobs/?">' in chooser


# ---------------------------------------------------------------------------------------------
# Whole ids behind short ones


def test_ids_show_short_keep_the_whole_id_and_offer_a_copy_button(operator_client):
    job = make_job(process_instance_id="process-instance-with-a-long-id-0001")
    html = html_of(operator_client.get("/jobs/?columns=id,process"))
    assert f'<code class="id" title="{job.pk}">{job.pk}</code>' in html
    assert f'data-copy-text="{job.pk}"' in html and f'aria-label="Copy {job.pk}"' in html
    assert 'href="/jobs/?processInstanceId=process-instance-with-a-long-id-0001"' in html
    assert 'data-copy-text="process-instance-with-a-long-id-0001"' in html


# ---------------------------------------------------------------------------------------------
# Due: rows without a due date come last ascending, first descending


def _jobs_with_and_without_due_dates(dated: int, undated: int) -> tuple[list[str], list[str]]:
    now = timezone.now()
    jobs = [
        Job(id=f"due-{i:03d}", handler="h", tenant_id="acme", due_date=now + timedelta(hours=i))
        for i in range(dated)
    ]
    # Ids out of order with the due dates: the tie-break of the undated rows is by id.
    jobs += [
        Job(id=f"none-{i:03d}", handler="h", tenant_id="acme", due_date=None)
        for i in reversed(range(undated))
    ]
    Job.objects.bulk_create(jobs)
    return [f"due-{i:03d}" for i in range(dated)], [f"none-{i:03d}" for i in range(undated)]


def _all_pages(client, query: str) -> list[str]:
    ids, page = [], 1
    while True:
        html = html_of(client.get(f"/jobs/?{query}&size=25&page={page}", headers=HTMX))
        found = row_ids(html)
        if not found:
            return ids
        ids += found
        page += 1


def test_due_ascending_puts_rows_without_a_due_date_last_on_every_page(operator_client):
    dated, undated = _jobs_with_and_without_due_dates(27, 26)
    # Page 2 starts in the dated rows and ends in the undated ones; page 3 is undated only.
    assert _all_pages(operator_client, "sort=due") == dated + undated
    page_2 = row_ids(html_of(operator_client.get("/jobs/?sort=due&size=25&page=2")))
    assert page_2 == dated[25:] + undated[:23]


def test_due_descending_puts_rows_without_a_due_date_first_exactly_reversed(operator_client):
    dated, undated = _jobs_with_and_without_due_dates(27, 26)
    assert _all_pages(operator_client, "sort=-due") == list(reversed(dated + undated))
    page_3 = row_ids(html_of(operator_client.get("/jobs/?sort=-due&size=25&page=3")))
    assert page_3 == list(reversed(dated))[24:]


def test_due_with_only_dated_or_only_undated_rows_and_a_further_sort_key(operator_client):
    now = timezone.now()
    make_job(id="a-low", due_date=None, priority=1)
    make_job(id="b-high", due_date=None, priority=9)
    make_job(id="c-dated", due_date=now, priority=5)
    # Undated rows go by the next key (priority, descending), then by id.
    html = html_of(operator_client.get("/jobs/?sort=due,-priority"))
    assert row_ids(html) == ["c-dated", "b-high", "a-low"]
    html = html_of(operator_client.get("/jobs/?sort=-due,priority"))
    assert row_ids(html) == ["a-low", "b-high", "c-dated"]
    assert row_ids(html_of(operator_client.get("/jobs/?q=c-dated&sort=due"))) == ["c-dated"]
    assert row_ids(html_of(operator_client.get("/jobs/?status=failed&sort=due"))) == []
    # Due as a second key puts its undated rows last within the first key's ties as well.
    make_job(id="d-same", due_date=None, priority=5)
    html = html_of(operator_client.get("/jobs/?sort=priority,due"))
    assert row_ids(html) == ["a-low", "c-dated", "d-same", "b-high"]


def test_a_first_click_on_due_sorts_ascending_and_created_descending(operator_client):
    make_job()
    html = html_of(operator_client.get("/jobs/"))
    assert 'href="/jobs/?sort=due"' in html and 'href="/jobs/?sort=-created"' not in html
    assert 'href="/jobs/?sort=-priority"' in html


def test_the_export_follows_the_consoles_due_order(operator_client):
    dated, undated = _jobs_with_and_without_due_dates(2, 2)
    response = operator_client.get("/jobs/export/?format=csv&sort=due")
    body = b"".join(response.streaming_content).decode()
    exported = [line.split(",")[0] for line in body.splitlines()[1:]]
    assert exported == dated + undated


def test_the_rest_api_keeps_camundas_order_with_undated_jobs_first(operator_api):
    dated, undated = _jobs_with_and_without_due_dates(2, 2)
    response = operator_api.get("/engine-rest/job?sortBy=jobDueDate&sortOrder=asc")
    assert [job["id"] for job in response.json()] == undated + dated


@pytest.mark.postgres
@pytest.mark.parametrize("sort", ["due", "-due", "due,-priority"])
@pytest.mark.parametrize("filters", ["", "processDefinitionKey=invoice"])
def test_due_order_is_read_from_an_index_on_postgres(operator_user, sort, filters):
    """With sorting priced out, PostgreSQL still needs no Sort step: an index delivers each
    part of the console's Due order (while ORDER BY ... NULLS LAST itself would need one)."""
    from django.http import QueryDict

    _jobs_with_and_without_due_dates(30, 30)
    table = Table(QueryDict(f"{filters}&sort={sort}&page=2&size=25"), operator_user, JOBS, "/jobs/")
    with CaptureQueriesContext(connection) as captured:
        table.evaluate()
    ordered = [q["sql"] for q in captured if "ORDER BY" in q["sql"] and "jobs_job" in q["sql"]]
    assert len(ordered) == 2  # the dated part ran out inside the page: both parts were read
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("SET LOCAL enable_seqscan = off")
        plans = []
        for sql in ordered:
            cursor.execute("EXPLAIN " + sql)
            plans.append("\n".join(row[0] for row in cursor.fetchall()))
        lead_only = sort in ("due", "-due")
        for plan in plans:
            if lead_only:
                assert not re.search(r"^\s*(->\s*)?Sort\b", plan, re.M), plan
                # The due-date sort indexes, entered at the part's own end of them.
                assert re.search(r"using job_(due|pdkey)_idx", plan), plan
                assert re.search(r"Index Cond: .*due_date IS (NOT )?NULL", plan), plan
        cursor.execute(
            "EXPLAIN SELECT id FROM jobs_job ORDER BY due_date ASC NULLS LAST, id LIMIT 25"
        )
        plain = "\n".join(row[0] for row in cursor.fetchall())
        assert re.search(r"Sort\b", plain)  # why the order is read in two parts


# ---------------------------------------------------------------------------------------------
# The audit page says what changed


def test_the_audit_page_reads_a_retries_batch_of_26_jobs_in_words(operator_client):
    jobs = [make_job(retries=0, exception_message="boom") for _ in range(26)]
    make_job(retries=2)
    response = operator_client.post(
        "/jobs/actions/",
        {
            "action": "set_retries",
            "scope": "matching",
            "query": "noRetriesLeft=true",
            "retries": "3",
            "confirmed": "1",
            "reason": "vendor fixed",
        },
    )
    assert response.status_code == 302
    run_batches()  # an all-matching action is a batch: the executor's batch queue does it
    assert Job.objects.filter(pk__in=[j.pk for j in jobs], retries=3).count() == 26
    html = html_of(operator_client.get("/audit/"))
    # An all-matching action ran as a batch: its entry says what it set (from what, as a
    # synchronous action's does) and what it did.
    assert "retries: 0 → 3 (26 jobs)" in html
    assert "changed → 26" in html and "outcome → completed" in html
    assert "reason: “vendor fixed”" in html
    assert "filter: noRetriesLeft=true" in html
    # No Python or JSON dict anywhere in the table.
    assert "{&#x27;" not in html and "{'" not in html and '{"retries' not in html


def test_the_audit_diff_lists_each_old_value_and_single_task_changes(operator_client):
    a, b, c = make_job(retries=0), make_job(retries=0), make_job(retries=1)
    operator_client.post(
        "/jobs/actions/",
        {"action": "set_retries", "scope": "ids", "ids": [a.pk, b.pk, c.pk]}
        | {"retries": "5", "confirmed": "1"},
    )
    task = make_task(priority=1000)
    operator_client.post(
        "/external-tasks/actions/",
        {"action": "set_priority", "scope": "ids", "ids": task.pk}
        | {"priority": "2500000", "confirmed": "1"},
    )
    operator_client.post(
        "/external-tasks/actions/",
        {"action": "suspend", "scope": "ids", "ids": task.pk, "confirmed": "1"},
    )
    html = html_of(operator_client.get("/audit/"))
    assert "retries: 0 → 5 (2 jobs), 1 → 5 (1 job)" in html
    assert "priority: 1,000 → 2,500,000" in html
    assert "suspended: no → yes" in html or "suspended → yes" in html
    # The row's own page shows the same words.
    detail = html_of(operator_client.get(f"/external-tasks/{task.pk}/"))
    assert "priority: 1,000 → 2,500,000" in detail


def test_audit_change_words_for_entries_without_before(operator_client):
    AuditEntry.objects.create(
        username="bob",
        action="job_definition.set_priority",
        target_type="job_definition",
        count=1,
        before={"overridingJobPriority": None},
        after={"overridingJobPriority": 12000, "includeJobs": True, "jobsChanged": 1204},
        source="console",
    )
    AuditEntry.objects.create(username="bob", action="job.delete", target_type="job", count=2)
    html = html_of(operator_client.get("/audit/?action=job_definition"))
    assert "overriding job priority: none → 12,000" in html
    assert "include jobs → yes" in html and "jobs changed → 1,204" in html


# ---------------------------------------------------------------------------------------------
# Thousands separators


def test_numbers_have_thousands_separators_in_tables_facts_history_and_paging(operator_client):
    job = make_job(priority=1234567, retries=12000)
    JobLog.objects.create(job_id=job.pk, event="failed", tenant_id="acme", duration_ms=12345.4)
    html = html_of(operator_client.get("/jobs/"))
    assert '<td class="num">1,234,567</td>' in html and '<td class="num">12,000</td>' in html
    detail = html_of(operator_client.get(f"/jobs/{job.pk}/"))
    assert "<dd>1,234,567</dd>" in detail and "<dd>12,000</dd>" in detail
    assert "12,345 ms" in detail
    task = make_task(priority=-5000, retries=1000)
    assert '<td class="num">-5,000</td>' in html_of(operator_client.get("/external-tasks/"))
    assert "<dd>1,000</dd>" in html_of(operator_client.get(f"/external-tasks/{task.pk}/"))


def test_deep_pages_say_where_they_are_with_separators(operator_client):
    Job.objects.bulk_create(Job(handler="h", tenant_id="acme") for _ in range(1030))
    html = html_of(operator_client.get("/jobs/?size=50&page=21"))
    # Past the bounded count (1,000+), paging still says where it is, with separators.
    assert "showing 1,001–1,030" in html and "1,000+ jobs" in html


def test_a_confirmation_result_says_the_new_value_with_separators(operator_client):
    job = make_job()
    response = operator_client.post(
        "/jobs/actions/",
        {"action": "set_priority", "scope": "ids", "ids": job.pk}
        | {"priority": "1500000", "confirmed": "1"},
        follow=True,
    )
    assert "Priority set to 1,500,000 on 1 job" in response.content.decode()


# ---------------------------------------------------------------------------------------------
# Favicon, phone menu, keyboard help


def test_every_page_links_a_favicon_that_is_served(operator_client):
    html = html_of(operator_client.get("/jobs/"))
    match = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', html)
    assert match and match.group(1).endswith("console/favicon.svg")
    response = operator_client.get(match.group(1))
    assert response.status_code == 200
    assert "svg" in response["Content-Type"]
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert body.lstrip().startswith(b"<svg")


def test_the_shell_has_a_menu_button_and_the_shortcuts_are_listed(operator_client):
    html = html_of(operator_client.get("/"))
    assert 'aria-controls="side-nav"' in html and 'id="side-nav"' in html
    assert "(press /)" in html
    for key in ("<kbd>r</kbd>", "<kbd>s</kbd>", "<kbd>u</kbd>", "<kbd>b</kbd>", "<kbd>n</kbd>"):
        assert key in html
