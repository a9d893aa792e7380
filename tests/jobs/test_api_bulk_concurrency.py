"""Bulk operator actions running at the same time on PostgreSQL: no deadlock, nothing lost."""

import threading

import pytest
from django.db import connection

from jobs import services
from jobs.models import Job, JobLog
from tests.jobs.factories import make_job


@pytest.mark.postgres
def test_concurrent_bulk_actions_on_overlapping_rows_all_finish(
    admin_user, transactional_db, monkeypatch
):
    monkeypatch.setattr(services, "BATCH_SIZE", 7)
    for index in range(120):
        make_job(f"c{index:03}", retries=0)
    actions = [
        lambda: services.set_retries(admin_user, Job.objects.all(), 5),
        lambda: services.suspend(admin_user, Job.objects.filter(id__gte="c040")),
        lambda: services.set_priority(
            admin_user, list(reversed([f"c{i:03}" for i in range(120)])), 9
        ),
    ]
    results, errors = [], []
    start = threading.Barrier(len(actions))

    def run(action):
        try:
            start.wait()
            results.append(action())
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(action,)) for action in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(result.changed for result in results) == [80, 120, 120]
    assert Job.objects.filter(retries=5, priority=9).count() == 120
    assert Job.objects.filter(suspended=True).count() == 80
    assert JobLog.objects.count() == 320
