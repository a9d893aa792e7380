"""Template helpers for the console: nav counts, status badges, relative times."""

from django import template
from django.contrib.humanize.templatetags.humanize import naturaltime
from django.db import DatabaseError
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import mark_safe

from console.changes import changes, reason
from console.resources import RESOURCES
from console.tables import bounded_count, count_label
from project import tenancy

register = template.Library()

NAV_COUNT_LIMIT = 999


@register.simple_tag
def nav_counts(user):
    """Failed rows of each resource beside the navigation links; bounded, served by the
    partial failed indexes."""
    try:
        counted = [
            (resource, *bounded_count(resource.failed(user), NAV_COUNT_LIMIT))
            for resource in RESOURCES.values()
        ]
    except DatabaseError:
        # The navigation still renders when the counts cannot be read (a page of its own
        # reports the error); it just shows no numbers.
        counted = [(resource, 0, True) for resource in RESOURCES.values()]
    total = sum(n for _, n, _ in counted)
    return {
        "resources": [
            {"resource": resource, "failed": n, "failed_label": count_label(n, exact)}
            for resource, n, exact in counted
        ],
        "failed_total": total,
        "failed_total_label": count_label(total, all(exact for _, _, exact in counted)),
        "failed_total_title": "failed " + " and ".join(r.plural for r in RESOURCES.values()),
    }


@register.simple_tag
def running_batches(user) -> int:
    """Batches of the user's that are still running, beside "Batches" in the navigation."""
    from project import batches

    try:
        return batches.visible(user).filter(end_time__isnull=True).count()
    except DatabaseError:
        return 0


@register.simple_tag
def user_summary(user):
    roles = tenancy.roles(user)
    role = next((r for r in (tenancy.ADMIN, tenancy.OPERATOR, tenancy.VIEWER) if r in roles), "")
    tenants = tenancy.tenant_ids(user)
    return {
        "role": role or "no console role",
        "tenants": "all" if tenants is None else (", ".join(sorted(tenants)) or "none"),
    }


@register.filter
def reltime(value):
    """A <time> with the relative time as text and the exact UTC time on hover."""
    if value is None:
        return mark_safe('<span class="muted">—</span>')
    exact = timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
    return format_html(
        '<time datetime="{}" title="{}">{}</time>', value.isoformat(), exact, naturaltime(value)
    )


@register.filter
def exact_time(value):
    if value is None:
        return ""
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


@register.filter
def badge(status, statuses=None):
    """A status badge: `status` is a Status of an app's table, or a row's status key (the
    `with_status()` annotation) looked up in `statuses`."""
    if statuses is not None and not hasattr(status, "label"):
        status = statuses[status]
    return format_html(
        '<span class="badge {}" title="{}">{}</span>', status.key, status.help, status.label
    )


@register.filter
def dash(value):
    return "—" if value in (None, "") else value


# Two overlapping sheets, drawn inline: no icon font to load, and it takes the text colour.
COPY_ICON = (
    '<svg viewBox="0 0 16 16" width="12" height="12" aria-hidden="true" focusable="false">'
    '<rect x="5.5" y="5.5" width="8.5" height="8.5" rx="1.5" fill="none" stroke="currentColor"'
    ' stroke-width="1.5"/><path d="M3 10.5V3.5A1.5 1.5 0 0 1 4.5 2h6" fill="none"'
    ' stroke="currentColor" stroke-width="1.5"/></svg>'
)


@register.simple_tag
def copyable_id(value, href="", param=""):
    """An id shown short (CSS truncates it, the whole id stays in the text and the title, so
    selecting it copies all of it) with a copy button beside it; linked to `href`, or to
    `href?param=value` (the list of rows with that id) with `param`."""
    if value in (None, ""):
        return mark_safe('<span class="muted">—</span>')
    if href and param:
        href = f"{href}?{urlencode({param: value})}"
    code = format_html('<code class="id" title="{}">{}</code>', value, value)
    if href:
        code = format_html('<a href="{}">{}</a>', href, code)
    button = format_html(
        '<button type="button" class="copy-id" data-copy-text="{}" title="Copy {}"'
        ' aria-label="Copy {}">' + COPY_ICON + "</button>",
        value,
        value,
        value,
    )
    return format_html("{}{}", code, button)


@register.filter
def audit_changes(entry) -> list[str]:
    """An audit entry's before → after as readable lines (console.changes)."""
    return changes(entry.before, entry.after, entry.target_type)


@register.filter
def audit_reason(entry) -> str:
    return reason(entry.after)


@register.filter
def filter_words(params) -> str:
    """An audit entry's filter (query parameters) as "key=value, key=a,b"."""
    if not isinstance(params, dict):
        return "" if params is None else str(params)
    return ", ".join(
        f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in params.items()
    )


@register.filter
def duration(value):
    """A timedelta in words an operator reads at a glance: "45 s", "5 min", "2 h 10 min"."""
    if value is None:
        return "—"
    seconds = max(round(value.total_seconds()), 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min" + (f" {seconds} s" if seconds and minutes < 10 else "")
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    return f"{hours // 24} d" + (f" {hours % 24} h" if hours % 24 else "")
