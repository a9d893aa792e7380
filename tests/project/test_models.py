from datetime import timedelta

from django.utils import timezone

from external_tasks.models import ExternalTask
from jobs.models import Job, JobDefinition


def test_ids_are_uuid_text_and_any_string_is_a_valid_id(db):
    job = Job.objects.create()
    assert len(job.id) == 36 and job.id.count("-") == 4
    Job.objects.create(id="aJobId")
    assert Job.objects.get(pk="aJobId").retries == 3


def test_new_job_defaults_match_camunda(db):
    job = Job.objects.create(handler="jobs.demo_handlers.send_invoice")
    job.refresh_from_db()
    assert job.type == "message"
    assert job.retries == 3
    assert job.priority == 0
    assert job.suspended is False
    assert job.due_date is None and job.lock_owner is None
    assert abs(job.create_time - timezone.now()) < timedelta(seconds=5)


def test_job_keeps_its_definition_optional(db):
    definition = JobDefinition.objects.create(activity_id="send", job_type="async-continuation")
    job = Job.objects.create(job_definition=definition)
    definition.delete()
    job.refresh_from_db()
    assert job.job_definition is None


def test_external_task_never_failed_has_null_retries(db):
    task = ExternalTask.objects.create(topic_name="send-invoice")
    task.refresh_from_db()
    assert task.retries is None
    assert task.variables == {} and task.extension_properties == {}


def test_external_task_locked_is_derived_from_the_expiry(db):
    now = timezone.now()
    live = ExternalTask(topic_name="t", lock_expiration_time=now + timedelta(minutes=1))
    expired = ExternalTask(topic_name="t", lock_expiration_time=now - timedelta(seconds=1))
    assert live.locked
    assert not expired.locked
    assert not ExternalTask(topic_name="t").locked


def test_times_are_stored_in_utc(db):
    task = ExternalTask.objects.create(topic_name="t")
    task.refresh_from_db()
    assert task.create_time.utcoffset() == timedelta(0)
