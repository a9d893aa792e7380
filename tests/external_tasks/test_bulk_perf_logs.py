"""Bulk external task actions copy their history set-based: one entry per changed task."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from external_tasks import services
from external_tasks.models import FAILED, ExternalTask, ExternalTaskLog
from project.models import AuditEntry
from tests.external_tasks.conftest import make_task


@pytest.fixture
def small_batches(monkeypatch):
    monkeypatch.setattr(services, "BATCH_SIZE", 2)


def test_set_retries_logs_each_task_with_its_copied_fields(admin_user, small_batches):
    tasks = [
        make_task(
            retries=0,
            tenant_id="acme",
            topic_name="mail",
            business_key=f"order-{index}",
            process_instance_id=f"pi{index}",
            activity_id="send",
        )
        for index in range(5)
    ]
    assert services.set_retries(admin_user, [t.id for t in tasks], 3).changed == 5
    logs = {log.task_id: log for log in ExternalTaskLog.objects.filter(event="retries-set")}
    assert set(logs) == {t.id for t in tasks}
    for task in tasks:
        log = logs[task.id]
        assert (log.retries, log.topic_name, log.tenant_id) == (3, "mail", "acme")
        assert (log.business_key, log.process_instance_id, log.activity_id) == (
            task.business_key,
            task.process_instance_id,
            "send",
        )
    assert AuditEntry.objects.filter(action="external_task.set_retries").count() == 1


def test_suspend_skips_and_does_not_log_tasks_already_suspended(admin_user, small_batches):
    tasks = [make_task(retries=2) for _ in range(4)]
    ExternalTask.objects.filter(pk=tasks[0].pk).update(suspended=True)
    result = services.suspend(admin_user, ExternalTask.objects.all(), strict=False)
    assert (result.changed, result.skipped) == (3, 1)
    logged = ExternalTaskLog.objects.filter(event="suspended").values_list("task_id", flat=True)
    assert set(logged) == {t.id for t in tasks[1:]}
    assert set(ExternalTaskLog.objects.values_list("retries", flat=True)) == {2}


def test_bulk_action_on_a_queryset_stays_in_the_operators_tenants(operator_user, small_batches):
    own = [make_task(retries=0, tenant_id="acme") for _ in range(3)]
    foreign = make_task(retries=0, tenant_id="globex")
    assert services.set_retries(operator_user, ExternalTask.objects.all(), 1).changed == 3
    assert ExternalTask.objects.get(pk=foreign.pk).retries == 0
    assert ExternalTaskLog.objects.filter(task_id__in=[t.id for t in own]).count() == 3
    assert not ExternalTaskLog.objects.filter(task_id=foreign.id).exists()


def test_delete_logs_who_deleted_each_task(admin_user, small_batches):
    tasks = [make_task(topic_name="t") for _ in range(3)]
    assert services.delete(admin_user, [t.id for t in tasks]).changed == 3
    assert not ExternalTask.objects.exists()
    assert ExternalTaskLog.objects.filter(event="deleted", topic_name="t").count() == 3


def test_set_retries_announces_the_topics_of_the_changed_tasks_without_reading_them_again(
    admin_user, small_batches, monkeypatch
):
    for topic in ("mail", "mail", "ship", "bill"):
        make_task(retries=0, topic_name=topic)
    announced = []
    monkeypatch.setattr(services.notify, "announce", announced.append)
    queryset = ExternalTask.objects.filter(topic_name__in=["mail", "ship"])
    with CaptureQueriesContext(connection) as ctx:
        assert services.set_retries(admin_user, queryset, 2, strict=False).changed == 3
    assert announced == [["mail", "ship"]]
    # The ids once, then per batch of 2: lock, log, update (one statement on PostgreSQL); no
    # DISTINCT topic query at the end.
    selects = [q["sql"] for q in ctx.captured_queries if "DISTINCT" in q["sql"]]
    assert selects == []
    task_statements = [q for q in ctx.captured_queries if "external_tasks_externaltask" in q["sql"]]
    per_batch = 1 if connection.vendor == "postgresql" else 3
    assert len(task_statements) == 1 + 2 * per_batch


def test_activate_announces_only_the_topics_it_made_fetchable(admin_user, monkeypatch):
    make_task(topic_name="mail", suspended=True)
    make_task(topic_name="ship", suspended=False)
    announced = []
    monkeypatch.setattr(services.notify, "announce", announced.append)
    assert services.activate(admin_user, ExternalTask.objects.all(), strict=False).changed == 1
    assert announced == [["mail"]]


def test_unlock_announces_the_topics_of_the_tasks_it_unlocked(admin_user, monkeypatch):
    make_task(topic_name="mail", worker_id="w", lock_expiration_time=timezone.now())
    announced = []
    monkeypatch.setattr(services.notify, "announce", announced.append)
    with CaptureQueriesContext(connection) as ctx:
        assert services.unlock(admin_user, ExternalTask.objects.all(), strict=False).changed == 1
    assert announced == [["mail"]]
    assert not [q for q in ctx.captured_queries if "DISTINCT" in q["sql"]]


def test_retries_decide_fetchable_and_failed_through_the_stored_flag(admin_user):
    """has_retries is kept by the database: after bulk set-retries the failed task is
    fetchable again and the one set to 0 shows as failed, with no reload in between."""
    failed = make_task(retries=0, topic_name="mail")
    fresh = make_task(retries=None, topic_name="mail")
    services.set_retries(admin_user, [failed.id], 2)
    services.set_retries(admin_user, [fresh.id], 0)
    assert list(ExternalTask.objects.filter(FAILED).values_list("pk", flat=True)) == [fresh.id]
    fetched = services.fetch_and_lock(admin_user, "w1", 10, [services.TopicRequest("mail", 1000)])
    assert [t.id for t in fetched] == [failed.id]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="HOT updates are PostgreSQL's")
def test_setting_retries_that_keep_retries_left_writes_no_index_entries(admin_user):
    """No index may test `retries` itself: then this update is HOT (the new row version stays
    in its page and no index changes), which made 100k set-retries 4x faster (bench)."""
    tasks = [make_task(retries=3) for _ in range(5)]

    def updates():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = %s",
                [ExternalTask._meta.db_table],
            )
            return cursor.fetchone()

    updated, hot = updates()
    services.set_retries(admin_user, [t.id for t in tasks], 5)
    assert updates() == (updated + 5, hot + 5)
