"""Console pages for jobs: the table, the detail page and the actions."""

import json

from django.contrib import messages
from django.db.models import Q
from django.http import Http404, HttpResponseBadRequest, HttpResponseForbidden
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from jobs.filters import JobFilter
from jobs.models import Job, JobDefinition, JobLog
from project import console, console_actions, tenancy
from project.console import Column, TableConfig
from project.errors import DomainError


def search_jobs(queryset, text):
    """Free text: an exact identifier (indexed lookups) if one matches, else a substring of
    the handler or the exception message (a scan, so only when no identifier matched)."""
    exact = queryset.filter(
        Q(id=text)
        | Q(process_instance_id=text)
        | Q(execution_id=text)
        | Q(activity_id=text)
        | Q(process_definition_key=text)
        | Q(job_definition_id=text)
    )
    if exact.exists():
        return exact
    return queryset.filter(
        Q(handler__icontains=text) | Q(exception_message__icontains=text) | Q(lock_owner=text)
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


@console.viewer_required
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
        "row_actions": console_actions.row_actions("job"),
    }
    template = "jobs/job_list.html"
    if request.htmx and not request.htmx.history_restore_request:
        template += "#job-table"
    return render(request, template, context)


@console.viewer_required
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


@require_POST
def job_definition_action(request, definition_id):
    """Suspend / activate a job definition (optionally with its jobs) or override its priority."""
    from jobs import services

    user = request.user
    if not tenancy.can_operate(user):
        return HttpResponseForbidden("Viewers may look but not act: ask an operator.")
    definition = tenancy.scope(JobDefinition.objects.filter(pk=definition_id), user).first()
    if definition is None:
        raise Http404("No such job definition")
    action = request.POST.get("action")
    include_jobs = request.POST.get("include_jobs") == "true"
    back = request.POST.get("next") or reverse("job-list") + f"?jobDefinitionId={definition.pk}"
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = reverse("job-list")
    jobs_note = " and its jobs" if include_jobs else ""
    try:
        if action in ("suspend", "activate"):
            services.set_job_definitions_suspended(
                user,
                [definition.pk],
                action == "suspend",
                include_jobs=include_jobs,
                source="console",
            )
            done = "Suspended" if action == "suspend" else "Activated"
            messages.success(request, f"{done} job definition {definition.pk}{jobs_note}.")
        elif action == "set_priority":
            text = (request.POST.get("priority") or "").strip()
            priority = int(text) if text else None
            services.set_job_definition_priority(
                user, definition.pk, priority, include_jobs=include_jobs, source="console"
            )
            if priority is None:
                messages.success(request, f"Priority override of {definition.pk} removed.")
            else:
                messages.success(
                    request,
                    f"Job definition {definition.pk}{jobs_note}: priority set to {priority}.",
                )
        else:
            return HttpResponseBadRequest("Unknown action")
    except ValueError:
        messages.error(request, "Priority must be a whole number (or empty to remove it).")
    except DomainError as error:
        messages.error(request, error.message)
    return redirect(back)
