"""The requests the "queries" section times, as data.

API_QUERIES together use every parameter of the external-task and job query seeds
(`shared/seeds/*-query-post.txt`) at least once, GET and POST, with sorts and deep pages;
COUNT_QUERIES and CONSOLE_PAGES beside them. Their names are the metrics' names in the report,
so keep them when editing a request, or figures stop being comparable across runs.

Values that depend on the database or the clock are placeholders: `Sample(key)` is a value read
from the seeded rows by SAMPLE_SQL[key] (so each filter matches something), `DaysFromNow(n)` a
Camunda date relative to the run. `filled()` replaces them.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from bench.common import TASK_TABLE

TASKS = "/engine-rest/external-task"
JOBS = "/engine-rest/job"


class Query(NamedTuple):
    name: str
    method: str
    path: str
    params: dict  # the query string
    body: dict | None = None  # the JSON body of a POST


@dataclass(frozen=True)
class Sample:
    key: str  # of SAMPLE_SQL


@dataclass(frozen=True)
class DaysFromNow:
    days: int


# One value each from the seeded rows. The `%%` are literal `%`: the statements go through
# the cursor with (empty) parameters.
SAMPLE_SQL = {
    "task_id": f"SELECT id FROM {TASK_TABLE} ORDER BY create_time DESC LIMIT 1 OFFSET 777",
    "task_pi": f"SELECT process_instance_id FROM {TASK_TABLE} WHERE process_instance_id IS NOT "
    "NULL LIMIT 1 OFFSET 4242",
    "task_exec": f"SELECT execution_id FROM {TASK_TABLE} WHERE execution_id IS NOT NULL "
    "LIMIT 1 OFFSET 999",
    "task_pd": f"SELECT process_definition_id FROM {TASK_TABLE} "
    "WHERE process_definition_id IS NOT NULL LIMIT 1",
    # Not one of the bench's own workers: their tasks are deleted when their run ends.
    "task_worker": f"SELECT worker_id FROM {TASK_TABLE} WHERE worker_id IS NOT NULL "
    "AND worker_id NOT LIKE 'sql-worker%%' AND worker_id NOT LIKE "
    "'http-worker%%' LIMIT 1",
    "task_activity": f"SELECT activity_id FROM {TASK_TABLE} WHERE activity_id <> 'bench' LIMIT 1",
    "job_id": "SELECT id FROM jobs_job ORDER BY create_time DESC LIMIT 1 OFFSET 555",
    "job_def": "SELECT job_definition_id FROM jobs_job WHERE job_definition_id IS NOT NULL LIMIT 1",
    "job_pi": "SELECT process_instance_id FROM jobs_job WHERE process_instance_id IS "
    "NOT NULL LIMIT 1 OFFSET 31337",
    "job_exec": "SELECT execution_id FROM jobs_job WHERE execution_id IS NOT NULL "
    "LIMIT 1 OFFSET 1234",
    "job_pd": "SELECT process_definition_id FROM jobs_job WHERE process_definition_id "
    "IS NOT NULL LIMIT 1",
    "job_activity": "SELECT activity_id FROM jobs_job WHERE activity_id IS NOT NULL LIMIT 1",
    "job_exception": "SELECT exception_message FROM jobs_job "
    "WHERE exception_message IS NOT NULL LIMIT 1",
}

API_QUERIES = [
    Query(
        "task: topic, newest first",
        "GET",
        TASKS,
        {
            "topicName": "send-invoice",
            "sortBy": "createTime",
            "sortOrder": "desc",
            "maxResults": 50,
        },
    ),
    Query(
        "task: topic+notLocked+withRetriesLeft by priority, deep 50,000",
        "GET",
        TASKS,
        {
            "topicName": "kyc-check",
            "notLocked": "true",
            "withRetriesLeft": "true",
            "sortBy": "taskPriority",
            "sortOrder": "desc",
            "firstResult": 50_000,
            "maxResults": 50,
        },
    ),
    Query(
        "task: workerId+locked, by lock expiration",
        "POST",
        TASKS,
        {"maxResults": 50},
        {
            "workerId": Sample("task_worker"),
            "locked": True,
            "sorting": [{"sortBy": "lockExpirationTime", "sortOrder": "desc"}],
        },
    ),
    Query(
        "task: noRetriesLeft, newest first",
        "POST",
        TASKS,
        {"maxResults": 50},
        {"noRetriesLeft": True, "sorting": [{"sortBy": "createTime", "sortOrder": "desc"}]},
    ),
    Query(
        "task: lockExpirationAfter/Before window",
        "POST",
        TASKS,
        {"maxResults": 50},
        {
            "lockExpirationAfter": DaysFromNow(-1),
            "lockExpirationBefore": DaysFromNow(1),
            "sorting": [{"sortBy": "lockExpirationTime", "sortOrder": "asc"}],
        },
    ),
    Query(
        "task: activityId+processDefinitionId by id",
        "GET",
        TASKS,
        {
            "activityId": Sample("task_activity"),
            "processDefinitionId": Sample("task_pd"),
            "sortBy": "id",
            "sortOrder": "asc",
            "maxResults": 50,
        },
    ),
    Query(
        "task: activityIdIn+tenantIdIn by key,tenant, deep 100,000",
        "POST",
        TASKS,
        {"firstResult": 100_000, "maxResults": 50},
        {
            "activityIdIn": [Sample("task_activity"), "ship_parcel", "kyc_check"],
            "tenantIdIn": ["acme", "globex"],
            "sorting": [
                {"sortBy": "processDefinitionKey", "sortOrder": "asc"},
                {"sortBy": "tenantId", "sortOrder": "desc"},
            ],
        },
    ),
    Query(
        "task: externalTaskId+processInstanceId+executionId",
        "POST",
        TASKS,
        {"maxResults": 50},
        {
            "externalTaskId": Sample("task_id"),
            "processInstanceId": Sample("task_pi"),
            "executionId": Sample("task_exec"),
        },
    ),
    Query(
        "task: suspended+priority range by priority",
        "POST",
        TASKS,
        {"maxResults": 50},
        {
            "suspended": True,
            "priorityHigherThanOrEquals": 10,
            "priorityLowerThanOrEquals": 80,
            "sorting": [{"sortBy": "taskPriority", "sortOrder": "desc"}],
        },
    ),
    Query(
        "task: active by process instance, deep 200,000",
        "GET",
        TASKS,
        {
            "active": "true",
            "sortBy": "processInstanceId",
            "sortOrder": "asc",
            "firstResult": 200_000,
            "maxResults": 50,
        },
    ),
    Query(
        "job: processDefinitionKey by due date",
        "GET",
        JOBS,
        {
            "processDefinitionKey": "invoice",
            "sortBy": "jobDueDate",
            "sortOrder": "asc",
            "maxResults": 50,
        },
    ),
    Query(
        "job: executable by priority, deep 100,000",
        "POST",
        JOBS,
        {"firstResult": 100_000, "maxResults": 50},
        {"executable": True, "sorting": [{"sortBy": "jobPriority", "sortOrder": "desc"}]},
    ),
    Query(
        "job: withException+noRetriesLeft, newest failures",
        "POST",
        JOBS,
        {"maxResults": 50},
        {
            "withException": True,
            "noRetriesLeft": True,
            "sorting": [
                {"sortBy": "jobRetries", "sortOrder": "asc"},
                {"sortBy": "jobId", "sortOrder": "asc"},
            ],
        },
    ),
    Query(
        "job: exceptionMessage",
        "POST",
        JOBS,
        {"maxResults": 50},
        {"exceptionMessage": Sample("job_exception")},
    ),
    Query(
        "job: timers+dueDates window by due date",
        "POST",
        JOBS,
        {"maxResults": 50},
        {
            "timers": True,
            "dueDates": [
                {"operator": "gt", "value": DaysFromNow(-7)},
                {"operator": "lt", "value": DaysFromNow(7)},
            ],
            "sorting": [{"sortBy": "jobDueDate", "sortOrder": "desc"}],
        },
    ),
    Query(
        "job: messages+withRetriesLeft+active by id, deep 50,000",
        "GET",
        JOBS,
        {
            "messages": "true",
            "withRetriesLeft": "true",
            "active": "true",
            "sortBy": "jobId",
            "sortOrder": "asc",
            "firstResult": 50_000,
            "maxResults": 50,
        },
    ),
    Query(
        "job: jobId+jobDefinitionId+processInstanceId",
        "POST",
        JOBS,
        {"maxResults": 50},
        {
            "jobId": Sample("job_id"),
            "jobDefinitionId": Sample("job_def"),
            "processInstanceId": Sample("job_pi"),
        },
    ),
    Query(
        "job: executionId+processDefinitionId+activityId",
        "POST",
        JOBS,
        {"maxResults": 50},
        {
            "executionId": Sample("job_exec"),
            "processDefinitionId": Sample("job_pd"),
            "activityId": Sample("job_activity"),
        },
    ),
    Query(
        "job: suspended+priority range by execution",
        "POST",
        JOBS,
        {"maxResults": 50},
        {
            "suspended": True,
            "priorityLowerThanOrEquals": 50,
            "priorityHigherThanOrEquals": 0,
            "sorting": [{"sortBy": "executionId", "sortOrder": "asc"}],
        },
    ),
    Query(
        "job: tenantIdIn+includeJobsWithoutTenantId by tenant,key",
        "POST",
        JOBS,
        {"maxResults": 50},
        {
            "tenantIdIn": ["acme"],
            "includeJobsWithoutTenantId": True,
            "sorting": [
                {"sortBy": "tenantId", "sortOrder": "asc"},
                {"sortBy": "processDefinitionKey", "sortOrder": "asc"},
            ],
        },
    ),
    Query(
        "job: withoutTenantId by processDefinitionId, deep 20,000",
        "POST",
        JOBS,
        {"firstResult": 20_000, "maxResults": 50},
        {
            "withoutTenantId": True,
            "sorting": [{"sortBy": "processDefinitionId", "sortOrder": "desc"}],
        },
    ),
]

COUNT_QUERIES = [
    Query("task count: all", "GET", f"{TASKS}/count", {}),
    Query("task count: topicName", "GET", f"{TASKS}/count", {"topicName": "send-invoice"}),
    Query(
        "task count: noRetriesLeft+tenantIdIn",
        "POST",
        f"{TASKS}/count",
        {},
        {"noRetriesLeft": True, "tenantIdIn": ["acme"]},
    ),
    Query("job count: all", "GET", f"{JOBS}/count", {}),
    Query("job count: executable", "POST", f"{JOBS}/count", {}, {"executable": True}),
    Query(
        "job count: withException+processDefinitionKey",
        "POST",
        f"{JOBS}/count",
        {},
        {"withException": True, "processDefinitionKey": "invoice"},
    ),
]

# Through a logged-in console session.
CONSOLE_PAGES = [
    Query("console: external tasks default", "GET", "/external-tasks/", {}),
    Query(
        "console: external tasks filtered",
        "GET",
        "/external-tasks/",
        {"topicName": "send-invoice", "noRetriesLeft": "true", "sort": "-priority"},
    ),
    Query(
        "console: external tasks deep page 2,000",
        "GET",
        "/external-tasks/",
        {"page": "2000", "size": "50"},
    ),
    Query("console: jobs default", "GET", "/jobs/", {}),
    Query(
        "console: jobs filtered",
        "GET",
        "/jobs/",
        {"processDefinitionKey": "invoice", "withException": "true", "tenantIdIn": "acme"},
    ),
    Query("console: jobs deep page 2,000", "GET", "/jobs/", {"page": "2000", "size": "50"}),
    Query("console: overview", "GET", "/", {}),
]


def camunda_date(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def filled(queries, samples, now=None) -> list[Query]:
    """The queries with their placeholders replaced: `samples[key]` for each Sample (None when
    the seed has no such row, sent as JSON null), and dates from `now` (default: this moment)."""
    now = now or datetime.now(UTC)

    def fill(value):
        if isinstance(value, Sample):
            return samples[value.key]
        if isinstance(value, DaysFromNow):
            return camunda_date(now + timedelta(days=value.days))
        if isinstance(value, dict):
            return {key: fill(item) for key, item in value.items()}
        if isinstance(value, list):
            return [fill(item) for item in value]
        return value

    return [query._replace(params=fill(query.params), body=fill(query.body)) for query in queries]
