"""The job and external task tables: filters from the shared FilterSets, search, sort, paging,
HTMX partials, bounded counts and tenant scoping."""

import re

import pytest

from console import tables
from jobs.models import JobDefinition
from tests.console.conftest import HTMX, ago, later, make_job, make_task

pytestmark = pytest.mark.django_db


def row_ids(response):
    return re.findall(r'<tr data-href="[^"]+" data-id="([^"]+)"', response.content.decode())


def test_job_table_full_page_has_shell_and_filters(operator_client):
    make_job()
    response = operator_client.get("/jobs/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" in html and 'id="job-filters"' in html and 'id="job-table"' in html
    assert "More filters" in html
    # Every FilterSet parameter is offered as a control, e.g. ones hidden under More filters.
    for name in ("dueDates", "createTimes", "priorityHigherThanOrEquals", "executable"):
        assert f'name="{name}"' in html
    assert response["Vary"] and "HX-Request" in response["Vary"]


def test_job_table_htmx_request_gets_only_the_table_partial(operator_client):
    make_job()
    response = operator_client.get("/jobs/?noRetriesLeft=true", headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="job-table"')
    assert "<html" not in html and 'id="job-filters"' not in html


def test_history_restore_request_gets_the_full_page(operator_client):
    response = operator_client.get("/jobs/", headers={**HTMX, "HX-History-Restore-Request": "true"})
    assert "<html" in response.content.decode()


def test_job_table_filters_with_filterset_parameters_and_search(operator_client):
    failed = make_job(retries=0, exception_message="card declined", process_definition_key="a")
    make_job(retries=0, exception_message="card declined", process_definition_key="b")
    make_job(retries=3, process_definition_key="a")
    response = operator_client.get("/jobs/?noRetriesLeft=true&processDefinitionKey=a&q=declined")
    assert row_ids(response) == [failed.pk]
    html = response.content.decode()
    assert "1 job" in html
    # Active filters show as removable chips whose link drops just that parameter.
    assert "Process definition key: a" in html
    assert 'href="/jobs/?noRetriesLeft=true&amp;q=declined"' in html


def test_search_matches_ids_exactly_and_messages_by_substring(operator_client):
    job = make_job(process_instance_id="order-77")
    other = make_job(exception_message="Timeout talking to SMTP")
    make_job()
    assert row_ids(operator_client.get("/jobs/?q=order-77")) == [job.pk]
    assert row_ids(operator_client.get("/jobs/?q=smtp")) == [other.pk]
    assert row_ids(operator_client.get(f"/jobs/?q={job.pk}")) == [job.pk]


def test_invalid_filter_value_shows_the_form_error_instead_of_ignoring_it(operator_client):
    make_job()
    response = operator_client.get("/jobs/?noRetriesLeft=maybe&dueDates=xx_2024-01-01")
    html = response.content.decode()
    assert response.status_code == 200
    assert row_ids(response) == []
    # The console's words, not the Camunda face's.
    assert (
        "No retries left is a yes/no filter: use true (or leave it out), not &#x27;maybe&#x27;"
        in html
    )
    assert "Due dates: &#x27;xx_2024-01-01&#x27; is not understood. Write gt_&lt;date&gt;" in html
    assert "expected true or false" not in html and "comparator" not in html
    assert 'aria-invalid="true"' in html or "field-error" in html


def test_timers_and_messages_together_is_reported(operator_client):
    response = operator_client.get("/jobs/?timers=true&messages=true")
    assert "cannot be used together" in response.content.decode()


def test_status_filter_matches_the_badges(operator_client):
    failed = make_job(retries=0)
    locked = make_job(lock_owner="ex-1", lock_expiration_time=later(minutes=5))
    expired = make_job(lock_owner="ex-1", lock_expiration_time=ago(minutes=5))
    retrying = make_job(retries=2, exception_message="boom")
    suspended = make_job(suspended=True)
    due = make_job(due_date=ago(minutes=1))
    waiting = make_job(due_date=later(hours=1))
    for status, job in [
        ("failed", failed),
        ("locked", locked),
        ("expired", expired),
        ("retrying", retrying),
        ("suspended", suspended),
        ("due", due),
        ("waiting", waiting),
    ]:
        response = operator_client.get(f"/jobs/?status={status}")
        assert row_ids(response) == [job.pk], status
        label = job.status_at().label
        assert f">{label}</span>" in response.content.decode()


def test_job_of_a_suspended_job_definition_shows_suspended_everywhere(operator_client):
    """The executor skips jobs of a suspended job definition; the console says so alike: the
    badge, the status filter, the overview tile and the detail page (issue 19's defect: they
    used to show "Due")."""
    definition = JobDefinition.objects.create(suspended=True, tenant_id="acme")
    job = make_job(job_definition=definition, due_date=ago(minutes=1))
    assert row_ids(operator_client.get("/jobs/?status=suspended")) == [job.pk]
    assert row_ids(operator_client.get("/jobs/?status=due")) == []
    html = operator_client.get("/jobs/").content.decode()
    assert (
        f'data-id="{job.pk}"' in html and ">Suspended</span>" in html and ">Due</span>" not in html
    )
    detail = operator_client.get(f"/jobs/{job.pk}/").content.decode()
    assert 'class="badge suspended" title="will not run until activated' in detail
    overview = operator_client.get("/").content.decode()
    suspended_tile = '<span class="n">1</span><span class="l"><span class="badge suspended">'
    assert suspended_tile in overview
    assert '<span class="n">0</span><span class="l"><span class="badge due">' in overview


def test_unknown_status_is_an_error(operator_client):
    response = operator_client.get("/jobs/?status=sleepy")
    assert "Unknown status" in response.content.decode()


def test_sort_by_two_columns(operator_client):
    a = make_job(priority=5, retries=1)
    b = make_job(priority=5, retries=3)
    c = make_job(priority=9, retries=2)
    response = operator_client.get("/jobs/?sort=-priority,retries")
    assert row_ids(response) == [c.pk, a.pk, b.pk]
    html = response.content.decode()
    assert 'aria-sort="descending"' in html and 'aria-sort="ascending"' in html
    # Shift-click target: adds a third key after the existing ones.
    assert "sort=-priority%2Cretries%2C-created" in html


def test_sorting_is_offered_only_on_indexed_columns(operator_client):
    response = operator_client.get("/jobs/?sort=handler")
    assert "Cannot sort by &#x27;handler&#x27;" in response.content.decode()


def test_paging_forward_and_back_with_page_size(operator_client):
    jobs = [make_job(priority=i) for i in range(30)]
    first = operator_client.get("/jobs/?sort=priority&size=25")
    assert row_ids(first) == [j.pk for j in jobs[:25]]
    assert "page=2" in first.content.decode()
    second = operator_client.get("/jobs/?sort=priority&size=25&page=2")
    assert row_ids(second) == [j.pk for j in jobs[25:]]
    assert 'rel="prev"' in second.content.decode()
    assert 'rel="next"' not in second.content.decode()


def test_bad_page_size_is_reported(operator_client):
    response = operator_client.get("/jobs/?size=7")
    assert "Page size must be one of" in response.content.decode()


def test_count_is_bounded_not_a_full_count(operator_client, monkeypatch):
    monkeypatch.setattr(tables, "COUNT_LIMIT", 4)
    for _ in range(6):
        make_job()
    response = operator_client.get("/jobs/")
    assert "4+ jobs" in response.content.decode()


def test_empty_failed_view_says_nothing_to_do(operator_client):
    make_job()
    html = operator_client.get("/jobs/?status=failed").content.decode()
    assert "No failed jobs — nothing to do" in html
    assert "Status: Failed" in html


def test_viewer_of_one_tenant_sees_only_that_tenants_rows(viewer_client):
    mine = make_job(tenant_id="acme")
    shared = make_job(tenant_id=None)
    make_job(tenant_id="globex")
    response = viewer_client.get("/jobs/?sort=id")
    assert sorted(row_ids(response)) == sorted([mine.pk, shared.pk])
    assert "2 jobs" in response.content.decode()
    # Even asking for the other tenant explicitly finds nothing.
    assert row_ids(viewer_client.get("/jobs/?tenantIdIn=globex")) == []


def test_task_table_filters_sorts_and_returns_partial(operator_client):
    locked = make_task(topic_name="invoice", worker_id="w1", lock_expiration_time=later(minutes=2))
    make_task(topic_name="invoice")
    make_task(topic_name="shipping", worker_id="w1", lock_expiration_time=later(minutes=2))
    response = operator_client.get(
        "/external-tasks/?topicName=invoice&locked=true&sort=-priority", headers=HTMX
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="task-table"')
    assert row_ids(response) == [locked.pk]
    assert "1 external task" in html


def test_task_table_search_by_business_key(operator_client):
    task = make_task(business_key="ORDER-1")
    make_task(business_key="ORDER-2")
    assert row_ids(operator_client.get("/external-tasks/?q=ORDER-1")) == [task.pk]


def test_task_table_invalid_date_shows_error(operator_client):
    html = operator_client.get("/external-tasks/?lockExpirationAfter=yesterday").content.decode()
    assert "Lock expiration after must be a date and time such as" in html
    assert "not &#x27;yesterday&#x27;" in html and "Cannot convert value" not in html


def test_task_statuses_match_badges(operator_client):
    failed = make_task(retries=0, error_message="x")
    locked = make_task(worker_id="w", lock_expiration_time=later(minutes=1))
    retrying = make_task(retries=2, error_message="x", worker_id="w")
    expired = make_task(worker_id="w", lock_expiration_time=ago(minutes=1))
    waiting = make_task()
    suspended = make_task(suspended=True)
    for status, task in [
        ("failed", failed),
        ("locked", locked),
        ("retrying", retrying),
        ("expired", expired),
        ("waiting", waiting),
        ("suspended", suspended),
    ]:
        assert row_ids(operator_client.get(f"/external-tasks/?status={status}")) == [task.pk]


def test_export_streams_the_filtered_set_as_csv_and_json(operator_client):
    make_job(retries=0, handler="a.b", tenant_id="acme")
    make_job(retries=3)
    make_job(retries=0, tenant_id="globex")  # bob is in acme only
    response = operator_client.get("/jobs/export/?noRetriesLeft=true&format=csv")
    assert response.streaming
    lines = b"".join(response.streaming_content).decode().strip().splitlines()
    assert lines[0].startswith("id,type,handler,retries")
    assert len(lines) == 2 and ",a.b,0," in lines[1]
    response = operator_client.get("/external-tasks/export/?format=json")
    import json

    assert json.loads(b"".join(response.streaming_content)) == []


def test_export_with_invalid_filter_is_400(operator_client):
    response = operator_client.get("/jobs/export/?noRetriesLeft=maybe&format=csv")
    assert response.status_code == 400


def test_page_past_the_end_offers_the_first_page(operator_client):
    make_job()
    html = operator_client.get("/jobs/?page=3&noRetriesLeft=false").content.decode()
    assert "No more jobs on page 3" in html
    assert 'href="/jobs/?noRetriesLeft=false"' in html


def test_export_streams_in_chunks_under_asgi(admin_user):
    """Under ASGI a sync generator would be read whole into memory before the first byte."""
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    from external_tasks.models import ExternalTask

    ExternalTask.objects.bulk_create(ExternalTask(topic_name=f"t{i}") for i in range(2500))
    client = AsyncClient()
    client.force_login(admin_user)

    async def export():
        response = await client.get("/external-tasks/export/?format=csv")
        chunks = [chunk async for chunk in response.streaming_content]
        return response, chunks

    response, chunks = async_to_sync(export)()
    assert response.status_code == 200 and response.is_async
    lines = b"".join(chunks).decode().splitlines()
    assert len(lines) == 2501
    assert len(chunks) >= 3  # 1,000-line chunks, not one blob
