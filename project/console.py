"""The console's table machinery, shared by the job and external task pages.

A table page is driven entirely by its query string: the FilterSet's own parameters (the same
FilterSet the REST API uses, fed through `data_from_query`), plus four console keys — `q`
(free-text search), `status` (the badge words), `sort` (`-created,priority`) and `page`/`size`.
Everything here is computed from `request.GET`, so any view is a shareable link.
"""

import re
from dataclasses import dataclass, field
from urllib.parse import urlencode

import django_filters
from django.db.models import F, Q
from django.utils import timezone

from project import filters as shared_filters
from project import tenancy
from project.errors import InvalidRequest
from project.rest.paging import nulls_smallest, window

PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
# Counting stops here: "10,000+ jobs" costs one bounded index scan instead of a COUNT(*) over
# millions of rows on every page view. Exact counts are computed only when an action needs them.
COUNT_LIMIT = 10_000
# Offset paging beyond this point gets slow on big tables; narrower filters are the answer there.
MAX_PAGE = 2_000
CONSOLE_KEYS = ("q", "status", "sort", "page", "size")


# ---------------------------------------------------------------------------------------------
# Status: the badge words and the matching queryset filters, with one precedence order so the
# badge a row shows and the status filter that finds it always agree.


@dataclass(frozen=True)
class Status:
    key: str
    label: str
    help: str


JOB_STATUSES = (
    Status("failed", "Failed", "no retries left"),
    Status("suspended", "Suspended", "will not run until activated"),
    Status("locked", "Locked", "running: an executor holds a live lock"),
    Status("expired", "Expired lock", "the lock owner's lock ran out"),
    Status("retrying", "Retrying", "failed before, retries left"),
    Status("due", "Due", "will run as soon as an executor is free"),
    Status("waiting", "Waiting", "due date in the future"),
)
TASK_STATUSES = (
    Status("failed", "Failed", "no retries left"),
    Status("suspended", "Suspended", "not fetched until activated"),
    Status("locked", "Locked", "a worker holds a live lock"),
    Status("retrying", "Retrying", "failed before, retries left"),
    Status("expired", "Expired lock", "the worker's lock ran out"),
    Status("waiting", "Waiting", "waiting for a worker to fetch it"),
)


def _job_conditions(now):
    return {
        "failed": Q(retries=0),
        "suspended": Q(suspended=True),
        "locked": Q(lock_expiration_time__gt=now),
        "expired": Q(lock_owner__isnull=False),
        "retrying": Q(exception_message__isnull=False),
        "due": Q(due_date__isnull=True) | Q(due_date__lte=now),
        "waiting": Q(due_date__gt=now),
    }


def _task_conditions(now):
    from external_tasks.models import FAILED as FAILED_TASK

    return {
        "failed": FAILED_TASK,
        "suspended": Q(suspended=True),
        "locked": Q(lock_expiration_time__gt=now),
        "retrying": Q(error_message__isnull=False),
        "expired": Q(worker_id__isnull=False),
        "waiting": Q(pk__isnull=False),
    }


def status_q(kind: str, key: str, now=None) -> Q:
    """The filter for one status: its own condition and none of the higher-precedence ones."""
    now = now or timezone.now()
    statuses = JOB_STATUSES if kind == "job" else TASK_STATUSES
    conditions = _job_conditions(now) if kind == "job" else _task_conditions(now)
    q = Q()
    for status in statuses:
        if status.key == key:
            return q & conditions[key]
        q &= ~conditions[status.key]
    raise KeyError(key)


def job_status(job, now=None) -> Status:
    now = now or timezone.now()
    by_key = {s.key: s for s in JOB_STATUSES}
    if job.retries == 0:
        return by_key["failed"]
    if job.suspended:
        return by_key["suspended"]
    if job.lock_expiration_time and job.lock_expiration_time > now:
        return by_key["locked"]
    if job.lock_owner:
        return by_key["expired"]
    if job.exception_message is not None:
        return by_key["retrying"]
    if job.due_date is None or job.due_date <= now:
        return by_key["due"]
    return by_key["waiting"]


def task_status(task, now=None) -> Status:
    now = now or timezone.now()
    by_key = {s.key: s for s in TASK_STATUSES}
    if task.retries == 0:
        return by_key["failed"]
    if task.suspended:
        return by_key["suspended"]
    if task.lock_expiration_time and task.lock_expiration_time > now:
        return by_key["locked"]
    if task.error_message is not None:
        return by_key["retrying"]
    if task.worker_id:
        return by_key["expired"]
    return by_key["waiting"]


# ---------------------------------------------------------------------------------------------
# Counting without COUNT(*) over the whole table.


def bounded_count(queryset, limit: int | None = None) -> tuple[int, bool]:
    """(count, exact): counts at most `limit` + 1 rows; exact is False when there are more."""
    limit = limit or COUNT_LIMIT
    n = queryset.order_by()[: limit + 1].count()
    return (limit, False) if n > limit else (n, True)


def count_label(n: int, exact: bool) -> str:
    return f"{n:,}" if exact else f"{n:,}+"


# ---------------------------------------------------------------------------------------------
# Describing the FilterSet's parameters as form controls.


def humanize_name(name: str) -> str:
    """'priorityHigherThanOrEquals' -> 'Priority higher than or equals'."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).split()
    text = " ".join(w if w.isupper() and len(w) > 1 else w.lower() for w in words)
    text = text.replace("id in", "ids").replace(" id", " ID").replace("ids", "IDs")
    return text[:1].upper() + text[1:]


def control_kind(f) -> str:
    if isinstance(f, shared_filters.TrueFilter | django_filters.BooleanFilter):
        return "bool"
    if isinstance(f, shared_filters.DateFilter | django_filters.DateTimeFilter):
        return "date"
    if isinstance(f, shared_filters.ListFilter):
        return "list"
    if isinstance(
        f,
        shared_filters.LongFilter | shared_filters.IntegerFilter | django_filters.NumberFilter,
    ):
        return "number"
    return "text"


_LOCAL_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$")


@dataclass
class Control:
    name: str
    label: str
    kind: str
    value: str
    errors: list = field(default_factory=list)
    help: str = ""

    @property
    def input_type(self):
        if self.kind == "date":
            # A picker when the value fits it; a text box keeps other accepted forms editable.
            return (
                "datetime-local" if not self.value or _LOCAL_DATETIME.match(self.value) else "text"
            )
        return {"number": "number", "bool": "checkbox"}.get(self.kind, "text")


# ---------------------------------------------------------------------------------------------
# The table state.


@dataclass
class Column:
    key: str  # the name in `sort=` and in the header
    label: str
    field: str | None = None  # model field to sort on; None = not sortable
    numeric: bool = False


@dataclass
class TableConfig:
    kind: str  # "job" or "task"
    filterset_class: type
    columns: list
    default_sort: str
    search: callable  # (queryset, text) -> queryset
    inline: tuple = ()  # FilterSet parameters shown inline; the rest go to "More filters"
    hidden: tuple = ()  # parameters not offered as controls


class TableError(Exception):
    pass


def querystring(params: dict, **changes) -> str:
    """The query string for `params` with `changes` applied (None removes a key)."""
    merged = {k: v for k, v in params.items()}
    for key, value in changes.items():
        if value is None or value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    pairs = []
    for key, value in merged.items():
        if isinstance(value, list):
            pairs.extend((key, item) for item in value)
        else:
            pairs.append((key, value))
    return "?" + urlencode(pairs) if pairs else "?"


def plain_params(get) -> dict:
    """request.GET as an ordered dict; repeated keys stay lists, empty values are dropped."""
    params = {}
    for key in get:
        values = [v for v in get.getlist(key) if v != ""]
        if not values:
            continue
        params[key] = values if len(values) > 1 else values[0]
    return params


def parse_sort(text: str, columns: list, default: str) -> list[tuple[str, str]]:
    by_key = {c.key: c for c in columns if c.field}
    result = []
    for part in (text or default).split(","):
        part = part.strip()
        if not part:
            continue
        direction = "desc" if part.startswith("-") else "asc"
        key = part.lstrip("-+")
        if key not in by_key:
            raise TableError(f"Cannot sort by '{key}': sortable columns are {', '.join(by_key)}")
        if key not in {k for k, _ in result}:
            result.append((key, direction))
    return result or parse_sort(default, columns, default)


def sort_text(sort: list[tuple[str, str]]) -> str:
    return ",".join(("-" if d == "desc" else "") + k for k, d in sort)


class Table:
    """Everything a table page shows, computed from the request's query string."""

    def __init__(self, request, queryset, config: TableConfig):
        self.request = request
        self.config = config
        self.params = plain_params(request.GET)
        self.errors: list[str] = []
        fs_class = config.filterset_class
        scoped = tenancy.scope(queryset, request.user)
        self.filterset = fs_class(fs_class.data_from_query(request.GET), queryset=scoped)
        self.valid = self.filterset.is_valid()
        self.q = (request.GET.get("q") or "").strip()
        self.status = request.GET.get("status") or ""
        statuses = JOB_STATUSES if config.kind == "job" else TASK_STATUSES
        self.statuses = statuses
        if self.status and self.status not in {s.key for s in statuses}:
            self.errors.append(f"Unknown status '{self.status}'")
        try:
            self.sort = parse_sort(self.params.get("sort", ""), config.columns, config.default_sort)
        except TableError as error:
            self.errors.append(str(error))
            self.sort = parse_sort(config.default_sort, config.columns, config.default_sort)
        self.size = _int(request.GET.get("size"), DEFAULT_PAGE_SIZE)
        if self.size not in PAGE_SIZES:
            self.errors.append(f"Page size must be one of {', '.join(map(str, PAGE_SIZES))}")
            self.size = DEFAULT_PAGE_SIZE
        self.page = _int(request.GET.get("page"), 1)
        if self.page < 1 or self.page > MAX_PAGE:
            self.errors.append(
                f"Page must be between 1 and {MAX_PAGE:,}: narrow the filter instead"
            )
            self.page = 1
        self.ok = self.valid and not self.errors

    # -- the rows ------------------------------------------------------------------------

    def matching(self):
        """The scoped, filtered, searched queryset (unsorted), or none() when input is bad."""
        if not self.ok:
            return self.filterset.queryset.none()
        try:
            qs = self.filterset.qs
        except InvalidRequest as error:
            self.errors.append(error.message)
            self.ok = False
            return self.filterset.queryset.none()
        if self.status:
            qs = qs.filter(status_q(self.config.kind, self.status))
        if self.q:
            qs = self.config.search(qs, self.q)
        return qs

    def ordering(self):
        """ORDER BY as the REST API sorts (project.rest.paging.order_by): nulls are the smallest
        value, and ties go by id in the direction of the last key, the order the sort indexes
        (project.indexes) hold, so an index serves every sortable column both ways."""
        fields = {c.key: c.field for c in self.config.columns if c.field}
        expressions = [
            nulls_smallest(F(fields[key]), direction == "desc") for key, direction in self.sort
        ]
        if "id" not in dict(self.sort):
            last_descending = self.sort[-1][1] == "desc"
            expressions.append(F("id").desc() if last_descending else F("id").asc())
        return expressions

    def evaluate(self):
        qs = self.matching()
        start = (self.page - 1) * self.size
        # One row more than the page tells whether a next page exists without counting.
        rows = list(window(qs.order_by(*self.ordering()), start, self.size + 1))
        self.has_next = len(rows) > self.size
        self.rows = rows[: self.size]
        if self.ok:
            self.count, self.count_exact = bounded_count(qs)
        else:
            self.count, self.count_exact = 0, True
        self.first_index = start + 1 if self.rows else 0
        self.last_index = start + len(self.rows)
        return self

    # -- what the template needs -----------------------------------------------------------

    @property
    def count_label(self):
        return count_label(self.count, self.count_exact)

    def url(self, **changes) -> str:
        return self.request.path + querystring(self.params, **changes)

    @property
    def filter_query(self) -> str:
        """The current filter as a query string (what "all matching" actions run on)."""
        return querystring(self.filter_params).lstrip("?")

    @property
    def filter_params(self) -> dict:
        """The parameters that define which rows match (no sort, paging)."""
        return {k: v for k, v in self.params.items() if k not in ("sort", "page", "size")}

    @property
    def form_errors(self) -> list[str]:
        messages = []
        for name, errors in self.filterset.form.errors.items():
            label = humanize_name(name) if name != "__all__" else ""
            for error in errors:
                messages.append(f"{label} ({name}): {error}" if label else str(error))
        return messages + self.errors

    def controls(self):
        form_errors = self.filterset.form.errors if not self.valid else {}
        hidden = set(self.config.hidden)
        result = []
        for name, f in self.config.filterset_class.base_filters.items():
            if name in hidden:
                continue
            value = self.params.get(name, "")
            if isinstance(value, list):
                value = ",".join(value)
            control = Control(
                name=name,
                label=humanize_name(name),
                kind=control_kind(f),
                value=value,
                errors=list(form_errors.get(name, [])),
                help=str(getattr(f, "label", "") or ""),
            )
            result.append(control)
        return result

    @property
    def inline_controls(self):
        inline = list(self.config.inline)
        by_name = {c.name: c for c in self.controls()}
        return [by_name[n] for n in inline if n in by_name]

    @property
    def more_controls(self):
        inline = set(self.config.inline)
        return [c for c in self.controls() if c.name not in inline]

    @property
    def more_open(self):
        return any(c.value or c.errors for c in self.more_controls)

    def chips(self):
        chips = []
        for key, value in self.filter_params.items():
            shown = ", ".join(value) if isinstance(value, list) else value
            if key == "q":
                label = "Search"
            elif key == "status":
                label = "Status"
                shown = {s.key: s.label for s in self.statuses}.get(value, value)
            else:
                label = humanize_name(key)
            text = label if shown == "true" and key != "q" else f"{label}: {shown}"
            chips.append({"text": text, "remove": self.url(**{key: None, "page": None})})
        return chips

    def filter_words(self) -> str:
        chips = self.chips()
        return "; ".join(c["text"] for c in chips) if chips else "no filter (all rows you can see)"

    def headers(self):
        current = dict(self.sort)
        position = {k: i + 1 for i, (k, _) in enumerate(self.sort)}
        result = []
        for column in self.config.columns:
            header = {"column": column, "sortable": bool(column.field)}
            if column.field:
                direction = current.get(column.key)
                flipped = "asc" if direction == "desc" else "desc"
                # Plain click: sort by this column only (flip it if it already leads).
                leads = self.sort and self.sort[0][0] == column.key
                first = flipped if leads else (direction and flipped) or "asc"
                if column.key in ("created", "due", "priority") and not direction:
                    first = "desc"
                header["href"] = self.url(sort=sort_text([(column.key, first)]), page=None)
                # Shift-click: add as the next key, or flip it where it stands.
                if direction:
                    added = [(k, flipped if k == column.key else d) for k, d in self.sort]
                else:
                    added = [*self.sort, (column.key, first)]
                header["add_href"] = self.url(sort=sort_text(added), page=None)
                header["direction"] = direction
                header["aria"] = {"asc": "ascending", "desc": "descending"}.get(direction or "")
                header["position"] = position.get(column.key) if len(self.sort) > 1 else None
            result.append(header)
        return result

    @property
    def sort_value(self):
        return sort_text(self.sort)

    @property
    def first_page_url(self):
        return self.url(page=None)

    @property
    def prev_url(self):
        return self.url(page=self.page - 1 if self.page > 2 else None) if self.page > 1 else None

    @property
    def next_url(self):
        return self.url(page=self.page + 1) if self.has_next and self.page < MAX_PAGE else None

    def size_options(self):
        return [{"value": s, "selected": s == self.size} for s in PAGE_SIZES]


def _int(value, default: int) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return -1


def audit_entries_for(target_types, row_id: str, limit: int = 100):
    """Audit entries that name this row among their ids (bulk actions included)."""
    from django.db.models import TextField
    from django.db.models.functions import Cast

    from project.models import AuditEntry

    # JSON containment differs between databases; the JSON text contains '"<id>"' on both.
    return (
        AuditEntry.objects.filter(target_type__in=target_types)
        .annotate(ids_text=Cast("target_ids", TextField()))
        .filter(ids_text__contains=f'"{row_id}"')[:limit]
    )


def viewer_required(view):
    """Console pages are for viewers, operators and admins; worker accounts only use the
    worker endpoints, so they get a 403 page here."""
    from functools import wraps

    from django.shortcuts import render

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not tenancy.can_view(request.user):
            return render(
                request,
                "error.html",
                {
                    "status": 403,
                    "title": "Forbidden",
                    "message": "This account may not use the console (worker accounts only "
                    "fetch and complete work through the API).",
                },
                status=403,
            )
        return view(request, *args, **kwargs)

    return wrapped
