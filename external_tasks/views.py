"""Console pages for external tasks: the table, the detail page and the actions."""

import json

from django.db.models import Q
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.vary import vary_on_headers

from external_tasks.filters import ExternalTaskFilter
from external_tasks.models import ExternalTask, ExternalTaskLog
from project import console, console_actions, tenancy
from project.console import Column, TableConfig


def search_tasks(queryset, text):
    """Free text: an exact identifier (indexed lookups) if one matches, else a substring of
    the topic or the error message (a scan, so only when no identifier matched)."""
    exact = queryset.filter(
        Q(id=text)
        | Q(process_instance_id=text)
        | Q(execution_id=text)
        | Q(business_key=text)
        | Q(activity_id=text)
        | Q(worker_id=text)
        | Q(topic_name=text)
        | Q(process_definition_key=text)
    )
    if exact.exists():
        return exact
    return queryset.filter(Q(topic_name__icontains=text) | Q(error_message__icontains=text))


# Sortable columns are exactly the ones backed by an index (see ExternalTask.Meta.indexes).
TASK_TABLE = TableConfig(
    kind="task",
    filterset_class=ExternalTaskFilter,
    columns=[
        Column("id", "ID", "id"),
        Column("status", "Status"),
        Column("topic", "Topic", "topic_name"),
        # Not sortable: no index on retries (every retries update would pay for one).
        Column("retries", "Retries", numeric=True),
        Column("priority", "Priority", "priority", numeric=True),
        Column("created", "Created", "create_time"),
        Column("worker", "Worker", "worker_id"),
        Column("lock", "Lock expires", "lock_expiration_time"),
        Column("message", "Error"),
        Column("process", "Process instance", "process_instance_id"),
        Column("business_key", "Business key", "business_key"),
        Column("activity", "Activity", "activity_id"),
        Column("tenant", "Tenant", "tenant_id"),
    ],
    default_sort="-created",
    search=search_tasks,
    inline=("topicName", "workerId", "tenantIdIn", "locked", "noRetriesLeft"),
)


@console.viewer_required
@vary_on_headers("HX-Request")
def task_list(request):
    queryset = ExternalTask.objects.defer("error_details", "variables", "extension_properties")
    table = console.Table(request, queryset, TASK_TABLE).evaluate()
    context = {
        "nav_section": "external_tasks",
        "table": table,
        "can_operate": tenancy.can_operate(request.user),
        "can_delete": tenancy.can_delete(request.user),
        "actions": console_actions.bulk_actions("task"),
        "row_actions": console_actions.row_actions("task"),
    }
    template = "external_tasks/task_list.html"
    if request.htmx and not request.htmx.history_restore_request:
        template += "#task-table"
    return render(request, template, context)


@console.viewer_required
def task_detail(request, task_id):
    task = tenancy.scope(ExternalTask.objects.filter(pk=task_id), request.user).first()
    history = list(
        tenancy.scope(ExternalTaskLog.objects.filter(task_id=task_id), request.user).order_by(
            "-timestamp", "-id"
        )[:200]
    )
    if task is None and not history:
        raise Http404("No such external task")
    outcome = next((h for h in history if h.event == ExternalTaskLog.Event.COMPLETED), None)
    context = {
        "nav_section": "external_tasks",
        "task": task,
        "task_id": task_id,
        "history": history,
        "outcome": outcome,
        "variables": _variables(task.variables if task else (outcome.variables if outcome else {})),
        "extension_json": json.dumps(task.extension_properties, indent=2) if task else "",
        "audit_entries": list(console.audit_entries_for(["external_task"], task_id)),
        "can_operate": tenancy.can_operate(request.user),
        "can_delete": tenancy.can_delete(request.user),
        "last": history[0] if history else None,
    }
    return render(request, "external_tasks/task_detail.html", context)


def _variables(variables):
    """Camunda typed variables as rows of (name, type, value text, value info)."""
    rows = []
    for name, variable in sorted((variables or {}).items()):
        if isinstance(variable, dict):
            value = variable.get("value")
            kind = variable.get("type") or "?"
            info = variable.get("valueInfo") or {}
        else:
            value, kind, info = variable, "?", {}
        text = value if isinstance(value, str) else json.dumps(value, indent=2, default=str)
        rows.append({"name": name, "type": kind, "value": text, "info": info})
    return rows
