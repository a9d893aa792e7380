"""The benchmark's query plan covers what issue #10 asks for; nothing here runs the bench."""

from bench import run

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


def used_parameters(kind):
    used = set()
    for _name, _method, path, params, body in run.api_queries(_AnyValue()):
        if not path.endswith(kind):
            continue
        used |= set(params) | set(body or {})
        if "sortBy" in params:
            used.add("sorting")
    return used


def test_twenty_queries_cover_every_external_task_and_job_seed_parameter():
    assert len(run.api_queries(_AnyValue())) >= 20
    assert used_parameters("/external-task") >= EXTERNAL_TASK_SEED
    assert used_parameters("/job") >= JOB_SEED


def test_queries_include_deep_pages_of_both_resources():
    queries = run.api_queries(_AnyValue())
    deep = [(path, params) for _n, _m, path, params, _b in queries if params.get("firstResult")]
    assert {path for path, _ in deep} == {"/engine-rest/external-task", "/engine-rest/job"}
    assert max(int(params["firstResult"]) for _, params in deep) >= 100_000


def test_percentile_is_nearest_rank():
    assert run.pct([], 95) is None
    assert run.pct([3, 1, 2], 50) == 2
    assert run.pct(list(range(1, 101)), 95) == 95


class _AnyValue(dict):
    def __missing__(self, key):
        return f"sample-{key}"
