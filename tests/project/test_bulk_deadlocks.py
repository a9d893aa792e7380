"""project.bulk on PostgreSQL: a statement aborted as a deadlock's victim runs again by itself,
with real concurrent connections (the chunk in a thread, the other transaction on its own)."""

import threading
import time

import psycopg
import pytest
from django.db import connection, transaction

from external_tasks.models import ExternalTask, ExternalTaskLog
from project import batches, bulk
from tests.external_tasks.conftest import make_task

TABLE = ExternalTask._meta.db_table


def _other_connection():
    settings_dict = connection.settings_dict
    return psycopg.connect(
        host=settings_dict["HOST"] or None,
        port=settings_dict["PORT"] or None,
        user=settings_dict["USER"] or None,
        dbname=settings_dict["NAME"],
    )


def _wait_for_a_lock_wait(other, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = other.execute(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid <> pg_backend_pid()"
        ).fetchone()[0]
        if waiting:
            return
        time.sleep(0.02)
    raise AssertionError("the chunk never waited for the other transaction's row lock")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_chunk_that_deadlocks_with_another_transaction_runs_again_transparently(
    admin_user, monkeypatch
):
    deadlocks = []
    is_deadlock = bulk._is_deadlock
    monkeypatch.setattr(
        bulk, "_is_deadlock", lambda error: deadlocks.append(error) or is_deadlock(error)
    )
    for task_id in ("dl-a", "dl-b"):
        make_task(id=task_id, retries=0, tenant_id="acme")
    apply = batches.TYPES["set-external-task-retries"].apply
    outcome = {}

    def chunk():
        try:
            with transaction.atomic():
                outcome["result"] = apply(admin_user, ["dl-b", "dl-a"], {"retries": 3})
        except Exception as error:  # noqa: BLE001 - asserted below
            outcome["error"] = error
        finally:
            connection.close()

    with _other_connection() as other:
        # The chunk's backend (deadlock_timeout 1 s) is the one that finds the deadlock.
        other.execute("SET deadlock_timeout = '30s'")
        other.execute(f"UPDATE {TABLE} SET priority = 7 WHERE id = 'dl-b'")
        worker = threading.Thread(target=chunk)
        worker.start()
        # The chunk holds dl-a (id order) and waits for dl-b; taking dl-a now closes the cycle.
        _wait_for_a_lock_wait(other)
        other.execute(f"UPDATE {TABLE} SET priority = 7 WHERE id = 'dl-a'")
        other.commit()
        worker.join(timeout=60)
    assert "error" not in outcome, outcome.get("error")
    assert len(deadlocks) == 1  # aborted once, then run again
    assert (outcome["result"].changed, outcome["result"].skipped) == (2, 0)
    rows = ExternalTask.objects.order_by("id").values_list("id", "retries", "priority")
    assert list(rows) == [("dl-a", 3, 7), ("dl-b", 3, 7)]
    # The aborted attempt's log rows went with it: one entry per task.
    logged = ExternalTaskLog.objects.filter(event="retries-set").values_list("task_id", flat=True)
    assert sorted(logged) == ["dl-a", "dl-b"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_chunks_over_the_same_rows_in_opposite_orders_both_finish(admin_user):
    ids = [f"ov-{index:03}" for index in range(300)]
    for task_id in ids:
        make_task(id=task_id, retries=0)
    retries = batches.TYPES["set-external-task-retries"].apply
    priority = batches.TYPES["set-external-task-priority"].apply
    results, errors = [], []
    start = threading.Barrier(2)

    def run(apply, chunk_ids, parameters):
        try:
            start.wait()
            with transaction.atomic():
                results.append(apply(admin_user, chunk_ids, parameters).changed)
        except Exception as error:  # noqa: BLE001 - asserted below
            errors.append(error)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=(retries, ids, {"retries": 4})),
        threading.Thread(target=run, args=(priority, list(reversed(ids)), {"priority": 9})),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert results == [300, 300]
    assert ExternalTask.objects.filter(retries=4, priority=9).count() == 300
    assert ExternalTaskLog.objects.count() == 600
