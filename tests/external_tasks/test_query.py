from datetime import UTC, datetime, timedelta

import pytest

from tests.external_tasks.conftest import URL, make_task

TASK_KEYS = {
    "activityId",
    "activityInstanceId",
    "errorMessage",
    "errorDetails",
    "executionId",
    "id",
    "lockExpirationTime",
    "createTime",
    "processDefinitionId",
    "processDefinitionKey",
    "processDefinitionVersionTag",
    "processInstanceId",
    "retries",
    "suspended",
    "workerId",
    "topicName",
    "tenantId",
    "priority",
    "businessKey",
}


def ids(response):
    assert response.status_code == 200, response.content
    return [task["id"] for task in response.json()]


def get_ids(api, **params):
    return ids(api.get(URL, params))


def post_ids(api, body, query=""):
    return ids(api.post(URL + query, body, format="json"))


def count(api, body=None, **params):
    if body is not None:
        response = api.post(URL + "/count", body, format="json")
    else:
        response = api.get(URL + "/count", params)
    assert response.status_code == 200, response.content
    return response.json()["count"]


def test_seed_example_post_query_answers_exactly_the_documented_objects(viewer_api):
    expires = datetime(2015, 10, 6, 14, 34, 42, tzinfo=UTC)
    common = dict(
        process_definition_id="aProcessDefinitionId",
        lock_expiration_time=expires,
        worker_id="aWorkerId",
        topic_name="aTopic",
        business_key="aBusinessKey",
    )
    make_task(
        id="anExternalTaskId",
        activity_id="anActivityId",
        activity_instance_id="anActivityInstanceId",
        error_message="anErrorMessage",
        error_details="anErrorDetails",
        execution_id="anExecutionId",
        process_definition_key="aProcessDefinitionKey",
        process_instance_id="aProcessInstanceId",
        retries=3,
        priority=9,
        **common,
    )
    make_task(
        id="anotherExternalTaskId",
        activity_id="anotherActivityId",
        activity_instance_id="anotherActivityInstanceId",
        error_message="anotherErrorMessage",
        error_details="anotherErrorDetails",
        execution_id="anotherExecutionId",
        process_definition_key="anotherProcessDefinitionKey",
        process_instance_id="anotherProcessInstanceId",
        retries=1,
        priority=3,
        **common,
    )
    make_task(id="unrelated", process_definition_id="otherDefinition")
    # The request body exactly as the seed documents it.
    body = """{
"processDefinitionId":"aProcessDefinitionId",
"sorting":
[{"sortBy": "processDefinitionKey",
"sortOrder": "asc"
},
{"sortBy": "lockExpirationTime",
"sortOrder": "desc"
}]
}"""
    response = viewer_api.post(URL, body, content_type="application/json")
    assert response.status_code == 200
    tasks = response.json()
    assert [t["id"] for t in tasks] == ["anExternalTaskId", "anotherExternalTaskId"]
    first = tasks[0]
    assert set(first) == TASK_KEYS
    assert first["lockExpirationTime"] == "2015-10-06T14:34:42.000+0000"
    assert first | {"lockExpirationTime": None, "createTime": None} == {
        "activityId": "anActivityId",
        "activityInstanceId": "anActivityInstanceId",
        "errorMessage": "anErrorMessage",
        "errorDetails": "anErrorDetails",
        "executionId": "anExecutionId",
        "id": "anExternalTaskId",
        "lockExpirationTime": None,
        "createTime": None,
        "processDefinitionId": "aProcessDefinitionId",
        "processDefinitionKey": "aProcessDefinitionKey",
        "processDefinitionVersionTag": None,
        "processInstanceId": "aProcessInstanceId",
        "tenantId": None,
        "retries": 3,
        "suspended": False,
        "workerId": "aWorkerId",
        "topicName": "aTopic",
        "priority": 9,
        "businessKey": "aBusinessKey",
    }


def test_get_by_id_answers_every_key_and_unknown_id_is_404(viewer_api):
    task = make_task(priority=4)
    response = viewer_api.get(f"{URL}/{task.id}")
    assert response.status_code == 200
    assert set(response.json()) == TASK_KEYS
    assert response.json()["priority"] == 4
    missing = viewer_api.get(f"{URL}/nope")
    assert missing.status_code == 404
    assert missing.json()["type"] == "InvalidRequestException"
    assert "nope" in missing.json()["message"]


def test_error_details_is_plain_text_or_204(viewer_api):
    failed = make_task(error_details="Traceback: boom")
    clean = make_task()
    response = viewer_api.get(f"{URL}/{failed.id}/errorDetails")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response.content == b"Traceback: boom"
    assert viewer_api.get(f"{URL}/{clean.id}/errorDetails").status_code == 204
    assert viewer_api.get(f"{URL}/unknown/errorDetails").status_code == 404


@pytest.mark.parametrize(
    "param, value, matching, other",
    [
        ("externalTaskId", "t1", {"id": "t1"}, {"id": "t2"}),
        ("topicName", "a", {"topic_name": "a"}, {"topic_name": "b"}),
        ("workerId", "w1", {"worker_id": "w1"}, {"worker_id": "w2"}),
        ("activityId", "act", {"activity_id": "act"}, {"activity_id": "x"}),
        ("executionId", "ex", {"execution_id": "ex"}, {"execution_id": "x"}),
        ("processInstanceId", "pi", {"process_instance_id": "pi"}, {"process_instance_id": "x"}),
        (
            "processDefinitionId",
            "pd",
            {"process_definition_id": "pd"},
            {"process_definition_id": "x"},
        ),
        (
            "processDefinitionKey",
            "pk",
            {"process_definition_key": "pk"},
            {"process_definition_key": "x"},
        ),
        (
            "processDefinitionName",
            "Order",
            {"process_definition_name": "Order"},
            {"process_definition_name": "Orders"},
        ),
        (
            "processDefinitionNameLike",
            "Ord%",
            {"process_definition_name": "Order process"},
            {"process_definition_name": "Invoice"},
        ),
        ("priorityHigherThanOrEquals", "5", {"priority": 5}, {"priority": 4}),
        ("priorityLowerThanOrEquals", "5", {"priority": 5}, {"priority": 6}),
        ("suspended", "true", {"suspended": True}, {"suspended": False}),
        ("active", "true", {"suspended": False}, {"suspended": True}),
        ("withRetriesLeft", "true", {"retries": 1}, {"retries": 0}),
        ("noRetriesLeft", "true", {"retries": 0}, {"retries": 2}),
        ("withoutTenantId", "true", {"tenant_id": None}, {"tenant_id": "acme"}),
    ],
)
def test_each_single_value_parameter_filters_get_post_and_count(
    admin_api, param, value, matching, other
):
    wanted = make_task(**{"id": "t1", **matching})
    make_task(**{"id": "t2", **other} if "id" not in other else other)
    assert get_ids(admin_api, **{param: value}) == [wanted.id]
    body_value = value
    if value in {"true", "false"}:
        body_value = value == "true"
    elif param.startswith("priority"):
        body_value = int(value)
    assert post_ids(admin_api, {param: body_value}) == [wanted.id]
    assert count(admin_api, **{param: value}) == 1
    assert count(admin_api, {param: body_value}) == 1


def test_with_retries_left_includes_tasks_that_never_failed(viewer_api):
    never = make_task(retries=None)
    make_task(retries=0)
    assert get_ids(viewer_api, withRetriesLeft="true") == [never.id]


@pytest.mark.parametrize(
    "param, field",
    [
        ("externalTaskIdIn", "id"),
        ("activityIdIn", "activity_id"),
        ("processInstanceIdIn", "process_instance_id"),
        ("processDefinitionKeyIn", "process_definition_key"),
        ("tenantIdIn", "tenant_id"),
    ],
)
def test_list_parameters_accept_commas_repeats_and_json_lists(admin_api, param, field):
    a = make_task(**{field: "a"})
    b = make_task(**{field: "b"})
    make_task(**{field: "c"})
    expected = sorted([a.id, b.id])
    assert get_ids(admin_api, **{param: "a,b"}, sortBy="id", sortOrder="asc") == expected
    repeated = admin_api.get(f"{URL}?{param}=a&{param}=b&sortBy=id&sortOrder=asc")
    assert ids(repeated) == expected
    assert sorted(post_ids(admin_api, {param: ["a", "b"]})) == expected
    # An empty list filters nothing, as Camunda ignores it.
    assert len(post_ids(admin_api, {param: []})) == 3


def test_locked_and_not_locked_follow_lock_expiry(viewer_api):
    locked = make_task(locked_for=60)
    expired = make_task(locked_for=-60)
    never = make_task()
    assert get_ids(viewer_api, locked="true") == [locked.id]
    assert sorted(get_ids(viewer_api, notLocked="true")) == sorted([expired.id, never.id])
    # false matches any task, as Camunda documents.
    assert len(get_ids(viewer_api, locked="false")) == 3
    assert post_ids(viewer_api, {"locked": True, "notLocked": True}) == []


def test_lock_expiration_after_and_before_accept_camunda_dates(viewer_api):
    base = datetime(2024, 1, 10, 12, 0, tzinfo=UTC)
    early = make_task(lock_expiration_time=base - timedelta(hours=1))
    late = make_task(lock_expiration_time=base + timedelta(hours=1))
    make_task()
    assert get_ids(viewer_api, lockExpirationAfter="2024-01-10T14:00:00.000+0200") == [late.id]
    assert get_ids(viewer_api, lockExpirationBefore="2024-01-10T12:00:00Z") == [early.id]
    assert post_ids(
        viewer_api,
        {
            "lockExpirationAfter": "2024-01-10T10:30:00",
            "lockExpirationBefore": "2024-01-10T13:30:00+01:00",
        },
    ) == [early.id]


def test_bad_date_is_a_camunda_400(viewer_api):
    response = viewer_api.get(URL, {"lockExpirationAfter": "yesterday"})
    assert response.status_code == 400
    assert response.json()["type"] == "InvalidRequestException"
    assert "lockExpirationAfter" in response.json()["message"]


@pytest.mark.parametrize(
    "params",
    [
        {"priorityHigherThanOrEquals": "high"},
        {"priorityLowerThanOrEquals": "99999999999999999999"},
        {"locked": "maybe"},
        {"sortBy": "id"},
        {"sortOrder": "asc"},
        {"sortBy": "unknown", "sortOrder": "asc"},
        {"sortBy": "id", "sortOrder": "up"},
        {"firstResult": "-1"},
        {"maxResults": "many"},
        {"processVariables": "amount_between_5"},
    ],
)
def test_bad_query_parameters_answer_400_never_500(viewer_api, params):
    response = viewer_api.get(URL, params)
    assert response.status_code == 400, response.content
    assert response.json()["type"] == "InvalidRequestException"
    assert response.json()["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"sorting": [{"sortBy": "bogus", "sortOrder": "asc"}]},
        {"sorting": [{"sortBy": "id"}]},
        {"sorting": "id"},
        {"externalTaskIdIn": [{"id": 1}]},
        {"suspended": "yes"},
        {"priorityHigherThanOrEquals": "x"},
        {"processVariables": [{"name": "a", "operator": "between", "value": 1}]},
        {"processVariables": [{"operator": "eq", "value": 1}]},
        {"processVariables": [{"name": "a", "operator": "like", "value": 5}]},
        {"topicName": {"nested": True}},
    ],
)
def test_bad_post_bodies_answer_400(viewer_api, body):
    response = viewer_api.post(URL, body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["type"] == "InvalidRequestException"


def test_malformed_json_is_400(viewer_api):
    response = viewer_api.post(URL, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["type"] == "InvalidRequestException"


def test_null_values_in_post_body_are_ignored(viewer_api):
    make_task()
    assert len(post_ids(viewer_api, {"topicName": None, "sorting": None, "tenantIdIn": None})) == 1


@pytest.mark.parametrize(
    "sort_by, field, values",
    [
        ("id", "id", ["b", "a", "c"]),
        ("processInstanceId", "process_instance_id", ["p2", "p1", "p3"]),
        ("processDefinitionId", "process_definition_id", ["d2", "d1", "d3"]),
        ("processDefinitionKey", "process_definition_key", ["k2", "k1", "k3"]),
        ("tenantId", "tenant_id", ["t2", "t1", "t3"]),
        ("taskPriority", "priority", [2, 1, 3]),
    ],
)
def test_every_sort_key_sorts_both_ways(admin_api, sort_by, field, values):
    for index, value in enumerate(values):
        make_task(**{"id": f"task{index}" if field != "id" else value, field: value})
    ascending = get_ids(admin_api, sortBy=sort_by, sortOrder="asc")
    descending = post_ids(admin_api, {"sorting": [{"sortBy": sort_by, "sortOrder": "desc"}]})
    assert descending == list(reversed(ascending))
    assert len(ascending) == 3
    by_value = dict(zip(ascending, sorted(values), strict=True))
    assert len(by_value) == 3


def test_sort_by_lock_expiration_and_create_time(admin_api):
    now = datetime(2024, 5, 1, tzinfo=UTC)
    a = make_task(create_time=now, lock_expiration_time=now + timedelta(minutes=2))
    b = make_task(create_time=now + timedelta(seconds=1), lock_expiration_time=None)
    c = make_task(create_time=now + timedelta(seconds=2), lock_expiration_time=now)
    assert get_ids(admin_api, sortBy="createTime", sortOrder="desc") == [c.id, b.id, a.id]
    # Nulls sort as the smallest value.
    assert get_ids(admin_api, sortBy="lockExpirationTime", sortOrder="asc") == [b.id, c.id, a.id]


def test_multi_key_sorting_in_post(admin_api):
    a = make_task(process_definition_key="k1", priority=1)
    b = make_task(process_definition_key="k1", priority=5)
    c = make_task(process_definition_key="k0", priority=0)
    body = {
        "sorting": [
            {"sortBy": "processDefinitionKey", "sortOrder": "asc"},
            {"sortBy": "taskPriority", "sortOrder": "desc"},
        ]
    }
    assert post_ids(admin_api, body) == [c.id, b.id, a.id]


def test_first_and_max_results_page_get_and_post(viewer_api):
    for name in "abcde":
        make_task(id=name)
    assert get_ids(viewer_api, firstResult=1, maxResults=2, sortBy="id", sortOrder="asc") == [
        "b",
        "c",
    ]
    body = {"sorting": [{"sortBy": "id", "sortOrder": "desc"}]}
    assert post_ids(viewer_api, body, "?firstResult=3&maxResults=10") == ["b", "a"]
    assert get_ids(viewer_api, maxResults=0) == []


def test_process_variables_operators_on_typed_values(admin_api):
    def var(value, type_name):
        return {"type": type_name, "value": value, "valueInfo": {}}

    small = make_task(
        id="small", variables={"amount": var(5, "Integer"), "name": var("Anna", "String")}
    )
    big = make_task(
        id="big", variables={"amount": var(500.5, "Double"), "name": var("bob", "String")}
    )
    text = make_task(id="text", variables={"amount": var("500", "String")})
    make_task(id="none", variables={})

    def query(*conditions, **extra):
        body = {
            "processVariables": [{"name": n, "operator": o, "value": v} for n, o, v in conditions],
            "sorting": [{"sortBy": "id", "sortOrder": "asc"}],
            **extra,
        }
        return post_ids(admin_api, body)

    assert query(("amount", "eq", 5)) == [small.id]
    assert query(("amount", "gt", 5)) == [big.id]
    assert query(("amount", "gteq", 5)) == [big.id, small.id]
    assert query(("amount", "lt", 500.5)) == [small.id]
    assert query(("amount", "lteq", 500.5)) == [big.id, small.id]
    assert query(("amount", "eq", "500")) == [text.id]
    assert query(("amount", "neq", 5)) == [big.id, text.id]
    assert query(("name", "like", "A%")) == [small.id]
    assert query(("name", "notLike", "A%")) == [big.id]
    assert query(("name", "eq", "anna")) == []
    assert query(("name", "eq", "anna"), variableValuesIgnoreCase=True) == [small.id]
    assert query(("name", "like", "B%"), variableValuesIgnoreCase=True) == [big.id]
    assert query(("NAME", "eq", "bob")) == []
    assert query(("NAME", "eq", "bob"), variableNamesIgnoreCase=True) == [big.id]
    assert query(("amount", "gt", 1), ("name", "eq", "bob")) == [big.id]
    # GET: name_operator_value, comma-separated, numbers read as numbers.
    got = get_ids(
        admin_api, processVariables="amount_gteq_5,name_like_%b%", sortBy="id", sortOrder="asc"
    )
    assert got == [big.id]
    got = get_ids(
        admin_api,
        processVariables="NAME_eq_ANNA",
        variableNamesIgnoreCase="true",
        variableValuesIgnoreCase="true",
    )
    assert got == [small.id]


def test_combined_filters_intersect(viewer_api):
    wanted = make_task(topic_name="a", priority=7, tenant_id="acme", locked_for=60)
    make_task(topic_name="a", priority=7, tenant_id="acme")
    make_task(topic_name="b", priority=7, tenant_id="acme", locked_for=60)
    body = {
        "topicName": "a",
        "priorityHigherThanOrEquals": 7,
        "locked": True,
        "tenantIdIn": ["acme"],
    }
    assert post_ids(viewer_api, body) == [wanted.id]
    assert count(viewer_api, body) == 1


def test_other_tenants_tasks_are_invisible_everywhere(viewer_api):
    own = make_task(tenant_id="acme")
    shared = make_task(tenant_id=None)
    foreign = make_task(tenant_id="globex", topic_name="secret", error_details="x")
    assert sorted(get_ids(viewer_api)) == sorted([own.id, shared.id])
    assert count(viewer_api) == 2
    assert post_ids(viewer_api, {"tenantIdIn": ["globex"]}) == []
    assert viewer_api.get(f"{URL}/{foreign.id}").status_code == 404
    assert viewer_api.get(f"{URL}/{foreign.id}/errorDetails").status_code == 404
    assert "secret" not in viewer_api.get(URL + "/topic-names").json()


def test_workers_may_not_query_but_viewers_may(worker_api, viewer_api):
    make_task()
    assert worker_api.get(URL).status_code == 403
    assert worker_api.get(URL).json()["type"] == "AuthorizationException"
    assert viewer_api.get(URL).status_code == 200


def test_topic_names_with_locked_unlocked_and_retries_filters(viewer_api):
    make_task(topic_name="locked-topic", locked_for=60)
    make_task(topic_name="free-topic")
    make_task(topic_name="failed-topic", retries=0)

    def names(**params):
        response = viewer_api.get(URL + "/topic-names", params)
        assert response.status_code == 200
        return response.json()

    assert names() == ["failed-topic", "free-topic", "locked-topic"]
    assert names(withLockedTasks="true") == ["locked-topic"]
    assert names(withUnlockedTasks="true") == ["failed-topic", "free-topic"]
    assert names(withRetriesLeft="true") == ["free-topic", "locked-topic"]
    assert names(withLockedTasks="true", withUnlockedTasks="true") == []
    assert viewer_api.get(URL + "/topic-names", {"withLockedTasks": "x"}).status_code == 400


def test_count_get_example(viewer_api):
    make_task(topic_name="aTopic")
    make_task(topic_name="other")
    assert viewer_api.get(URL + "/count?topicName=aTopic").json() == {"count": 1}
    body = {"topicName": "aTopic", "withRetriesLeft": True}
    assert viewer_api.post(URL + "/count", body, format="json").json() == {"count": 1}


def test_variable_names_with_double_underscores_and_quotes_are_one_key(admin_api, worker_api):
    odd = make_task(
        variables={
            "order__id": {"type": "String", "value": "o-1", "valueInfo": {}},
            "it's": {"type": "Integer", "value": 3, "valueInfo": {}},
        }
    )
    make_task(variables={"order": {"type": "Json", "value": {"id": {"value": "o-1"}}}})
    body = {"processVariables": [{"name": "order__id", "operator": "eq", "value": "o-1"}]}
    assert post_ids(admin_api, body) == [odd.id]
    body = {"processVariables": [{"name": "it's", "operator": "gteq", "value": 3}]}
    assert post_ids(admin_api, body) == [odd.id]
    fetch = {
        "workerId": "w",
        "maxTasks": 5,
        "topics": [
            {"topicName": "aTopic", "lockDuration": 1000, "processVariables": {"order__id": "o-1"}}
        ],
    }
    fetched = worker_api.post(URL + "/fetchAndLock", fetch, format="json").json()
    assert [t["id"] for t in fetched] == [odd.id]
