"""The console, the metrics and the executor agree on every job status (issue 19): one job per
status of jobs.models.STATUSES, including a job whose job definition is suspended, is shown
with the same badge, found by the same status filter, counted in the same backlog state and
claimed (or not) by the executor alike."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import claims
from jobs.models import STATUSES, JobDefinition
from project import metrics
from tests.console.conftest import make_job
from tests.console.test_tables import row_ids

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)
FAILURE = {"exception_message": "boom", "exception_stacktrace": "Traceback ..."}
# What an executor may claim now: due, and neither failed, suspended nor held by a live lock.
CLAIMABLE = {"expired", "retrying", "due"}


@pytest.fixture
def job_per_status():
    """{status key: ids of the jobs that have it}, every status of the table at least once."""
    now = timezone.now()
    paused = JobDefinition.objects.create(suspended=True, tenant_id="acme")
    jobs = {
        "failed": [make_job(retries=0, **FAILURE)],
        "suspended": [
            make_job(suspended=True),
            make_job(job_definition=paused, due_date=now - HOUR),
        ],
        "locked": [make_job(lock_owner="busy", lock_expiration_time=now + HOUR)],
        "expired": [make_job(lock_owner="crashed", lock_expiration_time=now - HOUR)],
        "retrying": [make_job(retries=2, due_date=now - HOUR, **FAILURE)],
        "due": [make_job(due_date=now - HOUR)],
        "waiting": [make_job(due_date=now + HOUR)],
    }
    assert set(jobs) == set(STATUSES.keys)
    return {key: {job.pk for job in rows} for key, rows in jobs.items()}


def test_console_badges_and_status_filter_follow_the_status_table(operator_client, job_per_status):
    for key, ids in job_per_status.items():
        response = operator_client.get(f"/jobs/?status={key}")
        assert set(row_ids(response)) == ids, key
        assert f">{STATUSES[key].label}</span>" in response.content.decode()


def test_metrics_count_every_job_in_the_state_its_badge_shows(job_per_status):
    backlog = metrics.compute_snapshot().backlogs["job"]
    counted = {}
    for (_group, state), count in backlog.counts.items():
        counted[state] = counted.get(state, 0) + count
    assert counted == {key: len(ids) for key, ids in job_per_status.items()}


def test_the_executor_claims_exactly_the_jobs_the_console_calls_claimable(job_per_status):
    claimed = claims.acquire_jobs("executor-1", lock_time=timedelta(minutes=5), limit=100)

    expected = set().union(*(job_per_status[key] for key in CLAIMABLE))
    assert {job.pk for job in claimed} == expected
