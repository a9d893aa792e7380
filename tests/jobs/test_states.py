"""One job per status of jobs.models.STATUSES: the status table, its filters and the executor's
real claim agree on every one of them."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import claims
from jobs.models import STATUSES, Job
from tests.jobs.factories import make_definition, make_job

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)

# job id -> the status it must have
EXPECTED = {
    "failed": "failed",
    "suspended": "suspended",
    "suspended-by-definition": "suspended",
    "locked": "locked",
    "expired": "expired",
    "retrying-due": "retrying",
    "retrying-later": "retrying",
    "due": "due",
    "waiting": "waiting",
}
# What an executor may claim now: due, and neither failed, suspended nor held by a live lock.
ACQUIRABLE = {"expired", "retrying-due", "due"}


@pytest.fixture
def jobs():
    now = timezone.now()
    suspended_definition = make_definition("suspended-definition", suspended=True)
    failure = {"exception_message": "boom", "exception_stacktrace": "Traceback ..."}
    make_job("failed", retries=0, **failure)
    make_job("suspended", suspended=True)
    make_job("suspended-by-definition", job_definition=suspended_definition)
    make_job("locked", lock_owner="busy-executor", lock_expiration_time=now + HOUR)
    make_job("expired", lock_owner="crashed-executor", lock_expiration_time=now - HOUR)
    make_job("retrying-due", retries=2, due_date=now - HOUR, **failure)
    make_job("retrying-later", retries=2, due_date=now + HOUR, **failure)
    make_job("due")
    make_job("waiting", due_date=now + HOUR)
    return now


def test_every_status_of_the_table_has_a_job():
    assert set(EXPECTED.values()) == set(STATUSES.keys)


def test_with_status_gives_each_job_its_status(jobs):
    statuses = dict(Job.objects.with_status(jobs).values_list("id", "status"))

    assert statuses == EXPECTED


@pytest.mark.parametrize("job_id", sorted(EXPECTED))
def test_status_at_reads_the_same_table(jobs, job_id):
    status = Job.objects.get(id=job_id).status_at(jobs)

    assert status.key == EXPECTED[job_id]


@pytest.mark.parametrize("key", STATUSES.keys)
def test_in_state_finds_exactly_the_jobs_of_that_status(jobs, key):
    found = set(Job.objects.in_state(key, jobs).values_list("id", flat=True))

    assert found == {job_id for job_id, status in EXPECTED.items() if status == key}


def test_acquirable_is_what_the_status_table_calls_claimable(jobs):
    found = set(Job.objects.acquirable(jobs).values_list("id", flat=True))

    assert found == ACQUIRABLE


def test_the_executor_claims_exactly_the_due_jobs_nobody_holds(jobs):
    claimed = claims.acquire_jobs("tester", lock_time=timedelta(minutes=5), limit=100)

    assert {job.id for job in claimed} == ACQUIRABLE
    locked = Job.objects.filter(lock_owner="tester").values_list("id", flat=True)
    assert set(locked) == ACQUIRABLE
    # Nothing else is touched: the live lock stays with its owner.
    assert Job.objects.get(id="locked").lock_owner == "busy-executor"


def test_the_executor_claims_nothing_more_on_a_second_try(jobs):
    claims.acquire_jobs("tester", lock_time=timedelta(minutes=5), limit=100)

    again = claims.acquire_jobs("another", lock_time=timedelta(minutes=5), limit=100)

    assert again == []
