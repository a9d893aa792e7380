"""Console actions on jobs and external tasks: one row, selected rows, or all rows matching.

Every action goes through the app's service functions (jobs.services, external_tasks.services),
which change the rows set-based, log each row and write the audit entry (source="console").
The console adds the two-step flow: the first POST answers a confirmation with the exact number
of rows and the filter in words; the second POST (confirmed=1) runs the action on what matched
at confirmation time — rows created after that moment are left out, and rows that stopped
matching are reported as skipped.
"""

import csv
import itertools
import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.core.cache import cache
from django.core.handlers.asgi import ASGIRequest
from django.db import transaction
from django.http import (
    HttpResponseBadRequest,
    HttpResponseForbidden,
    JsonResponse,
    QueryDict,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from project import console, tenancy
from project.errors import DomainError
from project.models import AuditEntry
from project.rest.dates import format_date, parse_date

MAX_RETRIES = 2**31 - 1


@dataclass(frozen=True)
class ActionSpec:
    key: str
    label: str
    value: str | None = None  # the input the action needs: retries / priority / due_date
    admin: bool = False  # only admins (delete)
    danger: bool = False
    bulk: bool = True  # offered on selected / matching rows, not only on one row


JOB_ACTIONS = (
    ActionSpec("set_retries", "Set retries", "retries"),
    ActionSpec("suspend", "Suspend"),
    ActionSpec("activate", "Activate"),
    ActionSpec("set_priority", "Set priority", "priority"),
    ActionSpec("set_due_date", "Set due date", "due_date"),
    ActionSpec("unlock", "Unlock"),
    ActionSpec("execute", "Execute now", bulk=False),
    ActionSpec("delete", "Delete", admin=True, danger=True),
)
TASK_ACTIONS = (
    ActionSpec("set_retries", "Set retries", "retries"),
    ActionSpec("suspend", "Suspend"),
    ActionSpec("activate", "Activate"),
    ActionSpec("set_priority", "Set priority", "priority"),
    ActionSpec("unlock", "Unlock"),
    ActionSpec("delete", "Delete", admin=True, danger=True),
)


def bulk_actions(kind: str):
    return [a for a in (JOB_ACTIONS if kind == "job" else TASK_ACTIONS) if a.bulk]


def row_actions(kind: str):
    """The row menu: every action, execute-now included (it runs one job)."""
    return list(JOB_ACTIONS if kind == "job" else TASK_ACTIONS)


class ActionInputError(Exception):
    pass


def _parse_values(spec: ActionSpec, post) -> dict:
    values = {}
    if spec.value == "retries":
        text = (post.get("retries") or "").strip()
        try:
            retries = int(text)
        except ValueError:
            raise ActionInputError("Retries must be a whole number, 0 or more.") from None
        if not 0 <= retries <= MAX_RETRIES:
            raise ActionInputError("Retries must be a whole number, 0 or more.")
        values["retries"] = retries
        due = (post.get("due_date") or "").strip()
        if due:
            values["due_date"] = _parse_console_date(due)
    elif spec.value == "priority":
        text = (post.get("priority") or "").strip()
        try:
            priority = int(text)
        except ValueError:
            raise ActionInputError("Priority must be a whole number.") from None
        if not -(2**63) <= priority < 2**63:
            raise ActionInputError("Priority is out of range (a 64-bit number).")
        values["priority"] = priority
    elif spec.value == "due_date":
        text = (post.get("due_date") or "").strip()
        values["due_date"] = _parse_console_date(text) if text else None
    return values


def _parse_console_date(text: str) -> datetime:
    try:
        return parse_date(text, "due date")
    except DomainError as error:
        raise ActionInputError(error.message) from None


def _describe(spec: ActionSpec, values: dict) -> str:
    """The past-tense phrase of a result message: "Retries set to 3"."""
    if spec.key == "set_retries":
        text = f"Retries set to {values['retries']}"
        if values.get("due_date"):
            text += f" (due {format_date(values['due_date'])})"
        return text
    if spec.key == "set_priority":
        return f"Priority set to {values['priority']}"
    if spec.key == "set_due_date":
        due = values.get("due_date")
        return f"Due date set to {format_date(due)}" if due else "Due date cleared (due now)"
    return {
        "suspend": "Suspended",
        "activate": "Activated",
        "unlock": "Unlocked",
        "delete": "Deleted",
        "execute": "Executed",
    }[spec.key]


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


# ---------------------------------------------------------------------------------------------
# Calling the services. Each call writes its own audit entry with source="console".


def _run_job_action(user, spec, target, values, audit_filter, progress=None):
    from jobs import services

    kwargs = {"source": "console", "filter": audit_filter}
    if progress is not None:
        kwargs["progress"] = progress
    if spec.key == "set_retries":
        result = services.set_retries(
            user, target, values["retries"], due_date=values.get("due_date"), **kwargs
        )
    elif spec.key == "suspend":
        result = services.suspend(user, target, **kwargs)
    elif spec.key == "activate":
        result = services.activate(user, target, **kwargs)
    elif spec.key == "set_priority":
        result = services.set_priority(user, target, values["priority"], **kwargs)
    elif spec.key == "set_due_date":
        result = services.set_due_date(user, target, values.get("due_date"), **kwargs)
    elif spec.key == "unlock":
        result = services.unlock(user, target, **kwargs)
    elif spec.key == "delete":
        result = services.delete(user, target, **kwargs)
    else:
        raise ActionInputError(f"Unknown action {spec.key}")
    return result.changed


def _run_task_action(user, spec, target, values, audit_filter, progress=None):
    # The external task services report no progress; their batches are quick.
    from external_tasks import services

    kwargs = {"strict": False, "source": "console", "filter": audit_filter}
    if spec.key == "set_retries":
        result = services.set_retries(user, target, values["retries"], **kwargs)
    elif spec.key == "suspend":
        result = services.suspend(user, target, **kwargs)
    elif spec.key == "activate":
        result = services.activate(user, target, **kwargs)
    elif spec.key == "set_priority":
        result = services.set_priority(user, target, values["priority"], **kwargs)
    elif spec.key == "unlock":
        result = services.unlock(user, target, **kwargs)
    elif spec.key == "delete":
        result = services.delete(user, target, **kwargs)
    else:
        raise ActionInputError(f"Unknown action {spec.key}")
    return result.changed


@dataclass(frozen=True)
class Kind:
    key: str
    noun: str
    model: type
    table: object
    actions: tuple
    list_url: str
    detail_url: str
    target_type: str
    run: object


def _kinds():
    from external_tasks.models import ExternalTask
    from external_tasks.views import TASK_TABLE
    from jobs.models import Job
    from jobs.views import JOB_TABLE

    return {
        "job": Kind(
            "job",
            "job",
            Job,
            JOB_TABLE,
            JOB_ACTIONS,
            "job-list",
            "job-detail",
            "job",
            _run_job_action,
        ),
        "task": Kind(
            "task",
            "external task",
            ExternalTask,
            TASK_TABLE,
            TASK_ACTIONS,
            "external-task-list",
            "external-task-detail",
            "external_task",
            _run_task_action,
        ),
    }


def _next_url(request, kind: Kind) -> str:
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse(kind.list_url)


def _finish(request, url):
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


def _record_reason(user, action: str, reason: str):
    """Attach the operator's reason to the audit entry the service just wrote."""
    entry = (
        AuditEntry.objects.filter(user=user, action=action, source="console")
        .order_by("-id")
        .first()
    )
    if entry is not None:
        after = dict(entry.after or {})
        after["reason"] = reason
        AuditEntry.objects.filter(pk=entry.pk).update(after=after)


def _table_for_query(request, kind: Kind, query: str):
    fake = SimpleNamespace(GET=QueryDict(query), user=request.user, path=reverse(kind.list_url))
    return console.Table(fake, kind.model.objects.all(), kind.table)


@require_POST
def act(request, kind_key: str):
    kind = _kinds()[kind_key]
    user = request.user
    if not tenancy.can_operate(user):
        return HttpResponseForbidden("Viewers may look but not act: ask an operator.")
    post = request.POST
    if post.get("row_action"):
        # A row menu button inside the table's form: "<action>:<id>" acts on that row only,
        # whatever else is checked.
        action, _, row_id = post["row_action"].partition(":")
        post = post.copy()
        post.setlist("ids", [row_id])
        post["scope"] = "ids"
        post["action"] = action
        request.POST = post
    spec = next((a for a in kind.actions if a.key == request.POST.get("action")), None)
    if spec is None:
        return HttpResponseBadRequest("Unknown action")
    if spec.admin and not tenancy.can_delete(user):
        return HttpResponseForbidden("Only admins may delete.")
    next_url = _next_url(request, kind)
    scope = request.POST.get("scope") or "ids"
    ids = [i for i in request.POST.getlist("ids") if i]
    query = request.POST.get("query") or ""
    if scope == "matching":
        table = _table_for_query(request, kind, query)
        queryset = table.matching()
        if not table.ok:
            messages.error(request, "The filter is invalid: " + "; ".join(table.form_errors))
            return _finish(request, next_url)
        audit_filter = {k: v for k, v in table.filter_params.items()}
        words = table.filter_words()
    elif scope == "ids":
        if not ids:
            messages.warning(request, f"Select at least one {kind.noun} first.")
            return _finish(request, next_url)
        queryset = tenancy.scope(kind.model.objects.filter(pk__in=ids), user)
        audit_filter = None
        words = None
    else:
        return HttpResponseBadRequest("Unknown scope")
    if not spec.bulk and (scope != "ids" or len(ids) != 1):
        messages.warning(request, f"{spec.label} works on one {kind.noun} at a time.")
        return _finish(request, next_url)

    confirmed = request.POST.get("confirmed") == "1"
    if not confirmed:
        return _confirm(request, kind, spec, scope, ids, query, words, queryset, next_url, None)
    try:
        values = _parse_values(spec, request.POST)
    except ActionInputError as exc:
        return _confirm(request, kind, spec, scope, ids, query, words, queryset, next_url, str(exc))

    as_of = _as_of(request.POST.get("as_of"))
    expected = console._int(request.POST.get("expected"), -1)
    if scope == "matching":
        # What matched at confirmation time: rows created since then are not part of it.
        target = queryset.filter(create_time__lte=as_of)
        expected = expected if expected >= 0 else None
    else:
        target = ids
        expected = len(ids)
    try:
        if spec.key == "execute":
            changed = _execute(request, ids[0])
        else:
            with transaction.atomic():
                progress = _progress_reporter(user, request.POST.get("op"), expected)
                changed = kind.run(user, spec, target, values, audit_filter, progress)
                reason = (request.POST.get("reason") or "").strip()[:500]
                if reason:
                    _record_reason(user, f"{kind.target_type}.{spec.key}", reason)
    except DomainError as exc:
        messages.error(request, f"{spec.label} failed: {exc.message}")
        return _finish(request, next_url)
    except ActionInputError as exc:
        messages.error(request, str(exc))
        return _finish(request, next_url)
    skipped = max((expected or changed) - changed, 0)
    text = f"{_describe(spec, values)} on {_plural(changed, kind.noun)}"
    if skipped:
        text += f" ({skipped:,} skipped: changed meanwhile or already in that state)"
    (messages.success if changed or not skipped else messages.warning)(request, text + ".")
    return _finish(request, next_url)


PROGRESS_TTL = 600


def _progress_key(user, op: str) -> str:
    return f"console:progress:{user.pk}:{op}"


def _progress_reporter(user, op, expected):
    """A callback the bulk services call after each batch; the confirmation dialog polls it."""
    if not op or len(op) > 32:
        return None

    def report(matched, changed):
        cache.set(
            _progress_key(user, op),
            {"matched": matched, "changed": changed, "total": expected},
            PROGRESS_TTL,
        )

    return report


@console.viewer_required
def progress(request):
    """How far a running bulk action of this user has got (JSON; {} when unknown)."""
    op = request.GET.get("op") or ""
    return JsonResponse(cache.get(_progress_key(request.user, op)) or {})


def _execute(request, job_id):
    from jobs import runner, services

    try:
        runner.execute_now(request.user, job_id, source="console")
    except services.JobExecutionFailed as exc:
        raise ActionInputError(f"The job ran and failed: {exc.message}") from None
    return 1


def _as_of(text):
    if text:
        try:
            return parse_date(text, "as_of")
        except DomainError:
            pass
    return timezone.now()


def _confirm(request, kind, spec, scope, ids, query, words, queryset, next_url, error):
    count = queryset.count()  # exact: the operator decides on this number
    context = {
        "kind": kind,
        "spec": spec,
        "scope": scope,
        "ids": ids if scope == "ids" else [],
        "query": query,
        "words": words,
        "count": count,
        "count_text": _plural(count, kind.noun),
        "next": next_url,
        # Full precision: a millisecond cut would leave out rows created in the same moment.
        "as_of": timezone.now().isoformat(),
        "error": error,
        "post": request.POST,
        "action_url": request.path,
        "op": secrets.token_urlsafe(9),
    }
    template = "console/confirm.html"
    if request.htmx:
        template += "#confirm-dialog"
    return render(request, template, context, status=400 if error else 200)


# ---------------------------------------------------------------------------------------------
# Failure groups: one click fixes every row of a group.


@require_POST
def failure_action(request):
    from project.views import failure_groups, group_filter

    user = request.user
    if not tenancy.can_operate(user):
        return HttpResponseForbidden("Viewers may look but not act: ask an operator.")
    kinds = _kinds()
    kind_key = request.POST.get("kind")
    if kind_key not in kinds:
        return HttpResponseBadRequest("Unknown kind")
    kind = kinds[kind_key]
    spec = next((a for a in kind.actions if a.key == request.POST.get("action")), None)
    if spec is None or spec.key not in ("set_retries", "suspend"):
        return HttpResponseBadRequest("Unknown action")
    key = request.POST.get("group")
    group = next((g for g in failure_groups(user, kind_key) if g["key"] == key), None)
    if group is None:
        messages.warning(request, "That error group is gone: its rows changed meanwhile.")
        return _finish(request, reverse("failures"))
    try:
        values = _parse_values(spec, request.POST)
    except ActionInputError as exc:
        messages.error(request, str(exc))
        return _finish(request, reverse("failures"))
    queryset = tenancy.scope(kind.model.objects.filter(group_filter(group)), user)
    audit_filter = {"failureGroup": group["fingerprint"], "where": group["where"]}
    try:
        changed = kind.run(user, spec, queryset, values, audit_filter)
    except DomainError as exc:
        messages.error(request, f"{spec.label} failed: {exc.message}")
        return _finish(request, reverse("failures"))
    skipped = max(group["count"] - changed, 0)
    text = f"{_describe(spec, values)} on {_plural(changed, kind.noun)}"
    if skipped:
        text += f" ({skipped:,} skipped: changed meanwhile or already in that state)"
    messages.success(request, text + f" — error group “{group['fingerprint']}”.")
    return _finish(request, reverse("failures"))


# ---------------------------------------------------------------------------------------------
# Export: the current filtered set, streamed, in flat memory.

JOB_EXPORT_FIELDS = (
    "id",
    "type",
    "handler",
    "retries",
    "priority",
    "due_date",
    "create_time",
    "suspended",
    "exception_message",
    "failed_activity_id",
    "lock_owner",
    "lock_expiration_time",
    "process_instance_id",
    "execution_id",
    "process_definition_id",
    "process_definition_key",
    "activity_id",
    "job_definition_id",
    "tenant_id",
)
TASK_EXPORT_FIELDS = (
    "id",
    "topic_name",
    "worker_id",
    "lock_expiration_time",
    "retries",
    "priority",
    "suspended",
    "error_message",
    "create_time",
    "business_key",
    "activity_id",
    "activity_instance_id",
    "execution_id",
    "process_instance_id",
    "process_definition_id",
    "process_definition_key",
    "tenant_id",
)
EXPORT_CHUNK = 2000


class _Echo:
    def write(self, value):
        return value


def _cell(value):
    if isinstance(value, datetime):
        return format_date(value)
    return value


@console.viewer_required
def export(request, kind_key: str):
    kind = _kinds()[kind_key]
    table = console.Table(request, kind.model.objects.all(), kind.table)
    fmt = request.GET.get("format", "csv")
    if fmt not in ("csv", "json"):
        return HttpResponseBadRequest("format must be csv or json")
    queryset = table.matching()
    if not table.ok:
        return HttpResponseBadRequest("Invalid filter: " + "; ".join(table.form_errors))
    fields = JOB_EXPORT_FIELDS if kind_key == "job" else TASK_EXPORT_FIELDS
    rows = (
        queryset.order_by(*table.ordering()).values_list(*fields).iterator(chunk_size=EXPORT_CHUNK)
    )
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    name = f"{kind.noun.replace(' ', '-')}s-{stamp}.{fmt}"
    if fmt == "csv":
        writer = csv.writer(_Echo())

        def stream():
            yield writer.writerow(fields)
            for row in rows:
                yield writer.writerow([_cell(v) for v in row])

        content_type = "text/csv; charset=utf-8"
    else:

        def stream():
            yield "["
            first = True
            for row in rows:
                item = json.dumps({f: _cell(v) for f, v in zip(fields, row, strict=True)})
                yield ("\n" if first else ",\n") + item
                first = False
            yield "\n]\n"

        content_type = "application/json"
    content = _in_chunks(stream())
    if isinstance(request, ASGIRequest):
        content = _pulled(content)
    response = StreamingHttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _in_chunks(lines, size: int = 1000):
    """Lines joined `size` at a time: each chunk costs the server one write (and, behind the
    ASGI bridge, one hand-off to the event loop) instead of every row."""
    lines = iter(lines)
    while chunk := list(itertools.islice(lines, size)):
        yield "".join(chunk)


async def _pulled(chunks):
    """Under ASGI, Django reads a sync iterator completely into memory before sending it (1M
    rows: +370 MiB). Pull it a chunk at a time instead, on the request's own thread (the
    database cursor lives there), so an export of millions of rows streams in flat memory."""
    chunks = iter(chunks)
    take = sync_to_async(lambda: next(chunks, None), thread_sensitive=True)
    while (chunk := await take()) is not None:
        yield chunk
