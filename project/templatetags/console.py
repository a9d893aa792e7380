"""Template helpers for the console: nav counts, status badges, relative times."""

from django import template
from django.contrib.humanize.templatetags.humanize import naturaltime
from django.db import DatabaseError
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from external_tasks.models import FAILED as FAILED_TASK
from external_tasks.models import ExternalTask
from jobs.models import Job
from project import console, tenancy

register = template.Library()

NAV_COUNT_LIMIT = 999


@register.simple_tag
def nav_counts(user):
    """Failed work beside the navigation links; bounded, served by the partial failed indexes."""
    try:
        jobs, jobs_exact = console.bounded_count(
            tenancy.scope(Job.objects.filter(retries=0), user), NAV_COUNT_LIMIT
        )
        tasks, tasks_exact = console.bounded_count(
            tenancy.scope(ExternalTask.objects.filter(FAILED_TASK), user), NAV_COUNT_LIMIT
        )
    except DatabaseError:
        return {}
    total = jobs + tasks
    return {
        "failed_jobs": jobs,
        "failed_jobs_label": console.count_label(jobs, jobs_exact),
        "failed_tasks": tasks,
        "failed_tasks_label": console.count_label(tasks, tasks_exact),
        "failed_total": total,
        "failed_total_label": console.count_label(total, jobs_exact and tasks_exact),
    }


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


def _badge(status):
    return format_html(
        '<span class="badge {}" title="{}">{}</span>', status.key, status.help, status.label
    )


@register.filter
def job_badge(job):
    return _badge(console.job_status(job))


@register.filter
def task_badge(task):
    return _badge(console.task_status(task))


@register.filter
def dash(value):
    return "—" if value in (None, "") else value
