"""Pausing a job queue: executors claim none of its jobs, running jobs finish, audited, and
only operators of every tenant (admins) may do it."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs import claims, services
from jobs.models import Job, JobLog, QueuePause
from project import tenancy
from project.errors import DomainError, InvalidRequest
from project.models import AuditEntry
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

SEND_INVOICE = "jobs.demo_handlers.send_invoice"
LOCK = timedelta(minutes=5)


def enqueue(queue_name="default", **fields):
    return claims.enqueue_job(
        SEND_INVOICE, {"args": ["INV-1"], "kwargs": {}}, queue_name=queue_name, **fields
    )


def acquired(limit=10, queues=None, worker="executor-1"):
    jobs = claims.acquire_jobs(worker, lock_time=LOCK, limit=limit, queues=queues)
    return {job.id for job in jobs}


def runjobs(*args):
    out = StringIO()
    call_command("runjobs", "--once", *args, stdout=out, stderr=out)
    return out.getvalue()


def test_jobs_of_a_paused_queue_are_not_acquired_and_other_queues_are(admin_user):
    emails = enqueue("emails")
    reports = enqueue("reports")

    assert services.pause_queue(admin_user, "emails") is True

    assert acquired() == {reports.id}
    assert Job.objects.get(id=emails.id).lock_owner is None
    # Not even when the executor runs only that queue.
    assert acquired(queues=["emails"], worker="executor-2") == set()


def test_a_resumed_queue_is_acquired_again(admin_user):
    job = enqueue("emails")
    services.pause_queue(admin_user, "emails")
    assert acquired() == set()

    assert services.resume_queue(admin_user, "emails") is True

    assert acquired() == {job.id}
    assert not QueuePause.objects.exists()


def test_runjobs_leaves_a_paused_queues_jobs_waiting(admin_user):
    paused = enqueue("emails")
    running = enqueue("default")
    services.pause_queue(admin_user, "emails")

    runjobs()

    assert Job.objects.filter(id=paused.id).exists()
    assert not Job.objects.filter(id=running.id).exists()
    assert list(JobLog.objects.filter(job_id=paused.id).values_list("event", flat=True)) == [
        "created"
    ]


def test_a_job_claimed_before_the_pause_finishes(admin_user):
    job = enqueue("emails")
    (claimed,) = claims.acquire_jobs("executor-1", lock_time=LOCK, limit=1)
    services.pause_queue(admin_user, "emails")

    assert claims.complete_job(claimed, "executor-1", duration_ms=1.0) is True

    assert not Job.objects.filter(id=job.id).exists()
    assert JobLog.objects.filter(job_id=job.id, event="succeeded").exists()


def test_pausing_the_batch_queue_holds_every_batch_job(admin_user):
    chunk = enqueue("batch")
    services.pause_queue(admin_user, "batch")
    assert acquired(queues=["batch"]) == set()
    services.resume_queue(admin_user, "batch")
    assert acquired(queues=["batch"]) == {chunk.id}


def test_an_operator_may_still_execute_one_job_of_a_paused_queue_by_id(admin_user):
    # Camunda's POST /job/{id}/execute is an explicit order for one job: a pause stops the
    # executors' acquisition, not an operator.
    job = enqueue("emails")
    services.pause_queue(admin_user, "emails")
    claimed = claims.claim_job(job.id, "operator", lock_time=LOCK)
    assert claimed.lock_owner == "operator"


def test_a_queue_without_jobs_may_be_paused_ahead(admin_user):
    services.pause_queue(admin_user, "not-yet")
    later = enqueue("not-yet")
    assert acquired() == set()
    assert Job.objects.get(id=later.id).lock_owner is None


def test_pause_and_resume_are_audited_with_who_and_why(admin_user):
    services.pause_queue(admin_user, "emails", reason="SMTP provider down", source="console")
    services.resume_queue(admin_user, "emails", source="console")

    pause, resume = AuditEntry.objects.order_by("timestamp", "id")
    assert pause.action == "queue.pause" and resume.action == "queue.resume"
    assert pause.username == "alice" and pause.source == "console"
    assert pause.target_ids == ["emails"] and pause.count == 1
    assert pause.before == {"paused": False}
    assert pause.after == {"paused": True, "reason": "SMTP provider down"}
    assert resume.before["paused"] is True and resume.before["pausedBy"] == "alice"
    assert resume.after == {"paused": False}


def test_the_pause_keeps_who_paused_and_why():
    admin = make_user("dora", "admin")
    services.pause_queue(admin, "emails", reason="  maintenance  ")
    pause = QueuePause.objects.get()
    assert (pause.name, pause.paused_by, pause.reason) == ("emails", "dora", "maintenance")


def test_pausing_twice_or_resuming_an_active_queue_changes_nothing(admin_user):
    assert services.pause_queue(admin_user, "emails") is True
    assert services.pause_queue(admin_user, "emails", reason="again") is False
    assert services.resume_queue(admin_user, "reports") is False

    assert QueuePause.objects.get().reason == ""
    assert list(AuditEntry.objects.values_list("action", flat=True)) == ["queue.pause"]


def test_every_tenant_sees_the_pause_in_the_audit_trail(admin_user, viewer_user):
    # The pause is deployment-wide and names no tenant's rows: shown to every viewer, as the
    # queues page shows the pause itself.
    services.pause_queue(admin_user, "emails")
    visible = tenancy.scope_audit(AuditEntry.objects.all(), viewer_user)
    assert list(visible.values_list("action", flat=True)) == ["queue.pause"]


@pytest.mark.parametrize("role", ["viewer", "operator", "worker"])
def test_tenant_users_may_not_pause_or_resume(role, admin_user):
    user = make_user(f"{role}-1", role, ["acme"])
    services.pause_queue(admin_user, "reports")
    with pytest.raises(DomainError) as refused:
        services.pause_queue(user, "emails")
    assert refused.value.status_code == 403
    assert "all tenants" in refused.value.message
    with pytest.raises(DomainError) as refused:
        services.resume_queue(user, "reports")
    assert refused.value.status_code == 403

    assert list(QueuePause.objects.values_list("name", flat=True)) == ["reports"]
    assert AuditEntry.objects.count() == 1


def test_an_operator_without_tenants_is_still_restricted(db):
    # No memberships means "only tenant-less rows", not "every tenant".
    user = make_user("olga", "operator")
    assert services.may_pause_queues(user) is False


def test_admins_may_pause(admin_user):
    assert services.may_pause_queues(admin_user) is True


@pytest.mark.parametrize(
    "name, message",
    [
        ("", "required"),
        ("   ", "required"),
        (None, "required"),
        ("a\x00b", "NUL"),
        ("q" * 101, "at most 100"),
    ],
)
def test_bad_queue_names_are_refused(admin_user, name, message):
    with pytest.raises(InvalidRequest) as refused:
        services.pause_queue(admin_user, name)
    assert message in refused.value.message
    with pytest.raises(InvalidRequest):
        services.resume_queue(admin_user, name)
    assert not QueuePause.objects.exists()
    assert not AuditEntry.objects.exists()


def test_the_longest_queue_name_is_accepted(admin_user):
    name = "q" * 100
    services.pause_queue(admin_user, name)
    job = enqueue(name)
    assert acquired() == set()
    services.resume_queue(admin_user, name)
    assert acquired() == {job.id}


def test_a_too_long_reason_is_refused(admin_user):
    with pytest.raises(InvalidRequest):
        services.pause_queue(admin_user, "emails", reason="x" * 1001)
    assert not QueuePause.objects.exists()


@pytest.mark.postgres
def test_the_claim_stays_one_statement_with_a_pause(admin_user):
    services.pause_queue(admin_user, "emails")
    claims.acquire_jobs("warm-up", lock_time=LOCK, limit=5)  # compiles the cached statement
    job = enqueue("default")
    enqueue("emails")
    with CaptureQueriesContext(connection) as queries:
        jobs = claims.acquire_jobs("executor-1", lock_time=LOCK, limit=5)
    assert [j.id for j in jobs] == [job.id]
    assert len(queries) == 1, [q["sql"] for q in queries]
    assert QueuePause._meta.db_table in queries[0]["sql"]


def test_jobs_are_filtered_by_queue_over_rest_get_post_and_count(admin_api):
    emails = enqueue("emails")
    enqueue("reports")
    enqueue("emails-2")

    listed = admin_api.get("/engine-rest/job", {"queueName": "emails"})
    assert listed.status_code == 200
    assert [job["id"] for job in listed.json()] == [emails.id]
    assert admin_api.get("/engine-rest/job/count", {"queueName": "emails"}).json() == {"count": 1}
    posted = admin_api.post("/engine-rest/job", {"queueName": "emails"}, format="json")
    assert [job["id"] for job in posted.json()] == [emails.id]
    assert admin_api.get("/engine-rest/job/count", {"queueName": "nope"}).json() == {"count": 0}


def test_per_queue_counts_agree_with_the_status_table_and_the_claim():
    from django.utils import timezone

    from jobs.models import JobDefinition

    now = timezone.now()
    suspended_definition = JobDefinition.objects.create(suspended=True)
    active_definition = JobDefinition.objects.create()
    specs = [
        {},
        {"due_date": now + timedelta(hours=1)},
        {"retries": 0},
        {"suspended": True},
        {"lock_owner": "x", "lock_expiration_time": now + timedelta(minutes=1)},
        {"lock_owner": "x", "lock_expiration_time": now - timedelta(minutes=1)},
        {"exception_message": "boom", "retries": 2},
        {"exception_message": "boom", "retries": 2, "due_date": now + timedelta(minutes=5)},
        {"due_date": now - timedelta(hours=2)},
    ]
    for queue in ("a", "b"):
        for definition in (None, suspended_definition, active_definition):
            for spec in specs:
                Job.objects.create(queue_name=queue, job_definition=definition, **spec)

    counts = Job.objects.per_queue(now)

    for queue in ("a", "b"):
        jobs = Job.objects.filter(queue_name=queue)
        for key in ("failed", "locked", "retrying", "waiting"):
            assert counts[queue][key] == jobs.in_state(key, now).count(), key
        ready = jobs.acquirable(now)
        assert counts[queue]["ready"] == ready.count()
        oldest = min(job.due_date or job.create_time for job in ready)
        assert counts[queue]["oldest_due"] == oldest
    assert Job.objects.filter(queue_name="none").per_queue(now) == {}
