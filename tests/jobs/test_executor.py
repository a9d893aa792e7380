"""The job executor in-process: claiming, running, succeeding, failing with back-off, locks."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from prometheus_client import REGISTRY

from jobs import claims, runner
from jobs.claims import RetryCycle
from jobs.models import Job, JobDefinition, JobLog

pytestmark = pytest.mark.django_db

SEND_INVOICE = "jobs.demo_handlers.send_invoice"
ALWAYS_FAILS = "jobs.demo_handlers.always_fails"


def runjobs(*args):
    out = StringIO()
    call_command("runjobs", "--once", *args, stdout=out, stderr=out)
    return out.getvalue()


def metric(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0


def make_job(handler=SEND_INVOICE, payload=None, **fields):
    job = claims.enqueue_job(
        handler,
        {"args": ["INV-1"], "kwargs": {}} if payload is None else payload,
        priority=fields.pop("priority", 0),
        queue_name=fields.pop("queue_name", "default"),
        due_date=fields.pop("due_date", None),
        retries=fields.pop("retries", None),
    )
    if fields:
        Job.objects.filter(id=job.id).update(**fields)
        job.refresh_from_db()
    return job


def events(job):
    entries = JobLog.objects.filter(job_id=job.id).order_by("timestamp", "id")
    return list(entries.values_list("event", flat=True))


def test_successful_job_is_deleted_and_logged_with_duration_and_return_value():
    job = make_job(payload={"args": ["INV-7"], "kwargs": {"email": "ap@acme.test"}})

    runjobs()

    assert not Job.objects.filter(id=job.id).exists()
    assert events(job) == ["created", "started", "succeeded"]
    success = JobLog.objects.get(job_id=job.id, event="succeeded")
    assert success.return_value == {"invoice": "INV-7", "sent_to": "ap@acme.test"}
    assert success.duration_ms is not None and success.duration_ms >= 0
    assert success.worker and success.handler == SEND_INVOICE


def test_executor_logs_one_line_per_job_successes_at_debug_level(caplog):
    ok = make_job()
    bad = make_job(ALWAYS_FAILS, {"args": ["paper jam"]})
    with caplog.at_level("DEBUG", logger="taskyard.executor"):
        runjobs()
    records = [record for record in caplog.records if record.name == "taskyard.executor"]
    lines = [record.getMessage() for record in records]
    assert len(lines) == 2
    assert {record.job_id for record in records} == {ok.id, bad.id}  # structured for JSON logs
    assert any(ok.id in line and "succeeded in" in line and SEND_INVOICE in line for line in lines)
    assert any(bad.id in line and "paper jam; 2 retries left" in line for line in lines)
    # Hundreds of successes a second would flood an INFO log; failures stay warnings.
    levels = {record.job_id: record.levelname for record in records}
    assert levels == {ok.id: "DEBUG", bad.id: "WARNING"}


def test_failing_job_spends_a_retry_and_keeps_message_and_stack_trace():
    job = make_job(ALWAYS_FAILS, {"args": ["printer on fire"]}, activity_id="sendInvoice")
    before = timezone.now()

    runjobs("--retry-cycle", "R3/PT5M")

    job.refresh_from_db()
    assert job.retries == 2
    assert job.exception_message == "printer on fire"
    assert "Traceback (most recent call last)" in job.exception_stacktrace
    assert "InvoiceDeliveryError: printer on fire" in job.exception_stacktrace
    assert job.failed_activity_id == "sendInvoice"
    assert job.lock_owner is None and job.lock_expiration_time is None
    assert before + timedelta(minutes=5) <= job.due_date <= timezone.now() + timedelta(minutes=5)
    failure = JobLog.objects.get(job_id=job.id, event="failed")
    assert failure.retries == 2
    assert failure.exception_message == "printer on fire"
    assert failure.exception_stacktrace == job.exception_stacktrace


def test_failed_job_waits_for_its_back_off_then_runs_again():
    job = make_job(ALWAYS_FAILS)
    runjobs()
    runjobs()  # still backing off: nothing to do
    job.refresh_from_db()
    assert job.retries == 2
    assert events(job).count("started") == 1

    # The back-off has passed.
    Job.objects.filter(id=job.id).update(due_date=timezone.now() - timedelta(seconds=1))
    runjobs()

    job.refresh_from_db()
    assert job.retries == 1
    assert events(job).count("started") == 2


def test_back_off_grows_between_failures():
    job = make_job(ALWAYS_FAILS)
    runjobs("--retry-cycle", "R3/PT5M")
    job.refresh_from_db()
    first_failure = JobLog.objects.get(job_id=job.id, event="failed")
    first_delay = job.due_date - first_failure.timestamp

    Job.objects.filter(id=job.id).update(due_date=timezone.now() - timedelta(seconds=1))
    runjobs("--retry-cycle", "R3/PT5M")
    job.refresh_from_db()
    second_failure = JobLog.objects.filter(job_id=job.id, event="failed").latest("timestamp", "id")
    second_delay = job.due_date - second_failure.timestamp

    assert abs(first_delay - timedelta(minutes=5)) < timedelta(seconds=1)
    assert abs(second_delay - timedelta(minutes=10)) < timedelta(seconds=1)


def test_job_at_zero_retries_stays_failed_until_retries_are_reset():
    job = make_job(ALWAYS_FAILS, retries=1)
    runjobs()
    job.refresh_from_db()
    assert job.retries == 0
    assert Job.objects.filter(id=job.id).exists()

    runjobs()
    assert events(job).count("started") == 1

    # An operator sets retries again: the job runs at once.
    Job.objects.filter(id=job.id).update(retries=1)
    runjobs()
    assert events(job).count("started") == 2


def test_reset_job_that_then_succeeds_is_deleted():
    job = make_job(SEND_INVOICE, payload={"args": []}, retries=1)  # missing argument: TypeError
    runjobs()
    job.refresh_from_db()
    assert job.retries == 0
    assert "invoice_id" in job.exception_message

    Job.objects.filter(id=job.id).update(retries=2, payload={"args": ["INV-9"]})
    runjobs()
    assert not Job.objects.filter(id=job.id).exists()
    assert events(job)[-1] == "succeeded"


def test_suspended_jobs_and_jobs_of_suspended_definitions_are_skipped():
    suspended_job = make_job(suspended=True)
    definition = JobDefinition.objects.create(activity_id="mail", suspended=True)
    of_suspended_definition = make_job(job_definition=definition)
    active_definition = JobDefinition.objects.create(activity_id="ship")
    of_active_definition = make_job(job_definition=active_definition)

    runjobs()

    assert Job.objects.filter(id=suspended_job.id).exists()
    assert Job.objects.filter(id=of_suspended_definition.id).exists()
    assert events(suspended_job) == events(of_suspended_definition) == ["created"]
    assert not Job.objects.filter(id=of_active_definition.id).exists()


def test_timer_due_in_the_future_waits_and_past_due_runs():
    future = make_job(due_date=timezone.now() + timedelta(hours=1))
    past = make_job(due_date=timezone.now() - timedelta(minutes=1))

    runjobs()

    assert Job.objects.filter(id=future.id).exists()
    assert events(future) == ["created"]
    assert not Job.objects.filter(id=past.id).exists()


def test_higher_priority_runs_first():
    low = make_job(priority=1)
    high = make_job(priority=50)
    middle = make_job(priority=10)

    runjobs("--max-jobs", "2")

    assert not Job.objects.filter(id__in=[high.id, middle.id]).exists()
    assert Job.objects.filter(id=low.id).exists()


def test_max_jobs_stops_after_that_many():
    jobs = [make_job() for _ in range(3)]
    runjobs("--max-jobs", "2")
    assert Job.objects.filter(id__in=[job.id for job in jobs]).count() == 1


def test_queue_option_runs_only_those_queues():
    emails = make_job(queue_name="emails")
    reports = make_job(queue_name="reports")
    default = make_job()

    runjobs("--queue", "emails,reports")

    assert not Job.objects.filter(id__in=[emails.id, reports.id]).exists()
    assert Job.objects.filter(id=default.id).exists()


def test_job_locked_by_a_live_executor_is_skipped():
    job = make_job(lock_owner="other", lock_expiration_time=timezone.now() + timedelta(minutes=5))
    runjobs()
    job.refresh_from_db()
    assert job.lock_owner == "other"
    assert events(job) == ["created"]


def test_expired_lock_of_a_crashed_executor_is_taken_over_and_logged():
    expired_at = timezone.now() - timedelta(seconds=30)
    job = make_job(lock_owner="crashed-host:42", lock_expiration_time=expired_at, retries=2)
    expirations_before = metric("taskyard_lock_expirations_total", kind="job")
    runs_before = metric(
        "taskyard_job_run_duration_seconds_count", handler=SEND_INVOICE, outcome="succeeded"
    )

    runjobs("--worker-id", "rescuer")

    assert metric("taskyard_lock_expirations_total", kind="job") == expirations_before + 1
    assert (
        metric("taskyard_job_run_duration_seconds_count", handler=SEND_INVOICE, outcome="succeeded")
        == runs_before + 1
    )

    assert not Job.objects.filter(id=job.id).exists()
    assert events(job) == ["created", "lock-expired", "started", "succeeded"]
    expired = JobLog.objects.get(job_id=job.id, event="lock-expired")
    assert expired.worker == "crashed-host:42"
    assert expired.retries == 2  # a crash does not spend a retry
    assert "rescuer" in expired.exception_message
    assert JobLog.objects.get(job_id=job.id, event="succeeded").worker == "rescuer"


def test_handler_running_past_the_timeout_fails_with_a_timeout_error():
    job = make_job("jobs.demo_handlers.slow", {"kwargs": {"seconds": 30}})

    runjobs("--timeout", "0.2")

    job.refresh_from_db()
    assert job.retries == 2
    assert job.exception_message == "Job timed out after 0.2 s"
    assert "JobTimeout" in job.exception_stacktrace
    assert "time.sleep(seconds)" in job.exception_stacktrace  # where it was stuck


@pytest.mark.parametrize(
    "handler",
    [
        "os.system",  # not an installed app: never even imported
        "subprocess.run",
        "django.core.management.call_command",
        "jobs.runner.execute_job",  # an installed app, but a plain function, not a task
        "jobs.handlers.import_string",  # any callable reachable from an app module
    ],
)
def test_handlers_that_are_not_tasks_or_allowed_modules_are_refused(handler, tmp_path):
    marker = tmp_path / "ran"
    job = make_job(handler, [f"touch {marker}"], retries=1)

    runjobs()

    job.refresh_from_db()
    assert job.retries == 0
    assert job.exception_message.startswith(f"Handler '{handler}' is not allowed")
    assert not marker.exists()


def test_allowed_modules_admit_plain_callables(settings, tmp_path):
    settings.TASKYARD_EXECUTOR = {"HANDLER_MODULES": ["os"]}
    target = tmp_path / "made-by-a-job"
    job = make_job("os.makedirs", [str(target)])
    runjobs()
    assert target.is_dir()
    assert not Job.objects.filter(id=job.id).exists()


def test_unknown_handler_is_a_recorded_failure_not_a_crash():
    broken = make_job("jobs.demo_handlers.does_not_exist", retries=1)
    fine = make_job()

    runjobs()

    broken.refresh_from_db()
    assert broken.retries == 0
    assert "does_not_exist" in broken.exception_message
    assert not Job.objects.filter(id=fine.id).exists()


def test_plain_function_handlers_get_their_payload_as_arguments(settings):
    settings.TASKYARD_EXECUTOR = {"HANDLER_MODULES": ["os.path", "builtins"]}
    as_list = make_job("os.path.join", ["var", "log"])
    as_object = make_job("jobs.demo_handlers.send_invoice", {"invoice_id": "INV-3"})

    runjobs()

    assert JobLog.objects.get(job_id=as_list.id, event="succeeded").return_value == "var/log"
    assert JobLog.objects.get(job_id=as_object.id, event="succeeded").return_value == {
        "invoice": "INV-3",
        "sent_to": "billing@example.com",
    }


def test_return_value_json_cannot_hold_is_logged_as_its_repr(settings):
    settings.TASKYARD_EXECUTOR = {"HANDLER_MODULES": ["builtins"]}
    job = make_job("builtins.object", {})
    runjobs()
    assert JobLog.objects.get(job_id=job.id, event="succeeded").return_value.startswith(
        "<object object at"
    )


def test_execute_runs_one_job_now_regardless_of_due_date():
    job = make_job(due_date=timezone.now() + timedelta(days=1))
    outcome = runner.execute_job(job.id, "api:alice")
    assert outcome.succeeded
    assert outcome.return_value == {"invoice": "INV-1", "sent_to": "billing@example.com"}
    assert not Job.objects.filter(id=job.id).exists()
    assert JobLog.objects.get(job_id=job.id, event="started").worker == "api:alice"


def test_execute_failing_job_records_the_failure():
    job = make_job(ALWAYS_FAILS, {"args": ["no paper"]})
    outcome = runner.execute_job(job.id, "api:alice")
    assert not outcome.succeeded
    assert outcome.exception_message == "no paper"
    job.refresh_from_db()
    assert job.retries == 2


def test_execute_refuses_suspended_and_foreign_locked_jobs():
    suspended = make_job(suspended=True)
    in_a_minute = timezone.now() + timedelta(minutes=1)
    locked = make_job(lock_owner="other", lock_expiration_time=in_a_minute)
    with pytest.raises(claims.JobNotExecutable, match="suspended"):
        runner.execute_job(suspended.id, "api:alice")
    with pytest.raises(claims.JobNotExecutable, match="locked by other"):
        runner.execute_job(locked.id, "api:alice")
    with pytest.raises(Job.DoesNotExist):
        runner.execute_job("no-such-job", "api:alice")


def test_only_the_lock_holder_finishes_a_job_taken_over_after_expiry():
    job = make_job()
    [claimed] = claims.acquire_jobs("slow-executor", lock_time=timedelta(seconds=-1))
    # Its lock expired while it ran; another executor claimed the job.
    [again] = claims.acquire_jobs("second-executor", lock_time=timedelta(minutes=5))
    assert again.id == claimed.id

    held = claims.complete_job(claimed, "slow-executor", duration_ms=5, return_value=None)
    outcome = claims.fail_job(claimed, "slow-executor", message="late", stacktrace="")

    assert held is False and outcome.held_lock is False
    job.refresh_from_db()
    assert job.lock_owner == "second-executor" and job.retries == 3
    assert events(job).count("succeeded") == 1  # the late run is still history


def test_acquire_claims_each_job_once():
    jobs = [make_job() for _ in range(5)]
    first = claims.acquire_jobs("a", lock_time=timedelta(minutes=1), limit=3)
    second = claims.acquire_jobs("b", lock_time=timedelta(minutes=1), limit=3)
    third = claims.acquire_jobs("c", lock_time=timedelta(minutes=1), limit=3)
    claimed = [job.id for job in first + second + third]
    assert len(first) == 3 and len(second) == 2 and third == []
    assert sorted(claimed) == sorted(job.id for job in jobs)


def test_lock_renewal_extends_only_own_locks():
    mine = make_job()
    theirs = make_job(lock_owner="b", lock_expiration_time=timezone.now() + timedelta(seconds=5))
    [claimed] = claims.acquire_jobs("a", lock_time=timedelta(seconds=5))
    assert claimed.id == mine.id
    renewed = claims.extend_job_locks([mine.id, theirs.id], "a", lock_time=timedelta(hours=1))
    assert renewed == 1
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.lock_expiration_time > timezone.now() + timedelta(minutes=59)
    assert theirs.lock_expiration_time < timezone.now() + timedelta(minutes=1)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--concurrency", "0"], "--concurrency"),
        (["--max-jobs", "0"], "--max-jobs"),
        (["--lock-time", "soon"], "--lock-time"),
        (["--lock-time", "0"], "--lock-time"),
        (["--timeout", "-1"], "--timeout"),
        (["--timeout", "inf"], "--timeout"),
        (["--poll-interval", "nan"], "--poll-interval"),
        (["--retry-cycle", "R3/soon"], "retry cycle"),
    ],
)
def test_bad_options_are_refused_plainly(args, message):
    with pytest.raises(CommandError, match=message):
        runjobs(*args)


# --- the retry cycle ------------------------------------------------------------------------


def test_retry_cycle_repeats_an_interval_with_back_off_up_to_the_cap():
    cycle = RetryCycle.parse("R5/PT1M", backoff_factor=2, max_delay="PT5M")
    assert cycle.retries == 5
    delays = [cycle.delay(n) for n in range(1, 6)]
    assert delays == [timedelta(minutes=m) for m in (1, 2, 4, 5, 5)]


def test_retry_cycle_back_off_never_overflows():
    cycle = RetryCycle.parse("R5000/PT1H", backoff_factor=10)
    assert cycle.delay(4000) == timedelta(days=366)


def test_retry_cycle_without_back_off_is_camundas_fixed_interval():
    cycle = RetryCycle.parse("R3/PT5M")
    assert [cycle.delay(n) for n in (1, 2, 3)] == [timedelta(minutes=5)] * 3


def test_retry_cycle_as_a_list_of_intervals():
    cycle = RetryCycle.parse("PT1M, PT10M,PT1H", backoff_factor=3)
    assert cycle.retries == 3
    assert [cycle.delay(n) for n in (0, 1, 2, 3, 4)] == [
        timedelta(minutes=1),
        timedelta(minutes=1),
        timedelta(minutes=10),
        timedelta(hours=1),
        timedelta(hours=1),
    ]


@pytest.mark.parametrize("text", ["", "R3", "R/PT5M", "3/PT5M", "R3/5M", "PT5M,later", "R3/PT5M,"])
def test_retry_cycle_rejects_malformed_text(text):
    with pytest.raises(ValueError):
        RetryCycle.parse(text)


def test_retry_cycle_comes_from_settings(settings):
    settings.TASKYARD_EXECUTOR = {"RETRY_CYCLE": "R5/PT30S", "BACKOFF_FACTOR": 1}
    job = make_job(ALWAYS_FAILS)
    assert job.retries == 5
    runjobs()
    job.refresh_from_db()
    failed_at = JobLog.objects.get(job_id=job.id, event="failed").timestamp
    assert job.retries == 4
    assert abs(job.due_date - failed_at - timedelta(seconds=30)) < timedelta(seconds=1)


def test_demo_jobs_enqueues_runnable_demo_tasks_on_the_demo_queue():
    call_command("demo_jobs", "--count", "25", "--rate", "10000", "--seed", "3", stdout=StringIO())

    jobs = Job.objects.all()
    assert jobs.count() == 25
    assert set(jobs.values_list("queue_name", flat=True)) == {"demo"}
    assert {job.handler.rsplit(".", 1)[0] for job in jobs} == {"jobs.demo_handlers"}
    assert len(set(jobs.values_list("handler", flat=True))) >= 3
    # Only `runjobs --queue demo` picks them up.
    runjobs("--queue", "reports")
    assert Job.objects.count() == 25
