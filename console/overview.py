"""The overview and topics & workers pages: aggregates over whole tables, cached for seconds."""

from datetime import timedelta

from django.core.cache import cache
from django.db.models import Count, F, Max, Min, Q
from django.db.models.functions import TruncHour
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from console import queues
from console.access import viewer_required
from console.resources import EXTERNAL_TASKS, RESOURCES
from console.tables import bounded_count, count_label
from external_tasks.models import FAILED as FAILED_TASK
from external_tasks.models import FETCHABLE as FETCHABLE_TASK
from external_tasks.models import ExternalTask, ExternalTaskLog
from project import tenancy

CHART_HOURS = 12
BREAKDOWN_ROWS = 20
# The overview and topics pages aggregate over big tables; operators reload them often, so
# their numbers are shared for a few seconds per tenant set (each page says how old they are).
AGGREGATE_TTL = 15
WORKER_WINDOW = timedelta(hours=24)


def _cached(request, name, compute):
    tenants = tenancy.tenant_ids(request.user)
    key = f"console:{name}:" + ("*" if tenants is None else ",".join(sorted(tenants)))
    hit = cache.get(key)
    if hit is None or "fresh" in request.GET:
        hit = {"data": compute(), "at": timezone.now()}
        cache.set(key, hit, AGGREGATE_TTL)
    return hit["data"], hit["at"]


@viewer_required
def overview(request):
    data, counted_at = _cached(request, "overview", lambda: _overview_data(request.user))
    context = {"nav_section": "overview", "counted_at": counted_at, **_described(data)}
    return render(request, "console/overview.html", context)


def _described(data):
    """The cached numbers with their resources and statuses put back (the cache holds plain
    values only: descriptions carry functions, which do not pickle)."""
    sections = []
    for section in data["sections"]:
        resource = RESOURCES[section["resource"]]
        tiles = [{**t, "status": resource.statuses[t["status"]]} for t in section["tiles"]]
        sections.append({**section, "resource": resource, "tiles": tiles})
    tenants = [
        {**line, "counts": [(RESOURCES[key], n) for key, n in line["counts"]]}
        for line in data["tenants"]
    ]
    return {**data, "sections": sections, "tenants": tenants, "resources": RESOURCES.values()}


def _overview_data(user):
    now = timezone.now()
    return {
        "sections": [
            {
                "resource": resource.key,
                "tiles": _tiles(resource, user, now),
                "attention": _attention(resource, user, now),
            }
            for resource in RESOURCES.values()
        ],
        "tenants": _failed_per_tenant(user),
        "chart": _chart(user, now),
        "chart_hours": CHART_HOURS,
    }


def _tiles(resource, user, now):
    """A count per status of the resource's status table, each linking to its filtered list."""
    tiles = []
    for status in resource.statuses:
        n, exact = bounded_count(resource.visible(user).in_state(status.key, now))
        tiles.append(
            {
                "status": status.key,
                "count": n,
                "label": count_label(n, exact),
                "bad": status.key in ("failed", "expired") and n > 0,
            }
        )
    return tiles


def _attention(resource, user, now):
    """Per source (handler, topic): failed rows and rows holding a live or an expired lock.

    Only rows that need attention are read (failed or holding a lock): the failed partial
    indexes and the lock indexes find them without reading the whole table."""
    failed = resource.statuses["failed"].condition(now)
    held = Q(**{f"{resource.holder_field}__isnull": False})
    return list(
        resource.visible(user)
        .filter(failed | held)
        .values(source=F(resource.source_field))
        .annotate(
            failed=Count("id", filter=failed),
            locked=Count("id", filter=Q(lock_expiration_time__gt=now) & ~failed),
            expired=Count("id", filter=held & Q(lock_expiration_time__lte=now) & ~failed),
        )
        .order_by("-failed", "source")[:BREAKDOWN_ROWS]
    )


def _failed_per_tenant(user):
    tenants = {}
    keys = list(RESOURCES)
    for resource in RESOURCES.values():
        rows = resource.failed(user).values("tenant_id").annotate(n=Count("id")).order_by()
        for row in rows:
            counts = tenants.setdefault(row["tenant_id"], dict.fromkeys(keys, 0))
            counts[resource.key] = row["n"]
    return [
        {"tenant": tenant, "counts": [(key, counts[key]) for key in keys]}
        for tenant, counts in sorted(tenants.items(), key=lambda i: (i[0] is None, i[0] or ""))
    ]


def _chart_buckets(user, now):
    """Completions and failures per hour over the last hours, from every resource's log."""
    start = (now - timedelta(hours=CHART_HOURS - 1)).replace(minute=0, second=0, microsecond=0)
    buckets = {start + timedelta(hours=i): [0, 0] for i in range(CHART_HOURS)}
    for resource in RESOURCES.values():
        model, done, failed = resource.outcome_log
        rows = (
            tenancy.scope(model.objects.all(), user)
            .filter(timestamp__gte=start, event__in=[done, failed])
            .annotate(hour=TruncHour("timestamp"))
            .values("hour", "event")
            .annotate(n=Count("id"))
            .order_by()
        )
        for row in rows:
            if row["hour"] in buckets:
                buckets[row["hour"]][0 if row["event"] == done else 1] += row["n"]
    return buckets


def _chart(user, now):
    buckets = _chart_buckets(user, now)
    peak = max([c + f for c, f in buckets.values()] + [1])
    width = 100 / CHART_HOURS
    bars = []
    for i, (hour, (completed, failures)) in enumerate(sorted(buckets.items())):
        completed_h = 100 * completed / peak
        failed_h = 100 * failures / peak
        bars.append(
            {
                "x": round(i * width + 0.5, 2),
                "w": round(width - 1, 2),
                "completed": completed,
                "failed": failures,
                "completed_y": round(110 - completed_h, 2),
                "completed_h": round(completed_h, 2),
                "failed_y": round(110 - completed_h - failed_h, 2),
                "failed_h": round(failed_h, 2),
                "label": hour.strftime("%H:00"),
                "label_x": round(i * width + width / 2, 2),
            }
        )
    total = sum(c + f for c, f in buckets.values())
    return {"bars": bars, "total": total, "peak": peak}


# ---------------------------------------------------------------------------------------------
# Topics & workers: an external-task page (topics and workers are the fetch protocol's words).


@viewer_required
def topics(request):
    data, counted_at = _cached(request, "topics", lambda: _topics_data(request.user))
    context = {
        "nav_section": "topics",
        "counted_at": counted_at,
        "tasks_url": reverse(EXTERNAL_TASKS.list_url),
        **data,
    }
    return render(request, "console/topics.html", context)


def _topic_rows(tasks, now):
    # One grouped pass per page view. The backlog is the fetchable, unlocked part of a topic.
    return list(
        tasks.values("topic_name")
        .annotate(
            total=Count("id"),
            backlog=Count(
                "id",
                filter=FETCHABLE_TASK
                & (Q(lock_expiration_time__isnull=True) | Q(lock_expiration_time__lte=now)),
            ),
            # The wait: age of the oldest task a worker could fetch now (the backlog's oldest);
            # before `suspended`, whose annotation hides the field from later filters.
            oldest_fetchable=Min(
                "create_time",
                filter=FETCHABLE_TASK
                & (Q(lock_expiration_time__isnull=True) | Q(lock_expiration_time__lte=now)),
            ),
            locked=Count("id", filter=Q(lock_expiration_time__gt=now)),
            expired=Count("id", filter=Q(worker_id__isnull=False, lock_expiration_time__lte=now)),
            failed=Count("id", filter=FAILED_TASK),
            retrying=Count("id", filter=Q(retries__gt=0, error_message__isnull=False)),
            suspended=Count("id", filter=Q(suspended=True)),
            oldest=Min("create_time"),
        )
        .order_by("topic_name")[:500]
    )


def _workers(user, tasks, now):
    """Workers seen in the log within the window, and workers holding locks now."""
    seen = (
        tenancy.scope(ExternalTaskLog.objects.all(), user)
        .filter(timestamp__gte=now - WORKER_WINDOW, worker_id__isnull=False)
        .values("worker_id", "topic_name")
        .annotate(
            last=Max("timestamp"),
            completed=Count("id", filter=Q(event="completed")),
            failed=Count("id", filter=Q(event__in=["failed", "bpmn-error"])),
        )
        .order_by("-last")[:500]
    )
    holding = {
        (row["worker_id"], row["topic_name"]): row["n"]
        for row in tasks.filter(lock_expiration_time__gt=now, worker_id__isnull=False)
        .values("worker_id", "topic_name")
        .annotate(n=Count("id"))
        .order_by()
    }
    workers = {}
    for row in seen:
        key = (row["worker_id"], row["topic_name"])
        workers[key] = {**row, "holding": holding.pop(key, 0)}
    for (worker, topic), n in holding.items():
        workers[(worker, topic)] = {
            "worker_id": worker,
            "topic_name": topic,
            "last": None,
            "completed": 0,
            "failed": 0,
            "holding": n,
        }
    return sorted(
        workers.values(),
        key=lambda w: (w["last"] is None, -(w["last"].timestamp() if w["last"] else 0)),
    )


def _topics_data(user):
    now = timezone.now()
    tasks = ExternalTask.objects.visible_to(user)
    topics = _topic_rows(tasks, now)
    rates = queues.topic_rates(user, now)
    for topic in topics:
        topic.update(rates.get(topic["topic_name"], {"completed": 0, "failures": 0, "rate": 0.0}))
    workers = _workers(user, tasks, now)
    queues.mark_stale_workers(workers, tasks, now)
    return {
        "topics": topics,
        "workers": workers,
        "window_hours": int(WORKER_WINDOW.total_seconds() // 3600),
        "rate_minutes": queues.rate_minutes(),
    }
