"""External-task times are stored to the millisecond, as Camunda keeps them: a worker or client
that reads a lockExpirationTime or createTime and sends it back as a bound does not get the
task itself; tasks created in the same millisecond sort by id; older rows are cut to
milliseconds by the data migration."""

import importlib
from datetime import UTC, datetime
from types import SimpleNamespace

from django.apps import apps
from django.db import connection

from external_tasks.models import ExternalTask, ExternalTaskLog
from tests.external_tasks.conftest import URL, fetch_body, make_task


def whole_ms(value) -> bool:
    return value is None or value.microsecond % 1000 == 0


def ids(api, **params):
    response = api.get(URL, params)
    assert response.status_code == 200, response.content
    return [task["id"] for task in response.json()]


def test_a_lock_expiration_read_back_as_a_bound_leaves_the_task_out(worker_api, viewer_api):
    task = make_task(tenant_id="acme")
    [locked] = worker_api.post(URL + "/fetchAndLock", fetch_body(), format="json").json()
    expires = locked["lockExpirationTime"]
    assert viewer_api.get(f"{URL}/{task.id}").json()["lockExpirationTime"] == expires
    task.refresh_from_db()
    assert whole_ms(task.lock_expiration_time) and whole_ms(task.create_time)
    assert ids(viewer_api, lockExpirationAfter=expires) == []
    assert ids(viewer_api, lockExpirationBefore=expires) == []
    body = {"lockExpirationAfter": expires}
    assert viewer_api.post(URL, body, format="json").json() == []
    stamps = ExternalTaskLog.objects.filter(task_id=task.id).values_list("timestamp", flat=True)
    assert stamps and all(whole_ms(t) for t in stamps)


def test_every_worker_action_writes_whole_milliseconds(worker_api):
    task = make_task()
    worker_api.post(URL + "/fetchAndLock", fetch_body(), format="json")
    extend = {"workerId": "aWorkerId", "newDuration": 12345}
    assert worker_api.post(f"{URL}/{task.id}/extendLock", extend, format="json").status_code == 204
    task.refresh_from_db()
    assert whole_ms(task.lock_expiration_time)
    failure = {"workerId": "aWorkerId", "retries": 1, "retryTimeout": 777}
    assert worker_api.post(f"{URL}/{task.id}/failure", failure, format="json").status_code == 204
    task.refresh_from_db()
    assert whole_ms(task.lock_expiration_time)
    stamps = ExternalTaskLog.objects.filter(task_id=task.id).values_list("timestamp", flat=True)
    assert len(stamps) == 3 and all(whole_ms(t) for t in stamps)


def test_tasks_created_in_the_same_millisecond_sort_by_id(worker_api, viewer_api):
    specs = [{"topicName": "aTopic", "tenantId": "acme"} for _ in range(5)]
    response = worker_api.post(URL + "/create", specs, format="json")
    assert response.status_code == 200, response.content
    created = sorted(task["id"] for task in response.json())
    times = set(ExternalTask.objects.values_list("create_time", flat=True))
    assert len(times) == 1  # one creation, one millisecond
    ascending = ids(viewer_api, sortBy="createTime", sortOrder="asc")
    assert ascending == created
    assert ids(viewer_api, sortBy="createTime", sortOrder="desc") == created[::-1]
    # The paging windows of a same-millisecond run neither repeat nor skip a task.
    pages = [
        ids(viewer_api, sortBy="createTime", sortOrder="asc", firstResult=i, maxResults=2)
        for i in (0, 2, 4)
    ]
    assert [task_id for page in pages for task_id in page] == created
    # fetchAndLock hands them out in the same order.
    fetch = fetch_body(max_tasks=5)
    fetched = worker_api.post(URL + "/fetchAndLock", fetch, format="json").json()
    assert [task["id"] for task in fetched] == created


def test_the_data_migration_cuts_stored_times_to_milliseconds(db):
    task = make_task()
    ExternalTask.objects.filter(pk=task.id).update(
        lock_expiration_time=datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        create_time=datetime(2020, 1, 2, 3, 4, 5, 999, tzinfo=UTC),
    )
    ExternalTaskLog.objects.create(
        task_id=task.id, event="created", timestamp=datetime(2020, 1, 1, 1, 1, 1, 2345, tzinfo=UTC)
    )
    migration = importlib.import_module("external_tasks.migrations.0007_times_to_milliseconds")
    # What RunPython hands it: the migration only reads the editor's connection.
    migration.truncate(apps, SimpleNamespace(connection=connection))
    task.refresh_from_db()
    assert task.lock_expiration_time == datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    whole = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert task.create_time == whole
    assert ExternalTask.objects.filter(create_time=whole).count() == 1
    assert ExternalTask.objects.filter(create_time__gt=whole).count() == 0
    entry = ExternalTaskLog.objects.get(task_id=task.id)
    assert entry.timestamp == datetime(2020, 1, 1, 1, 1, 1, 2000, tzinfo=UTC)
