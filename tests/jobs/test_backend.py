"""django.tasks through Taskyard: enqueue creates a job, runjobs runs it, get_result tells."""

from datetime import timedelta
from io import StringIO

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.db import transaction
from django.tasks import TaskResultStatus, default_task_backend, task_backends
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist, TaskResultMismatch
from django.tasks.signals import task_finished, task_started
from django.utils import timezone

from jobs import claims, demo_handlers
from jobs.backends import DatabaseBackend
from jobs.models import Job, JobLog
from project import clock
from tests.jobs import outside_tasks

pytestmark = pytest.mark.django_db


def runjobs(*args):
    call_command("runjobs", "--once", *args, stdout=StringIO(), stderr=StringIO())


def test_default_backend_is_taskyards():
    assert isinstance(task_backends["default"], DatabaseBackend)
    assert default_task_backend.supports_get_result
    assert default_task_backend.supports_defer
    assert default_task_backend.supports_priority


def test_enqueue_creates_a_message_job_with_handler_payload_priority_and_queue():
    result = demo_handlers.send_invoice.using(priority=7, queue_name="billing").enqueue(
        "INV-1", email="ap@acme.test"
    )

    job = Job.objects.get(id=result.id)
    assert job.handler == "jobs.demo_handlers.send_invoice"
    assert job.payload == {"args": ["INV-1"], "kwargs": {"email": "ap@acme.test"}}
    assert job.type == "message" and job.due_date is None
    assert job.priority == 7
    assert job.queue_name == "billing"
    assert job.retries == 3
    created = JobLog.objects.get(job_id=job.id)
    assert created.event == "created" and created.payload == job.payload
    assert result.status == TaskResultStatus.READY
    assert result.args == ["INV-1"] and result.kwargs == {"email": "ap@acme.test"}
    assert result.enqueued_at == job.create_time


def test_run_after_makes_a_timer_due_then():
    due = timezone.now() + timedelta(hours=2)
    result = demo_handlers.send_invoice.using(run_after=due).enqueue("INV-2")
    job = Job.objects.get(id=result.id)
    # Stored to the millisecond, as every time Taskyard writes.
    assert job.type == "timer" and job.due_date == clock.to_ms(due)

    runjobs()
    assert Job.objects.filter(id=result.id).exists()  # not due yet
    assert demo_handlers.send_invoice.get_result(result.id).status == TaskResultStatus.READY


def test_enqueued_task_runs_under_runjobs_and_get_result_reports_success():
    result = demo_handlers.send_invoice.enqueue("INV-3", email="x@acme.test")

    runjobs()

    fresh = demo_handlers.send_invoice.get_result(result.id)
    assert fresh.status == TaskResultStatus.SUCCESSFUL
    assert fresh.return_value == {"invoice": "INV-3", "sent_to": "x@acme.test"}
    assert fresh.args == ["INV-3"] and fresh.kwargs == {"email": "x@acme.test"}
    assert fresh.is_finished and fresh.attempts == 1
    assert fresh.started_at <= fresh.finished_at
    assert fresh.errors == []
    # The result object the caller kept catches up too.
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == fresh.return_value


def test_failing_task_reports_errors_and_failed_at_zero_retries():
    result = demo_handlers.always_fails.enqueue("no route to printer")
    Job.objects.filter(id=result.id).update(retries=2)

    runjobs("--retry-cycle", "PT0S,PT0S")

    fresh = default_task_backend.get_result(result.id)
    assert fresh.status == TaskResultStatus.FAILED
    assert fresh.attempts == 2
    assert len(fresh.errors) == 2
    error = fresh.errors[0]
    assert error.exception_class_path == "jobs.demo_handlers.InvoiceDeliveryError"
    assert error.exception_class is demo_handlers.InvoiceDeliveryError
    assert "no route to printer" in error.traceback
    with pytest.raises(ValueError, match="failed"):
        _ = fresh.return_value


def test_task_between_failures_is_ready_again():
    result = demo_handlers.always_fails.enqueue()
    runjobs()
    fresh = default_task_backend.get_result(result.id)
    assert fresh.status == TaskResultStatus.READY
    assert len(fresh.errors) == 1
    assert fresh.errors[0].exception_class_path == "jobs.demo_handlers.InvoiceDeliveryError"


def test_builtin_exceptions_get_a_builtins_class_path():
    result = demo_handlers.send_invoice.enqueue()  # missing invoice_id: TypeError
    runjobs()
    error = default_task_backend.get_result(result.id).errors[0]
    assert error.exception_class_path == "builtins.TypeError"
    assert error.exception_class is TypeError


def test_claimed_task_is_running():
    result = demo_handlers.send_invoice.enqueue("INV-4")
    Job.objects.filter(id=result.id).update(
        lock_owner="host:1", lock_expiration_time=timezone.now() + timedelta(minutes=5)
    )
    assert default_task_backend.get_result(result.id).status == TaskResultStatus.RUNNING


def test_context_task_sees_its_attempt():
    result = demo_handlers.report_attempt.enqueue()
    runjobs()
    assert default_task_backend.get_result(result.id).return_value == 1


def test_enqueue_in_a_rolled_back_transaction_leaves_no_job():
    with pytest.raises(RuntimeError), transaction.atomic():
        result = demo_handlers.send_invoice.enqueue("INV-5")
        raise RuntimeError("the order was not saved")
    assert not Job.objects.filter(id=result.id).exists()
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(result.id)


def test_unknown_result_id_does_not_exist():
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result("no-such-id")


def test_result_of_another_task_is_a_mismatch():
    result = demo_handlers.send_invoice.enqueue("INV-6")
    with pytest.raises(TaskResultMismatch):
        demo_handlers.always_fails.get_result(result.id)


def test_deleted_job_that_never_succeeded_is_failed():
    result = demo_handlers.send_invoice.enqueue("INV-8")
    job = Job.objects.get(id=result.id)
    JobLog.objects.create(job_id=job.id, event="deleted", handler=job.handler)
    job.delete()
    fresh = default_task_backend.get_result(result.id)
    assert fresh.status == TaskResultStatus.FAILED
    assert fresh.args == ["INV-8"]


def test_async_enqueue_and_get_result():
    result = async_to_sync(demo_handlers.send_invoice.aenqueue)("INV-10")
    assert Job.objects.filter(id=result.id).exists()
    fresh = async_to_sync(demo_handlers.send_invoice.aget_result)(result.id)
    assert fresh.status == TaskResultStatus.READY


def test_arguments_that_are_not_json_are_refused_at_enqueue():
    with pytest.raises(TypeError):
        demo_handlers.send_invoice.enqueue(object())
    assert not Job.objects.exists()


def test_priority_outside_django_range_is_refused():
    with pytest.raises(InvalidTask):
        demo_handlers.send_invoice.using(priority=101)


def test_backend_options_set_tenant_retries_and_allowed_queues(settings):
    settings.TASKS = {
        "default": {
            "BACKEND": "jobs.backends.DatabaseBackend",
            "QUEUES": ["default", "billing"],
            "OPTIONS": {"TENANT_ID": "acme", "RETRIES": 7},
        }
    }
    result = demo_handlers.send_invoice.enqueue("INV-11")
    job = Job.objects.get(id=result.id)
    assert job.tenant_id == "acme" and job.retries == 7
    with pytest.raises(InvalidTask, match="Queue 'reports'"):
        demo_handlers.send_invoice.using(queue_name="reports").enqueue("INV-12")


def test_bad_retry_cycle_setting_fails_the_system_check(settings):
    settings.TASKYARD_EXECUTOR = {"RETRY_CYCLE": "every five minutes"}
    errors = list(task_backends["default"].check())
    assert [error.id for error in errors] == ["jobs.E001"]


def test_runjobs_sends_django_task_signals_with_the_real_status():
    seen = []

    def started(sender, task_result, **kwargs):
        seen.append(("started", task_result.id, task_result.status))

    def finished(sender, task_result, **kwargs):
        seen.append(("finished", task_result.id, task_result.status))

    ok = demo_handlers.send_invoice.enqueue("INV-20")
    bad = demo_handlers.always_fails.enqueue()
    Job.objects.filter(id=bad.id).update(retries=2)
    task_started.connect(started)
    task_finished.connect(finished)
    try:
        runjobs("--retry-cycle", "PT0S,PT0S")
    finally:
        task_started.disconnect(started)
        task_finished.disconnect(finished)

    assert [(kind, status) for kind, job_id, status in seen if job_id == ok.id] == [
        ("started", TaskResultStatus.RUNNING),
        ("finished", TaskResultStatus.SUCCESSFUL),
    ]
    assert [(kind, status) for kind, job_id, status in seen if job_id == bad.id] == [
        ("started", TaskResultStatus.RUNNING),
        # The first failure is retried: not finished yet.
        ("started", TaskResultStatus.RUNNING),
        ("finished", TaskResultStatus.FAILED),
    ]


def test_a_failing_signal_receiver_does_not_change_the_outcome():
    def broken(sender, task_result, **kwargs):
        raise RuntimeError("receiver bug")

    result = demo_handlers.send_invoice.enqueue("INV-21")
    task_started.connect(broken)
    try:
        runjobs()
    finally:
        task_started.disconnect(broken)
    assert default_task_backend.get_result(result.id).status == TaskResultStatus.SUCCESSFUL


def test_async_task_runs_to_completion():
    result = demo_handlers.check_carrier_status.enqueue("SHP-1")
    runjobs()
    fresh = demo_handlers.check_carrier_status.get_result(result.id)
    assert fresh.status == TaskResultStatus.SUCCESSFUL
    assert fresh.return_value == {"shipment": "SHP-1", "status": "in transit"}


def test_result_of_a_job_with_an_allowed_plain_callable(settings):
    settings.TASKYARD_EXECUTOR = {"HANDLER_MODULES": ["os.path"]}
    job = claims.enqueue_job("os.path.join", {"args": ["a", "b"]})
    runjobs()
    result = default_task_backend.get_result(job.id)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == "a/b"
    assert result.task.module_path in {"posixpath.join", "os.path.join"}


def test_a_job_whose_handler_is_not_allowed_answers_its_status():
    job = claims.enqueue_job("os.system", {"args": ["true"]})
    assert default_task_backend.get_result(job.id).status == TaskResultStatus.READY
    runjobs()
    result = default_task_backend.get_result(job.id)
    assert result.status == TaskResultStatus.FAILED
    assert result.task.module_path == "os.system"


# ---------------------------------------------------------------------------------------------
# What may be a task: the application's own code, refused at enqueue time otherwise; a job whose
# handler can never run fails once, for good, and still answers its result.


def test_a_task_outside_the_installed_apps_is_refused_at_enqueue_time():
    with pytest.raises(InvalidTask, match="installed app") as refused:
        outside_tasks.stray.enqueue("x")
    assert "'tests.jobs.outside_tasks.stray' cannot be enqueued" in str(refused.value)
    assert not Job.objects.exists()
    assert not JobLog.objects.exists()


def test_a_task_in_a_configured_handler_module_may_be_enqueued(settings):
    settings.TASKYARD_EXECUTOR = {"HANDLER_MODULES": ["tests.jobs.outside_tasks"]}
    result = outside_tasks.stray.enqueue("allowed")
    runjobs()
    assert outside_tasks.stray.get_result(result.id).return_value == "ran"


def failed_entries(job_id):
    return list(JobLog.objects.filter(job_id=job_id, event="failed"))


def test_a_job_whose_task_is_not_allowed_fails_once_for_good():
    # Enqueued before the refusal existed (or written by hand): its handler is refused.
    outside_tasks.RUNS.clear()
    job = claims.enqueue_job("tests.jobs.outside_tasks.stray", {"args": ["x"]})
    assert job.retries == 3
    runjobs()
    job.refresh_from_db()
    assert job.retries == 0  # no retry cycle spending attempts on the same refusal
    assert "is not allowed" in job.exception_message
    assert "can never run" in job.exception_message
    [entry] = failed_entries(job.id)
    assert entry.retries == 0
    runjobs()  # nothing left to try
    assert len(failed_entries(job.id)) == 1
    assert outside_tasks.RUNS == []
    # Its result answers the status, matching the caller's own task object.
    result = outside_tasks.stray.get_result(job.id)
    assert result.status == TaskResultStatus.FAILED
    assert [error.exception_class_path for error in result.errors] == [
        "jobs.handlers.HandlerNotAllowed"
    ]
    assert result.finished_at == entry.timestamp


def test_a_job_whose_handler_module_is_gone_fails_once_and_answers_failed(settings):
    settings.TASKYARD_EXECUTOR = {"HANDLER_MODULES": ["tests.jobs.removed"]}
    job = claims.enqueue_job("tests.jobs.removed.task", {"args": []})
    before = default_task_backend.get_result(job.id)
    assert before.status == TaskResultStatus.READY
    assert before.task.module_path == "tests.jobs.removed.task"
    runjobs()
    job.refresh_from_db()
    assert job.retries == 0
    assert job.exception_message.startswith("Handler 'tests.jobs.removed.task' cannot be imported")
    result = default_task_backend.get_result(job.id)
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class_path == "builtins.ModuleNotFoundError"


def test_a_failing_allowed_task_still_spends_one_retry_at_a_time():
    result = demo_handlers.always_fails.enqueue()
    runjobs()
    job = Job.objects.get(id=result.id)
    assert job.retries == 2
