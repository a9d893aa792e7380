"""Sorts, deep pages and counts at scale: the order the sort indexes hold, one statement per
deep page, and (on PostgreSQL) plans that read the indexes instead of sorting the table."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from external_tasks.filters import SORT_KEYS as TASK_SORT_KEYS
from external_tasks.models import ExternalTask
from jobs.filters import JOB_SORT_KEYS
from jobs.models import Job
from project.rest.paging import order_by, window

NOW = timezone.now()


def tasks(n=30):
    rows = [
        ExternalTask(
            id=f"t{i:02d}",
            topic_name="a" if i % 2 else "b",
            priority=i % 3,
            process_instance_id=None if i % 5 == 0 else f"pi{i % 4}",
            lock_expiration_time=None if i % 3 else NOW + timedelta(minutes=i),
            create_time=NOW - timedelta(minutes=i),
        )
        for i in range(n)
    ]
    return ExternalTask.objects.bulk_create(rows)


def sorted_ids(key, order):
    ordering = order_by([{"sortBy": key, "sortOrder": order}], TASK_SORT_KEYS)
    return list(ExternalTask.objects.order_by(*ordering).values_list("id", flat=True))


@pytest.mark.django_db
def test_ties_follow_the_direction_of_the_last_key():
    tasks()
    ascending = sorted_ids("taskPriority", "asc")
    descending = sorted_ids("taskPriority", "desc")
    # The same index read backwards: exactly the reverse order, ties included.
    assert descending == ascending[::-1]
    assert sorted_ids("processInstanceId", "desc") == sorted_ids("processInstanceId", "asc")[::-1]


@pytest.mark.django_db
def test_deep_window_is_the_plain_slice_in_one_statement():
    tasks()
    ordering = order_by([{"sortBy": "processInstanceId", "sortOrder": "desc"}], TASK_SORT_KEYS)
    queryset = ExternalTask.objects.filter(topic_name="a").order_by(*ordering)
    expected = list(queryset.values_list("id", flat=True))
    for first in (0, 1, 4, 10, 14, 15, 40):
        with CaptureQueriesContext(connection) as ctx:
            rows = [t.id for t in window(queryset, first, 4)]
        assert rows == expected[first : first + 4]
        assert len(ctx.captured_queries) == 1


@pytest.mark.django_db
def test_api_deep_page_matches_the_order_of_the_full_list(admin_api):
    tasks()
    params = {"sortBy": "lockExpirationTime", "sortOrder": "asc"}
    everything = [t["id"] for t in admin_api.get("/engine-rest/external-task", params).json()]
    assert len(everything) == 30
    page = admin_api.get(
        "/engine-rest/external-task", {**params, "firstResult": 7, "maxResults": 5}
    ).json()
    assert [t["id"] for t in page] == everything[7:12]


@pytest.mark.django_db
def test_console_sorts_nulls_smallest_like_the_api(admin_client):
    tasks()
    response = admin_client.get("/external-tasks/", {"sort": "lock", "size": 50})
    rows = re.findall(r'<tr data-href="[^"]*" data-id="([^"]+)"', response.content.decode())
    assert rows == sorted_ids("lockExpirationTime", "asc")


# --- PostgreSQL plans ------------------------------------------------------------------------


def plan(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        # Small tables: forbid the alternatives so the plan shows what the indexes can do.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("model", "keys", "sort_by", "index"),
    [
        (ExternalTask, TASK_SORT_KEYS, "processInstanceId", "ext_pi_idx"),
        (ExternalTask, TASK_SORT_KEYS, "lockExpirationTime", "ext_lock_exp_idx"),
        (ExternalTask, TASK_SORT_KEYS, "tenantId", "ext_tenant_idx"),
        (ExternalTask, TASK_SORT_KEYS, "processDefinitionKey", "ext_pdkey_idx"),
        (ExternalTask, TASK_SORT_KEYS, "createTime", "ext_created_idx"),
        (ExternalTask, TASK_SORT_KEYS, "taskPriority", "ext_priority_idx"),
        (Job, JOB_SORT_KEYS, "jobDueDate", "job_due_idx"),
        (Job, JOB_SORT_KEYS, "executionId", "job_execution_idx"),
        (Job, JOB_SORT_KEYS, "processDefinitionId", "job_pdid_idx"),
        (Job, JOB_SORT_KEYS, "jobPriority", "job_priority_idx"),
    ],
)
@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_an_index_delivers_each_sort_in_both_directions(model, keys, sort_by, index, direction):
    ordering = order_by([{"sortBy": sort_by, "sortOrder": direction}], keys)
    text = plan(model.objects.order_by(*ordering)[:50])
    assert index in text
    assert "Sort" not in text


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_deep_page_of_a_topics_open_tasks_reads_only_the_index():
    ordering = order_by([{"sortBy": "taskPriority", "sortOrder": "desc"}], TASK_SORT_KEYS)
    queryset = ExternalTask.objects.filter(topic_name="a", has_retries=True).order_by(*ordering)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_indexscan = off")  # leave index-only scans
        text = plan(queryset.values("pk")[1000:1050])
    assert "Index Only Scan Backward using ext_topic_priority_idx" in text


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_only_pattern_ops_index_on_the_queue_tables_is_the_business_keys():
    """Django adds a `_like` twin to every db_index CharField; the queue tables have none of
    those (each costs every write). The one pattern-ops index is the business key's, which the
    console's prefix search reads (it serves equality too)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename IN (%s, %s) AND indexdef LIKE %s",
            ["jobs_job", "external_tasks_externaltask", "%varchar_pattern_ops%"],
        )
        assert cursor.fetchall() == [("ext_business_key_idx",)]


def vacuumed_plan(sql, params=()) -> str:
    """EXPLAIN with sequential and bitmap scans priced out, on a table VACUUM has made
    all-visible: then an index that covers the query wins by an index-only scan."""
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        cursor.execute("SET enable_bitmapscan = off")
        try:
            cursor.execute("EXPLAIN " + sql, params)
            return "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("RESET enable_seqscan")
            cursor.execute("RESET enable_bitmapscan")


@pytest.fixture
def vacuumed_jobs(transactional_db):
    """300 jobs of every kind the filters tell apart, vacuumed (VACUUM needs autocommit)."""
    Job.objects.bulk_create(
        Job(
            id=f"j{i:03d}",
            type="message" if i % 2 else "timer",
            retries=i % 4,
            suspended=i % 7 == 0,
            due_date=None if i % 3 == 0 else NOW + timedelta(minutes=i - 150),
            exception_message=f"boom {i}" if i % 4 == 0 else None,
            process_definition_key=["invoice", "order", None][i % 3],
            process_definition_id=f"def{i % 5}",
            tenant_id=["acme", None][i % 2],
        )
        for i in range(300)
    )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE jobs_job")


def job_query(data: dict):
    """The jobs the API's filters select for `data`, in the order of its sortBy/sortOrder."""
    from jobs.filters import JobFilter

    filters = {k: v for k, v in data.items() if k not in ("sortBy", "sortOrder")}
    queryset = JobFilter(filters, queryset=Job.objects.all()).filtered()
    if "sortBy" in data:
        sorting = [{"sortBy": data["sortBy"], "sortOrder": data["sortOrder"]}]
        queryset = queryset.order_by(*order_by(sorting, JOB_SORT_KEYS))
    return queryset


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("data", "index"),
    [
        # Deep pages of message jobs with retries left, active, by id (bench: 614 -> 13 ms).
        (
            {
                "messages": "true",
                "withRetriesLeft": "true",
                "active": "true",
                "sortBy": "jobId",
                "sortOrder": "asc",
            },
            "job_type_idx",
        ),
        # Jobs without a tenant by definition id (bench: 20,000 deep 88 -> 18 ms).
        (
            {"withoutTenantId": "true", "sortBy": "processDefinitionId", "sortOrder": "desc"},
            "job_tenant_idx",
        ),
    ],
)
def test_deep_job_pages_read_only_an_index(vacuumed_jobs, data, index):
    sql, params = job_query(data).values("pk")[100:150].query.sql_with_params()
    text = vacuumed_plan(sql, params)
    assert re.search(f"Index Only Scan (Backward )?using {index}", text), text


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("data", "index"),
    [
        # 600k executable of 1M: 150-250 -> 50-80 ms.
        ({"executable": "true"}, "job_executable_idx"),
        # A key's failures: 138 -> 33 ms (withException is a message or a stack trace).
        ({"withException": "true", "processDefinitionKey": "invoice"}, "job_exception_idx"),
    ],
)
def test_job_counts_read_only_an_index(vacuumed_jobs, data, index):
    with CaptureQueriesContext(connection) as ctx:
        job_query(data).count()
    text = vacuumed_plan(ctx.captured_queries[-1]["sql"])
    assert f"Index Only Scan using {index}" in text, text
