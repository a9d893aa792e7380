"""The Batches pages: every bulk action the job executor runs in chunks, with its live progress,
its result and the operator's suspend / resume / cancel.

Reads and changes batches only through project.batches (scoped by its `visible(user)`); the
list and the progress view poll their partial while something runs and stop once it ended.
"""

from dataclasses import dataclass
from datetime import datetime

from django.contrib import messages
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from console.access import operator_required, viewer_required
from console.tables import querystring, whole_number
from jobs.models import ExecutorHeartbeat
from project import batches, tenancy
from project.errors import DomainError, NotFound
from project.models import Batch

QUEUE = "batch"
# An executor reports itself every few seconds; one unseen for this long is gone.
EXECUTOR_WINDOW = 30  # seconds
FINISHED_PAGE = 50
POLL_SECONDS = 2


@dataclass
class BatchView:
    """One batch as the pages show it: state, progress, rate and time left, in words."""

    batch: Batch
    now: datetime
    failed_jobs: int = 0

    @property
    def id(self):
        return self.batch.pk

    @property
    def running(self) -> bool:
        return self.batch.end_time is None

    @property
    def state(self) -> str:
        """running / suspended / completed / cancelled."""
        if self.running:
            return "suspended" if self.batch.suspended else "running"
        return self.batch.outcome

    @property
    def state_label(self) -> str:
        return self.state.capitalize()

    @property
    def type_words(self) -> str:
        return batch_words(self.batch)

    @property
    def noun(self) -> str:
        return {"job": "job", "external_task": "external task"}.get(
            self.batch.target_type, self.batch.target_type.replace("_", " ")
        )

    @property
    def rows_done(self) -> int:
        b = self.batch
        return b.rows_changed + b.rows_skipped + b.rows_failed

    @property
    def rows_left(self) -> int:
        return max(self.batch.total_rows - self.rows_done, 0)

    @property
    def percent(self) -> int:
        total = self.batch.total_rows
        if not total:
            return 0 if self.running else 100
        done = min(self.rows_done, total)
        # Never 100 % while running (the monitor job still has to close the batch).
        percent = done * 100 // total
        return min(percent, 99) if self.running else 100 if done == total else percent

    @property
    def elapsed_seconds(self) -> float | None:
        start = self.batch.execution_start_time or self.batch.start_time
        end = self.batch.end_time or self.now
        if start is None:
            return None
        return max((end - start).total_seconds(), 0.0)

    @property
    def rate(self) -> float | None:
        """Rows per second since the first chunk started (None before any row was done)."""
        elapsed = self.elapsed_seconds
        if not self.rows_done or not elapsed:
            return None
        return self.rows_done / elapsed

    @property
    def rate_text(self) -> str:
        rate = self.rate
        if rate is None:
            return "—"
        return f"{rate:,.0f} rows/s" if rate >= 10 else f"{rate:,.1f} rows/s"

    @property
    def time_left_text(self) -> str:
        if not self.running:
            return "—"
        if self.batch.suspended:
            return "paused"
        if self.batch.selecting:
            return "selecting the rows"
        if not self.rows_left:
            return "finishing"
        rate = self.rate
        if rate is None:
            return "not started yet"
        return "about " + duration_words(self.rows_left / rate)

    @property
    def took_text(self) -> str:
        elapsed = self.elapsed_seconds
        return duration_words(elapsed) if elapsed is not None else "—"

    @property
    def filter_words(self) -> str:
        return self.batch.description or ("the selected rows" if not self.batch.filter else "")

    @property
    def audit_url(self) -> str | None:
        if self.batch.audit_entry_id is None:
            return None
        return reverse("audit") + querystring({}, id=self.batch.audit_entry_id)

    @property
    def definitions(self) -> list[tuple[str, str]]:
        """The batch's job definitions (seed, monitor, chunks), for links to their jobs."""
        b = self.batch
        named = (
            ("seed", b.seed_job_definition_id),
            ("monitor", b.monitor_job_definition_id),
            ("chunks", b.batch_job_definition_id),
        )
        return [(label, definition) for label, definition in named if definition]

    @property
    def failed_jobs_url(self) -> str | None:
        if not self.failed_jobs or not self.batch.batch_job_definition_id:
            return None
        return reverse("job-list") + querystring(
            {}, jobDefinitionId=self.batch.batch_job_definition_id, noRetriesLeft="true"
        )


def batch_words(batch: Batch) -> str:
    """What the batch does, in words ("set retries to 3"), as its type says it."""
    batch_type = batches.TYPES.get(batch.type)
    if batch_type is not None:
        try:
            return batch_type.words(batch.parameters or {})
        except (KeyError, TypeError, ValueError):
            pass  # parameters of an older shape: the type name still says what it was
    return batch.type.replace("-", " ")


def duration_words(seconds: float) -> str:
    """3 s, 4 min 10 s, 2 h 5 min: precise enough for a progress line."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def executor_warning(now) -> str | None:
    """The warning that batches will not progress, or None while an executor runs the queue."""
    if batches.executors_seen(QUEUE, within_seconds=EXECUTOR_WINDOW):
        return None
    seen = [
        beat.last_seen
        for beat in ExecutorHeartbeat.objects.order_by("-last_seen")[:200]
        if not beat.queues or QUEUE in beat.queues
    ]
    since = "for " + duration_words((now - max(seen)).total_seconds()) if seen else "yet"
    return (
        f"No job executor running the “{QUEUE}” queue has been seen {since}: batches will not "
        f"progress. Start one with `manage.py runjobs --queue {QUEUE}` (or `make run`)."
    )


def _views(rows, now) -> list[BatchView]:
    rows = list(rows)
    running_ids = [b.pk for b in rows if b.end_time is None]
    failed = batches.failed_jobs(running_ids) if running_ids else {}
    return [BatchView(b, now, failed.get(b.pk, 0)) for b in rows]


def _permissions(user) -> dict:
    return {"can_operate": tenancy.can_operate(user)}


@viewer_required
@vary_on_headers("HX-Request")
def batch_list(request):
    """Running batches first (live), then the finished ones, newest first, paged."""
    now = timezone.now()
    visible = batches.visible(request.user)
    running = _views(visible.filter(end_time__isnull=True).order_by("-start_time", "-id"), now)
    page = max(1, whole_number(request.GET.get("page"), 1))
    start = (page - 1) * FINISHED_PAGE
    finished_rows = list(
        visible.filter(end_time__isnull=False)
        .select_related("audit_entry")
        .order_by("-end_time", "-id")[start : start + FINISHED_PAGE + 1]
    )
    context = {
        "nav_section": "batches",
        "running": running,
        "finished": _views(finished_rows[:FINISHED_PAGE], now),
        "page": page,
        "prev_url": querystring({}, page=page - 1 if page > 2 else None) if page > 1 else None,
        "next_url": querystring({}, page=page + 1) if len(finished_rows) > FINISHED_PAGE else None,
        "warning": executor_warning(now) if running else None,
        "poll": POLL_SECONDS if running else None,
        "now": now,
        **_permissions(request.user),
    }
    template = "console/batches.html"
    if request.htmx and not request.htmx.history_restore_request:
        template += "#batch-lists"
    return render(request, template, context)


@viewer_required
@vary_on_headers("HX-Request")
def batch_detail(request, batch_id: str):
    """One batch: its progress (live while it runs), counts, filter, who and when."""
    try:
        batch = batches.get(request.user, batch_id)
    except DomainError:
        raise Http404("No such batch") from None
    now = timezone.now()
    view = _views([batch], now)[0]
    context = {
        "nav_section": "batches",
        "b": view,
        "warning": executor_warning(now) if view.running else None,
        "poll": POLL_SECONDS if view.running else None,
        **_permissions(request.user),
    }
    template = "console/batch.html"
    if request.htmx and not request.htmx.history_restore_request:
        template += "#batch-progress"
    return render(request, template, context)


BATCH_ACTIONS = {
    "suspend": "Suspended",
    "resume": "Resumed",
    "cancel": "Cancelled",
}


@require_POST
@operator_required
def batch_action(request, batch_id: str):
    """Suspend, resume or cancel a running batch (project.batches audits each)."""
    action = request.POST.get("action")
    if action not in BATCH_ACTIONS:
        return HttpResponseBadRequest("Unknown batch action")
    back = request.POST.get("next") or reverse("batch-detail", args=[batch_id])
    if not url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        back = reverse("batch-detail", args=[batch_id])
    user = request.user
    try:
        batch = batches.get(user, batch_id)
    except DomainError:
        raise Http404("No such batch") from None
    if batch.end_time is not None:
        messages.warning(request, f"This batch has already ended ({batch.outcome}).")
        return redirect(back)
    try:
        if action == "cancel":
            batches.delete(user, batch.pk)
        else:
            batches.set_suspended(user, batch.pk, action == "suspend")
    except DomainError as error:
        if isinstance(error, NotFound):  # deleted meanwhile
            raise Http404("No such batch") from None
        messages.error(request, error.message)
        return redirect(back)
    what = BatchView(batch, timezone.now()).type_words
    note = {
        "suspend": "no further chunk runs until it is resumed",
        "resume": "its chunks run again",
        "cancel": "a chunk already running finishes; the rest is left undone",
    }[action]
    messages.success(request, f"{BATCH_ACTIONS[action]} batch “{what}”: {note}.")
    return redirect(back)
