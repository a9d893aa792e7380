"""Tenant isolation on every external-task path: users of tenant acme never see, count, change or
lock a row of tenant globex; globex's ids answer 404 exactly like missing ones. Rows without a
tenant are shared by everyone (Camunda's rule)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from external_tasks.models import ExternalTask, ExternalTaskLog
from project.models import AuditEntry, Batch
from tests.batches import run_batches
from tests.conftest import basic_client, make_user

ET = "/engine-rest/external-task"
FJ = "/external-job-api"
SEED = "/api/external-jobs"


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def tasks(db):
    """Per tenant (acme, globex, none): a free and a locked task on the shared topic "work";
    globex also has its own topic."""
    rows = {}
    soon = timezone.now() + timedelta(minutes=5)
    for tenant in ("acme", "globex", None):
        key = tenant or "shared"
        rows[key] = ExternalTask.objects.create(
            topic_name="work",
            tenant_id=tenant,
            process_instance_id="pi-1",
            priority=5,
            variables={"owner": {"type": "String", "value": key}},
            error_message="failed once",
            error_details=f"details of {key}",
        )
        rows[f"{key}-locked"] = ExternalTask.objects.create(
            topic_name="work",
            tenant_id=tenant,
            worker_id="w1",
            lock_expiration_time=soon,
            process_instance_id="pi-1",
        )
    rows["globex-only"] = ExternalTask.objects.create(topic_name="globex-topic", tenant_id="globex")
    return rows


def visible_ids(tasks):
    return {t.id for key, t in tasks.items() if not key.startswith("globex")}


def globex_snapshot():
    return list(
        ExternalTask.objects.filter(tenant_id="globex")
        .order_by("id")
        .values("id", "retries", "priority", "worker_id", "lock_expiration_time", "suspended")
    )


# ---------------------------------------------------------------------------------------------
# Reads and counts


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("get", ET, None), ("post", ET, {}), ("post", ET, {"processInstanceId": "pi-1"})],
)
def test_queries_list_only_own_and_shared_tasks(viewer_api, tasks, method, path, body):
    response = getattr(viewer_api, method)(path, body, format="json")
    assert response.status_code == 200
    assert {t["id"] for t in response.json()} == visible_ids(tasks)


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("get", None),
        ("post", {}),
        ("post", {"tenantIdIn": ["globex"]}),
        ("post", {"topicName": "globex-topic"}),
    ],
)
def test_counts_never_include_other_tenants(viewer_api, tasks, method, body):
    response = getattr(viewer_api, method)(f"{ET}/count", body, format="json")
    expected = 0 if body else len(visible_ids(tasks))
    assert response.json() == {"count": expected}


def test_asking_for_another_tenant_by_filter_finds_nothing(viewer_api, tasks):
    for params in ({"tenantIdIn": "globex"}, {"externalTaskId": tasks["globex"].id}):
        assert viewer_api.get(ET, params).json() == []


def test_topic_names_hide_other_tenants_topics(viewer_api, tasks):
    assert viewer_api.get(f"{ET}/topic-names").json() == ["work"]


@pytest.mark.parametrize(
    "path",
    [f"{ET}/{{id}}", f"{ET}/{{id}}/errorDetails", f"{FJ}/jobs/{{id}}"],
)
def test_another_tenants_task_is_not_found(viewer_api, tasks, path):
    response = viewer_api.get(path.format(id=tasks["globex"].id))
    assert response.status_code == 404
    assert b"globex" not in response.content
    # The same path with a task of one's own tenant answers.
    assert viewer_api.get(path.format(id=tasks["acme"].id)).status_code == 200


def test_flowable_and_seed_lists_hide_other_tenants(viewer_api, tasks):
    flowable = viewer_api.get(f"{FJ}/jobs", {"size": 100}).json()
    assert {j["id"] for j in flowable["data"]} == visible_ids(tasks)
    assert flowable["total"] == len(visible_ids(tasks))
    seed = viewer_api.get(SEED, {"count": 100}).json()
    assert {j["id"] for j in seed["content"]} == visible_ids(tasks)
    current = viewer_api.get(SEED, {"count": 100, "filterByCurrentSubscription": "true"}).json()
    assert {j["tenantId"] for j in current["content"]} == {"acme"}


# ---------------------------------------------------------------------------------------------
# Single-task actions


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", f"{ET}/{{id}}/complete", {"workerId": "w1"}),
        ("post", f"{ET}/{{id}}/failure", {"workerId": "w1", "retries": 0}),
        ("post", f"{ET}/{{id}}/bpmnError", {"workerId": "w1", "errorCode": "E"}),
        ("post", f"{ET}/{{id}}/extendLock", {"workerId": "w1", "newDuration": 1000}),
        ("post", f"{ET}/{{free}}/lock", {"workerId": "w1", "lockDuration": 1000}),
        ("post", f"{ET}/{{id}}/unlock", None),
        ("put", f"{ET}/{{id}}/retries", {"retries": 9}),
        ("put", f"{ET}/{{id}}/priority", {"priority": 9}),
        ("post", f"{FJ}/acquire/jobs/{{id}}/complete", {"workerId": "w1"}),
        ("post", f"{FJ}/acquire/jobs/{{id}}/fail", {"workerId": "w1"}),
        ("post", f"{FJ}/acquire/jobs/{{id}}/bpmnError", {"workerId": "w1"}),
        ("post", f"{FJ}/unacquire/jobs/{{id}}", {"workerId": "w1"}),
        ("post", f"{SEED}/{{id}}/complete", {"workerId": "w1"}),
        ("post", f"{SEED}/{{id}}/fail", {"workerId": "w1"}),
        ("post", f"{SEED}/{{id}}/bpmnError", {"workerId": "w1"}),
    ],
)
def test_actions_on_another_tenants_task_answer_404_and_change_nothing(
    operator_api, tasks, method, path, body
):
    before = globex_snapshot()
    logs = ExternalTaskLog.objects.count()
    url = path.format(id=tasks["globex-locked"].id, free=tasks["globex"].id)
    response = getattr(operator_api, method)(url, body, format="json")
    assert response.status_code == 404, response.content
    assert globex_snapshot() == before
    assert ExternalTaskLog.objects.count() == logs
    assert not AuditEntry.objects.exists()


def test_completing_follows_each_callers_own_tenants_one_after_another(operator_api, tasks):
    """complete's one-statement path keeps its tenant clause per tenant scope: callers of
    different scopes in turn each get their own answer, whoever came first."""
    globex = basic_client(make_user("gina", "operator", ["globex"]))
    shared = tasks["shared-locked"]
    url = f"{ET}/{{}}/complete"
    body = {"workerId": "w1"}
    assert (
        operator_api.post(url.format(tasks["globex-locked"].id), body, format="json").status_code
        == 404
    )
    assert globex.post(url.format(tasks["acme-locked"].id), body, format="json").status_code == 404
    assert (
        globex.post(url.format(tasks["globex-locked"].id), body, format="json").status_code == 204
    )
    assert (
        operator_api.post(url.format(tasks["acme-locked"].id), body, format="json").status_code
        == 204
    )
    assert operator_api.post(url.format(shared.id), body, format="json").status_code == 204
    done = {"globex-locked", "acme-locked", "shared-locked"}
    assert not ExternalTask.objects.filter(pk__in=[tasks[k].id for k in done]).exists()
    assert ExternalTaskLog.objects.filter(event="completed").count() == 3


# ---------------------------------------------------------------------------------------------
# Bulk actions


@pytest.mark.parametrize("path", [f"{ET}/retries", f"{ET}/retries-async"])
def test_bulk_retries_by_ids_refuses_a_foreign_id_and_changes_nothing(operator_api, tasks, path):
    before = list(ExternalTask.objects.order_by("id").values("id", "retries"))
    ids = [tasks["acme"].id, tasks["globex"].id]
    method = operator_api.put if path.endswith("retries") else operator_api.post
    response = method(path, {"retries": 7, "externalTaskIds": ids}, format="json")
    assert response.status_code == 404
    assert tasks["globex"].id in response.json()["message"]
    assert list(ExternalTask.objects.order_by("id").values("id", "retries")) == before
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize(
    "selection",
    [
        {"externalTaskQuery": {}},
        {"processInstanceIds": ["pi-1"]},
        {"externalTaskQuery": {"topicName": "work"}},
    ],
)
def test_bulk_retries_by_query_touches_only_visible_rows(operator_api, tasks, selection):
    before = globex_snapshot()
    response = operator_api.post(f"{ET}/retries-async", {"retries": 7, **selection}, format="json")
    assert response.status_code == 200
    run_batches()
    changed = set(ExternalTask.objects.filter(retries=7).values_list("id", flat=True))
    expected = {
        t.id
        for key, t in tasks.items()
        if not key.startswith("globex")
        and (selection != {"processInstanceIds": ["pi-1"]} or t.process_instance_id == "pi-1")
    }
    assert changed == expected
    assert Batch.objects.get(id=response.json()["id"]).total_rows == len(expected)
    assert globex_snapshot() == before
    entry = AuditEntry.objects.get()
    assert entry.count == len(expected)
    assert set(entry.target_ids) == expected


# ---------------------------------------------------------------------------------------------
# Fetching work


def fetch(api, **topic):
    return api.post(
        f"{ET}/fetchAndLock",
        {
            "workerId": "w2",
            "maxTasks": 100,
            "topics": [{"topicName": "work", "lockDuration": 60000, **topic}],
        },
        format="json",
    )


def test_fetch_and_lock_locks_only_the_workers_tenants_tasks(worker_api, tasks):
    locked = {t["id"] for t in fetch(worker_api).json()}
    assert locked == {tasks["acme"].id, tasks["shared"].id}
    assert not ExternalTask.objects.filter(tenant_id="globex", worker_id="w2").exists()


def test_fetch_and_lock_for_a_foreign_tenant_locks_nothing(worker_api, tasks):
    assert fetch(worker_api, tenantIdIn=["globex"]).json() == []
    globex_only = worker_api.post(
        f"{ET}/fetchAndLock",
        {
            "workerId": "w2",
            "maxTasks": 5,
            "topics": [{"topicName": "globex-topic", "lockDuration": 1000}],
        },
        format="json",
    )
    assert globex_only.json() == []
    assert not ExternalTask.objects.filter(worker_id="w2").exists()


@pytest.mark.parametrize("path", [f"{FJ}/acquire/jobs", SEED])
def test_flowable_and_seed_acquire_only_own_tenants_jobs(worker_api, tasks, path):
    response = worker_api.post(
        path,
        {"topic": "work", "lockDuration": "PT1M", "workerId": "w2", "numberOfTasks": 100},
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    jobs = body if isinstance(body, list) else body["content"]
    assert {j["id"] for j in jobs} == {tasks["acme"].id, tasks["shared"].id}
    assert not ExternalTask.objects.filter(tenant_id="globex", worker_id="w2").exists()


def test_unacquire_all_releases_only_own_tenants_locks(worker_api, tasks):
    response = worker_api.post(f"{FJ}/unacquire/jobs", {"workerId": "w1"}, format="json")
    assert response.status_code == 204
    assert ExternalTask.objects.get(pk=tasks["globex-locked"].id).worker_id == "w1"
    assert ExternalTask.objects.get(pk=tasks["acme-locked"].id).worker_id is None


def test_a_worker_cannot_create_tasks_for_another_tenant(worker_api, db):
    response = worker_api.post(
        f"{ET}/create", {"topicName": "t", "tenantId": "globex"}, format="json"
    )
    assert response.status_code == 400
    assert not ExternalTask.objects.exists()
