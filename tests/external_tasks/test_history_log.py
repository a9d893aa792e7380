"""GET/POST /engine-rest/history/external-task-log, /count, /{id}, /{id}/error-details: Camunda's
historic external task log over the task log, against entries the real worker protocol wrote."""

import pytest

from external_tasks import services
from external_tasks.filters import LOG_SORT_KEYS
from external_tasks.models import ExternalTaskLog
from tests.conftest import basic_client, make_user

URL = "/engine-rest/history/external-task-log"
TASKS = "/engine-rest/external-task"
DTO_KEYS = {
    "id",
    "externalTaskId",
    "timestamp",
    "topicName",
    "workerId",
    "retries",
    "priority",
    "errorMessage",
    "activityId",
    "activityInstanceId",
    "executionId",
    "processInstanceId",
    "processDefinitionId",
    "processDefinitionKey",
    "tenantId",
    "creationLog",
    "failureLog",
    "successLog",
    "deletionLog",
    "removalTime",
    "rootProcessInstanceId",
}
FLAGS = ("creationLog", "failureLog", "successLog", "deletionLog")


def fetch(api, topic, worker="w1"):
    body = {
        "workerId": worker,
        "maxTasks": 5,
        "topics": [{"topicName": topic, "lockDuration": 60000}],
    }
    response = api.post(f"{TASKS}/fetchAndLock", body, format="json")
    assert response.status_code == 200, response.content
    return [task["id"] for task in response.json()]


@pytest.fixture
def life(admin_api, admin_user):
    """Four tasks through the real endpoints: `failing` (acme) fails twice, `done` completes,
    `erred` (globex) reports a BPMN error, `gone` is deleted by an operator."""
    specs = [
        {
            "id": "failing",
            "topicName": "pay",
            "priority": 10,
            "tenantId": "acme",
            "activityId": "a1",
            "activityInstanceId": "ai1",
            "executionId": "ex1",
            "processInstanceId": "pi1",
            "processDefinitionId": "pd:1",
            "processDefinitionKey": "pd",
        },
        {
            "id": "done",
            "topicName": "mail",
            "priority": 5,
            "activityId": "a2",
            "activityInstanceId": "ai2",
            "executionId": "ex2",
            "processInstanceId": "pi2",
        },
        {
            "id": "erred",
            "topicName": "ship",
            "priority": 1,
            "tenantId": "globex",
            "activityId": "a3",
            "executionId": "ex3",
        },
        {"id": "gone", "topicName": "mail", "priority": 7},
    ]
    assert admin_api.post(f"{TASKS}/create", specs, format="json").status_code == 200
    for retries in (1, 0):
        assert fetch(admin_api, "pay") == ["failing"]
        failure = {
            "workerId": "w1",
            "errorMessage": "card declined",
            "errorDetails": "Traceback: card declined",
            "retries": retries,
            "retryTimeout": 0,
        }
        assert admin_api.post(f"{TASKS}/failing/failure", failure, format="json").status_code == 204
        if retries:
            assert (
                admin_api.put(f"{TASKS}/failing/retries", {"retries": 2}, format="json").status_code
                == 204
            )
    assert sorted(fetch(admin_api, "mail", worker="w2")) == ["done", "gone"]
    assert (
        admin_api.post(f"{TASKS}/done/complete", {"workerId": "w2"}, format="json").status_code
        == 204
    )
    assert admin_api.post(f"{TASKS}/gone/unlock").status_code == 204
    assert fetch(admin_api, "ship", worker="w3") == ["erred"]
    bpmn = {"workerId": "w3", "errorCode": "no-stock", "errorMessage": "out of stock"}
    assert admin_api.post(f"{TASKS}/erred/bpmnError", bpmn, format="json").status_code == 204
    assert (
        admin_api.put(f"{TASKS}/gone/priority", {"priority": 8}, format="json").status_code == 204
    )
    # Deleting is an operator's action in the console (no Camunda endpoint): the same service.
    services.delete(admin_user, ["gone"])


def get(api, **params):
    response = api.get(URL, params)
    assert response.status_code == 200, response.content
    return response.json()


def post(api, body, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    response = api.post(f"{URL}?{query}" if query else URL, body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def states(entries):
    result = []
    for entry in entries:
        flags = [flag for flag in FLAGS if entry[flag]]
        assert len(flags) == 1, entry
        result.append((entry["externalTaskId"], flags[0]))
    return result


def ids(entries):
    return {entry["externalTaskId"] for entry in entries}


def test_history_shows_creation_failure_success_and_deletion_but_no_fetches_or_changes(
    admin_api, life
):
    entries = get(admin_api, sortBy="timestamp", sortOrder="asc")

    # Created together, in one millisecond: their order among themselves is the tie-breaker's.
    assert sorted(states(entries)[:4]) == [
        (task, "creationLog") for task in ("done", "erred", "failing", "gone")
    ]
    assert states(entries)[4:] == [
        ("failing", "failureLog"),
        ("failing", "failureLog"),
        ("done", "successLog"),
        ("erred", "deletionLog"),
        ("gone", "deletionLog"),
    ]
    kept = set(ExternalTaskLog.objects.values_list("event", flat=True))
    assert {"locked", "retries-set", "unlocked", "priority-set"} <= kept
    assert admin_api.get(f"{URL}/count").json() == {"count": 9}


def test_entry_carries_every_field_of_camunda_dto(admin_api, life):
    last_failure = get(
        admin_api, externalTaskId="failing", failureLog="true", sortBy="timestamp", sortOrder="desc"
    )[0]

    entry = admin_api.get(f"{URL}/{last_failure['id']}").json()

    assert set(entry) == DTO_KEYS
    assert entry == {
        **entry,
        "externalTaskId": "failing",
        "topicName": "pay",
        "workerId": "w1",
        "retries": 0,
        "priority": 10,
        "errorMessage": "card declined",
        "activityId": "a1",
        "activityInstanceId": "ai1",
        "executionId": "ex1",
        "processInstanceId": "pi1",
        "processDefinitionId": "pd:1",
        "processDefinitionKey": "pd",
        "tenantId": "acme",
        "failureLog": True,
        "creationLog": False,
        "successLog": False,
        "deletionLog": False,
        "removalTime": None,
        "rootProcessInstanceId": None,
    }
    assert entry["timestamp"].endswith("+0000")


def test_success_and_bpmn_error_entries_name_their_worker(admin_api, life):
    assert [e["workerId"] for e in get(admin_api, successLog="true")] == ["w2"]
    erred = get(admin_api, externalTaskId="erred", deletionLog="true")
    assert [(e["workerId"], e["errorMessage"]) for e in erred] == [("w3", "out of stock")]
    gone = get(admin_api, externalTaskId="gone", deletionLog="true")
    assert gone[0]["priority"] == 8  # the task as it was when deleted


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        ("creationLog", {"failing", "done", "erred", "gone"}),
        ("failureLog", {"failing"}),
        ("successLog", {"done"}),
        ("deletionLog", {"erred", "gone"}),
    ],
)
def test_each_log_type_flag_selects_its_entries(admin_api, life, flag, expected):
    by_get = get(admin_api, **{flag: "true"})
    by_post = post(admin_api, {flag: True})

    assert ids(by_get) == ids(by_post) == expected
    assert all(entry[flag] for entry in by_get)
    count = {"creationLog": 4, "failureLog": 2, "successLog": 1, "deletionLog": 2}[flag]
    assert admin_api.get(f"{URL}/count", {flag: "true"}).json() == {"count": count}


def test_the_last_of_several_log_type_flags_wins(admin_api, life):
    assert ids(get(admin_api, creationLog="true", successLog="true")) == {"done"}


@pytest.mark.parametrize(
    ("param", "value", "expected"),
    [
        ("externalTaskId", "done", {"done"}),
        ("topicName", "mail", {"done", "gone"}),
        ("workerId", "w1", {"failing"}),
        ("errorMessage", "card declined", {"failing"}),
        ("processInstanceId", "pi2", {"done"}),
        ("processDefinitionId", "pd:1", {"failing"}),
        ("processDefinitionKey", "pd", {"failing"}),
        ("topicName", "nothing", set()),
    ],
)
def test_string_parameters_match_exactly(admin_api, life, param, value, expected):
    assert ids(get(admin_api, **{param: value})) == expected
    assert ids(post(admin_api, {param: value})) == expected


@pytest.mark.parametrize(
    ("param", "values", "expected"),
    [
        ("activityIdIn", [], {"failing", "done", "erred", "gone"}),
        ("activityIdIn", ["a2"], {"done"}),
        ("activityIdIn", ["a1", "a3"], {"failing", "erred"}),
        ("activityInstanceIdIn", ["ai1"], {"failing"}),
        ("activityInstanceIdIn", ["ai1", "ai2"], {"failing", "done"}),
        ("executionIdIn", ["ex3"], {"erred"}),
        ("executionIdIn", ["ex1", "ex2", "nope"], {"failing", "done"}),
        ("tenantIdIn", ["globex"], {"erred"}),
        ("tenantIdIn", ["acme", "globex"], {"failing", "erred"}),
    ],
)
def test_list_parameters_empty_one_or_many(admin_api, life, param, values, expected):
    by_get = get(admin_api, **{param: ",".join(values)}) if values else get(admin_api)
    by_post = post(admin_api, {param: values})

    assert ids(by_get) == ids(by_post) == expected


def test_without_tenant_id_wins_over_tenant_ids(admin_api, life):
    assert ids(get(admin_api, withoutTenantId="true")) == {"done", "gone"}
    assert ids(post(admin_api, {"withoutTenantId": True, "tenantIdIn": ["acme"]})) == {
        "done",
        "gone",
    }


@pytest.mark.parametrize(
    ("bounds", "expected"),
    [
        ({"priorityHigherThanOrEquals": 7}, {"failing", "gone"}),
        ({"priorityLowerThanOrEquals": 5}, {"done", "erred"}),
        ({"priorityHigherThanOrEquals": 5, "priorityLowerThanOrEquals": 5}, {"done"}),
        ({"priorityHigherThanOrEquals": 9, "priorityLowerThanOrEquals": 2}, set()),
    ],
)
def test_priority_bounds_are_inclusive(admin_api, life, bounds, expected):
    # `gone` had priority 7 until it was set to 8: its entries say which it had then.
    assert ids(get(admin_api, **bounds)) == expected
    assert ids(post(admin_api, bounds)) == expected


@pytest.mark.parametrize(
    "params",
    [
        {"failureLog": "maybe"},
        {"priorityLowerThanOrEquals": "x"},
        {"sortBy": "errorMessage", "sortOrder": "asc"},
        {"sortBy": "timestamp"},
    ],
)
def test_bad_values_are_camunda_400s(admin_api, life, params):
    response = admin_api.get(URL, params)
    assert response.status_code == 400
    assert response.json()["type"] == "InvalidRequestException"
    bad_body = admin_api.post(f"{URL}/count", {"unknown": True}, format="json")
    assert bad_body.status_code == 400 and set(bad_body.json()) == {"type", "message"}


@pytest.mark.parametrize("sort_by", sorted(LOG_SORT_KEYS))
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_sorting_by_each_key_orders_the_entries(admin_api, life, sort_by, order):
    by_get = get(admin_api, sortBy=sort_by, sortOrder=order)
    by_post = post(admin_api, {"sorting": [{"sortBy": sort_by, "sortOrder": order}]})

    # Nulls sort as the smallest value; every key is a DTO field of the same name.
    values = [(entry[sort_by] is not None, entry[sort_by] or 0) for entry in by_get]
    assert values == sorted(values, reverse=order == "desc")
    assert [e["id"] for e in by_get] == [e["id"] for e in by_post]


def test_paging(admin_api, life):
    everything = [e["id"] for e in get(admin_api, sortBy="timestamp", sortOrder="asc")]
    page = get(admin_api, sortBy="timestamp", sortOrder="asc", firstResult=2, maxResults=3)
    assert [e["id"] for e in page] == everything[2:5]


def test_detail_error_details_and_404s(admin_api, life):
    failure = get(admin_api, failureLog="true")[0]
    created = get(admin_api, externalTaskId="done", creationLog="true")[0]
    locked = ExternalTaskLog.objects.filter(task_id="done", event="locked").first()

    details = admin_api.get(f"{URL}/{failure['id']}/error-details")
    assert details.status_code == 200
    assert details["Content-Type"].startswith("text/plain")
    assert details.content.decode() == "Traceback: card declined"
    assert admin_api.get(f"{URL}/{created['id']}/error-details").status_code == 204
    for missing in ("someId", "123456789", str(locked.pk)):
        assert admin_api.get(f"{URL}/{missing}").status_code == 404
        assert admin_api.get(f"{URL}/{missing}/error-details").status_code == 404
    assert admin_api.get(f"{URL}/someId").json() == {
        "type": "InvalidRequestException",
        "message": "Historic external task log with id someId does not exist",
    }


def test_tenants_see_their_own_and_tenantless_entries_only(viewer_api, admin_api, life):
    erred = get(admin_api, externalTaskId="erred")[0]
    other = basic_client(make_user("gina", "viewer", ["globex"]))

    assert ids(get(viewer_api)) == {"failing", "done", "gone"}
    assert ids(get(other)) == {"erred", "done", "gone"}
    assert viewer_api.get(f"{URL}/count", {"tenantIdIn": "globex"}).json() == {"count": 0}
    assert viewer_api.get(f"{URL}/{erred['id']}").status_code == 404
    assert other.get(f"{URL}/{erred['id']}").status_code == 200


def test_workers_cannot_read_history(worker_api, life):
    assert worker_api.get(URL).status_code == 403
