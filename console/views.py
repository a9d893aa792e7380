"""Console pages: one list view and one detail view for every resource, the job definition
actions, failures, the audit log and the global search."""

from django.contrib import messages
from django.db.models import TextField
from django.db.models.functions import Cast
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from console import snapshots
from console.access import operator_required, viewer_required
from console.failures import failure_groups, raw_groups
from console.models import ColumnChoice
from console.resources import JOBS, RESOURCES
from console.tables import Table, TableError, parse_columns, plain_params, querystring, whole_number
from jobs import services as job_services
from jobs.models import JobDefinition
from project import incidents, tenancy
from project.errors import DomainError, InvalidRequest
from project.models import AuditEntry
from project.rest.dates import parse_date
from project.rest.parsers import has_nul

AUDIT_PAGE = 50
AUDIT_ROWS_PER_ROW = 100
SEARCH_HITS = 10


def _permissions(user) -> dict:
    return {"can_operate": tenancy.can_operate(user), "can_delete": tenancy.can_delete(user)}


@viewer_required
@vary_on_headers("HX-Request")
def row_list(request, resource_key: str):
    """The table of one resource; htmx requests get only the table partial."""
    resource = RESOURCES[resource_key]
    queryset = resource.list_queryset(request.user)
    table = Table(request.GET, request.user, resource, request.path, queryset).evaluate()
    context = {
        "nav_section": resource.nav_section,
        "resource": resource,
        "table": table,
        "actions": resource.bulk_actions,
        # The row menu offers every action, execute-now included (it runs one row).
        "row_actions": resource.actions,
        **_permissions(request.user),
    }
    template = "console/list.html"
    if request.htmx and not request.htmx.history_restore_request:
        template += "#table-section"
    return render(request, template, context)


def audit_entries_for(user, target_type: str, row_id: str, limit: int = AUDIT_ROWS_PER_ROW):
    """Audit entries `user` may see that name this row among their ids (bulk actions too)."""
    # JSON containment differs between databases; the JSON text contains '"<id>"' on both.
    return (
        tenancy.scope_audit(AuditEntry.objects.all(), user)
        .filter(target_type=target_type)
        .annotate(ids_text=Cast("target_ids", TextField()))
        .filter(ids_text__contains=f'"{row_id}"')[:limit]
    )


@viewer_required
def row_detail(request, resource_key: str, row_id: str):
    """One row: its facts while it exists, its history and audit entries after it is gone."""
    resource = RESOURCES[resource_key]
    row = resource.get(request.user, row_id)
    history = resource.history(request.user, row_id)
    if row is None and not history:
        raise Http404(f"No such {resource.noun}")
    context = {
        "nav_section": resource.nav_section,
        "resource": resource,
        "row": row,
        "row_id": row_id,
        "status": row.status_at() if row else None,
        "history": history,
        "last": history[0] if history else None,
        "audit_entries": list(audit_entries_for(request.user, resource.target_type, row_id)),
        "incident": resource.incident(request.user, row_id),
        **_permissions(request.user),
        **resource.detail_extras(row, history),
    }
    return render(request, "console/detail.html", context)


# ---------------------------------------------------------------------------------------------
# Job definitions, acted on from a job's page.


@require_POST
@operator_required
def job_definition_action(request, definition_id):
    """Suspend / activate a job definition (optionally with its jobs) or override its priority."""
    user = request.user
    definition = JobDefinition.objects.visible_to(user).filter(pk=definition_id).first()
    if definition is None:
        raise Http404("No such job definition")
    action = request.POST.get("action")
    include_jobs = request.POST.get("include_jobs") == "true"
    jobs_url = reverse(JOBS.list_url)
    back = request.POST.get("next") or jobs_url + f"?jobDefinitionId={definition.pk}"
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = jobs_url
    if action not in ("suspend", "activate", "set_priority"):
        return HttpResponseBadRequest("Unknown action")
    try:
        if action == "set_priority":
            message = _set_definition_priority(user, definition, request.POST, include_jobs)
        else:
            suspend = action == "suspend"
            job_services.set_job_definitions_suspended(
                user, [definition.pk], suspend, include_jobs=include_jobs, source="console"
            )
            done = "Suspended" if suspend else "Activated"
            jobs_note = " and its jobs" if include_jobs else ""
            message = f"{done} job definition {definition.pk}{jobs_note}."
        messages.success(request, message)
    except ValueError:
        messages.error(request, "Priority must be a whole number (or empty to remove it).")
    except DomainError as error:
        messages.error(request, error.message)
    return redirect(back)


def _set_definition_priority(user, definition, post, include_jobs) -> str:
    text = (post.get("priority") or "").strip()
    priority = int(text) if text else None
    job_services.set_job_definition_priority(
        user, definition.pk, priority, include_jobs=include_jobs, source="console"
    )
    if priority is None:
        return f"Priority override of {definition.pk} removed."
    jobs_note = " and its jobs" if include_jobs else ""
    return f"Job definition {definition.pk}{jobs_note}: priority set to {priority:,}."


# ---------------------------------------------------------------------------------------------
# Incidents: an operator's note on a row's open incident, from its detail page.


@require_POST
@operator_required
def incident_annotation(request, resource_key: str, row_id: str):
    """Set (or, empty, clear) the annotation of the row's open incident; audited."""
    resource = RESOURCES[resource_key]
    back = reverse(resource.detail_url, args=[row_id])
    incident = incidents.current(request.user, row_id, resource.incident_type)
    if incident is None:
        messages.warning(request, "This row has no open incident any more.")
        return redirect(back)
    text = (request.POST.get("annotation") or "").strip() or None
    try:
        incidents.set_annotation(request.user, incident.id, text, source="console")
    except DomainError as error:
        messages.error(request, error.message)
        return redirect(back)
    messages.success(request, "Incident annotation saved." if text else "Annotation cleared.")
    return redirect(back)


# ---------------------------------------------------------------------------------------------
# Failures


@viewer_required
def failures(request):
    resource = RESOURCES.get(request.GET.get("kind") or "")
    annotation = (request.GET.get("annotation") or "").strip()
    if has_nul(annotation):
        return HttpResponseBadRequest("Invalid annotation text")
    kind = resource.key if resource else None
    counted, counted_at, counted_now = None, None, True
    if not annotation:
        # Every kind's groups, from the scope's snapshot (console.snapshots).
        counted, counted_at, counted_now = snapshots.numbers(
            request, "failures", lambda: raw_groups(request.user)
        )
    groups = failure_groups(request.user, kind, annotation or None, counted)
    context = {
        "nav_section": "failures",
        "counted_at": counted_at,
        "counted_now": counted_now,
        "annotation": annotation,
        "groups": groups,
        "kind": resource.key if resource else None,
        "kind_resource": resource,
        "resources": list(RESOURCES.values()),
        "can_operate": tenancy.can_operate(request.user),
    }
    return render(request, "console/failures.html", context)


# ---------------------------------------------------------------------------------------------
# Audit log


def _audit_filtered(entries, get) -> tuple:
    errors = []
    if entry := get.get("id", "").strip():
        # One entry, as a batch's page links to it.
        if entry.isdigit() and len(entry) < 19:
            entries = entries.filter(pk=int(entry))
        else:
            errors.append("id must be the number of an audit entry.")
    if username := get.get("user", "").strip():
        entries = entries.filter(username=username)
    if action := get.get("action", "").strip():
        entries = entries.filter(action__startswith=action)
    if target := get.get("target", "").strip():
        entries = entries.annotate(ids_text=Cast("target_ids", TextField())).filter(
            ids_text__contains=target
        )
    for key, lookup in (("since", "timestamp__gte"), ("until", "timestamp__lte")):
        value = get.get(key, "").strip()
        if value:
            try:
                entries = entries.filter(**{lookup: parse_date(value, key)})
            except InvalidRequest as error:
                errors.append(error.message)
    return entries, errors


@viewer_required
def audit(request):
    # Scoped before filtering: the target filter, the action list and the pager only ever
    # see entries whose every tenant is the user's.
    visible = tenancy.scope_audit(AuditEntry.objects.all(), request.user)
    entries, errors = _audit_filtered(visible, request.GET)
    params = plain_params(request.GET)
    page = max(1, whole_number(request.GET.get("page"), 1))
    start = (page - 1) * AUDIT_PAGE
    rows = list(entries[start : start + AUDIT_PAGE + 1]) if not errors else []
    previous_page = page - 1 if page > 2 else None
    context = {
        "nav_section": "audit",
        "entries": rows[:AUDIT_PAGE],
        "errors": errors,
        "values": params,
        "actions": sorted(visible.order_by().values_list("action", flat=True).distinct()[:100]),
        "prev_url": querystring(params, page=previous_page) if page > 1 else None,
        "next_url": querystring(params, page=page + 1) if len(rows) > AUDIT_PAGE else None,
        "chips": [
            {"text": f"{key}: {value}", "remove": querystring(params, **{key: None})}
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
# Global search: an id jumps straight to its row; anything else opens every table searched.


@viewer_required
@require_GET
def search(request):
    text = (request.GET.get("q") or "").strip()
    if not text:
        return redirect("overview")
    user = request.user
    for resource in RESOURCES.values():
        if resource.visible(user).filter(pk=text).exists():
            return redirect(resource.detail_url, text)
    sections = [
        {
            "resource": resource,
            "hits": list(resource.search(resource.visible(user).with_status(), text)[:SEARCH_HITS]),
        }
        for resource in RESOURCES.values()
    ]
    context = {"q": text, "global_q": text, "sections": sections}
    return render(request, "console/search.html", context)


# ---------------------------------------------------------------------------------------------
# Column chooser: the columns a user's table shows, remembered per kind.


@require_POST
@viewer_required
def save_columns(request, resource_key: str):
    """Remember the ticked columns for this kind's table (or, with reset, forget them) and go
    back to the table; an unknown column is refused, naming it."""
    resource = RESOURCES[resource_key]
    back = request.POST.get("next") or reverse(resource.list_url)
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = reverse(resource.list_url)
    if request.POST.get("reset"):
        ColumnChoice.objects.filter(user=request.user, kind=resource.key).delete()
        messages.success(request, f"The {resource.noun} table shows its default columns again.")
        return redirect(back)
    try:
        chosen = parse_columns(request.POST.getlist("columns"), resource.columns)
    except TableError as error:
        return HttpResponseBadRequest(str(error), content_type="text/plain; charset=utf-8")
    ColumnChoice.objects.update_or_create(
        user=request.user, kind=resource.key, defaults={"columns": [c.key for c in chosen]}
    )
    messages.success(request, f"Columns saved: {', '.join(c.label for c in chosen)}.")
    return redirect(back)
