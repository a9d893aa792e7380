from datetime import timedelta

import pytest
from django.utils import timezone

from external_tasks.models import ExternalTask, ExternalTaskLog
from project.rest.dates import parse_date
from tests.external_tasks.conftest import URL, fetch_body, make_task

FETCH = URL + "/fetchAndLock"


@pytest.fixture(
    autouse=True,
    params=["project.urls", "external_tasks.urls_nowait"],
    ids=["async", "sync"],
)
def fetch_view(request, settings):
    """Every test here runs against both views: the async one, and the sync one project.asgi
    sends the requests that cannot wait to (a waiting request that reached it waits too)."""
    settings.ROOT_URLCONF = request.param


def fetch(api, body):
    response = api.post(FETCH, body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def fetched_ids(api, body):
    return [task["id"] for task in fetch(api, body)]


def var(value, type_name="String"):
    return {"type": type_name, "value": value, "valueInfo": {}}


def test_fetch_locks_tasks_for_the_worker_with_the_topic_lock_duration(worker_api):
    task = make_task(variables={"orderId": var("o-1"), "amount": var(3, "Integer")})
    before = timezone.now()
    tasks = fetch(worker_api, fetch_body(max_tasks=1))
    assert [t["id"] for t in tasks] == [task.id]
    locked = tasks[0]
    assert locked["workerId"] == "aWorkerId"
    assert locked["variables"] == {"orderId": var("o-1"), "amount": var(3, "Integer")}
    assert locked["extensionProperties"] == {}
    expires = parse_date(locked["lockExpirationTime"])
    assert before + timedelta(seconds=9) < expires < timezone.now() + timedelta(seconds=11)
    task.refresh_from_db()
    assert task.worker_id == "aWorkerId"
    assert task.locked
    log = ExternalTaskLog.objects.get(task_id=task.id, event="locked")
    assert log.worker_id == "aWorkerId"


def test_documented_examples_work_as_written(worker_api):
    make_task(
        topic_name="createOrder",
        process_definition_id="aProcessDefinitionId",
        tenant_id="tenantOne",
        variables={"orderId": var("1234"), "other": var(1, "Integer")},
        extension_properties={"property1": "value1"},
    )
    make_task(topic_name="createOrder", tenant_id="acme", variables={"orderId": var("5678")})
    example_1 = {
        "workerId": "aWorkerId",
        "maxTasks": 2,
        "usePriority": True,
        "topics": [{"topicName": "createOrder", "lockDuration": 10000, "variables": ["orderId"]}],
    }
    # walter (tenant acme) sees acme and tenant-less tasks only.
    first = fetch(worker_api, example_1)
    assert [t["variables"] for t in first] == [{"orderId": var("5678")}]


def test_documented_tenant_and_extension_examples(admin_api):
    wanted = make_task(
        topic_name="createOrder",
        process_definition_id="aProcessDefinitionId",
        tenant_id="tenantOne",
        extension_properties={"property1": "value1"},
    )
    make_task(topic_name="createOrder", process_definition_id="aProcessDefinitionId")
    example_2 = {
        "workerId": "aWorkerId",
        "maxTasks": 2,
        "usePriority": True,
        "topics": [
            {
                "topicName": "createOrder",
                "lockDuration": 10000,
                "processDefinitionId": "aProcessDefinitionId",
                "tenantIdIn": "tenantOne",
            }
        ],
    }
    assert fetched_ids(admin_api, example_2) == [wanted.id]
    ExternalTask.objects.update(lock_expiration_time=None)
    example_3 = {
        "workerId": "aWorkerId",
        "maxTasks": 1,
        "usePriority": True,
        "topics": [
            {"topicName": "createOrder", "lockDuration": 10000, "includeExtensionProperties": True}
        ],
    }
    tasks = fetch(admin_api, example_3)
    assert len(tasks) == 1
    if tasks[0]["id"] == wanted.id:
        assert tasks[0]["extensionProperties"] == {"property1": "value1"}


def test_fetch_skips_locked_suspended_and_failed_tasks_but_takes_expired_locks(worker_api):
    make_task(locked_for=60)
    make_task(suspended=True)
    make_task(retries=0)
    expired = make_task(locked_for=-1, worker_id="crashedWorker")
    fresh = make_task(retries=2)
    assert sorted(fetched_ids(worker_api, fetch_body())) == sorted([expired.id, fresh.id])
    # Now everything is locked: a second worker gets nothing.
    assert fetched_ids(worker_api, fetch_body(worker="other")) == []


def test_max_tasks_limits_the_claim(worker_api):
    for _ in range(5):
        make_task()
    assert len(fetched_ids(worker_api, fetch_body(max_tasks=3))) == 3
    assert len(fetched_ids(worker_api, fetch_body(max_tasks=3))) == 2


def test_use_priority_hands_out_highest_priority_first(worker_api):
    low = make_task(priority=1)
    high = make_task(priority=10)
    mid = make_task(priority=5)
    body = fetch_body(max_tasks=2) | {"usePriority": True}
    assert fetched_ids(worker_api, body) == [high.id, mid.id]
    assert fetched_ids(worker_api, body) == [low.id]


def test_sorting_by_create_time(worker_api):
    now = timezone.now()
    old = make_task(create_time=now - timedelta(hours=2))
    new = make_task(create_time=now)
    middle = make_task(create_time=now - timedelta(hours=1))
    body = fetch_body(max_tasks=2) | {"sorting": [{"sortBy": "createTime", "sortOrder": "desc"}]}
    assert fetched_ids(worker_api, body) == [new.id, middle.id]
    body["sorting"][0]["sortOrder"] = "asc"
    assert fetched_ids(worker_api, body) == [old.id]


def test_priority_then_create_time(worker_api):
    now = timezone.now()
    a = make_task(priority=1, create_time=now)
    b = make_task(priority=5, create_time=now - timedelta(minutes=1))
    c = make_task(priority=5, create_time=now)
    body = fetch_body() | {
        "usePriority": True,
        "sorting": [{"sortBy": "createTime", "sortOrder": "desc"}],
    }
    assert fetched_ids(worker_api, body) == [c.id, b.id, a.id]


def test_several_topics_each_with_their_own_lock_duration(worker_api):
    short = make_task(topic_name="short")
    long = make_task(topic_name="long")
    make_task(topic_name="unasked")
    body = {
        "workerId": "w",
        "maxTasks": 10,
        "topics": [
            {"topicName": "short", "lockDuration": 1000},
            {"topicName": "long", "lockDuration": 3_600_000},
        ],
    }
    tasks = {t["id"]: parse_date(t["lockExpirationTime"]) for t in fetch(worker_api, body)}
    assert set(tasks) == {short.id, long.id}
    assert tasks[long.id] - tasks[short.id] > timedelta(minutes=59)


@pytest.mark.parametrize(
    "topic_fields, matching, other",
    [
        ({"businessKey": "bk"}, {"business_key": "bk"}, {"business_key": "x"}),
        ({"processDefinitionId": "pd"}, {"process_definition_id": "pd"}, {}),
        (
            {"processDefinitionIdIn": ["pd1", "pd2"]},
            {"process_definition_id": "pd2"},
            {"process_definition_id": "pd3"},
        ),
        ({"processDefinitionKey": "pk"}, {"process_definition_key": "pk"}, {}),
        (
            {"processDefinitionKeyIn": ["k1", "k2"]},
            {"process_definition_key": "k1"},
            {"process_definition_key": "k3"},
        ),
        (
            {"processDefinitionVersionTag": "v1"},
            {"process_definition_version_tag": "v1"},
            {"process_definition_version_tag": "v2"},
        ),
        ({"tenantIdIn": ["acme"]}, {"tenant_id": "acme"}, {"tenant_id": None}),
        ({"withoutTenantId": True}, {"tenant_id": None}, {"tenant_id": "acme"}),
        (
            {"processVariables": {"region": "north", "count": 2}},
            {"variables": {"region": var("north"), "count": var(2, "Integer")}},
            {"variables": {"region": var("north"), "count": var(3, "Integer")}},
        ),
    ],
)
def test_each_topic_filter_restricts_the_claim(worker_api, topic_fields, matching, other):
    wanted = make_task(**matching)
    make_task(**other)
    assert fetched_ids(worker_api, fetch_body(**topic_fields)) == [wanted.id]


def test_variables_null_means_all_and_a_list_selects(worker_api):
    make_task(variables={"a": var("1"), "b": var("2")})
    make_task(variables={"a": var("3"), "b": var("4")})
    all_vars = fetch(worker_api, fetch_body(max_tasks=1, variables=None))
    assert set(all_vars[0]["variables"]) == {"a", "b"}
    selected = fetch(
        worker_api,
        fetch_body(
            max_tasks=1, variables=["b", "missing"], localVariables=True, deserializeValues=True
        ),
    )
    assert set(selected[0]["variables"]) == {"b"}
    assert fetched_ids(worker_api, fetch_body()) == []


def test_include_extension_properties_top_level(worker_api):
    make_task(extension_properties={"k": "v"})
    tasks = fetch(worker_api, fetch_body() | {"includeExtensionProperties": True})
    assert tasks[0]["extensionProperties"] == {"k": "v"}


def test_fetch_never_hands_out_other_tenants_tasks(worker_api):
    make_task(tenant_id="globex")
    own = make_task(tenant_id="acme")
    assert fetched_ids(worker_api, fetch_body(tenantIdIn=["globex", "acme"])) == [own.id]


def test_no_topics_answers_an_empty_list(worker_api):
    make_task()
    assert fetch(worker_api, {"workerId": "w", "maxTasks": 1}) == []
    assert fetch(worker_api, {"workerId": "w", "maxTasks": 1, "topics": []}) == []


def test_max_tasks_zero_answers_an_empty_list_and_locks_nothing(worker_api):
    # Camunda answers maxTasks 0 with 200 [] (it used to be a 400 here).
    task = make_task()
    response = worker_api.post(URL + "/fetchAndLock", fetch_body(max_tasks=0), format="json")
    assert response.status_code == 200
    assert response.json() == []
    task.refresh_from_db()
    assert task.worker_id is None and not task.locked
    assert not ExternalTaskLog.objects.filter(task_id=task.id, event="locked").exists()


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"maxTasks": 1, "topics": []}, "workerId"),
        ({"workerId": "", "maxTasks": 1}, "workerId"),
        ({"workerId": 5, "maxTasks": 1}, "workerId"),
        ({"workerId": "w"}, "maxTasks"),
        ({"workerId": "w", "maxTasks": -1}, "maxTasks"),
        ({"workerId": "w", "maxTasks": "2"}, "maxTasks"),
        ({"workerId": "w", "maxTasks": 1, "usePriority": "yes"}, "usePriority"),
        ({"workerId": "w", "maxTasks": 1, "asyncResponseTimeout": -1}, "asyncResponseTimeout"),
        (
            {"workerId": "w", "maxTasks": 1, "asyncResponseTimeout": 1_800_001},
            "cannot be set to a value greater than 1800000 milliseconds",
        ),
        ({"workerId": "w", "maxTasks": 1, "topics": {"topicName": "a"}}, "topics"),
        ({"workerId": "w", "maxTasks": 1, "topics": ["a"]}, "topics[0]"),
        ({"workerId": "w", "maxTasks": 1, "topics": [{"lockDuration": 1}]}, "topicName"),
        ({"workerId": "w", "maxTasks": 1, "topics": [{"topicName": "a"}]}, "lockDuration"),
        (
            {"workerId": "w", "maxTasks": 1, "topics": [{"topicName": "a", "lockDuration": -5}]},
            "lockDuration",
        ),
        (
            {"workerId": "w", "maxTasks": 1, "topics": [{"topicName": "a", "lockDuration": 0}]},
            "lockDuration",
        ),
        (
            {
                "workerId": "w",
                "maxTasks": 1,
                "topics": [{"topicName": "a", "lockDuration": 10, "variables": "a"}],
            },
            "variables",
        ),
        (
            {
                "workerId": "w",
                "maxTasks": 1,
                "topics": [{"topicName": "a", "lockDuration": 10, "tenantIdIn": [1]}],
            },
            "tenantIdIn",
        ),
        (
            {
                "workerId": "w",
                "maxTasks": 1,
                "topics": [{"topicName": "a", "lockDuration": 10, "withoutTenantId": "no"}],
            },
            "withoutTenantId",
        ),
        (
            {
                "workerId": "w",
                "maxTasks": 1,
                "topics": [{"topicName": "a", "lockDuration": 10, "processVariables": [1]}],
            },
            "processVariables",
        ),
        (
            {
                "workerId": "w",
                "maxTasks": 1,
                "sorting": [{"sortBy": "priority", "sortOrder": "asc"}],
                "topics": [],
            },
            "sortBy",
        ),
        (
            {
                "workerId": "w",
                "maxTasks": 1,
                "sorting": [{"sortBy": "createTime", "sortOrder": "sideways"}],
            },
            "sortOrder",
        ),
        ([1, 2], "JSON object"),
        (
            {
                "workerId": "w" * 256,
                "maxTasks": 1,
                "topics": [{"topicName": "a", "lockDuration": 9}],
            },
            "longer than 255",
        ),
    ],
)
def test_bad_fetch_requests_answer_400_with_a_clear_message(worker_api, body, fragment):
    make_task(topic_name="a")
    response = worker_api.post(FETCH, body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["type"] == "InvalidRequestException"
    assert fragment in response.json()["message"]
    assert ExternalTask.objects.filter(worker_id__isnull=False).count() == 0


def test_malformed_json_fetch_is_400(worker_api):
    response = worker_api.post(FETCH, '{"workerId": ', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["type"] == "InvalidRequestException"


def test_viewers_may_not_fetch_and_anonymous_gets_401(viewer_api, client, db):
    make_task()
    assert viewer_api.post(FETCH, fetch_body(), format="json").status_code == 403
    assert client.post(FETCH, fetch_body(), content_type="application/json").status_code == 401
    assert ExternalTask.objects.filter(worker_id__isnull=False).count() == 0


def test_long_poll_without_matching_work_answers_empty_after_the_timeout(worker_api):
    make_task(topic_name="other")
    body = fetch_body() | {"asyncResponseTimeout": 300}
    assert fetch(worker_api, body) == []


def test_long_poll_returns_at_once_when_work_is_available(worker_api):
    task = make_task()
    body = fetch_body() | {"asyncResponseTimeout": 1_800_000}
    assert fetched_ids(worker_api, body) == [task.id]


def test_each_task_gets_the_variables_of_the_topic_entry_it_matched(worker_api):
    north = make_task(business_key="north", variables={"a": var("1"), "b": var("2")})
    south = make_task(business_key="south", variables={"a": var("3"), "b": var("4")})
    body = {
        "workerId": "w",
        "maxTasks": 5,
        "topics": [
            {
                "topicName": "aTopic",
                "lockDuration": 1000,
                "businessKey": "north",
                "variables": ["a"],
            },
            {
                "topicName": "aTopic",
                "lockDuration": 60000,
                "businessKey": "south",
                "variables": ["b"],
            },
        ],
    }
    tasks = {t["id"]: t for t in fetch(worker_api, body)}
    assert tasks[north.id]["variables"] == {"a": var("1")}
    assert tasks[south.id]["variables"] == {"b": var("4")}
    north_expiry = parse_date(tasks[north.id]["lockExpirationTime"])
    assert parse_date(tasks[south.id]["lockExpirationTime"]) - north_expiry > timedelta(seconds=50)
