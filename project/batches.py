"""TEMPORARY stand-in for batchcore's project/batches.py (removed before merging batchcore):
just enough of the agreed interface for the console pages to be built and tested."""

from datetime import timedelta

from django.utils import timezone

from project import tenancy
from project.errors import NotFound
from project.models import AuditEntry, Batch

_ENGINE = None
TYPES: dict = {}


def use_engine(engine) -> None:
    global _ENGINE
    _ENGINE = engine


def visible(user):
    batches = Batch.objects.all()
    if user is None or not user.is_authenticated:
        return batches.none()
    if tenancy.is_admin(user):
        return batches
    entries = tenancy.scope_audit(AuditEntry.objects.all(), user)
    return batches.filter(audit_entry__in=entries)


def get(user, batch_id):
    batch = visible(user).filter(pk=batch_id).first()
    if batch is None:
        raise NotFound(f"Batch with id '{batch_id}' does not exist")
    return batch


def set_suspended(user, batch_id, suspended):
    batch = get(user, batch_id)
    Batch.objects.filter(pk=batch.pk).update(suspended=suspended)
    batch.refresh_from_db()
    return batch


def delete(user, batch_id, *, cascade=False):
    batch = get(user, batch_id)
    if cascade:
        batch.delete()
        return
    Batch.objects.filter(pk=batch.pk, end_time__isnull=True).update(
        end_time=timezone.now(), outcome=Batch.Outcome.CANCELLED
    )


def failed_jobs(batch_ids):
    return {batch_id: 0 for batch_id in batch_ids}


def executors_seen(queue="batch", within_seconds=30):
    from django.apps import apps

    ExecutorHeartbeat = apps.get_model("jobs", "ExecutorHeartbeat")  # noqa: N806
    since = timezone.now() - timedelta(seconds=within_seconds)
    return any(
        not beat.queues or queue in beat.queues
        for beat in ExecutorHeartbeat.objects.filter(last_seen__gte=since)
    )
