import io

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Q

from external_tasks.models import ExternalTask, ExternalTaskLog
from jobs.models import Job, JobDefinition, JobLog


@pytest.fixture
def seeded(db):
    out = io.StringIO()
    call_command("seed_demo", jobs=400, external_tasks=400, seed=3, quiet=True, stdout=out)
    return out.getvalue()


def test_seed_creates_the_requested_counts_and_reports_them(seeded):
    assert Job.objects.count() == 400
    assert ExternalTask.objects.count() == 400
    assert JobDefinition.objects.exists()
    assert "Seeded 400 jobs" in seeded and "400 external tasks" in seeded


def test_seeded_jobs_show_every_state_an_operator_meets(seeded):
    from django.utils import timezone

    now = timezone.now()
    jobs = Job.objects.all()
    failed = jobs.filter(retries=0)
    assert failed.exists()
    assert all("\n" in j.exception_stacktrace and j.exception_message for j in failed)
    assert jobs.filter(retries__gt=0, exception_message__isnull=False).exists()  # retrying
    assert jobs.filter(lock_expiration_time__gt=now, lock_owner__isnull=False).exists()
    assert jobs.filter(lock_expiration_time__lte=now, lock_owner__isnull=False).exists()
    assert jobs.filter(suspended=True).exists()
    assert jobs.filter(type="timer", due_date__gt=now).exists()
    assert jobs.filter(type="timer", due_date__lte=now).exists()
    assert jobs.filter(type="message").exists()
    assert jobs.filter(tenant_id__isnull=True).exists()
    assert jobs.values("tenant_id").distinct().count() >= 3
    assert jobs.values("priority").distinct().count() >= 2
    assert jobs.filter(process_definition_id__regex=r"^[a-z-]+:\d+:[0-9a-f-]{36}$").count() == 400
    assert JobDefinition.objects.filter(suspended=True).exists()
    assert JobDefinition.objects.filter(suspended=False).exists()
    assert JobLog.objects.filter(event="failed").exists()


def test_seeded_external_tasks_show_every_state_a_worker_meets(seeded):
    from django.utils import timezone

    now = timezone.now()
    tasks = ExternalTask.objects.all()
    assert tasks.filter(retries__isnull=True).exists()
    assert tasks.filter(retries__gt=0).exists()
    failed = tasks.filter(retries=0)
    assert failed.exists() and all("\n" in t.error_details for t in failed)
    assert tasks.filter(lock_expiration_time__gt=now, worker_id__isnull=False).exists()
    assert tasks.filter(lock_expiration_time__lte=now, worker_id__isnull=False).exists()
    assert tasks.filter(suspended=True).exists()
    assert tasks.filter(tenant_id__isnull=True).exists()
    assert tasks.filter(~Q(business_key=None)).exists()
    assert tasks.values("topic_name").distinct().count() >= 5
    types = {v["type"] for t in tasks[:20] for v in t.variables.values()}
    assert {"String", "Integer", "Long", "Double", "Boolean", "Date", "Json", "Null"} <= types
    assert ExternalTaskLog.objects.filter(event="completed").exists()
    assert ExternalTaskLog.objects.filter(event="failed").exists()


def test_same_seed_gives_the_same_mix(db):
    call_command("seed_demo", jobs=200, external_tasks=0, seed=11, quiet=True, stdout=io.StringIO())
    first = list(Job.objects.order_by("create_time").values_list("retries", "priority"))
    Job.objects.all().delete()
    JobDefinition.objects.all().delete()
    call_command("seed_demo", jobs=200, external_tasks=0, seed=11, quiet=True, stdout=io.StringIO())
    second = list(Job.objects.order_by("create_time").values_list("retries", "priority"))
    assert sorted(first) == sorted(second)


def test_if_empty_leaves_existing_data_alone(seeded):
    out = io.StringIO()
    call_command("seed_demo", jobs=50, external_tasks=50, if_empty=True, quiet=True, stdout=out)
    assert Job.objects.count() == 400
    assert "already present" in out.getvalue()


def test_negative_counts_are_refused(db):
    with pytest.raises(CommandError):
        call_command("seed_demo", jobs=-1, external_tasks=0, quiet=True)
