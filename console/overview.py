"""The overview and topics & workers pages: aggregates over whole tables, read from their
tenant scope's snapshot (console.snapshots), which a periodic job refreshes.

The overview answers "how bad, and is it getting worse?" in one partial that refreshes itself
(console.js polls `#overview-body` while the tab is visible):

- a tile per status of each kind: exact counts where a bounded count is cheap (at most
  EXACT_LIMIT rows, the partial status indexes serve them); beyond that on PostgreSQL an
  estimate from the planner's statistics, marked as one; on SQLite an exact count. Each tile
  says how many rows entered its status in the last 24 hours against the 24 hours before
  (from the log: `Resource.status_events`);
- the throughput chart: completions and failures per time bucket over a window (`?window=`
  1h / 24h / 7d), and per queue / topic;
- what needs attention, ranked (ATTENTION_RANKS).

Every figure reads rows through the kind's one scoping entry point (`Resource.visible`,
`tenancy.scope`), so a tenant viewer's numbers are their tenants' only.
"""

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.db import connections
from django.db.models import Count, F, Max, Min, Q
from django.db.models.functions import TruncHour, TruncMinute
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.vary import vary_on_headers

from console import queues, snapshots
from console.access import viewer_required
from console.failures import normalize_message
from console.resources import EXTERNAL_TASKS, RESOURCES
from external_tasks.models import FAILED as FAILED_TASK
from external_tasks.models import FETCHABLE as FETCHABLE_TASK
from external_tasks.models import ExternalTask, ExternalTaskLog
from jobs.models import ExecutorHeartbeat
from project import tenancy

BREAKDOWN_ROWS = 20
WORKER_WINDOW = timedelta(hours=24)

# A status with more rows than this is not counted row by row on PostgreSQL: its tile shows
# the planner's estimate (marked as one). Counting up to here reads one partial index or a
# short range of one, a few milliseconds at any table size.
EXACT_LIMIT = 10_000
# Seconds between two refreshes of the overview in an open, visible tab.
REFRESH_SECONDS = 15
DAY = timedelta(hours=24)
# Throughput windows: (span, bucket, database truncation of a timestamp before folding).
WINDOWS = {
    "1h": (timedelta(hours=1), timedelta(minutes=5), TruncMinute),
    "24h": (timedelta(hours=24), timedelta(hours=1), TruncHour),
    "7d": (timedelta(days=7), timedelta(hours=6), TruncHour),
}
DEFAULT_WINDOW = "24h"
BUCKET_WORDS = {"1h": "per 5 minutes", "24h": "per hour", "7d": "per 6 hours"}
# A worker or executor that holds locks but wrote nothing to the log (an executor: sent no
# heartbeat) for this long, after being seen within the last day, has stopped.
STALE_AFTER = timedelta(minutes=10)
# An error group is new when no failure of it was logged in this lookback before the last day.
NEW_ERROR_LOOKBACK = timedelta(days=7)
NEW_ERROR_SQL_GROUPS = 5000
# A backlog grows when more rows were created than ended in the last day, by at least this
# share of the created ones (noise on a busy queue is not worth an operator's attention).
GROWTH_SHARE = 0.1
ATTENTION_ROWS = 20
# Most urgent first: locks held by a process that is gone block work until they run out;
# expired locks and new errors need a look; a growing backlog is a trend.
ATTENTION_RANKS = {
    "stopped-worker": 4,
    "stopped-executor": 4,
    "expired-locks": 3,
    "new-error": 2,
    "growing-backlog": 1,
}
# Statuses whose rise is bad news (the tile's trend is shown in the failed colour).
RISING_IS_BAD = ("failed", "expired", "retrying", "suspended")


def refresh_seconds() -> int:
    return int(getattr(settings, "TASKYARD_CONSOLE", {}).get("OVERVIEW_REFRESH", REFRESH_SECONDS))


@viewer_required
@vary_on_headers("HX-Request")
def overview(request):
    """The overview page; htmx requests (its self-refresh) get only `#overview-body`."""
    window = request.GET.get("window") or DEFAULT_WINDOW
    context = {
        "nav_section": "overview",
        "window": window,
        "windows": list(WINDOWS),
        "refresh_seconds": refresh_seconds(),
    }
    if window not in WINDOWS:
        choices = ", ".join(WINDOWS)
        context["window_error"] = f"Unknown window {window!r}: choose one of {choices}."
        return render(request, "console/overview.html", context, status=400)
    data, counted_at, counted_now = snapshots.numbers(
        request, f"overview:{window}", lambda: _overview_data(request.user, window)
    )
    context.update({"counted_at": counted_at, "counted_now": counted_now, **_described(data)})
    template = "console/overview.html"
    if request.htmx and not request.htmx.history_restore_request:
        template += "#overview-body"
    return render(request, template, context)


def _described(data):
    """The cached numbers with their resources and statuses put back (the cache holds plain
    values only: descriptions carry functions, which do not pickle)."""
    sections = []
    for section in data["sections"]:
        resource = RESOURCES[section["resource"]]
        tiles = [{**t, "status": resource.statuses[t["status"]]} for t in section["tiles"]]
        sources = [{**row} for row in section["throughput"]]
        sections.append({**section, "resource": resource, "tiles": tiles, "sources": sources})
    tenants = [
        {**line, "counts": [(RESOURCES[key], n) for key, n in line["counts"]]}
        for line in data["tenants"]
    ]
    return {**data, "sections": sections, "tenants": tenants, "resources": RESOURCES.values()}


def _overview_data(user, window):
    now = timezone.now()
    starts = buckets_for(now, window)
    totals = [[0, 0] for _ in starts]
    sections = []
    held = {key: held_or_failed(resource, user, now) for key, resource in RESOURCES.items()}
    for key, resource in RESOURCES.items():
        sources = _throughput(resource, user, now, window, totals)
        sections.append(
            {
                "resource": resource.key,
                "tiles": _tiles(resource, user, now),
                "breakdown": _breakdown(held[key]),
                "throughput": sources,
            }
        )
    return {
        "sections": sections,
        "tenants": _failed_per_tenant(held),
        "chart": chart_geometry(starts, totals, window),
        "attention": attention(user, now, held),
    }


# ---------------------------------------------------------------------------------------------
# State tiles


def planned_rows(queryset) -> int:
    """The number of rows PostgreSQL's planner expects the queryset to return (its statistics,
    no rows read)."""
    connection = connections[queryset.db]
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def state_counts(resource, user, now) -> dict[str, tuple[int, bool]]:
    """{status key: (count, exact)} for every status of the resource, as `user` sees them.

    Exact up to EXACT_LIMIT. Beyond it, SQLite counts exactly (embedded databases are small)
    while PostgreSQL estimates: the statuses partition the rows, so the biggest status is the
    planner's estimate of all visible rows less the other statuses, and any other big one is
    the planner's estimate of its own condition (conditions joined with the negations of every
    earlier status are where planners guess worst). An estimate is never below the limit the
    bounded count proved it exceeds."""
    visible = resource.visible(user)
    counts: dict[str, tuple[int, bool]] = {}
    big = []
    for status in resource.statuses:
        rows = visible.in_state(status.key, now)
        n = rows.order_by()[: EXACT_LIMIT + 1].count()
        if n <= EXACT_LIMIT:
            counts[status.key] = (n, True)
        elif connections[rows.db].vendor != "postgresql":
            counts[status.key] = (rows.order_by().count(), True)
        else:
            big.append(status.key)
    if big:
        floor = EXACT_LIMIT + 1
        own = {
            key: max(planned_rows(visible.filter(resource.statuses[key].condition(now))), floor)
            for key in big
        }
        residual = max(big, key=lambda key: own[key])
        for key in big:
            if key != residual:
                counts[key] = (own[key], False)
        rest = planned_rows(visible) - sum(n for n, _ in counts.values())
        counts[residual] = (max(rest, floor), False)
    return {status.key: counts[status.key] for status in resource.statuses}


def estimate_label(n: int) -> str:
    """An estimate to two significant digits: "≈ 150,000" says it is not a count."""
    digits = len(str(n))
    rounded = round(n, 2 - digits) if digits > 2 else n
    return f"≈ {rounded:,}"


def status_flows(resource, user, now) -> dict[str, tuple[int, int]]:
    """{status key: (entries in the last 24 h, entries in the 24 h before)}: log entries that
    brought a row into the status (`Resource.status_events`), one grouped pass over two days
    of the kind's log."""
    if not resource.status_events:
        return {}
    log = resource.outcome_log[0]
    day_ago = now - DAY
    events = set()
    for q in resource.status_events.values():
        events |= {value for key, value in _leaves(q) if key == "event"}
        events |= {v for key, values in _leaves(q) if key == "event__in" for v in values}
    rows = tenancy.scope(log.objects.all(), user).filter(
        timestamp__gt=now - 2 * DAY, timestamp__lte=now, event__in=sorted(events)
    )
    aggregates = {}
    for key, q in resource.status_events.items():
        aggregates[f"now_{key}"] = Count("id", filter=q & Q(timestamp__gt=day_ago))
        aggregates[f"before_{key}"] = Count("id", filter=q & Q(timestamp__lte=day_ago))
    result = rows.aggregate(**aggregates)
    return {key: (result[f"now_{key}"], result[f"before_{key}"]) for key in resource.status_events}


def _leaves(q):
    for child in q.children:
        if isinstance(child, Q):
            yield from _leaves(child)
        else:
            yield child


def _tiles(resource, user, now):
    """A count per status of the resource's status table, each linking to its filtered list,
    with the rows that entered the status in the last day against the day before."""
    counts = state_counts(resource, user, now)
    flows = status_flows(resource, user, now)
    tiles = []
    for status in resource.statuses:
        n, exact = counts[status.key]
        tile = {
            "status": status.key,
            "count": n,
            "exact": exact,
            "label": f"{n:,}" if exact else estimate_label(n),
            "bad": status.key in ("failed", "expired") and n > 0,
            "flow": None,
        }
        if status.key in flows:
            entered, before = flows[status.key]
            change = entered - before
            tile["flow"] = {
                "entered": entered,
                "before": before,
                "change": change,
                "size": abs(change),
                "trend": "up" if change > 0 else "down" if change < 0 else "flat",
                "worse": change > 0 and status.key in RISING_IS_BAD,
            }
        tiles.append(tile)
    return tiles


def held_or_failed(resource, user, now) -> list[dict]:
    """The rows that need attention (failed, or naming a lock holder) as `user` sees them, in
    one grouped pass: per (source, tenant, holder), the counts the breakdown, the failures per
    tenant, the expired locks and the stopped holders fold from it. Only those rows are read:
    the failed partial indexes and the lock indexes find them without reading the whole table;
    reading them once instead of once per figure is most of the overview's first view at 1M
    rows. The groups are few (sources x tenants x holders)."""
    failed = resource.statuses["failed"].condition(now)
    holder = resource.holder_field
    held = Q(**{f"{holder}__isnull": False})
    live = Q(lock_expiration_time__gt=now)
    lock_timed = held & Q(lock_expiration_time__isnull=False)
    return list(
        resource.visible(user)
        .filter(failed | held)
        .values("tenant_id", source=F(resource.source_field), holder=F(holder))
        .annotate(
            failed=Count("id", filter=failed),
            locked=Count("id", filter=live & ~failed),
            expired=Count("id", filter=held & Q(lock_expiration_time__lte=now) & ~failed),
            expired_state=Count("id", filter=resource.statuses.q("expired", now)),
            held=Count("id", filter=lock_timed),
            held_live=Count("id", filter=lock_timed & live),
        )
        .order_by()
    )


def _folded(groups, key, *fields) -> dict:
    """{group[key]: {field: sum over the groups with that key}}."""
    result: dict = {}
    for group in groups:
        into = result.setdefault(group[key], dict.fromkeys(fields, 0))
        for field in fields:
            into[field] += group[field]
    return result


def _breakdown(groups):
    """Per source (handler, topic): failed rows and rows holding a live or an expired lock."""
    rows = [
        {"source": source, **counts}
        for source, counts in _folded(groups, "source", "failed", "locked", "expired").items()
    ]
    rows.sort(key=lambda row: (-row["failed"], row["source"] is None, row["source"] or ""))
    return rows[:BREAKDOWN_ROWS]


def _failed_per_tenant(held):
    tenants = {}
    keys = list(RESOURCES)
    for key in keys:
        for tenant, row in _folded(held[key], "tenant_id", "failed").items():
            if row["failed"]:
                counts = tenants.setdefault(tenant, dict.fromkeys(keys, 0))
                counts[key] = row["failed"]
    return [
        {"tenant": tenant, "counts": [(key, counts[key]) for key in keys]}
        for tenant, counts in sorted(tenants.items(), key=lambda i: (i[0] is None, i[0] or ""))
    ]


# ---------------------------------------------------------------------------------------------
# Throughput: completions and failures from every kind's log, over a window.


def buckets_for(now, window) -> list[datetime]:
    """The window's bucket starts, oldest first; the last bucket holds `now`."""
    span, step, _trunc = WINDOWS[window]
    seconds = int(step.total_seconds())
    epoch = int(now.timestamp()) // seconds * seconds
    last = datetime.fromtimestamp(epoch, tz=UTC)
    n = int(span / step)
    return [last - step * (n - 1 - i) for i in range(n)]


def _bucket_of(moment, starts, step):
    index = int((moment - starts[0]) / step)
    return index if 0 <= index < len(starts) else None


def _outcome_rows(resource, user, now, window, *group):
    """The kind's completions and failures since the window's first bucket, grouped by the
    database-truncated time, the event and `group`."""
    model, done, failed = resource.outcome_log
    _span, _step, trunc = WINDOWS[window]
    start = buckets_for(now, window)[0]
    return (
        tenancy.scope(model.objects.all(), user)
        .filter(timestamp__gte=start, timestamp__lte=now, event__in=[done, failed])
        .annotate(moment=trunc("timestamp", tzinfo=UTC))
        .values("moment", "event", *group)
        .annotate(n=Count("id"))
        .order_by()
    )


def _nice_ceiling(n: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is at least n (an axis' top)."""
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= n:
                return step * scale
        scale *= 10


# The chart's drawing box, in SVG units: the axes' labels sit in the margins.
CHART_W, CHART_H, MARGIN_L, MARGIN_B, MARGIN_T = 640, 200, 48, 34, 8


def chart_geometry(starts, totals, window):
    """Stacked bars (completed below, failed above) with a labelled y axis (count per bucket)
    and x axis (bucket start, UTC); each bar's <title> gives its exact values on hover."""
    top = _nice_ceiling(max([c + f for c, f in totals] + [1]))
    plot_w, plot_h = CHART_W - MARGIN_L, CHART_H - MARGIN_B - MARGIN_T
    base = MARGIN_T + plot_h
    width = plot_w / len(starts)
    span = WINDOWS[window][0]
    label_every = max(1, len(starts) // 8)
    bars = []
    for i, (start, (completed, failed)) in enumerate(zip(starts, totals, strict=True)):
        completed_h = plot_h * completed / top
        failed_h = plot_h * failed / top
        fmt = "%a %H:%M" if span > DAY else "%H:%M"
        bars.append(
            {
                "x": round(MARGIN_L + i * width + width * 0.1, 2),
                "w": round(width * 0.8, 2),
                "completed": completed,
                "failed": failed,
                "completed_y": round(base - completed_h, 2),
                "completed_h": round(completed_h, 2),
                "failed_y": round(base - completed_h - failed_h, 2),
                "failed_h": round(failed_h, 2),
                "label": start.strftime(fmt),
                "when": start.strftime("%Y-%m-%d %H:%M UTC"),
                "label_x": round(MARGIN_L + i * width + width / 2, 2),
                "show_label": i % label_every == 0,
            }
        )
    ticks = [
        {"value": value, "y": round(base - plot_h * value / top, 2)} for value in (0, top // 2, top)
    ]
    return {
        "bars": bars,
        "ticks": ticks,
        "total": sum(c + f for c, f in totals),
        "completed": sum(c for c, _ in totals),
        "failed": sum(f for _, f in totals),
        "peak": max([c + f for c, f in totals] + [0]),
        "bucket_words": BUCKET_WORDS[window],
        "w": CHART_W,
        "h": CHART_H,
        "left": MARGIN_L,
        "base": base,
        "top_y": MARGIN_T,
        "plot_h": plot_h,
        "axis_y": CHART_H - 4,
        "y_title_y": round(MARGIN_T + plot_h / 2, 2),
    }


def _throughput(resource, user, now, window, totals):
    """Completions and failures in the window per queue (jobs) or topic (tasks), with each
    source's bars over the window, the busiest first; adds every bucket's numbers to `totals`
    (the chart of all kinds), so the log is read once per kind."""
    starts = buckets_for(now, window)
    step = WINDOWS[window][1]
    _model, done, _failed = resource.outcome_log
    group = (resource.throughput_field,) if resource.throughput_field else ()
    sources: dict[str, dict] = {}
    for row in _outcome_rows(resource, user, now, window, *group):
        index = _bucket_of(row["moment"], starts, step)
        if index is None:
            continue
        slot = 0 if row["event"] == done else 1
        totals[index][slot] += row["n"]
        if not group:
            continue
        name = row[resource.throughput_field] or ""
        line = sources.setdefault(
            name, {"name": name, "completed": 0, "failed": 0, "series": [[0, 0] for _ in starts]}
        )
        line["series"][index][slot] += row["n"]
        line["completed" if slot == 0 else "failed"] += row["n"]
    lines = sorted(sources.values(), key=lambda s: (-(s["completed"] + s["failed"]), s["name"]))
    for line in lines[:BREAKDOWN_ROWS]:
        total = line["completed"] + line["failed"]
        line["failure_pct"] = round(100 * line["failed"] / total, 1) if total else 0
        line["spark"] = _spark(line.pop("series"))
        if resource.throughput_param and line["name"]:
            line["url"] = _list_url(resource, **{resource.throughput_param: line["name"]})
    return lines[:BREAKDOWN_ROWS]


def _spark(series):
    """A small bar per bucket (completed and failed, scaled to the source's own peak)."""
    peak = max([c + f for c, f in series] + [1])
    width = 100 / len(series)
    return [
        {
            "x": round(i * width, 2),
            "w": round(max(width - 0.4, 0.3), 2),
            "c_h": round(20 * c / peak, 2),
            "c_y": round(20 - 20 * c / peak, 2),
            "f_h": round(20 * f / peak, 2),
            "f_y": round(20 - 20 * (c + f) / peak, 2),
        }
        for i, (c, f) in enumerate(series)
    ]


# ---------------------------------------------------------------------------------------------
# Needs attention, ranked.


def attention(user, now, held=None) -> list[dict]:
    """What needs an operator, most urgent first (ATTENTION_RANKS, then the number of rows):
    workers and executors that stopped while holding locks, expired locks, error groups first
    seen in the last day, and queues and topics whose backlog grows. `held`: each kind's
    held_or_failed() groups, when the caller read them already."""
    items = []
    for key, resource in RESOURCES.items():
        groups = held[key] if held is not None else held_or_failed(resource, user, now)
        items += _stopped_holders(resource, user, now, groups)
        items += _expired_locks(resource, groups)
        items += _new_error_groups(resource, user, now)
        items += _growing_backlogs(resource, user, now)
    items += _stopped_executors(user, now)
    for item in items:
        item["rank"] = ATTENTION_RANKS[item["kind"]]
    items.sort(key=lambda i: (-i["rank"], -i["count"], i["title"]))
    return items[:ATTENTION_ROWS]


def _list_url(resource, **params) -> str:
    return f"{reverse(resource.list_url)}?{urlencode(params)}"


def _stopped_holders(resource, user, now, groups):
    """Processes named on rows as their lock holder that the log saw within the last day but
    not in the last STALE_AFTER: a worker (or executor) that died with work in its hands."""
    folded = _folded(groups, "holder", "held", "held_live")
    held = sorted(
        (
            {"holder": name, "n": row["held"], "live": row["held_live"]}
            for name, row in folded.items()
            if name is not None and row["held"]
        ),
        key=lambda row: -row["n"],
    )[:500]
    holding = {row["holder"]: row for row in held}
    if not holding:
        return []
    log = resource.outcome_log[0]
    worker = resource.log_worker_field
    entries = tenancy.scope(log.objects.all(), user)
    # Most holders are alive: the last few minutes of the log (a short range of its time
    # index) clear them; only the others are looked up over the whole day.
    alive = set(
        entries.filter(**{f"{worker}__in": sorted(holding)}, timestamp__gt=now - STALE_AFTER)
        .values_list(worker, flat=True)
        .order_by()
        .distinct()
    )
    # An executor running one long job writes no log entry meanwhile; its heartbeat says it
    # is alive.
    alive |= set(
        ExecutorHeartbeat.objects.filter(
            worker_id__in=sorted(set(holding) - alive), last_seen__gt=now - STALE_AFTER
        ).values_list("worker_id", flat=True)
    )
    silent = sorted(set(holding) - alive)
    if not silent:
        return []
    seen = (
        entries.filter(**{f"{worker}__in": silent}, timestamp__gt=now - DAY)
        .values(worker)
        .annotate(last=Max("timestamp"))
        .order_by()
    )
    items = []
    for row in seen:
        if row["last"] > now - STALE_AFTER:
            continue
        locks = holding[row[worker]]
        items.append(
            {
                "kind": "stopped-worker",
                "count": locks["n"],
                "title": f"{row[worker]} stopped",
                "detail": (
                    f"holds {locks['n']:,} {resource.plural if locks['n'] != 1 else resource.noun}"
                    f" ({locks['live']:,} with a live lock); last seen in the log"
                ),
                "when": row["last"],
                "url": _list_url(resource, q=row[worker]),
            }
        )
    return items


def _stopped_executors(user, now):
    """Executors whose heartbeat stopped within the last day. They serve every tenant, so only
    admins (who see every tenant) are told of them."""
    if tenancy.tenant_ids(user) is not None:
        return []
    beats = ExecutorHeartbeat.objects.filter(
        last_seen__gt=now - DAY, last_seen__lte=now - STALE_AFTER
    ).order_by("-last_seen")[:50]
    return [
        {
            "kind": "stopped-executor",
            "count": beat.running,
            "title": f"executor {beat.worker_id} stopped",
            "detail": f"{beat.hostname or 'unknown host'}, {beat.running:,} running at its last "
            "heartbeat",
            "when": beat.last_seen,
            "url": None,
        }
        for beat in beats
    ]


def _expired_locks(resource, groups):
    """Per source, the rows whose status is "expired" (the holder's lock ran out)."""
    folded = _folded(groups, "source", "expired_state")
    rows = sorted(
        ({"source": source, "n": row["expired_state"]} for source, row in folded.items()),
        key=lambda row: (-row["n"], row["source"] is None, row["source"] or ""),
    )
    rows = [row for row in rows if row["n"]][:BREAKDOWN_ROWS]
    return [
        {
            "kind": "expired-locks",
            "count": row["n"],
            "title": f"{row['n']:,} expired "
            + ("lock" if row["n"] == 1 else "locks")
            + f" in {resource.source_label} {row['source'] or '(none)'}",
            "detail": f"{resource.plural} whose holder's lock ran out before it finished",
            "when": None,
            "url": _list_url(
                resource, status="expired", **{resource.source_param: row["source"] or ""}
            ),
        }
        for row in rows
    ]


def _new_error_groups(resource, user, now):
    """Failure fingerprints (console.failures) logged in the last day and not in the
    NEW_ERROR_LOOKBACK before it."""
    log = resource.outcome_log[0]
    failed_event = resource.outcome_log[2]
    source, message = resource.source_field, resource.message_field
    failures = tenancy.scope(log.objects.all(), user).filter(event=failed_event)
    recent = (
        failures.filter(timestamp__gt=now - DAY, timestamp__lte=now)
        .values(source, message)
        .annotate(n=Count("id"), first=Min("timestamp"))
        .order_by("-n")[:NEW_ERROR_SQL_GROUPS]
    )
    groups: dict[tuple, dict] = {}
    for row in recent:
        key = (row[source], normalize_message(row[message]))
        group = groups.setdefault(key, {"n": 0, "first": row["first"], "example": row[message]})
        group["n"] += row["n"]
        group["first"] = min(group["first"], row["first"])
    if not groups:
        return []
    earlier = (
        failures.filter(
            timestamp__gt=now - DAY - NEW_ERROR_LOOKBACK,
            timestamp__lte=now - DAY,
            **{f"{source}__in": sorted({s for s, _ in groups})},
        )
        .values_list(source, message)
        .order_by()
        .distinct()[:NEW_ERROR_SQL_GROUPS]
    )
    seen_before = {(s, normalize_message(m)) for s, m in earlier}
    return [
        {
            "kind": "new-error",
            "count": group["n"],
            "title": f"new error in {resource.source_label} {where or '(none)'}",
            "detail": f"{fingerprint} — {group['n']:,} "
            + ("failure" if group["n"] == 1 else "failures")
            + " since first seen",
            "when": group["first"],
            "url": f"{reverse('failures')}?kind={resource.key}",
        }
        for (where, fingerprint), group in groups.items()
        if (where, fingerprint) not in seen_before
    ]


def _growing_backlogs(resource, user, now):
    """Queues / topics where the last day created more rows than it ended (by GROWTH_SHARE)."""
    if not resource.throughput_field or not resource.log_ended:
        return []
    log = resource.outcome_log[0]
    name = resource.throughput_field
    rows = (
        tenancy.scope(log.objects.all(), user)
        .filter(
            timestamp__gt=now - DAY,
            timestamp__lte=now,
            event__in=[resource.log_created, *resource.log_ended],
        )
        .values(name)
        .annotate(
            created=Count("id", filter=Q(event=resource.log_created)),
            ended=Count("id", filter=Q(event__in=resource.log_ended)),
        )
        .order_by()
    )
    items = []
    for row in rows:
        growth = row["created"] - row["ended"]
        if growth <= 0 or growth < GROWTH_SHARE * row["created"]:
            continue
        url = None
        if resource.throughput_param and row[name]:
            url = _list_url(resource, **{resource.throughput_param: row[name]})
        items.append(
            {
                "kind": "growing-backlog",
                "count": growth,
                "title": f"{resource.throughput_label} {row[name] or '(none)'} backlog grows",
                "detail": f"+{growth:,} in 24 h: {row['created']:,} created, "
                f"{row['ended']:,} finished",
                "when": None,
                "url": url,
            }
        )
    return items


# ---------------------------------------------------------------------------------------------
# Topics & workers: an external-task page (topics and workers are the fetch protocol's words).


@viewer_required
def topics(request):
    data, counted_at, counted_now = snapshots.numbers(
        request, "topics", lambda: _topics_data(request.user)
    )
    context = {
        "nav_section": "topics",
        "counted_at": counted_at,
        "counted_now": counted_now,
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


# The default overview and the topics page read their scope's snapshot (console.snapshots);
# the other throughput windows are counted on demand and kept for snapshots.ON_DEMAND_AGE.
snapshots.register(f"overview:{DEFAULT_WINDOW}", lambda user: _overview_data(user, DEFAULT_WINDOW))
snapshots.register("topics", _topics_data)
