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


# --- the index audit and the batch figures (issue #22) ---------------------------------------


def test_the_plan_runs_the_index_audit_first_and_the_batch_with_the_server():
    from bench import run

    assert run.SECTIONS[0] == "indexes"  # on the settled seed, before anything writes
    assert "batch" in run.SERVER_SECTIONS
    args, only = run.parse_arguments(["--only", "indexes,batch", "--batch-chunk-sizes", "500,2000"])
    assert only == ["indexes", "batch"]
    assert args.batch_chunk_sizes == [500, 2000]
    assert run.parse_arguments([])[0].batch_chunk_sizes == []


def test_index_audit_workloads_are_their_own_metrics():
    from bench.indexes import extra_workloads

    samples = {key: f"sample-{key}" for key in (*SAMPLE_SQL, "task_business_key")}
    extra = [q for group in extra_workloads(samples) for q in group]
    names = [q.name for q in extra]
    assert len(names) == len(set(names))
    bench_names = {q.name for q in (*API_QUERIES, *COUNT_QUERIES, *CONSOLE_PAGES)}
    assert not set(names) & bench_names
    # Every sortable column of the console's task table is read once.
    sorts = {q.params["sort"] for q in extra if "sort" in q.params}
    assert {"-topic", "-worker", "-lock", "-tenant", "-business_key"} <= sorts


def test_an_index_definition_moves_to_the_copy_under_its_own_name():
    from bench.indexes import COPY_TABLE, on_copy

    definition = (
        "CREATE INDEX ext_fetch_order_idx ON public.external_tasks_externaltask USING btree "
        "(topic_name, create_time, id) WHERE ((NOT suspended) AND has_retries)"
    )
    assert on_copy(definition, "ext_fetch_order_idx") == (
        f"CREATE INDEX ext_fetch_order_idx_copy ON {COPY_TABLE} USING btree "
        "(topic_name, create_time, id) WHERE ((NOT suspended) AND has_retries)"
    )


def test_the_audit_table_shows_each_index_with_its_queries_and_cost():
    from bench.indexes import markdown

    text = markdown(
        indexes={"a_idx": "…", "b_idx": "…"},
        sizes={"a_idx": 2**21},
        baseline={"q": 0.002},
        plans={"q": {"a_idx"}},
        without={"a_idx": {"q": (0.5, {"b_idx"})}, "b_idx": {}},
        bulk={
            "rows": 100,
            "table_rows": 1000,
            "primary key only": (1.0, 2**20),
            "a_idx": (1.5, 3 * 2**20),
            "b_idx": (1.25, 2**20),
            "all indexes": (2.0, 4 * 2**20),
        },
    )
    assert "| `a_idx` | 2 MB | q: 2.0 → 500.0 (b_idx) | +0.50 (+2) |" in text
    assert "| `b_idx` | 0 MB | no measured query reads it | +0.25 (+0) |" in text


# --- the console pages (issue #23) -----------------------------------------------------------


def test_the_console_section_times_every_page_of_issue_23_for_both_kinds():
    from bench import console, run
    from console.resources import EXTERNAL_TASKS, JOBS

    assert run.SERVER_SECTIONS["console"] is console.run_console
    assert run.parse_arguments(["--only", "console", "--console-runs", "5"])[0].console_runs == 5
    sample = dict.fromkeys(["job", "task", "business_key", "handler", "topic"], "x")
    pages = console.pages(sample, "batch-1")
    names = [name for name, _path, _params in pages]
    assert len(names) == len(set(names))  # each page is its own metric
    paths = {path for _name, path, _params in pages}
    for path in ("/", "/failures/", "/topics/", "/queues/", "/audit/", "/search/", "/batches/"):
        assert path in paths
    assert {"/jobs/x/", "/external-tasks/x/", "/batches/batch-1/"} <= paths
    for kind, resource in (("jobs", JOBS), ("tasks", EXTERNAL_TASKS)):
        sorted_by = {params.get("sort") for name, _p, params in pages if name.startswith(kind)}
        for column in resource.columns:
            if column.field:
                assert column.key in {(s or "").lstrip("-") for s in sorted_by}
        for page in ("default", "deep page 2,000", "search id", "search word"):
            assert any(name.startswith(f"{kind} {page}") for name in names)
    # The snapshot pages' first view is the plain URL; their recount (no snapshot) is timed too.
    first_views = {path for name, path, params in pages if "first view" in name and not params}
    assert first_views == {"/", "/failures/", "/topics/", "/queues/"}
    recounts = {path for name, path, params in pages if params == {"fresh": "1"}}
    assert recounts == first_views
