"""A small, varied set of rows for browser tests and screenshots."""

from datetime import timedelta

from django.utils import timezone

from external_tasks.models import ExternalTask, ExternalTaskLog
from jobs.models import Job, JobLog

TRACE = """Traceback (most recent call last):
  File "/srv/app/billing/tasks.py", line 42, in charge
    gateway.charge(invoice.customer, invoice.total)
  File "/srv/app/billing/gateway.py", line 17, in charge
    raise PaymentDeclined(f"card declined for customer {customer.id}")
billing.gateway.PaymentDeclined: card declined for customer 4711"""


def seed_demo_rows():
    now = timezone.now()
    handlers = ["billing.tasks.charge", "mail.tasks.send_receipt", "reports.tasks.nightly"]
    failed_job = None
    for i in range(24):
        fields = {
            "handler": handlers[i % 3],
            "tenant_id": "acme" if i % 4 else "globex",
            "priority": (i * 7) % 50,
            "retries": 3,
            "create_time": now - timedelta(minutes=7 * i),
            "process_instance_id": f"order-{1000 + i // 2}",
            "activity_id": ["ChargeCard", "SendReceipt", "BuildReport"][i % 3],
            "process_definition_key": "order-process",
        }
        if i % 5 == 0:
            fields.update(
                retries=0,
                exception_message=f"card declined for customer {4700 + i}",
                exception_stacktrace=TRACE,
            )
        elif i % 5 == 1:
            fields.update(due_date=now + timedelta(hours=i), type="timer")
        elif i % 5 == 2:
            fields.update(lock_owner="executor-1", lock_expiration_time=now + timedelta(minutes=5))
        elif i % 5 == 3:
            fields.update(retries=2, exception_message="timeout talking to smtp.example.com")
        job = Job.objects.create(**fields)
        if fields["retries"] == 0 and failed_job is None:
            failed_job = job
    for event, minutes in (("created", 90), ("started", 80), ("failed", 79), ("started", 20)):
        JobLog.objects.create(
            job_id=failed_job.pk,
            event=event,
            timestamp=now - timedelta(minutes=minutes),
            worker="executor-1" if event != "created" else None,
            handler=failed_job.handler,
            tenant_id=failed_job.tenant_id,
            exception_message=failed_job.exception_message if event == "failed" else None,
        )
    failed_task = None
    topics = ["invoice", "shipping", "crm-sync"]
    for i in range(30):
        fields = {
            "topic_name": topics[i % 3],
            "tenant_id": "acme" if i % 4 else "globex",
            "priority": (i * 3) % 20,
            "create_time": now - timedelta(minutes=5 * i),
            "business_key": f"ORDER-{2000 + i}",
            "process_instance_id": f"order-{1000 + i // 2}",
            "activity_id": "Task_" + topics[i % 3],
            "variables": {
                "amount": {"type": "Double", "value": 12.5 * i, "valueInfo": {}},
                "customer": {"type": "String", "value": f"C-{i}", "valueInfo": {}},
            },
        }
        if i % 6 == 0:
            fields.update(
                retries=0,
                error_message=f"Address {i} Main St not found",
                error_details="lookup failed after 3 attempts",
                worker_id="worker-a",
            )
        elif i % 6 == 1:
            fields.update(worker_id="worker-b", lock_expiration_time=now + timedelta(minutes=3))
        elif i % 6 == 2:
            fields.update(worker_id="worker-c", lock_expiration_time=now - timedelta(minutes=3))
        elif i % 6 == 3:
            fields.update(suspended=True)
        task = ExternalTask.objects.create(**fields)
        if i % 6 == 0 and failed_task is None:
            failed_task = task
    for hour in range(10):
        for n in range(hour % 4 + 1):
            ExternalTaskLog.objects.create(
                task_id=f"done-{hour}-{n}",
                event="completed" if n % 3 else "failed",
                timestamp=now - timedelta(hours=hour, minutes=n),
                worker_id="worker-a",
                topic_name="invoice",
                tenant_id="acme",
            )
    return failed_job, failed_task
