"""The benchmark's query plan covers what issue #10 asks for; nothing here runs the bench."""

from bench import api_queries
from bench.api_queries import API_QUERIES, CONSOLE_PAGES, COUNT_QUERIES, SAMPLE_SQL, Sample
from bench.common import pct

# Every body parameter of the two query seeds (shared/seeds/*-query-post.txt).
EXTERNAL_TASK_SEED = {
    "externalTaskId", "topicName", "workerId", "locked", "notLocked", "withRetriesLeft",
    "noRetriesLeft", "lockExpirationAfter", "lockExpirationBefore", "activityId",
    "activityIdIn", "executionId", "processInstanceId", "processDefinitionId", "tenantIdIn",
    "active", "suspended", "priorityHigherThanOrEquals", "priorityLowerThanOrEquals", "sorting",
}  # fmt: skip
JOB_SEED = {
    "jobId", "jobDefinitionId", "processInstanceId", "executionId", "processDefinitionId",
    "processDefinitionKey", "activityId", "withRetriesLeft", "executable", "timers", "messages",
    "dueDates", "withException", "exceptionMessage", "noRetriesLeft", "active", "suspended",
    "priorityLowerThanOrEquals", "priorityHigherThanOrEquals", "tenantIdIn", "withoutTenantId",
    "includeJobsWithoutTenantId", "sorting",
}  # fmt: skip


def filled_queries():
    return api_queries.filled(API_QUERIES, _AnyValue())


def used_parameters(kind):
    used = set()
    for _name, _method, path, params, body in filled_queries():
        if not path.endswith(kind):
            continue
        used |= set(params) | set(body or {})
        if "sortBy" in params:
            used.add("sorting")
    return used


def test_twenty_queries_cover_every_external_task_and_job_seed_parameter():
    assert len(filled_queries()) >= 20
    assert used_parameters("/external-task") >= EXTERNAL_TASK_SEED
    assert used_parameters("/job") >= JOB_SEED


def test_queries_include_deep_pages_of_both_resources():
    queries = filled_queries()
    deep = [(path, params) for _n, _m, path, params, _b in queries if params.get("firstResult")]
    assert {path for path, _ in deep} == {"/engine-rest/external-task", "/engine-rest/job"}
    assert max(int(params["firstResult"]) for _, params in deep) >= 100_000


def test_names_are_unique_so_each_is_its_own_metric():
    names = [query.name for query in (*API_QUERIES, *COUNT_QUERIES, *CONSOLE_PAGES)]
    assert len(names) == len(set(names))


def test_every_sample_placeholder_has_its_sql_and_is_filled():
    keys = set()

    def collect(value):
        if isinstance(value, Sample):
            keys.add(value.key)
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    for query in API_QUERIES:
        collect(query.params)
        collect(query.body)
    assert keys <= set(SAMPLE_SQL)
    samples = {key: f"sample-{key}" for key in SAMPLE_SQL}
    text = repr(api_queries.filled(API_QUERIES, samples))
    assert "Sample(" not in text and "DaysFromNow(" not in text


def test_percentile_is_nearest_rank():
    assert pct([], 95) is None
    assert pct([3, 1, 2], 50) == 2
    assert pct(list(range(1, 101)), 95) == 95


class _AnyValue(dict):
    def __missing__(self, key):
        return f"sample-{key}"
