"""A selection larger than TASKYARD_BATCH_SNAPSHOT_LIMIT: the request answers the batch before
reading its rows, and the seed job selects them. What an operator and a client see between the
answer and the seed job, and after it: totals, tenants, who may see the batch, the audit entry."""

from datetime import timedelta
from decimal import Decimal
from io import StringIO
from uuid import UUID

import pytest
from django.core.management import call_command

from external_tasks.models import ExternalTask
from jobs.models import Job, JobDefinition
from project import batches, clock, tenancy
from project.models import AuditEntry, Batch, BatchChunk
from tests.batches import ended, run_batches
from tests.conftest import basic_client, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def small_limits(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.TASKYARD_BATCH_CHUNK_SIZE = 2
    settings.TASKYARD_BATCH_SNAPSHOT_LIMIT = 4


def failed_tasks(count, tenant="acme", topic="invoices"):
    return ExternalTask.objects.bulk_create(
        ExternalTask(topic_name=topic, retries=0, error_message="boom", tenant_id=tenant)
        for _ in range(count)
    )


def run_seed_only():
    out = StringIO()
    call_command("runjobs", "--once", "--queue", "batch", "--max-jobs", "1", stdout=out)


def tenants_of(entry_id):
    entry = AuditEntry.objects.get(pk=entry_id)
    return entry.admin_only, set(entry.tenants.values_list("tenant_id", flat=True))


def test_a_selection_over_the_limit_is_answered_before_its_rows_are_read(operator_user):
    tasks = failed_tasks(7)
    failed_tasks(3, tenant="globex")  # not bob's

    batch = batches.start(
        operator_user,
        "set-external-task-retries",
        ExternalTask.objects.filter(retries=0),
        {"retries": 5},
        filter={"noRetriesLeft": True},
    )

    assert batch.selecting and batch.selection is not None
    assert (batch.total_rows, batch.total_jobs, batch.jobs_created) == (0, 0, 0)
    assert not BatchChunk.objects.filter(batch=batch).exists()
    entry = AuditEntry.objects.get(pk=batch.audit_entry_id)
    assert entry.after["planned"] is None and entry.count == 0 and entry.target_ids == []
    assert entry.before is None
    # Until the rows are known the batch is bob's tenants'.
    assert tenants_of(entry.pk) == (False, {"acme"})

    run_seed_only()

    batch.refresh_from_db()
    assert not batch.selecting and batch.selection is None
    assert (batch.total_rows, batch.total_jobs, batch.jobs_created) == (7, 4, 4)
    assert batch.tenant_id == "acme" and batch.execution_start_time is not None
    snapshot = [i for ids in BatchChunk.objects.values_list("ids", flat=True) for i in ids]
    assert sorted(snapshot) == sorted(task.id for task in tasks)
    entry.refresh_from_db()
    assert entry.after["planned"] == 7 and entry.count == 7
    assert entry.before == {"retries": {"0": 7}}
    assert len(entry.target_ids) == 2 and set(entry.target_ids) <= set(snapshot)
    definitions = JobDefinition.objects.filter(job_configuration=batch.id)
    assert set(definitions.values_list("tenant_id", flat=True)) == {"acme"}
    assert set(Job.objects.filter(queue_name="batch").values_list("tenant_id", flat=True)) == {
        "acme"
    }

    run_batches()

    done = ended(batch.id)
    assert (done.rows_changed, done.rows_skipped, done.rows_failed) == (7, 0, 0)
    assert ExternalTask.objects.filter(tenant_id="acme", retries=5).count() == 7
    assert ExternalTask.objects.filter(tenant_id="globex", retries=0).count() == 3
    entry.refresh_from_db()
    assert entry.after["outcome"] == "completed" and entry.after["changed"] == 7


@pytest.mark.parametrize(("rows", "selecting"), [(4, False), (5, True)])
def test_the_limit_is_the_most_rows_the_request_snapshots_itself(operator_user, rows, selecting):
    failed_tasks(rows)
    batch = batches.start(
        operator_user, "set-external-task-retries", ExternalTask.objects.all(), {"retries": 1}
    )
    assert batch.selecting is selecting
    assert batch.total_rows == (0 if selecting else rows)
    run_batches()
    assert ended(batch.id).rows_changed == rows


def test_a_limit_of_zero_leaves_every_selection_to_the_seed_job(operator_user, settings):
    settings.TASKYARD_BATCH_SNAPSHOT_LIMIT = 0
    failed_tasks(1)
    batch = batches.start(
        operator_user, "set-external-task-retries", ExternalTask.objects.all(), {"retries": 1}
    )
    assert batch.selecting
    run_batches()
    assert ended(batch.id).rows_changed == 1


def test_no_matching_row_is_still_a_400_in_the_request(operator_user):
    failed_tasks(7, tenant="globex")
    with pytest.raises(batches.BadUserRequest, match="externalTaskIds is empty"):
        batches.start(
            operator_user, "set-external-task-retries", ExternalTask.objects.all(), {"retries": 1}
        )
    assert not Batch.objects.exists()


def test_the_seed_job_selects_the_rows_as_they_are_when_it_runs(operator_user):
    tasks = failed_tasks(6)
    batch = batches.start(
        operator_user,
        "set-external-task-retries",
        ExternalTask.objects.filter(retries=0),
        {"retries": 5},
    )
    # Fixed by hand between the answer and the seed job: no longer the query's rows.
    ExternalTask.objects.filter(id__in=[t.id for t in tasks[:2]]).update(retries=1)
    run_batches()
    done = ended(batch.id)
    assert (done.total_rows, done.rows_changed) == (4, 4)
    assert set(ExternalTask.objects.values_list("retries", flat=True)) == {1, 5}


def test_a_selection_whose_rows_all_went_ends_as_an_empty_batch(operator_user):
    failed_tasks(6)
    batch = batches.start(
        operator_user,
        "set-external-task-retries",
        ExternalTask.objects.filter(retries=0),
        {"retries": 5},
    )
    ExternalTask.objects.all().delete()
    run_batches()
    done = ended(batch.id)
    assert (done.outcome, done.total_rows, done.total_jobs, done.rows_changed) == (
        "completed",
        0,
        0,
        0,
    )
    entry = AuditEntry.objects.get(pk=batch.audit_entry_id)
    assert entry.after["planned"] == 0 and entry.after["outcome"] == "completed"
    assert not JobDefinition.objects.filter(job_configuration=batch.id).exists()
    assert not Job.objects.filter(queue_name="batch").exclude(retries__gt=0).exists()


def test_ids_and_datetimes_in_the_kept_selection_select_the_same_rows(operator_user):
    tasks = failed_tasks(8)
    old = clock.now() - timedelta(hours=2)
    ExternalTask.objects.filter(id__in=[t.id for t in tasks[:6]]).update(create_time=old)
    wanted = [t.id for t in tasks[1:7]]  # five old ones and a new one
    rows = ExternalTask.objects.filter(
        id__in=wanted, create_time__lt=clock.now() - timedelta(hours=1)
    )
    batch = batches.start(operator_user, "set-external-task-retries", rows, {"retries": 3})
    assert batch.selecting
    run_batches()
    assert ended(batch.id).rows_changed == 5
    assert set(ExternalTask.objects.filter(retries=3).values_list("id", flat=True)) == set(
        wanted[:5]
    )


def test_a_batch_of_listed_ids_over_the_limit_keeps_them_for_the_seed_job(operator_user):
    tasks = failed_tasks(6)
    ids = [t.id for t in tasks] + ["no-such-task"]
    batch = batches.start(operator_user, "set-external-task-retries", ids, {"retries": 2})
    assert batch.selecting
    run_batches()
    assert ended(batch.id).rows_changed == 6


def test_parameters_json_cannot_keep_exactly_make_the_request_snapshot_itself():
    kept = [
        None,
        True,
        7,
        1.5,
        "x",
        ["a", "b"],
        clock.now(),
        clock.now().date(),
        Decimal("1.10"),
        UUID(int=5),
    ]
    frozen = batches._freeze_all(kept)
    assert batches._thaw(frozen) == kept
    assert isinstance(batches._thaw(frozen)[8], Decimal)
    for unkeepable in (object(), b"bytes", float("nan"), "nul\x00", Decimal("NaN"), (1, 2)):
        assert batches._freeze_all(["fine", unkeepable]) is None


def test_while_selecting_only_the_creators_tenants_see_the_batch(operator_user, viewer_user):
    # dave operates for acme and globex; carol views acme only, erin globex only.
    both = make_user("dave", "operator", ["acme", "globex"])
    globex_viewer = make_user("erin", "viewer", ["globex"])
    failed_tasks(6, tenant="acme")
    batch = batches.start(
        both, "set-external-task-retries", ExternalTask.objects.all(), {"retries": 1}
    )
    seen_by = {
        name: batches.visible(user).filter(pk=batch.pk).exists()
        for name, user in (("carol", viewer_user), ("erin", globex_viewer), ("dave", both))
    }
    # Provisionally acme and globex: a viewer of one of them may not see it yet.
    assert seen_by == {"carol": False, "erin": False, "dave": True}
    # Nor its seed job (whose tenant is not known yet either).
    seed = Job.objects.filter(job_definition_id=batch.seed_job_definition_id)
    assert seed.get().tenant_id is None
    assert not tenancy.scope(seed, viewer_user).exists()
    assert not tenancy.scope(seed, globex_viewer).exists()

    run_seed_only()

    # The rows are acme's alone: acme's viewer sees the batch now, globex's still does not.
    assert batches.visible(viewer_user).filter(pk=batch.pk).exists()
    assert not batches.visible(globex_viewer).filter(pk=batch.pk).exists()
    assert Batch.objects.get(pk=batch.pk).tenant_id == "acme"


def test_an_admins_selecting_batch_is_admins_only_until_its_rows_are_known(admin_user, viewer_user):
    failed_tasks(6, tenant="acme")
    batch = batches.start(
        admin_user, "set-external-task-retries", ExternalTask.objects.all(), {"retries": 1}
    )
    assert tenants_of(batch.audit_entry_id)[0] is True
    assert not batches.visible(viewer_user).filter(pk=batch.pk).exists()
    run_seed_only()
    assert tenants_of(batch.audit_entry_id) == (False, {"acme"})
    assert batches.visible(viewer_user).filter(pk=batch.pk).exists()


def test_a_batch_cancelled_while_selecting_changes_nothing(operator_user):
    failed_tasks(6)
    batch = batches.start(
        operator_user, "set-external-task-retries", ExternalTask.objects.all(), {"retries": 9}
    )
    batches.delete(operator_user, batch.id)
    run_batches()
    done = ended(batch.id)
    assert (done.outcome, done.total_rows, done.rows_changed) == ("cancelled", 0, 0)
    assert not ExternalTask.objects.filter(retries=9).exists()
    assert not Job.objects.filter(queue_name="batch").exists()


def test_a_batch_suspended_while_selecting_selects_once_resumed(operator_user):
    failed_tasks(6)
    batch = batches.start(
        operator_user, "set-external-task-retries", ExternalTask.objects.all(), {"retries": 9}
    )
    batches.set_suspended(operator_user, batch.id, True)
    run_batches()
    assert Batch.objects.get(pk=batch.pk).selecting
    batches.set_suspended(operator_user, batch.id, False)
    run_batches()
    assert ended(batch.id).rows_changed == 6


def test_the_api_answers_totaljobs_0_then_the_history_has_the_real_totals(operator_user):
    failed_tasks(7)
    api = basic_client(operator_user)
    response = api.post(
        "/engine-rest/external-task/retries-async",
        {"retries": 4, "externalTaskQuery": {"topicName": "invoices"}},
        format="json",
    )
    assert response.status_code == 200, response.content
    answer = response.json()
    assert (answer["totalJobs"], answer["jobsCreated"], answer["invocationsPerBatchJob"]) == (
        0,
        0,
        2,
    )
    assert api.get(f"/engine-rest/batch/{answer['id']}").json()["totalJobs"] == 0
    run_seed_only()
    running = api.get(f"/engine-rest/batch/{answer['id']}").json()
    assert (running["totalJobs"], running["jobsCreated"], running["tenantId"]) == (4, 4, "acme")
    run_batches()
    historic = api.get(f"/engine-rest/history/batch/{answer['id']}").json()
    assert historic["totalJobs"] == 4 and historic["endTime"] is not None
    assert ExternalTask.objects.filter(retries=4).count() == 7
