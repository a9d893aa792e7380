"""Batches (project.batches): start() snapshots the rows and answers at once; the executor's
batch queue runs the chunks; counts, audit entries, roles and tenants as an operator sees them."""

from io import StringIO

import pytest
from django.core.management import call_command

from external_tasks.models import ExternalTask, ExternalTaskLog
from jobs.models import Job, JobDefinition, JobLog
from project import batches
from project.errors import BadUserRequest, DomainError, InvalidRequest, NotFound
from project.models import AuditEntry, Batch, BatchChunk, Incident
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def run_batches():
    """Run the batch queue until nothing is executable (what an executor does)."""
    out = StringIO()
    call_command("runjobs", "--once", "--queue", "batch", stdout=out, stderr=out)
    return out.getvalue()


def failed_jobs(count, tenant=None, **fields):
    jobs = [
        Job(
            handler="jobs.demo_handlers.send_invoice",
            retries=0,
            exception_message="boom",
            tenant_id=tenant,
            **fields,
        )
        for _ in range(count)
    ]
    return Job.objects.bulk_create(jobs)


def failed_tasks(count, tenant=None, topic="invoices"):
    tasks = [
        ExternalTask(topic_name=topic, retries=0, error_message="boom", tenant_id=tenant)
        for _ in range(count)
    ]
    return ExternalTask.objects.bulk_create(tasks)


@pytest.fixture
def small_chunks(settings):
    settings.TASKYARD_BATCH_CHUNK_SIZE = 3
    settings.TASKYARD_BATCH_JOBS_PER_SEED = 2


def test_start_snapshots_the_rows_in_chunks_and_answers_a_running_batch(
    operator_user, small_chunks
):
    jobs = failed_jobs(7, tenant="acme")
    failed_jobs(2, tenant="globex")  # not the operator's: not in the batch

    batch = batches.start(operator_user, "set-job-retries", Job.objects.all(), {"retries": 2})

    assert batch.outcome == "running" and batch.end_time is None
    assert batch.total_rows == 7 and batch.total_jobs == 3
    assert batch.invocations_per_batch_job == 3 and batch.batch_jobs_per_seed == 2
    assert batch.tenant_id == "acme" and batch.create_user_id == "bob"
    assert batch.description == "set retries to 2"
    chunks = list(BatchChunk.objects.filter(batch=batch).values_list("number", "size", "ids"))
    # Every visible row in exactly one chunk (in the order the snapshot read them).
    assert [(number, size, len(ids)) for number, size, ids in chunks] == [
        (1, 3, 3),
        (2, 3, 3),
        (3, 1, 1),
    ]
    snapshot = [row_id for _, _, ids in chunks for row_id in ids]
    assert sorted(snapshot) == sorted(job.id for job in jobs)
    # Nothing changed yet: the executor does the work.
    assert Job.objects.filter(retries=0).count() == 9
    definitions = JobDefinition.objects.filter(job_configuration=batch.id)
    assert sorted(definitions.values_list("job_type", flat=True)) == [
        "batch-monitor-job",
        "batch-seed-job",
        "set-job-retries",
    ]
    assert set(definitions.values_list("tenant_id", flat=True)) == {"acme"}
    seed = Job.objects.get(job_definition_id=batch.seed_job_definition_id)
    assert seed.queue_name == "batch" and seed.payload == {"batch": batch.id}
    entry = batch.audit_entry
    assert entry.action == "job.set_retries" and entry.count == 7
    assert entry.after["batch"] == batch.id
    assert set(entry.tenants.values_list("tenant_id", flat=True)) == {"acme"}


def test_the_executor_runs_the_batch_to_its_end_with_exact_counts(operator_user, small_chunks):
    failed_jobs(7, tenant="acme")
    done = failed_jobs(1, tenant="acme")[0]
    Job.objects.filter(id=done.id).update(retries=2)  # already as asked: skipped
    batch = batches.start(operator_user, "set-job-retries", Job.objects.all(), {"retries": 2})

    run_batches()

    batch.refresh_from_db()
    assert batch.outcome == "completed" and batch.end_time is not None
    assert (batch.rows_changed, batch.rows_skipped, batch.rows_failed) == (7, 1, 0)
    assert batch.jobs_created == 3 and batch.completed_jobs == 3
    assert batch.execution_start_time is not None
    assert not BatchChunk.objects.filter(batch=batch).exists()
    # Retries set on every failed job, each with its history entry and its incident resolved.
    batch_queue = Job.objects.filter(queue_name="batch")
    assert not batch_queue.exists()
    assert set(Job.objects.values_list("retries", flat=True)) == {2}
    assert JobLog.objects.filter(event="retries-set", worker="bob").count() == 7
    # The batch's job definitions are gone with it, as in Camunda.
    assert not JobDefinition.objects.filter(job_configuration=batch.id).exists()
    entry = AuditEntry.objects.get(pk=batch.audit_entry_id)
    assert (entry.count, entry.skipped) == (7, 1)
    assert entry.after["outcome"] == "completed" and entry.after["failed"] == 0
    assert batches.visible(operator_user).filter(end_time__isnull=True).count() == 0
    assert batches.get(operator_user, batch.id).outcome == "completed"
    with pytest.raises(NotFound):
        batches.get(operator_user, batch.id, running=True)


def test_external_task_retries_batch_resolves_incidents(operator_user, small_chunks):
    from project import incidents

    tasks = failed_tasks(5, tenant="acme")
    incidents.open_for(incidents.FAILED_EXTERNAL_TASK, ExternalTask.objects.all())
    batch = batches.start(
        operator_user, "set-external-task-retries", [t.id for t in tasks], {"retries": 3}
    )
    assert batch.total_rows == 5 and batch.total_jobs == 2

    run_batches()

    batch.refresh_from_db()
    assert (batch.outcome, batch.rows_changed, batch.rows_skipped) == ("completed", 5, 0)
    assert set(ExternalTask.objects.values_list("retries", flat=True)) == {3}
    assert ExternalTaskLog.objects.filter(event="retries-set", retries=3).count() == 5
    assert not Incident.objects.filter(state="open").exists()


def test_no_matching_rows_is_camundas_bad_user_request_and_writes_nothing(operator_user):
    with pytest.raises(BadUserRequest, match="^jobIds is empty$"):
        batches.start(operator_user, "set-job-retries", Job.objects.all(), {"retries": 1})
    with pytest.raises(BadUserRequest, match="^externalTaskIds is empty$"):
        batches.start(operator_user, "set-external-task-retries", [], {"retries": 1})
    assert not Batch.objects.exists() and not AuditEntry.objects.exists()
    assert not JobDefinition.objects.exists() and not Job.objects.exists()


@pytest.mark.parametrize(
    "type_name, parameters",
    [
        ("set-job-retries", {"retries": -1}),
        ("set-job-retries", {"retries": "3"}),
        ("set-job-retries", {}),
        ("set-job-retries", {"retries": 1, "dueDate": "not a date"}),
        ("set-job-retries", {"retries": 1, "colour": "red"}),
        ("set-job-priority", {"priority": 2**63}),
        ("suspend-jobs", {"suspended": True}),
        ("set-external-task-retries", {"retries": None}),
        ("no-such-type", {}),
        ("set-job-retries", [1]),
    ],
)
def test_bad_parameters_are_refused_before_anything_is_written(
    operator_user, type_name, parameters
):
    failed_jobs(2)
    failed_tasks(2)
    with pytest.raises(InvalidRequest):
        batches.start(operator_user, type_name, ["x"], parameters)
    assert not Batch.objects.exists() and not AuditEntry.objects.exists()
    assert not JobDefinition.objects.exists()


def test_viewers_may_not_start_batches_and_only_admins_delete_rows(viewer_user, operator_user):
    failed_jobs(2)
    with pytest.raises(DomainError) as refused:
        batches.start(viewer_user, "set-job-retries", Job.objects.all(), {"retries": 1})
    assert refused.value.status_code == 403
    with pytest.raises(DomainError) as refused:
        batches.start(operator_user, "delete-jobs", Job.objects.all(), {})
    assert refused.value.status_code == 403
    assert not Batch.objects.exists()


def three_chunk_batch(user, type_name="set-job-retries", parameters=None, tenant="acme"):
    failed_jobs(7, tenant=tenant)
    parameters = {"retries": 2} if parameters is None else parameters
    return batches.start(user, type_name, Job.objects.all(), parameters)


def test_other_tenants_batches_answer_like_unknown_ids(operator_user, viewer_user, small_chunks):
    batch = three_chunk_batch(operator_user)
    outsider = make_user("dave", "operator", ["globex"])
    admin = make_user("alice", "admin")

    assert list(batches.visible(viewer_user)) == [batch]  # carol reads acme's batches
    assert list(batches.visible(admin)) == [batch]
    assert not batches.visible(outsider).exists()
    for attempt in (
        lambda: batches.get(outsider, batch.id),
        lambda: batches.get(outsider, batch.id, running=True),
        lambda: batches.set_suspended(outsider, batch.id, True),
        lambda: batches.delete(outsider, batch.id),
        lambda: batches.get(operator_user, "no-such-batch"),
        lambda: batches.get(operator_user, "nul\x00id"),
    ):
        with pytest.raises(NotFound):
            attempt()
    batch.refresh_from_db()
    assert not batch.suspended and batch.end_time is None


def test_a_batch_over_two_tenants_is_seen_only_by_members_of_both(operator_user, small_chunks):
    admin = make_user("alice", "admin")
    failed_jobs(2, tenant="acme")
    failed_jobs(2, tenant="globex")
    batch = batches.start(admin, "set-job-retries", Job.objects.all(), {"retries": 1})
    both = make_user("erin", "viewer", ["acme", "globex"])

    assert batch.tenant_id is None
    assert not batches.visible(operator_user).exists()
    assert list(batches.visible(both)) == [batch]


def test_workers_see_no_batches(worker_user, operator_user, small_chunks):
    three_chunk_batch(operator_user)
    assert not batches.visible(worker_user).exists()


def test_a_suspended_batch_runs_no_chunk_until_resumed(operator_user, small_chunks):
    batch = three_chunk_batch(operator_user)

    batches.set_suspended(operator_user, batch.id, True)
    run_batches()

    batch.refresh_from_db()
    assert batch.suspended and batch.rows_changed == 0 and batch.jobs_created == 0
    assert BatchChunk.objects.filter(batch=batch).count() == 3
    assert set(
        JobDefinition.objects.filter(job_configuration=batch.id).values_list("suspended", flat=True)
    ) == {True}
    assert AuditEntry.objects.filter(action="batch.suspend", target_ids=[batch.id]).exists()

    batches.set_suspended(operator_user, batch.id, False)
    run_batches()

    batch.refresh_from_db()
    assert (batch.outcome, batch.rows_changed) == ("completed", 7)


def test_a_chunk_job_claimed_before_the_suspension_hands_its_chunk_on(operator_user, small_chunks):
    from jobs import batches as engine

    batch = three_chunk_batch(operator_user)
    run_batches_limited(1)  # the seed: chunk jobs 1 and 2, and the next seed
    batches.set_suspended(operator_user, batch.id, True)

    outcome = engine.run_chunk.call(batch=batch.id, chunk=1)

    assert outcome == {"changed": 0, "skipped": 0, "suspended": True}
    assert BatchChunk.objects.filter(batch=batch, number=1).exists()
    waiting = Job.objects.filter(job_definition_id=batch.batch_job_definition_id)
    assert [job.payload["chunk"] for job in waiting].count(1) == 2  # the old and its successor


def run_batches_limited(count):
    out = StringIO()
    call_command(
        "runjobs", "--once", "--queue", "batch", "--max-jobs", str(count), stdout=out, stderr=out
    )


def test_cancelling_stops_the_batch_and_keeps_its_history(operator_user, small_chunks):
    batch = three_chunk_batch(operator_user)
    run_batches_limited(2)  # the seed and a chunk (chunk jobs go before the next seed)

    batches.delete(operator_user, batch.id)

    batch.refresh_from_db()
    assert batch.outcome == "cancelled" and batch.end_time is not None
    assert (batch.rows_changed, batch.rows_skipped) == (3, 0)
    assert not BatchChunk.objects.filter(batch=batch).exists()
    assert not JobDefinition.objects.filter(job_configuration=batch.id).exists()
    assert not Job.objects.filter(queue_name="batch").exists()
    assert Job.objects.filter(retries=0).count() == 4  # the chunks that did not run
    entry = AuditEntry.objects.get(pk=batch.audit_entry_id)
    assert entry.count == 3 and entry.after["outcome"] == "cancelled"
    assert entry.after["notRun"] == 4
    assert AuditEntry.objects.filter(action="batch.cancel").count() == 1
    run_batches()  # nothing left to run
    assert Job.objects.filter(retries=0).count() == 4
    with pytest.raises(NotFound):  # gone from the running batches
        batches.delete(operator_user, batch.id)
    with pytest.raises(NotFound):
        batches.set_suspended(operator_user, batch.id, True)


def test_cascade_and_history_deletion_are_for_admins(operator_user, small_chunks):
    admin = make_user("alice", "admin")
    batch = three_chunk_batch(operator_user)

    with pytest.raises(DomainError) as refused:
        batches.delete(operator_user, batch.id, cascade=True)
    assert refused.value.status_code == 403
    with pytest.raises(BadUserRequest, match="still running"):
        batches.delete_history(admin, batch.id)

    batches.delete(admin, batch.id, cascade=True)

    assert not Batch.objects.filter(pk=batch.id).exists()
    assert not JobDefinition.objects.exists() and not Job.objects.filter(queue_name="batch")
    other = three_chunk_batch(operator_user, tenant="acme")
    run_batches()
    with pytest.raises(DomainError) as refused:
        batches.delete_history(operator_user, other.id)
    assert refused.value.status_code == 403
    batches.delete_history(admin, other.id)
    assert not Batch.objects.filter(pk=other.id).exists()
    assert AuditEntry.objects.filter(action="batch.delete_history").count() == 1


def test_a_chunk_runs_at_most_once(operator_user, small_chunks):
    from jobs import batches as engine

    batch = three_chunk_batch(operator_user)

    first = engine.run_chunk.call(batch=batch.id, chunk=2)
    again = engine.run_chunk.call(batch=batch.id, chunk=2)

    assert first == {"changed": 3, "skipped": 0}
    assert again == {"changed": 0, "skipped": 0, "done": True}
    batch.refresh_from_db()
    assert (batch.rows_changed, batch.completed_jobs) == (3, 1)
    assert JobLog.objects.filter(event="retries-set").count() == 3


def test_a_chunk_that_fails_half_way_leaves_nothing_behind(
    operator_user, small_chunks, monkeypatch
):
    from jobs import batches as engine

    batch = three_chunk_batch(operator_user)

    def broken(*args):
        raise RuntimeError("the database went away after the rows changed")

    monkeypatch.setattr(batches, "record_chunk", broken)
    with pytest.raises(RuntimeError):
        engine.run_chunk.call(batch=batch.id, chunk=1)

    assert Job.objects.filter(retries=0).count() == 7
    assert not JobLog.objects.filter(event="retries-set").exists()
    assert BatchChunk.objects.filter(batch=batch, number=1).exists()
    batch.refresh_from_db()
    assert batch.rows_changed == 0 and batch.completed_jobs == 0


def test_rows_changed_or_gone_meanwhile_are_skipped_not_clobbered(operator_user, small_chunks):
    from jobs import services

    batch = three_chunk_batch(operator_user, "suspend-jobs", {})
    ids = sorted(Job.objects.filter(retries=0).values_list("id", flat=True))
    services.suspend(operator_user, ids[:2])  # someone else got there first
    admin = make_user("alice", "admin")
    services.delete(admin, ids[2:3])  # and one is gone

    run_batches()

    batch.refresh_from_db()
    assert (batch.rows_changed, batch.rows_skipped) == (4, 3)
    assert batch.rows_changed + batch.rows_skipped == batch.total_rows
    assert JobLog.objects.filter(event="suspended").count() == 2 + 4


def test_rows_no_longer_visible_to_the_creator_are_skipped(operator_user, small_chunks):
    batch = three_chunk_batch(operator_user)
    operator_user.memberships.all().delete()  # bob left acme

    run_batches()

    batch.refresh_from_db()
    assert (batch.outcome, batch.rows_changed, batch.rows_skipped) == ("completed", 0, 7)
    assert Job.objects.filter(retries=0).count() == 7


def test_failed_chunk_jobs_count_and_their_deleted_chunks_fail_the_rows(
    operator_user, small_chunks
):
    from jobs import services

    batch = three_chunk_batch(operator_user)
    run_batches_limited(1)  # the seed: chunk jobs 1 and 2
    chunk_job = Job.objects.get(job_definition_id=batch.batch_job_definition_id, payload__chunk=1)
    Job.objects.filter(pk=chunk_job.pk).update(retries=0)
    assert batches.failed_jobs([batch.id, "other"]) == {batch.id: 1, "other": 0}

    run_batches()  # everything but the failed chunk
    batch.refresh_from_db()
    assert batch.end_time is None and batch.rows_changed == 4
    services.delete(make_user("alice", "admin"), [chunk_job.id])
    monitor = Job.objects.filter(job_definition_id=batch.monitor_job_definition_id)
    assert monitor.count() == 1
    monitor.update(due_date=None)  # its interval has passed
    run_batches()  # the monitor finds no chunk job left

    batch.refresh_from_db()
    assert (batch.outcome, batch.rows_changed, batch.rows_failed) == ("completed", 4, 3)
    assert AuditEntry.objects.get(pk=batch.audit_entry_id).after["failed"] == 3


@pytest.mark.parametrize(
    "type_name, parameters, check",
    [
        ("activate-jobs", {}, lambda job: not job.suspended),
        ("unlock-jobs", {}, lambda job: job.lock_owner is None),
        ("set-job-priority", {"priority": 9}, lambda job: job.priority == 9),
        (
            "set-job-due-date",
            {"dueDate": "2030-01-02T03:04:05.000+0000"},
            lambda job: job.due_date.year == 2030,
        ),
        ("set-job-retries", {"retries": 4, "dueDate": None}, lambda job: job.retries == 4),
    ],
)
def test_every_job_batch_type_changes_every_row(
    operator_user, small_chunks, type_name, parameters, check
):
    failed_jobs(4, tenant="acme", suspended=True, lock_owner="gone")

    batch = batches.start(operator_user, type_name, Job.objects.all(), parameters)
    run_batches()

    batch.refresh_from_db()
    assert (batch.outcome, batch.rows_changed) == ("completed", 4)
    assert all(check(job) for job in Job.objects.exclude(queue_name="batch"))


def test_delete_jobs_batch(small_chunks):
    admin = make_user("alice", "admin")
    failed_jobs(4)
    batch = batches.start(admin, "delete-jobs", Job.objects.all(), {})
    run_batches()
    batch.refresh_from_db()
    assert (batch.outcome, batch.rows_changed) == ("completed", 4)
    assert not Job.objects.exists()
    assert JobLog.objects.filter(event="deleted", worker="alice").count() == 4


@pytest.mark.parametrize(
    "type_name, parameters, check",
    [
        ("suspend-external-tasks", {}, lambda task: task.suspended),
        ("set-external-task-priority", {"priority": 7}, lambda task: task.priority == 7),
        ("unlock-external-tasks", {}, lambda task: task.worker_id is None),
        ("set-external-task-retries", {"retries": 0}, lambda task: task.retries == 0),
    ],
)
def test_every_external_task_batch_type_changes_every_row(
    operator_user, small_chunks, type_name, parameters, check
):
    ExternalTask.objects.bulk_create(
        ExternalTask(topic_name="t", retries=2, tenant_id="acme", worker_id="w") for _ in range(4)
    )
    batch = batches.start(operator_user, type_name, ExternalTask.objects.all(), parameters)
    run_batches()
    batch.refresh_from_db()
    assert (batch.outcome, batch.rows_changed) == ("completed", 4)
    assert all(check(task) for task in ExternalTask.objects.all())


def test_activate_and_delete_external_tasks_batches(small_chunks):
    admin = make_user("alice", "admin")
    ExternalTask.objects.bulk_create(ExternalTask(topic_name="t", suspended=True) for _ in range(4))
    batches.start(admin, "activate-external-tasks", ExternalTask.objects.all(), {})
    run_batches()
    assert not ExternalTask.objects.filter(suspended=True).exists()
    batch = batches.start(admin, "delete-external-tasks", ExternalTask.objects.all(), {})
    run_batches()
    batch.refresh_from_db()
    assert (batch.outcome, batch.rows_changed) == ("completed", 4)
    assert not ExternalTask.objects.exists()
    assert ExternalTaskLog.objects.filter(event="deleted").count() == 4


def test_the_audit_entry_records_the_rows_values_before_as_the_synchronous_action_does(
    operator_user, small_chunks
):
    from jobs import services

    failed_jobs(5, tenant="acme")
    Job.objects.filter(pk__in=[j.id for j in failed_jobs(2, tenant="acme")]).update(retries=1)
    failed_jobs(3, tenant="globex")  # not the operator's: not counted
    twins = failed_jobs(5, tenant="acme", queue_name="twins")
    Job.objects.filter(pk__in=[j.id for j in twins[:2]]).update(retries=1)
    rows = Job.objects.exclude(queue_name="twins")

    batch = batches.start(operator_user, "set-job-retries", rows, {"retries": 2})
    services.set_retries(operator_user, Job.objects.filter(queue_name="twins"), 2)

    entry = AuditEntry.objects.get(pk=batch.audit_entry_id)
    assert entry.before == {"retries": {"0": 5, "1": 2}}
    synchronous = AuditEntry.objects.exclude(pk=entry.pk).get(action="job.set_retries")
    assert synchronous.before == {"retries": {"0": 3, "1": 2}}  # the same shape
    run_batches()
    entry.refresh_from_db()
    assert entry.before == {"retries": {"0": 5, "1": 2}}  # kept when the batch ends


@pytest.mark.parametrize(
    "type_name, parameters, before",
    [
        ("set-job-priority", {"priority": 7}, {"priority": {"0": 3}}),
        ("suspend-jobs", {}, None),
    ],
)
def test_the_before_of_other_job_batches(
    operator_user, small_chunks, type_name, parameters, before
):
    failed_jobs(3, tenant="acme")
    batch = batches.start(operator_user, type_name, Job.objects.all(), parameters)
    assert AuditEntry.objects.get(pk=batch.audit_entry_id).before == before


def test_an_external_task_retries_batch_counts_the_old_retries(operator_user, small_chunks):
    failed_tasks(2, tenant="acme")
    ExternalTask.objects.create(topic_name="invoices", tenant_id="acme")  # never failed
    batch = batches.start(
        operator_user, "set-external-task-retries", ExternalTask.objects.all(), {"retries": 3}
    )
    assert AuditEntry.objects.get(pk=batch.audit_entry_id).before == {
        "retries": {"0": 2, "None": 1}
    }


def test_the_monitor_reschedules_itself_instead_of_a_new_job_per_look(operator_user, small_chunks):
    from datetime import timedelta

    from jobs import services
    from project import clock

    batch = three_chunk_batch(operator_user)
    run_batches_limited(1)  # the seed: chunk jobs 1 and 2
    chunk_job = Job.objects.get(job_definition_id=batch.batch_job_definition_id, payload__chunk=1)
    Job.objects.filter(pk=chunk_job.pk).update(retries=0)  # failed: the batch cannot end
    run_batches()
    monitors = Job.objects.filter(job_definition_id=batch.monitor_job_definition_id)
    (monitor,) = monitors
    assert monitor.due_date > clock.now()

    for _ in range(3):
        monitors.update(due_date=None)  # its interval has passed
        run_batches()
        (again,) = monitors
        assert again.id == monitor.id and again.lock_owner is None
        assert again.due_date > clock.now() + timedelta(seconds=5)
    log = JobLog.objects.filter(job_id=monitor.id)
    assert log.filter(event="created").count() == 1
    assert log.filter(event="started").count() == 3  # one per look, on the one job
    assert log.filter(event="due-date-set").count() == 3
    assert not log.filter(event="succeeded").exists()

    # An executor killed while the monitor ran: once its lock expires, the next one runs it.
    monitors.update(
        lock_owner="killed-executor",
        lock_expiration_time=clock.now() - timedelta(seconds=1),
        due_date=None,
    )
    run_batches()
    (again,) = monitors
    assert again.id == monitor.id and again.lock_owner is None and again.due_date > clock.now()

    services.delete(make_user("alice", "admin"), [chunk_job.id])
    monitors.update(due_date=None)
    run_batches()  # no chunk job left: the monitor ends the batch, and its job goes
    batch.refresh_from_db()
    assert (batch.outcome, batch.rows_changed, batch.rows_failed) == ("completed", 4, 3)
    assert not Job.objects.filter(queue_name="batch").exists()
    assert log.filter(event="succeeded").count() == 1


@pytest.mark.parametrize("kind", ["job", "external_task"])
def test_retries_chunks_change_and_resolve_only_what_the_creator_still_sees(small_chunks, kind):
    """A chunk re-scopes its ids and resolves incidents in the statement that changes the
    rows: a tenant the creator left keeps its rows, their retries and their open incidents."""
    from project import incidents

    carol = make_user("carol", "operator", tenants=["acme", "globex"])
    if kind == "job":
        model, type_name, incident_type = Job, "set-job-retries", incidents.FAILED_JOB
        failed_jobs(4, tenant="acme")
        failed_jobs(3, tenant="globex")
    else:
        model, type_name = ExternalTask, "set-external-task-retries"
        incident_type = incidents.FAILED_EXTERNAL_TASK
        failed_tasks(4, tenant="acme")
        failed_tasks(3, tenant="globex")
    incidents.open_for(incident_type, model.objects.all())
    batch = batches.start(carol, type_name, model.objects.all(), {"retries": 2})
    carol.memberships.filter(tenant_id="globex").delete()  # carol left globex meanwhile

    run_batches()

    batch.refresh_from_db()
    assert (batch.outcome, batch.rows_changed, batch.rows_skipped) == ("completed", 4, 3)
    assert set(model.objects.filter(tenant_id="acme").values_list("retries", flat=True)) == {2}
    assert set(model.objects.filter(tenant_id="globex").values_list("retries", flat=True)) == {0}
    open_incidents = Incident.objects.filter(state="open", incident_type=incident_type)
    assert set(open_incidents.values_list("tenant_id", flat=True)) == {"globex"}
    assert open_incidents.count() == 3
    resolved = Incident.objects.filter(state="resolved", incident_type=incident_type)
    assert resolved.count() == 4 and all(i.end_time is not None for i in resolved)


@pytest.mark.parametrize("kind", ["job", "external_task"])
def test_a_retries_zero_batch_opens_the_incidents(operator_user, small_chunks, kind):
    from project import incidents

    if kind == "job":
        model, type_name, incident_type = Job, "set-job-retries", incidents.FAILED_JOB
        failed_jobs(4, tenant="acme")
    else:
        model, type_name = ExternalTask, "set-external-task-retries"
        incident_type = incidents.FAILED_EXTERNAL_TASK
        failed_tasks(4, tenant="acme")
    model.objects.update(retries=5)

    batches.start(operator_user, type_name, model.objects.all(), {"retries": 0})
    run_batches()

    assert set(model.objects.values_list("retries", flat=True)) == {0}
    opened = Incident.objects.filter(state="open", incident_type=incident_type)
    assert opened.count() == 4
