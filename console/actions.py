"""Console actions on any resource: one row, selected rows, or all rows matching a filter.

One pipeline for every action of every kind: parse (which action, which rows) → select (the
rows, scoped to the user) → confirm (the first POST answers with the exact number of rows and
the filter in words) → run (the second POST, confirmed=1, calls the resource's service
function with the operator's reason, which the service writes into its audit entry). The run
acts on what matched at confirmation time: rows created after that moment are left out, and
rows that stopped matching are reported as skipped.
"""

import csv
import itertools
import json
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.core.handlers.asgi import ASGIRequest
from django.db import transaction
from django.http import (
    HttpResponseBadRequest,
    HttpResponseForbidden,
    QueryDict,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from console.access import operator_required, viewer_required
from console.batches import batch_words
from console.resources import RESOURCES, ActionInputError, ActionSpec
from console.tables import Table, whole_number
from project import batches, tenancy
from project.bulk import BulkResult
from project.errors import BadUserRequest, DomainError
from project.rest.dates import format_date, parse_date

MAX_RETRIES = 2**31 - 1
REASON_LENGTH = 500


# ---------------------------------------------------------------------------------------------
# Parse: the action's values from the form.


def parse_values(spec: ActionSpec, post) -> dict:
    """The values `spec` needs from the form (retries, priority, due date), checked."""
    if spec.value == "retries":
        values = {"retries": _whole(post, "retries", 0, MAX_RETRIES + 1, _RETRIES_MESSAGES)}
        due = (post.get("due_date") or "").strip()
        if due:
            values["due_date"] = _console_date(due)
        return values
    if spec.value == "priority":
        return {"priority": _whole(post, "priority", -(2**63), 2**63, _PRIORITY_MESSAGES)}
    if spec.value == "due_date":
        text = (post.get("due_date") or "").strip()
        return {"due_date": _console_date(text) if text else None}
    if spec.value == "payload":
        try:
            payload = json.loads(post.get("payload") or "")
        except ValueError as error:
            raise ActionInputError(f"The payload is not valid JSON: {error}") from None
        retries = _whole(post, "retries", 1, MAX_RETRIES + 1, _RETRY_MESSAGES)
        return {"payload": payload, "retries": retries}
    return {}


_RETRIES_MESSAGES = ("Retries must be a whole number, 0 or more.",) * 2
_RETRY_MESSAGES = ("Retries must be a whole number, 1 or more.",) * 2
_PRIORITY_MESSAGES = (
    "Priority must be a whole number.",
    "Priority is out of range (a 64-bit number).",
)


def _whole(post, name, low, high, error_messages) -> int:
    not_a_number, out_of_range = error_messages
    try:
        value = int((post.get(name) or "").strip())
    except ValueError:
        raise ActionInputError(not_a_number) from None
    if not low <= value < high:
        raise ActionInputError(out_of_range)
    return value


def _console_date(text: str) -> datetime:
    try:
        return parse_date(text, "due date")
    except DomainError as error:
        raise ActionInputError(error.message) from None


def describe(spec: ActionSpec, values: dict) -> str:
    """The past-tense phrase of a result message: "Retries set to 3"."""
    if spec.key == "set_retries":
        text = f"Retries set to {values['retries']:,}"
        if values.get("due_date"):
            text += f" (due {format_date(values['due_date'])})"
        return text
    if spec.key == "set_priority":
        return f"Priority set to {values['priority']:,}"
    if spec.key == "set_due_date":
        due = values.get("due_date")
        return f"Due date set to {format_date(due)}" if due else "Due date cleared (due now)"
    return {
        "suspend": "Suspended",
        "activate": "Activated",
        "unlock": "Unlocked",
        "delete": "Deleted",
        "execute": "Executed",
        "retry_with_payload": "Payload replaced and retried",
    }[spec.key]


def plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


# ---------------------------------------------------------------------------------------------
# Select: the rows an action is about.


class Refused(Exception):
    """The action cannot go on; the message goes back to the operator as a flash message."""

    def __init__(self, message: str, level=messages.WARNING):
        super().__init__(message)
        self.message = message
        self.level = level


@dataclass(frozen=True)
class Selection:
    scope: str  # "ids" or "matching"
    ids: list
    query: str  # the filter as a query string (scope "matching")
    queryset: object
    audit_filter: dict | None
    words: str | None  # the filter in words, for the confirmation


def select(user, resource, spec: ActionSpec, post) -> Selection:
    """The rows `post` asks for, scoped to `user`; Refused when there are none to ask about."""
    scope = post.get("scope") or "ids"
    ids = [i for i in post.getlist("ids") if i]
    query = post.get("query") or ""
    if scope == "matching":
        # Validated again on every POST, the confirming one too: an unknown or repeated
        # parameter, or a bad value, refuses the action instead of acting on a wider filter.
        table = Table(QueryDict(query), user, resource, reverse(resource.list_url))
        queryset = table.matching()
        if not table.ok:
            raise Refused(
                "The filter is invalid, so nothing was done. " + " ".join(table.form_errors),
                messages.ERROR,
            )
        selection = Selection(
            scope, ids, query, queryset, table.audit_filter(), table.filter_words()
        )
    else:
        if not ids:
            raise Refused(f"Select at least one {resource.noun} first.")
        queryset = resource.visible(user).filter(pk__in=ids)
        selection = Selection(scope, ids, query, queryset, None, None)
    if not spec.bulk and (scope != "ids" or len(ids) != 1):
        raise Refused(f"{spec.label} works on one {resource.noun} at a time.")
    return selection


def _row_action(post):
    """A row menu button inside the table's form: "<action>:<id>" acts on that row only,
    whatever else is checked."""
    if not post.get("row_action"):
        return post
    action, _, row_id = post["row_action"].partition(":")
    post = post.copy()
    post.setlist("ids", [row_id])
    post["scope"] = "ids"
    post["action"] = action
    return post


# ---------------------------------------------------------------------------------------------
# The view.


@require_POST
@operator_required
def act(request, resource_key: str):
    resource = RESOURCES[resource_key]
    post = _row_action(request.POST)
    spec = resource.action(post.get("action"))
    if spec is None:
        return HttpResponseBadRequest("Unknown action")
    if spec.admin and not tenancy.can_delete(request.user):
        return HttpResponseForbidden("Only admins may delete.")
    if (post.get("scope") or "ids") not in ("ids", "matching"):
        return HttpResponseBadRequest("Unknown scope")
    next_url = _next_url(request, post, reverse(resource.list_url))
    try:
        selection = select(request.user, resource, spec, post)
    except Refused as refused:
        messages.add_message(request, refused.level, refused.message)
        return _finish(request, next_url)
    confirm = Confirmation(request, resource, spec, selection, post, next_url)
    if post.get("confirmed") != "1":
        return confirm.render()
    try:
        values = parse_values(spec, post)
    except ActionInputError as exc:
        return confirm.render(error=str(exc))
    return run(request, resource, spec, selection, values, post, next_url)


# Selected rows up to this many are changed at once, inside the request (a page holds at most
# 200; a second or so of row locks at worst). All matching rows, and bigger selections, become
# a batch that the job executor runs in chunks (project.batches).
SYNC_LIMIT = 1000


def runs_as_batch(spec: ActionSpec, selection: Selection) -> bool:
    """Whether the confirmed action starts a batch instead of changing rows in the request."""
    if spec.batch_type is None:
        return False
    return selection.scope == "matching" or len(selection.ids) > SYNC_LIMIT


def run(request, resource, spec, selection: Selection, values, post, next_url):
    """Act on what was confirmed: start a batch (all matching rows, big selections) and go to
    its progress page, or call the service at once and tell the operator what it did."""
    user = request.user
    expected = whole_number(post.get("expected"), -1)
    if selection.scope == "matching":
        # What matched at confirmation time: rows created since then are not part of it.
        target = selection.queryset.filter(create_time__lte=_as_of(post.get("as_of")))
        expected = expected if expected >= 0 else None
    else:
        target, expected = selection.ids, len(selection.ids)
    reason = (post.get("reason") or "").strip()[:REASON_LENGTH]
    if runs_as_batch(spec, selection):
        return start_batch(
            request, resource, spec, target, values, selection, expected, next_url, reason
        )
    options = resource.service_options(
        source="console", filter=selection.audit_filter, reason=reason
    )
    try:
        with transaction.atomic() if spec.atomic else nullcontext():
            result = spec.run(user, target, values, **options)
    except DomainError as exc:
        messages.error(request, f"{spec.label} failed: {exc.message}")
        return _finish(request, next_url)
    except ActionInputError as exc:
        messages.error(request, str(exc))
        return _finish(request, next_url)
    skipped = _skipped(result, selection.scope, expected)
    text = _result_text(resource, spec, values, result.changed, skipped)
    (messages.success if result.changed or not skipped else messages.warning)(request, text + ".")
    return _finish(request, next_url)


def batch_parameters(values: dict) -> dict:
    """The action's values as a batch keeps them (JSON, Camunda's names)."""
    names = {"retries": "retries", "priority": "priority", "due_date": "dueDate"}
    parameters = {}
    for key, value in values.items():
        text = format_date(value) if isinstance(value, datetime) else value
        parameters[names.get(key, key)] = text
    return parameters


def start_batch(request, resource, spec, rows, values, selection, expected, next_url, reason):
    """Start the action's batch over `rows` and lead the operator to its progress page."""
    try:
        batch = batches.start(
            request.user,
            spec.batch_type,
            rows,
            batch_parameters(values),
            filter=selection.audit_filter,
            description=selection.words or f"{plural(len(selection.ids), resource.noun)} selected",
            source="console",
            reason=reason,
        )
    except BadUserRequest:
        # Nothing matched any more (Camunda's "jobIds is empty"): no batch was written.
        messages.warning(request, f"Nothing to do: no {resource.noun}s match any more.")
        return _finish(request, next_url)
    except DomainError as exc:
        messages.error(request, f"{spec.label} failed: {exc.message}")
        return _finish(request, next_url)
    words = batch_words(batch)
    if batch.selecting:
        # A large selection: the seed job reads the rows; the progress page shows the total.
        text = f"Batch started: {words} on the {resource.noun}s that match"
        messages.success(request, text + ".")
        return _finish(request, reverse("batch-detail", args=[batch.pk]))
    text = f"Batch started: {words} on {plural(batch.total_rows, resource.noun)}"
    gone = (expected or 0) - batch.total_rows
    if gone > 0 and selection.scope == "matching":
        text += f" ({gone:,} stopped matching since you confirmed)"
    elif gone > 0:
        text += f" ({gone:,} of the selected are gone or not visible to you)"
    messages.success(request, text + ".")
    return _finish(request, reverse("batch-detail", args=[batch.pk]))


def _skipped(result: BulkResult, scope: str, expected: int | None) -> int:
    """Rows the operator asked for that the action left alone."""
    if scope == "ids":
        # Gone, not visible, or already in that state: the service counts them itself.
        return result.skipped
    # All matching: the measure is the count the operator confirmed. Rows that stopped matching
    # since never reach the service, and rows the filter still finds but that are already in
    # that state were not part of the promise either way.
    return max(expected - result.changed, 0) if expected is not None else 0


def _result_text(resource, spec, values, changed: int, skipped: int) -> str:
    text = f"{describe(spec, values)} on {plural(changed, resource.noun)}"
    if skipped:
        text += f" ({skipped:,} skipped: changed meanwhile or already in that state)"
    return text


def _next_url(request, post, fallback: str) -> str:
    target = post.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


def _finish(request, url):
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


def _as_of(text):
    if text:
        try:
            return parse_date(text, "as_of")
        except DomainError:
            pass
    return timezone.now()


# ---------------------------------------------------------------------------------------------
# Confirm: the exact number of rows, the filter in words, the inputs the action needs.


@dataclass
class Confirmation:
    request: object
    resource: object
    spec: ActionSpec
    selection: Selection
    post: object
    next_url: str

    def render(self, error: str | None = None):
        selection = self.selection
        count = selection.queryset.count()  # exact: the operator decides on this number
        context = {
            "resource": self.resource,
            "spec": self.spec,
            "scope": selection.scope,
            "ids": selection.ids if selection.scope == "ids" else [],
            "query": selection.query,
            "words": selection.words,
            "count": count,
            "count_text": plural(count, self.resource.noun),
            "next": self.next_url,
            # Full precision: a millisecond cut would leave out rows created in the same moment.
            "as_of": timezone.now().isoformat(),
            "error": error,
            "as_batch": runs_as_batch(self.spec, selection),
            "chunk_size": batches.chunk_size(),
            "post": self.post,
            "action_url": self.request.path,
        }
        template = "console/confirm.html"
        if self.request.htmx:
            template += "#confirm-dialog"
        return render(self.request, template, context, status=400 if error else 200)


# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Export: the current filtered set, streamed, in flat memory.

EXPORT_CHUNK = 2000


class _Echo:
    def write(self, value):
        return value


def _cell(value):
    if isinstance(value, datetime):
        return format_date(value)
    return value


def _csv_lines(fields, rows):
    writer = csv.writer(_Echo())
    yield writer.writerow(fields)
    for row in rows:
        yield writer.writerow([_cell(v) for v in row])


def _json_lines(fields, rows):
    yield "["
    first = True
    for row in rows:
        item = json.dumps({f: _cell(v) for f, v in zip(fields, row, strict=True)})
        yield ("\n" if first else ",\n") + item
        first = False
    yield "\n]\n"


EXPORT_FORMATS = {
    "csv": (_csv_lines, "text/csv; charset=utf-8"),
    "json": (_json_lines, "application/json"),
}


@viewer_required
def export(request, resource_key: str):
    resource = RESOURCES[resource_key]
    table = Table(request.GET, request.user, resource, request.path, extra_params=("format",))
    fmt = request.GET.get("format", "csv")
    if fmt not in EXPORT_FORMATS:
        return HttpResponseBadRequest("format must be csv or json")
    queryset = table.matching()
    if not table.ok:
        return HttpResponseBadRequest("Invalid filter: " + "; ".join(table.form_errors))
    fields = resource.export_fields
    rows = (
        queryset.order_by(*table.ordering()).values_list(*fields).iterator(chunk_size=EXPORT_CHUNK)
    )
    lines, content_type = EXPORT_FORMATS[fmt]
    content = _in_chunks(lines(fields, rows))
    # The query runs and its first chunk is read before any byte is sent: whatever the
    # database refuses is then an error page, never a 200 that breaks off mid-stream.
    content = itertools.chain([next(content, "")], content)
    if isinstance(request, ASGIRequest):
        content = _pulled(content)
    response = StreamingHttpResponse(content, content_type=content_type)
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    name = f"{resource.plural.replace(' ', '-')}-{stamp}.{fmt}"
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
