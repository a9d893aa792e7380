"""The console's shared snapshots (console.snapshots): the overview, failures, topics and queues
pages read their tenant scope's figures from the database, refreshed by a periodic job; never
another scope's, and recounted when missing or stale. Real rows on both databases."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from console import snapshots
from console.models import Snapshot
from jobs import runner
from jobs.claims import RunAgain, default_retry_cycle
from jobs.models import Job, JobLog
from project import clock, incidents
from tests.conftest import make_user

from .conftest import _client, make_job, make_task
from .test_overview import tile_number

pytestmark = pytest.mark.django_db

GLOBEX_ERROR = "globex ledger refused entry 42"


def globex_rows():
    """Figures of tenant globex on every snapshot page: a failed job and task with their own
    error text, a topic and a queue of its own."""
    make_job(
        retries=0, tenant_id="globex", queue_name="globex-queue", exception_message=GLOBEX_ERROR
    )
    make_task(retries=0, tenant_id="globex", topic_name="globex-topic", error_message=GLOBEX_ERROR)


def pages(client) -> dict:
    return {path: client.get(path).content.decode() for path in SNAPSHOT_PAGES}


SNAPSHOT_PAGES = ("/", "/failures/", "/topics/", "/queues/")


def refresh_job() -> Job | None:
    return Job.objects.filter(handler=snapshots.REFRESH_HANDLER).first()


def test_the_background_refresh_keeps_each_scope_to_its_tenants(viewer_user, admin_client):
    globex_rows()
    make_job(retries=0, queue_name="acme-queue", exception_message="acme mail bounced")
    # The job the executor runs: every scope (admins' and the viewer's tenant set) at once.
    assert snapshots.refresh.call().value == {"snapshots": 2 * len(snapshots.PAGES)}
    viewer = pages(_client(viewer_user))
    admin = pages(admin_client)
    for path in SNAPSHOT_PAGES:
        assert "shared snapshot" in viewer[path] and "shared snapshot" in admin[path]
        assert "globex" not in viewer[path], path
    assert tile_number(viewer["/"], "job-failed") == "1"
    assert tile_number(admin["/"], "job-failed") == "2"
    assert GLOBEX_ERROR.split(" 42")[0] in admin["/failures/"]
    assert "acme mail bounced" in viewer["/failures/"]
    assert "globex-topic" in admin["/topics/"] and "globex-queue" in admin["/queues/"]
    assert "acme-queue" in viewer["/queues/"]


def test_users_of_one_tenant_set_share_a_snapshot_and_other_sets_do_not(viewer_user):
    other_viewer = make_user("dave", "viewer", ["acme"])
    both = make_user("erin", "viewer", ["acme", "globex"])
    globex_rows()
    _client(viewer_user).get("/failures/")  # none yet: counted in the request, and stored
    make_job(retries=0, tenant_id="acme", exception_message="acme mail bounced")
    # The same scope reads the stored figures (the new failure is not in them yet) ...
    html = _client(other_viewer).get("/failures/").content.decode()
    assert "shared snapshot" in html and "acme mail bounced" not in html
    # ... another tenant set counts its own, with its tenants' rows and only those.
    html = _client(both).get("/failures/").content.decode()
    assert "acme mail bounced" in html and "globex ledger" in html
    assert Snapshot.objects.filter(name="failures").count() == 2


def test_a_refresh_brings_new_figures_and_asks_to_run_again(admin_client):
    admin_client.get("/queues/")
    make_job(queue_name="late-queue")
    assert "late-queue" not in admin_client.get("/queues/").content.decode()
    gone = make_user("frank", "viewer", ["initech"])
    _client(gone).get("/queues/")
    gone.delete()  # a tenant set nobody has any more: its snapshot is forgotten after a day
    old = timezone.now() - timedelta(days=2)
    Snapshot.objects.filter(tenants=["initech"]).update(computed_at=old)
    Job.objects.filter(handler=snapshots.REFRESH_HANDLER).delete()
    started = clock.now()
    again = snapshots.refresh.call()
    assert not Snapshot.objects.filter(tenants=["initech"]).exists()
    assert "late-queue" in admin_client.get("/queues/").content.decode()
    # Its own job runs again after the interval, as the batch monitor does; no new job.
    assert isinstance(again, RunAgain)
    assert again.at >= started + timedelta(seconds=snapshots.interval())
    assert again.retries == default_retry_cycle().retries  # what a new job gets
    assert not Job.objects.filter(handler=snapshots.REFRESH_HANDLER).exists()


def test_a_stale_or_missing_snapshot_is_counted_in_the_request(admin_client, settings):
    settings.TASKYARD_CONSOLE = {"SNAPSHOT_MAX_AGE": 60}
    html = admin_client.get("/topics/").content.decode()
    assert "counted just now" in html
    # Counting in the request schedules the background refresh (no executor ran it yet).
    assert refresh_job() is not None
    make_task(topic_name="late-topic")
    assert "late-topic" not in admin_client.get("/topics/").content.decode()
    Snapshot.objects.filter(name="topics").update(
        computed_at=Snapshot.objects.get(name="topics").computed_at - timedelta(seconds=61)
    )
    html = admin_client.get("/topics/").content.decode()
    assert "late-topic" in html and "counted just now" in html
    assert Job.objects.filter(handler=snapshots.REFRESH_HANDLER).count() == 1


def test_count_again_recounts_every_snapshot_page(admin_client):
    for path in SNAPSHOT_PAGES:
        admin_client.get(path)
    globex_rows()
    for path in SNAPSHOT_PAGES:
        assert "globex" not in admin_client.get(path).content.decode(), path
        assert "globex" in admin_client.get(path, {"fresh": 1}).content.decode(), path


def test_an_annotation_filter_is_counted_live(admin_client):
    admin_client.get("/failures/")
    make_job(retries=0, exception_message="acme mail bounced")
    html = admin_client.get("/failures/", {"annotation": "x"}).content.decode()
    assert "shared snapshot" not in html


def run_refresh() -> None:
    """Run the console queue until nothing is due, as a job executor does."""
    out = StringIO()
    call_command("runjobs", "--once", "--queue", snapshots.SNAPSHOT_QUEUE, stdout=out, stderr=out)


def make_due(job: Job) -> None:
    Job.objects.filter(pk=job.pk).update(due_date=clock.now() - timedelta(seconds=1))


def stale() -> None:
    """Every snapshot older than max_age(): the next page view counts in the request."""
    Snapshot.objects.update(computed_at=timezone.now() - timedelta(seconds=snapshots.max_age() + 1))


def test_the_job_executor_runs_the_refresh_a_page_scheduled_as_one_job(admin_client):
    admin_client.get("/topics/")  # no snapshot yet: counted now, and the refresh scheduled
    make_task(topic_name="late-topic")
    (job,) = Job.objects.filter(handler=snapshots.REFRESH_HANDLER)
    run_refresh()
    html = admin_client.get("/topics/").content.decode()
    assert "late-topic" in html and "shared snapshot" in html
    # The next run waits for the interval: the same job, now a timer due later, the only one.
    (again,) = Job.objects.filter(handler=snapshots.REFRESH_HANDLER)
    assert again.id == job.id and again.type == Job.Type.TIMER and again.lock_owner is None
    assert again.due_date > clock.now() + timedelta(seconds=snapshots.interval() - 5)
    # A page counted in the request meanwhile finds it (due later counts): no second job.
    stale()
    assert "counted just now" in admin_client.get("/topics/").content.decode()
    assert list(Job.objects.filter(handler=snapshots.REFRESH_HANDLER)) == [again]

    make_due(again)
    run_refresh()
    assert list(Job.objects.filter(handler=snapshots.REFRESH_HANDLER)) == [again]
    log = JobLog.objects.filter(job_id=job.id)
    assert log.filter(event="created").count() == 1
    assert [entry.return_value for entry in log.filter(event="due-date-set")] == [
        {"snapshots": len(snapshots.PAGES)}
    ] * 2
    assert not log.filter(event="succeeded").exists()


def test_two_refresh_jobs_created_at_once_become_one(admin_client):
    # Two requests that found no job at the same moment each scheduled one.
    snapshots.refresh.enqueue()
    snapshots.refresh.enqueue()
    run_refresh()
    (job,) = Job.objects.filter(handler=snapshots.REFRESH_HANDLER)
    assert job.due_date > clock.now()


def broken_page(user):
    raise RuntimeError("the queues table is being rebuilt")


@pytest.fixture
def three_attempts(settings):
    settings.TASKYARD_EXECUTOR = {**settings.TASKYARD_EXECUTOR, "RETRY_CYCLE": "R3/PT5M"}


def test_a_failed_refresh_is_retried_and_a_success_gives_its_retries_back(
    admin_client, monkeypatch, three_attempts
):
    admin_client.get("/queues/")
    job = refresh_job()
    monkeypatch.setitem(snapshots.PAGES, "broken", broken_page)
    for retries_left in (2, 1):
        run_refresh()
        # Retried after the retry cycle's delay, the same job, as any failed job.
        (failed,) = Job.objects.filter(handler=snapshots.REFRESH_HANDLER)
        assert failed.id == job.id and failed.retries == retries_left
        assert failed.exception_message == "the queues table is being rebuilt"
        assert failed.due_date > clock.now() + timedelta(minutes=4)
        # Pages count in the request meanwhile; the failed job counts as existing.
        stale()
        assert "counted just now" in admin_client.get("/queues/").content.decode()
        assert Job.objects.filter(handler=snapshots.REFRESH_HANDLER).count() == 1
        make_due(failed)
    monkeypatch.delitem(snapshots.PAGES, "broken")
    run_refresh()
    # A success: due again after the interval, with a full set of retries again, so that
    # failures far apart never add up to an incident.
    (again,) = Job.objects.filter(handler=snapshots.REFRESH_HANDLER)
    assert again.id == job.id and again.retries == 3 and again.exception_message is None
    assert again.due_date <= clock.now() + timedelta(seconds=snapshots.interval())


def test_a_refresh_that_spent_its_retries_waits_for_an_operator(
    admin_client, monkeypatch, three_attempts
):
    admin_client.get("/queues/")
    job = refresh_job()
    monkeypatch.setitem(snapshots.PAGES, "broken", broken_page)
    for _ in range(3):
        make_due(job)
        run_refresh()
    monkeypatch.delitem(snapshots.PAGES, "broken")
    job.refresh_from_db()
    assert job.retries == 0
    assert incidents.open_incidents(incidents.FAILED_JOB).filter(configuration=job.id).exists()
    # An incident, not a second chain: a page view creates no other job.
    stale()
    admin_client.get("/queues/")
    assert list(Job.objects.filter(handler=snapshots.REFRESH_HANDLER)) == [job]
    # Run by hand once fixed: it carries on as before, retries back, its incident resolved.
    runner.execute_job(job.id, "operator")
    job.refresh_from_db()
    assert job.retries == 3 and job.due_date > clock.now()
    assert not incidents.open_incidents(incidents.FAILED_JOB).filter(configuration=job.id).exists()
