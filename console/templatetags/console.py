"""Template helpers for the console: nav counts, status badges, relative times."""

from django import template
from django.contrib.humanize.templatetags.humanize import naturaltime
from django.db import DatabaseError
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

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
