"""Parallel workers on separate database connections never get the same task."""

import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from external_tasks import services
from external_tasks.models import ExternalTask, ExternalTaskLog


def drain(user, workers: int, batch: int, complete_every: int) -> dict[str, list[str]]:
    """Run `workers` threads that fetch until the pool is empty; return ids per worker."""
    claimed: dict[str, list[str]] = {}
    errors = []
    start = threading.Barrier(workers)

    def work(name):
        try:
            start.wait()
            mine = claimed.setdefault(name, [])
            while True:
                tasks = services.fetch_and_lock(
                    user, name, batch, [services.TopicRequest("pool", 600_000)]
                )
                if not tasks:
                    return
                mine.extend(t.id for t in tasks)
                for task in tasks[::complete_every]:
                    services.complete(user, task.id, name)
        except Exception as error:  # reported by the main thread
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(f"worker-{i}",)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return claimed


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_parallel_workers_share_a_pool_without_duplicates(worker_user):
    postgres = connection.vendor == "postgresql"
    workers, size = (8, 3000) if postgres else (4, 300)
    ExternalTask.objects.bulk_create(ExternalTask(topic_name="pool") for _ in range(size))
    # Some tasks hold expired locks of a crashed worker: they must be handed out too.
    ExternalTask.objects.filter(pk__in=ExternalTask.objects.values("pk")[: size // 10]).update(
        worker_id="crashed", lock_expiration_time=timezone.now() - timedelta(seconds=1)
    )
    all_ids = set(ExternalTask.objects.values_list("pk", flat=True))

    claimed = drain(worker_user, workers, batch=7, complete_every=3)

    handed_out = Counter(task_id for ids in claimed.values() for task_id in ids)
    assert set(handed_out) == all_ids  # none lost
    assert max(handed_out.values()) == 1  # none handed out twice
    assert sum(len(ids) for ids in claimed.values()) == size
    if postgres:
        # The work really was shared, not done by one lucky thread.
        assert sum(1 for ids in claimed.values() if ids) > 1
    completed = ExternalTaskLog.objects.filter(event="completed").count()
    assert ExternalTask.objects.count() == size - completed
    assert ExternalTaskLog.objects.filter(event="locked").count() == size
    remaining = ExternalTask.objects.exclude(worker_id__startswith="worker-")
    assert not remaining.exists()
