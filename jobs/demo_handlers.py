"""Handlers for demo data and tests: work that succeeds, fails sometimes, or takes its time.

Each is a django.tasks task, so `send_invoice.enqueue(...)` creates a job and `runjobs` runs it;
jobs created through the API can name them as handler too (e.g. "jobs.demo_handlers.send_invoice").
"""

import asyncio
import os
import random
import time

from django.tasks import task


class InvoiceDeliveryError(Exception):
    """The (pretend) mail server refused the invoice."""


@task
def send_invoice(invoice_id, email: str = "billing@example.com", dry_run: bool = False) -> dict:
    """Pretend to render and mail an invoice; answers what was sent."""
    return {"invoice": invoice_id, "sent_to": email}


@task
def sync_inventory(warehouse_id, dry_run: bool = False) -> dict:
    """Pretend to reconcile a warehouse's stock with the shop."""
    items = random.randint(10, 500)
    return {"warehouse": warehouse_id, "items_synced": 0 if dry_run else items}


@task
def flaky_report(report_id=None, dry_run: bool = False, failure_rate: float = 0.3) -> str:
    """Fails with the given probability, like a report built on a shaky downstream service."""
    if random.random() < failure_rate:
        raise InvoiceDeliveryError(f"Report service timed out building report {report_id}")
    return f"report {report_id} ready"


@task
def slow_export(export_id=None, dry_run: bool = False, seconds: float | None = None) -> dict:
    """An export that takes a few seconds."""
    seconds = random.uniform(1, 4) if seconds is None else seconds
    time.sleep(seconds)
    return {"export": export_id, "seconds": round(seconds, 2)}


@task
def always_fails(message: str = "boom") -> None:
    """Raises every time: shows retries, back-off and the incident at 0 retries."""
    raise InvoiceDeliveryError(message)


@task
def slow(seconds: float = 2.0, path: str | None = None) -> float:
    """Takes its time (and, given a path, appends a line to it when done)."""
    time.sleep(seconds)
    if path:
        record_run.call(path, "slow")
    return seconds


@task
def record_run(path: str, token: str) -> str:
    """Appends `token` to a file: tests count a handler's side effects across processes."""
    # One write() of a short line with O_APPEND is atomic between processes.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{token}\n".encode())
    finally:
        os.close(fd)
    return token


@task
def hangs_first_time(path: str, seconds: float = 60.0) -> int:
    """Hangs on its first run (like a job whose executor dies mid-way), returns on the next;
    every run appends a line to `path` and the answer is the number of runs so far."""
    record_run.call(path, "run")
    with open(path) as runs:
        count = sum(1 for _ in runs)
    if count == 1:
        time.sleep(seconds)
    return count


@task(takes_context=True)
def report_attempt(context) -> int:
    """Answers which attempt this is (django.tasks TaskContext)."""
    return context.attempt


@task
async def check_carrier_status(shipment_id: str) -> dict:
    """An async task: the executor runs coroutines to completion like any other handler."""
    await asyncio.sleep(0)
    return {"shipment": shipment_id, "status": "in transit"}
