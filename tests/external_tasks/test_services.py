"""The service functions the console and commands call directly: ids, lists and querysets."""

import pytest

from external_tasks import services
from external_tasks.filters import ExternalTaskFilter
from external_tasks.models import ExternalTask, ExternalTaskLog
from project.bulk import BulkResult
from project.errors import InvalidRequest, NotFound
from project.models import AuditEntry
from tests.external_tasks.conftest import make_task


def test_set_retries_on_a_filtered_queryset_is_set_based_and_counted(operator_user):
    for _ in range(3):
        make_task(topic_name="billing", retries=0, tenant_id="acme")
    make_task(topic_name="billing", retries=0, tenant_id="globex")
    make_task(topic_name="other", retries=0)
    queryset = ExternalTaskFilter(
        {"topicName": "billing"}, queryset=ExternalTask.objects.all()
    ).filtered()
    result = services.set_retries(
        operator_user, queryset, 4, source="console", filter={"topicName": "billing"}
    )
    # The foreign tenant's row is out of scope: not changed, not counted.
    assert result == BulkResult(changed=3, skipped=0)
    assert ExternalTask.objects.filter(retries=4).count() == 3
    assert ExternalTask.objects.get(tenant_id="globex").retries == 0
    assert ExternalTaskLog.objects.filter(event="retries-set", retries=4).count() == 3
    entry = AuditEntry.objects.get()
    assert (entry.source, entry.count, entry.filter) == ("console", 3, {"topicName": "billing"})


def test_ids_that_vanished_are_skipped_when_not_strict(operator_user):
    task = make_task(retries=0)
    result = services.set_retries(operator_user, [task.id, "gone"], 2, strict=False)
    assert result == BulkResult(changed=1, skipped=1)
    assert AuditEntry.objects.get().skipped == 1


def test_strict_ids_raise_not_found_and_change_nothing(operator_user):
    task = make_task(retries=0)
    with pytest.raises(NotFound):
        services.set_retries(operator_user, [task.id, "gone"], 2)
    task.refresh_from_db()
    assert task.retries == 0
    assert AuditEntry.objects.count() == 0


def test_suspend_and_activate_count_only_rows_that_changed(operator_user, worker_user):
    active = make_task()
    already = make_task(suspended=True)
    result = services.suspend(operator_user, [active.id, already.id])
    assert result == BulkResult(changed=1, skipped=1)
    claimed = services.fetch_and_lock(worker_user, "w", 10, [services.TopicRequest("aTopic", 1000)])
    assert claimed == []
    result = services.activate(operator_user, ExternalTask.objects.all())
    assert result.changed == 2
    claimed = services.fetch_and_lock(worker_user, "w", 10, [services.TopicRequest("aTopic", 1000)])
    assert len(claimed) == 2
    events = set(ExternalTaskLog.objects.values_list("event", flat=True))
    assert {"suspended", "activated", "locked"} <= events


def test_set_priority_and_unlock_on_querysets(operator_user):
    a = make_task(locked_for=60)
    b = make_task(locked_for=60)
    assert services.set_priority(operator_user, ExternalTask.objects.all(), 9).changed == 2
    assert services.unlock(operator_user, [a.id, b.id]).changed == 2
    assert set(ExternalTask.objects.values_list("priority", "worker_id")) == {(9, None)}


def test_delete_needs_visibility_and_logs(admin_user, operator_user):
    own = make_task(tenant_id="acme")
    foreign = make_task(tenant_id="globex")
    with pytest.raises(NotFound):
        services.delete(operator_user, foreign.id)
    assert services.delete(admin_user, [own.id, foreign.id]).changed == 2
    assert ExternalTask.objects.count() == 0
    assert ExternalTaskLog.objects.filter(event="deleted").count() == 2
    assert AuditEntry.objects.get(action="external_task.delete").username == "alice"


def test_bulk_actions_work_in_batches(operator_user, settings, monkeypatch):
    monkeypatch.setattr(services, "BATCH_SIZE", 2)
    for _ in range(5):
        make_task(retries=0)
    assert services.set_retries(operator_user, ExternalTask.objects.all(), 1).changed == 5
    assert set(ExternalTask.objects.values_list("retries", flat=True)) == {1}


@pytest.mark.parametrize("retries", [None, -1, "3", True, 2**31])
def test_set_retries_validates(operator_user, retries):
    task = make_task()
    with pytest.raises(InvalidRequest):
        services.set_retries(operator_user, task.id, retries)


def test_expired_locks_are_fetchable_again(worker_user):
    task = make_task(locked_for=-5, worker_id="crashed")
    claimed = services.fetch_and_lock(
        worker_user, "fresh", 1, [services.TopicRequest("aTopic", 60_000)]
    )
    assert [t.id for t in claimed] == [task.id]
    task.refresh_from_db()
    assert task.worker_id == "fresh" and task.locked


def test_worker_outcomes_reach_the_metrics(worker_user):
    from prometheus_client import REGISTRY

    def sample(name, **labels):
        return REGISTRY.get_sample_value(name, {"face": "internal", "topic": "metered", **labels})

    def outcome(name):
        return sample("taskyard_external_task_outcomes_total", outcome=name) or 0

    services.create(worker_user, [{"topicName": "metered"}, {"topicName": "metered"}])
    fetched_before = sample("taskyard_external_tasks_fetched_total") or 0
    completed_before, failed_before = outcome("completed"), outcome("failed")
    tasks = services.fetch_and_lock(
        worker_user, "w1", 2, [services.TopicRequest(topic_name="metered", lock_duration_ms=60000)]
    )
    services.complete(worker_user, tasks[0].id, "w1")
    services.handle_failure(worker_user, tasks[1].id, "w1", error_message="boom", retries=0)
    assert sample("taskyard_external_tasks_fetched_total") - fetched_before == 2
    assert outcome("completed") - completed_before == 1
    assert outcome("failed") - failed_before == 1
