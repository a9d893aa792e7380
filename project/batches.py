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


def chunk_size():
    from django.conf import settings

    return int(getattr(settings, "TASKYARD_BATCH_CHUNK_SIZE", 1000))


def start(user, type_name, rows, parameters, *, filter=None, description="", source="api"):
    from django.db.models import QuerySet

    from project import audit
    from project.errors import BadUserRequest
    from project.ids import new_id

    if not isinstance(rows, QuerySet):
        raise NotImplementedError("the stand-in takes querysets only")
    rows = tenancy.scope(rows, user)
    total = rows.count()
    if not total:
        raise BadUserRequest("jobIds is empty")
    tenants = set(rows.order_by().values_list("tenant_id", flat=True).distinct())
    target = "job" if "job" in type_name else "external_task"
    entry = audit.record(
        user, target, type_name, tenants=tenants, count=total, filter=filter, source=source
    )
    return Batch.objects.create(
        id=new_id(),
        type=type_name,
        target_type=target,
        parameters=parameters,
        filter=filter,
        description=description,
        total_rows=total,
        create_user_id=user.username,
        source=source,
        start_time=timezone.now(),
        audit_entry=entry,
    )
