"""Console pages that span both apps: overview, topics & workers, failures, audit, search."""

import hashlib
import re
from datetime import timedelta

from django.core.cache import cache
from django.db.models import Count, Max, Min, Q, TextField
from django.db.models.functions import Cast, TruncHour
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from external_tasks.models import FAILED as FAILED_TASK
from external_tasks.models import FETCHABLE as FETCHABLE_TASK
from external_tasks.models import ExternalTask, ExternalTaskLog
from jobs.models import Job, JobLog
from project import console, tenancy
from project.errors import InvalidRequest
from project.models import AuditEntry
from project.rest.dates import parse_date

CHART_HOURS = 12
BREAKDOWN_ROWS = 20


def _tiles(queryset, kind, url_name):
    tiles = []
    statuses = console.JOB_STATUSES if kind == "job" else console.TASK_STATUSES
    now = timezone.now()
    for status in statuses:
        n, exact = console.bounded_count(queryset.filter(console.status_q(kind, status.key, now)))
        tiles.append(
            {
                "status": status,
                "count": n,
                "label": console.count_label(n, exact),
                "url_name": url_name,
                "bad": status.key in ("failed", "expired") and n > 0,
            }
        )
    return tiles


def _chart(user):
    """Completions and failures per hour over the last hours, from both logs."""
    now = timezone.now()
    start = (now - timedelta(hours=CHART_HOURS - 1)).replace(minute=0, second=0, microsecond=0)
    buckets = {start + timedelta(hours=i): [0, 0] for i in range(CHART_HOURS)}
    sources = (
        (JobLog, JobLog.Event.SUCCEEDED, JobLog.Event.FAILED),
        (ExternalTaskLog, ExternalTaskLog.Event.COMPLETED, ExternalTaskLog.Event.FAILED),
    )
    for model, done, failed in sources:
        rows = (
            tenancy.scope(model.objects.all(), user)
            .filter(timestamp__gte=start, event__in=[done, failed])
            .annotate(hour=TruncHour("timestamp"))
            .values("hour", "event")
            .annotate(n=Count("id"))
            .order_by()
        )
        for row in rows:
            hour = row["hour"]
            if hour in buckets:
                buckets[hour][0 if row["event"] == done else 1] += row["n"]
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


# The overview and topics pages aggregate over big tables; operators reload them often, so
# their numbers are shared for a few seconds per tenant set (each page says how old they are).
AGGREGATE_TTL = 15


def _cached(request, name, compute):
    tenants = tenancy.tenant_ids(request.user)
    key = f"console:{name}:" + ("*" if tenants is None else ",".join(sorted(tenants)))
    hit = cache.get(key)
    if hit is None or "fresh" in request.GET:
        hit = {"data": compute(), "at": timezone.now()}
        cache.set(key, hit, AGGREGATE_TTL)
    return hit["data"], hit["at"]


@console.viewer_required
def overview(request):
    data, counted_at = _cached(request, "overview", lambda: _overview_data(request.user))
    context = {"nav_section": "overview", "counted_at": counted_at, **data}
    return render(request, "console/overview.html", context)


def _overview_data(user):
    jobs = tenancy.scope(Job.objects.all(), user)
    tasks = tenancy.scope(ExternalTask.objects.all(), user)
    now = timezone.now()
    # Breakdowns only look at rows that need attention (failed or holding a lock): the failed
    # partial indexes and the lock indexes find them without reading the whole table.
    task_rows = (
        tasks.filter(FAILED_TASK | Q(worker_id__isnull=False))
        .values("topic_name")
        .annotate(
            failed=Count("id", filter=FAILED_TASK),
            locked=Count("id", filter=Q(lock_expiration_time__gt=now) & ~FAILED_TASK),
            expired=Count(
                "id",
                filter=Q(worker_id__isnull=False, lock_expiration_time__lte=now) & ~FAILED_TASK,
            ),
        )
        .order_by("-failed", "topic_name")[:BREAKDOWN_ROWS]
    )
    job_rows = (
        jobs.filter(Q(retries=0) | Q(lock_owner__isnull=False))
        .values("handler")
        .annotate(
            failed=Count("id", filter=Q(retries=0)),
            locked=Count("id", filter=Q(lock_expiration_time__gt=now) & ~Q(retries=0)),
            expired=Count(
                "id",
                filter=Q(lock_owner__isnull=False, lock_expiration_time__lte=now) & ~Q(retries=0),
            ),
        )
        .order_by("-failed", "handler")[:BREAKDOWN_ROWS]
    )
    tenants = {}
    for model_rows, key in (
        (jobs.filter(retries=0).values("tenant_id").annotate(n=Count("id")).order_by(), "jobs"),
        (tasks.filter(FAILED_TASK).values("tenant_id").annotate(n=Count("id")).order_by(), "tasks"),
    ):
        for row in model_rows:
            tenants.setdefault(row["tenant_id"], {"jobs": 0, "tasks": 0})[key] = row["n"]
    return {
        "job_tiles": _tiles(jobs, "job", "job-list"),
        "task_tiles": _tiles(tasks, "task", "external-task-list"),
        "topics": list(task_rows),
        "handlers": list(job_rows),
        "tenants": sorted(tenants.items(), key=lambda item: (item[0] is None, item[0] or "")),
        "chart": _chart(user),
        "chart_hours": CHART_HOURS,
    }


# ---------------------------------------------------------------------------------------------
# Topics & workers


WORKER_WINDOW = timedelta(hours=24)


@console.viewer_required
def topics(request):
    data, counted_at = _cached(request, "topics", lambda: _topics_data(request.user))
    context = {"nav_section": "topics", "counted_at": counted_at, **data}
    return render(request, "console/topics.html", context)


def _topics_data(user):
    now = timezone.now()
    tasks = tenancy.scope(ExternalTask.objects.all(), user)
    # One grouped pass per page view. The backlog is the fetchable, unlocked part of a topic.
    rows = (
        tasks.values("topic_name")
        .annotate(
            total=Count("id"),
            backlog=Count(
                "id",
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
    since = now - WORKER_WINDOW
    seen = (
        tenancy.scope(ExternalTaskLog.objects.all(), user)
        .filter(timestamp__gte=since, worker_id__isnull=False)
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
    return {
        "topics": list(rows),
        "workers": sorted(
            workers.values(),
            key=lambda w: (w["last"] is None, -(w["last"].timestamp() if w["last"] else 0)),
        ),
        "window_hours": int(WORKER_WINDOW.total_seconds() // 3600),
    }


# ---------------------------------------------------------------------------------------------
# Failures: failed work grouped by a fingerprint of its error


_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:?\d{2}|Z)?)?")
_HEX = re.compile(r"\b0x[0-9a-f]+\b|\b[0-9a-f]{12,}\b", re.I)
_NUMBER = re.compile(r"\d+(\.\d+)?")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def normalize_message(message: str | None) -> str:
    """Error text with ids, dates, numbers and quoted values replaced, so alike errors group."""
    if not message:
        return "(no message)"
    text = message.strip().splitlines()[0][:300]
    for pattern, token in (
        (_UUID, "<id>"),
        (_DATE, "<date>"),
        (_HEX, "<hex>"),
        (_QUOTED, "<value>"),
        (_NUMBER, "<n>"),
    ):
        text = pattern.sub(token, text)
    return re.sub(r"\s+", " ", text)


FAILURE_SQL_GROUPS = 5000


def failure_groups(user, kind: str | None = None) -> list[dict]:
    """Failed jobs and tasks grouped by (kind, handler or topic, normalised message)."""
    groups: dict[tuple, dict] = {}
    sources = []
    if kind in (None, "job"):
        sources.append(("job", tenancy.scope(Job.objects.filter(retries=0), user), "handler"))
    if kind in (None, "task"):
        sources.append(
            ("task", tenancy.scope(ExternalTask.objects.filter(FAILED_TASK), user), "topic_name")
        )
    for source_kind, queryset, where in sources:
        message_field = "exception_message" if source_kind == "job" else "error_message"
        rows = (
            queryset.values(where, message_field)
            .annotate(n=Count("id"), first=Min("create_time"), last=Max("create_time"))
            .order_by("-n")[:FAILURE_SQL_GROUPS]
        )
        for row in rows:
            fingerprint = normalize_message(row[message_field])
            key = (source_kind, row[where], fingerprint)
            group = groups.setdefault(
                key,
                {
                    "kind": source_kind,
                    "where": row[where],
                    "fingerprint": fingerprint,
                    "count": 0,
                    "first": row["first"],
                    "last": row["last"],
                    "messages": [],
                    "example": row[message_field],
                },
            )
            group["count"] += row["n"]
            group["first"] = min(group["first"], row["first"])
            group["last"] = max(group["last"], row["last"])
            group["messages"].append(row[message_field])
    result = sorted(groups.values(), key=lambda g: (-g["count"], g["kind"], g["fingerprint"]))
    for group in result:
        group["key"] = group_key(group)
    return result


def group_key(group) -> str:
    raw = f"{group['kind']}\x00{group['where']}\x00{group['fingerprint']}"
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


def group_filter(group) -> Q:
    """The rows of one failure group: failed, same handler/topic, one of its raw messages."""
    where = "handler" if group["kind"] == "job" else "topic_name"
    message_field = "exception_message" if group["kind"] == "job" else "error_message"
    messages = [m for m in group["messages"] if m is not None]
    q = Q(**{f"{message_field}__in": messages}) if messages else Q(pk__in=[])
    if None in group["messages"]:
        q |= Q(**{f"{message_field}__isnull": True})
    failed = Q(retries=0) if group["kind"] == "job" else FAILED_TASK
    return failed & Q(**{where: group["where"]}) & q


@console.viewer_required
def failures(request):
    kind = request.GET.get("kind") or None
    if kind not in (None, "job", "task"):
        kind = None
    groups = failure_groups(request.user, kind)
    context = {
        "nav_section": "failures",
        "groups": groups,
        "kind": kind,
        "can_operate": tenancy.can_operate(request.user),
    }
    return render(request, "console/failures.html", context)


# ---------------------------------------------------------------------------------------------
# Audit log


AUDIT_PAGE = 50


def audit_scope(queryset, user):
    """Admins see every entry; others the entries of people who share one of their tenants."""
    tenants = tenancy.tenant_ids(user)
    if tenants is None:
        return queryset
    return queryset.filter(
        Q(user=user) | Q(user__memberships__tenant_id__in=sorted(tenants))
    ).distinct()


@console.viewer_required
def audit(request):
    entries = audit_scope(AuditEntry.objects.all(), request.user)
    errors = []
    params = console.plain_params(request.GET)
    if username := request.GET.get("user", "").strip():
        entries = entries.filter(username=username)
    if action := request.GET.get("action", "").strip():
        entries = entries.filter(action__startswith=action)
    if target := request.GET.get("target", "").strip():
        entries = entries.annotate(ids_text=Cast("target_ids", TextField())).filter(
            ids_text__contains=target
        )
    for key, lookup in (("since", "timestamp__gte"), ("until", "timestamp__lte")):
        value = request.GET.get(key, "").strip()
        if value:
            try:
                entries = entries.filter(**{lookup: parse_date(value, key)})
            except InvalidRequest as error:
                errors.append(error.message)
    page = max(1, console._int(request.GET.get("page"), 1))
    start = (page - 1) * AUDIT_PAGE
    rows = list(entries[start : start + AUDIT_PAGE + 1]) if not errors else []
    context = {
        "nav_section": "audit",
        "entries": rows[:AUDIT_PAGE],
        "errors": errors,
        "values": params,
        "actions": sorted(
            audit_scope(AuditEntry.objects.all(), request.user)
            .order_by()
            .values_list("action", flat=True)
            .distinct()[:100]
        ),
        "prev_url": console.querystring(params, page=page - 1 if page > 2 else None)
        if page > 1
        else None,
        "next_url": console.querystring(params, page=page + 1) if len(rows) > AUDIT_PAGE else None,
        "chips": [
            {"text": f"{key}: {value}", "remove": console.querystring(params, **{key: None})}
            for key, value in params.items()
            if key != "page"
        ],
    }
    template = "console/audit.html"
    if request.htmx and not request.htmx.history_restore_request:
        template += "#audit-table"
    response = render(request, template, context)
    response["Vary"] = "HX-Request"
    return response


# ---------------------------------------------------------------------------------------------
# Global search: an id jumps straight to its row; anything else opens both tables searched.


@console.viewer_required
@require_GET
def search(request):
    text = (request.GET.get("q") or "").strip()
    if not text:
        return redirect("overview")
    user = request.user
    job = tenancy.scope(Job.objects.filter(pk=text), user).first()
    if job:
        return redirect("job-detail", job.pk)
    task = tenancy.scope(ExternalTask.objects.filter(pk=text), user).first()
    if task:
        return redirect("external-task-detail", task.pk)
    from external_tasks.views import TASK_TABLE
    from jobs.views import JOB_TABLE

    job_hits = list(JOB_TABLE.search(tenancy.scope(Job.objects.all(), user), text)[:10])
    task_hits = list(TASK_TABLE.search(tenancy.scope(ExternalTask.objects.all(), user), text)[:10])
    context = {"q": text, "global_q": text, "jobs": job_hits, "tasks": task_hits}
    return render(request, "console/search.html", context)
