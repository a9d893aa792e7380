"""Console pages for jobs: the table, the detail page and the actions."""

import json

from django.db.models import Q
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.vary import vary_on_headers

from jobs.filters import JobFilter
from jobs.models import Job, JobLog
from project import console, console_actions, tenancy
from project.console import Column, TableConfig


def search_jobs(queryset, text):
    """Free text: exact on the indexed identifiers, substring on handler and message."""
    return queryset.filter(
        Q(id=text)
        | Q(process_instance_id=text)
        | Q(execution_id=text)
        | Q(activity_id=text)
        | Q(process_definition_key=text)
        | Q(lock_owner=text)
        | Q(handler__icontains=text)
        | Q(exception_message__icontains=text)
    )


# Sortable columns are exactly the ones backed by an index (see Job.Meta.indexes).
JOB_TABLE = TableConfig(
    kind="job",
    filterset_class=JobFilter,
    columns=[
        Column("id", "ID", "id"),
        Column("status", "Status"),
        Column("handler", "Handler"),
        Column("retries", "Retries", "retries", numeric=True),
        Column("priority", "Priority", "priority", numeric=True),
        Column("due", "Due", "due_date"),
        Column("created", "Created", "create_time"),
        Column("message", "Exception"),
        Column("process", "Process instance", "process_instance_id"),
        Column("activity", "Activity", "activity_id"),
        Column("lock", "Lock expires", "lock_expiration_time"),
        Column("tenant", "Tenant", "tenant_id"),
    ],
    default_sort="-created",
    search=search_jobs,
    inline=("processDefinitionKey", "activityId", "tenantIdIn", "withException", "noRetriesLeft"),
)


@vary_on_headers("HX-Request")
def job_list(request):
    queryset = Job.objects.defer("exception_stacktrace", "payload")
    table = console.Table(request, queryset, JOB_TABLE).evaluate()
    context = {
        "nav_section": "jobs",
        "table": table,
        "can_operate": tenancy.can_operate(request.user),
        "can_delete": tenancy.can_delete(request.user),
        "actions": console_actions.bulk_actions("job"),
    }
    template = "jobs/job_list.html"
    if request.htmx and not request.htmx.history_restore_request:
        template += "#job-table"
    return render(request, template, context)


def job_detail(request, job_id):
    job = tenancy.scope(Job.objects.select_related("job_definition"), request.user).filter(
        pk=job_id
    )
    job = job.first()
    history = list(
        tenancy.scope(JobLog.objects.filter(job_id=job_id), request.user).order_by(
            "-timestamp", "-id"
        )[:200]
    )
    if job is None and not history:
        raise Http404("No such job")
    audit = list(console.audit_entries_for(["job"], job_id)) if job or history else []
    context = {
        "nav_section": "jobs",
        "job": job,
        "job_id": job_id,
        "history": history,
        "audit_entries": audit,
        "status": console.job_status(job) if job else None,
        "can_operate": tenancy.can_operate(request.user),
        "can_delete": tenancy.can_delete(request.user),
        "last": history[0] if history else None,
        "payload_json": json.dumps(job.payload, indent=2, default=str) if job else "",
    }
    return render(request, "jobs/job_detail.html", context)
