"""Job times are stored to the millisecond, as Camunda keeps them: a time a client reads is
exactly the stored one, so sending it back as a bound leaves that row out; older rows are cut
to milliseconds by the data migration."""

import importlib
from datetime import UTC, datetime
from types import SimpleNamespace

from django.apps import apps
from django.db import connection

from jobs.models import Job, JobLog
from tests.jobs.factories import make_job

URL = "/engine-rest/job"


def whole_ms(value) -> bool:
    return value is None or value.microsecond % 1000 == 0


def ids(api, **params):
    response = api.get(URL, params)
    assert response.status_code == 200, response.content
    return [job["id"] for job in response.json()]


def test_a_due_date_read_back_as_a_bound_leaves_the_job_out(operator_api):
    make_job("bad", handler="tests.jobs.handlers.explode", retries=3)
    # The executor's failure path schedules the next attempt from the clock.
    assert operator_api.post(f"{URL}/bad/execute").status_code == 500
    job = Job.objects.get(id="bad")
    assert job.retries == 2 and job.due_date is not None
    assert whole_ms(job.due_date) and whole_ms(job.create_time)
    assert all(whole_ms(t) for t in JobLog.objects.values_list("timestamp", flat=True))
    shown = operator_api.get(f"{URL}/bad").json()
    due, created = shown["dueDate"], shown["createTime"]
    assert ids(operator_api, dueDates=f"gt_{due}") == []
    assert ids(operator_api, dueDates=f"lt_{due}") == []
    assert ids(operator_api, createTimes=f"gt_{created}") == []
    assert ids(operator_api, createTimes=f"lt_{created}") == []
    body = {"dueDates": [{"operator": "gt", "value": due}]}
    assert operator_api.post(URL, body, format="json").json() == []


def test_a_due_date_given_with_microseconds_is_stored_to_the_millisecond(operator_api):
    make_job("timer", due_date=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC))
    body = {"duedate": "2031-05-06T07:08:09.123456+0000"}
    assert operator_api.put(f"{URL}/timer/duedate", body, format="json").status_code == 204
    job = Job.objects.get(id="timer")
    assert job.due_date == datetime(2031, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
    due = operator_api.get(f"{URL}/timer").json()["dueDate"]
    assert ids(operator_api, dueDates=f"gt_{due}") == []


def test_the_data_migration_cuts_stored_times_to_milliseconds(db):
    job = make_job("old", due_date=datetime(2030, 1, 1, tzinfo=UTC))
    # Rows written before the clock: microseconds, one of them cut to a whole second.
    Job.objects.filter(id="old").update(
        due_date=datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        lock_expiration_time=datetime(2030, 1, 2, 3, 4, 5, 456, tzinfo=UTC),
        create_time=datetime(2020, 1, 2, 3, 4, 5, 999999, tzinfo=UTC),
    )
    JobLog.objects.create(
        job_id=job.id, event="created", timestamp=datetime(2020, 1, 1, 0, 0, 0, 1500, tzinfo=UTC)
    )
    untouched = datetime(2020, 3, 3, 3, 3, 3, 120000, tzinfo=UTC)
    JobLog.objects.create(job_id=job.id, event="failed", timestamp=untouched)
    migration = importlib.import_module("jobs.migrations.0007_times_to_milliseconds")
    # What RunPython hands it: the migration only reads the editor's connection (SQLite's
    # real editor cannot open inside a test's transaction).
    migration.truncate(apps, SimpleNamespace(connection=connection))
    job.refresh_from_db()
    assert job.due_date == datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert job.lock_expiration_time == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert job.create_time == datetime(2020, 1, 2, 3, 4, 5, 999000, tzinfo=UTC)
    stamps = sorted(JobLog.objects.filter(job_id=job.id).values_list("timestamp", flat=True))
    assert stamps == [datetime(2020, 1, 1, 0, 0, 0, 1000, tzinfo=UTC), untouched]
    # A time cut to a whole second compares equal to the same time written by Django.
    whole = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert list(Job.objects.filter(lock_expiration_time=whole).values_list("id", flat=True)) == [
        "old"
    ]
    assert Job.objects.filter(lock_expiration_time__gt=whole).count() == 0
